"""TensorRT on an NVIDIA GPU: runs a serialized engine built by ``hema-export tensorrt``.

Written against TensorRT's documented Python API of versions 10 and 11 (named I/O tensors,
``execute_async_v3``) and cuda-python for device memory. Neither can be installed on a machine without an
NVIDIA GPU, so this module is only exercised by the ``gpu``-marked tests. An engine is tied to the GPU model and
the TensorRT version that built it; its model card lives in the manifest written beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hema.runtime.card import ModelCard
from hema.runtime.engines.base import IMAGE_INPUT, Engine, ModelError
from hema.runtime.engines.card_contract import check_card_fits_graph
from hema.runtime.manifest import ArtifactFiles, read_artifact

__all__ = ["TensorRtEngine", "cuda_runtime"]


def cuda_runtime() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime`` in 12.6 and later, ``cuda.cudart`` before).

    Raises:
        ModelError: If cuda-python is missing or no CUDA GPU is visible.
    """
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as error:
            raise ModelError("cuda-python is not installed: pip install 'hema[tensorrt]'") from error
    error, count = cudart.cudaGetDeviceCount()
    if error != cudart.cudaError_t.cudaSuccess or count == 0:
        raise ModelError("no CUDA GPU is visible: a TensorRT engine needs one; run the .onnx or OpenVINO model instead")
    return cudart


def _checked(cudart: Any, result: tuple) -> Any:
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA call failed: {error}")
    return values[0] if len(values) == 1 else values


class TensorRtEngine(Engine):
    """Runs a serialized TensorRT engine with a dynamic batch dimension.

    Args:
        path: The ``.engine`` file.
        card: The model card from the engine's manifest.
        device: CUDA device index.
        artifact: The file's bytes as :func:`hema.runtime.manifest.read_artifact` read (and checked) them; the
            engine is deserialized from these bytes. Default: the file is read here, unchecked.

    Raises:
        ModelError: If TensorRT, cuda-python or a GPU is missing, the engine was built for another GPU or
            TensorRT version, or the card does not fit the engine's tensors.
    """

    backend = "tensorrt"

    def __init__(
        self, path: str | Path, card: ModelCard, device: int = 0, *, artifact: ArtifactFiles | None = None
    ) -> None:
        try:
            import tensorrt as trt
        except ImportError as error:
            raise ModelError(
                "TensorRT is not installed: pip install 'hema[tensorrt]' on a machine with an NVIDIA GPU"
            ) from error
        self.trt = trt
        self.cudart = cuda_runtime()
        _checked(self.cudart, self.cudart.cudaSetDevice(device))
        self.path = Path(path)
        self.card = card
        if artifact is None:
            artifact = read_artifact(self.path, verify=False)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(artifact.model)
        self.loaded_sha256 = dict(artifact.sha256)
        if self.engine is None:
            raise ModelError(
                f"TensorRT {trt.__version__} cannot load {self.path}: engines only run on the GPU model and "
                "TensorRT version that built them; rebuild it here with hema-export tensorrt"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(index) for index in range(self.engine.num_io_tensors)]
        self.output_names = tuple(
            name for name in names if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT
        )
        shapes = {
            name: tuple(None if side < 0 else int(side) for side in self.engine.get_tensor_shape(name))
            for name in names
        }
        check_card_fits_graph(
            card,
            self.path,
            {name: shape for name, shape in shapes.items() if name not in self.output_names},
            {name: shapes[name] for name in self.output_names},
        )
        self.max_batch = int(self.engine.get_tensor_profile_shape(IMAGE_INPUT, 0)[2][0])
        self.stream = _checked(self.cudart, self.cudart.cudaStreamCreate())
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes), grown on demand

    def _device_buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _checked(self.cudart, self.cudart.cudaFree(pointer))
            pointer = _checked(self.cudart, self.cudart.cudaMalloc(nbytes))
            self.buffers[name] = (pointer, nbytes)
        return pointer

    def _run_chunk(self, images: np.ndarray) -> dict[str, np.ndarray]:
        cudart, copy = self.cudart, self.cudart.cudaMemcpyKind
        self.context.set_input_shape(IMAGE_INPUT, images.shape)
        source = self._device_buffer(IMAGE_INPUT, images.nbytes)
        _checked(
            cudart,
            cudart.cudaMemcpyAsync(source, images.ctypes.data, images.nbytes, copy.cudaMemcpyHostToDevice, self.stream),
        )
        self.context.set_tensor_address(IMAGE_INPUT, source)
        outputs = {}
        for name in self.output_names:
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
            outputs[name] = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=dtype)
            self.context.set_tensor_address(name, self._device_buffer(name, outputs[name].nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError(f"TensorRT failed to run {self.path}")
        for name, host in outputs.items():
            _checked(
                cudart,
                cudart.cudaMemcpyAsync(
                    host.ctypes.data, self.buffers[name][0], host.nbytes, copy.cudaMemcpyDeviceToHost, self.stream
                ),
            )
        _checked(cudart, cudart.cudaStreamSynchronize(self.stream))
        return {name: value.astype(np.float32, copy=False) for name, value in outputs.items()}

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        chunks = [
            self._run_chunk(images[start : start + self.max_batch]) for start in range(0, len(images), self.max_batch)
        ]
        return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in self.output_names}

    def describe(self) -> str:
        return f"tensorrt {self.trt.__version__} GPU, batch up to {self.max_batch}"

    def __del__(self) -> None:
        for pointer, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(pointer)
