"""Build a serialized TensorRT engine from a fused hema ONNX model (FP16 or INT8), with a dynamic batch.

Written against TensorRT's documented Python API, versions 10 and 11; TensorRT cannot be installed on a
machine without an NVIDIA GPU, so this is exercised only by the ``gpu``-marked tests.

- TensorRT 10 builds a weakly typed network: ``BuilderFlag.FP16`` lets it choose FP16 kernels; for INT8 the
  ONNX carries Q/DQ nodes (explicit quantisation) and ``BuilderFlag.INT8`` is set with FP16 as fallback.
- TensorRT 11 builds strongly typed networks only: precision comes from the ONNX graph itself, so FP16 is an
  ONNX converted to half precision (inputs and outputs kept as they are) and INT8 is the Q/DQ ONNX.

INT8 uses the symmetric Q/DQ ONNX of :mod:`hema.export.precision.onnx_int8` (zero points of 0, as TensorRT
requires), whose agreement was validated with ONNX Runtime; check the engine itself with ``hema-export check``.
The engine gets an optimisation profile for batches 1 to ``max_batch``,
a timing cache that later builds reuse, and a manifest that carries the model card (an engine file has no room
for it) and the GPU and TensorRT version it was built for.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from hema.export.graph.fuse import read_card
from hema.export.precision.int8_quantisation import Int8Settings
from hema.export.precision.targets import TENSORRT_PRECISIONS
from hema.runtime.engines.base import IMAGE_INPUT, ModelError
from hema.runtime.manifest import write_manifest

__all__ = ["build_tensorrt_engine", "half_precision_onnx"]


def half_precision_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with FP16 weights and arithmetic; the uint8 image input and float32 outputs are kept.

    Softmax stays in FP32 so probabilities keep their resolution near 0 and 1.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True, op_block_list=["Softmax"])


def _tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as error:
        raise ModelError(
            "TensorRT is not installed: on a machine with an NVIDIA GPU, pip install 'hema[tensorrt]'"
        ) from error
    from hema.runtime.engines.tensorrt_engine import cuda_runtime

    cuda_runtime()  # raises ModelError when no GPU is visible
    return trt


def _gpu_name() -> str:
    from hema.runtime.engines.tensorrt_engine import cuda_runtime

    cudart = cuda_runtime()
    error, properties = cudart.cudaGetDeviceProperties(0)
    name = properties.name
    return name.decode() if isinstance(name, bytes) else str(name)


def build_tensorrt_engine(
    source: Path,
    out: Path,
    *,
    precision: str = "fp16",
    calibration: Path | None = None,
    max_batch: int = 64,
    optimal_batch: int = 32,
    timing_cache: Path | None = None,
    workspace_gib: float = 2.0,
    settings: Int8Settings = Int8Settings(),
) -> Path:
    """Build and write ``out`` plus its manifest.

    Args:
        source: Fused FP32 ``.onnx`` from ``hema-export onnx``.
        out: The ``.engine`` file.
        precision: ``fp16`` or ``int8``.
        calibration: Cell folder whose train split calibrates INT8 (required for ``int8``).
        max_batch: Largest batch the engine accepts.
        optimal_batch: Batch the kernels are tuned for.
        timing_cache: File to read and update with kernel timings (faster rebuilds).
        workspace_gib: Scratch memory TensorRT may use while building.
        settings: INT8 calibration cells and the convolutions kept in FP32.

    Raises:
        ModelError: If TensorRT, cuda-python or a GPU is missing.
        ValueError: If the head needs ONNX Runtime, or INT8 has no calibration cells.
        RuntimeError: If TensorRT fails to parse or build.
    """
    if precision not in TENSORRT_PRECISIONS:
        raise ValueError(f"precision must be one of {TENSORRT_PRECISIONS}, not {precision!r}")
    model = onnx.load(str(source))
    card = read_card(model)
    if "tensorrt" not in card.engines:
        raise ValueError(f"{source}'s head ({card.head.get('kind')}) runs in ONNX Runtime only, not in TensorRT")
    if precision == "int8" and calibration is None:
        raise ValueError("INT8 needs calibration cells: pass --calibration")
    trt = _tensorrt()
    major = int(trt.__version__.split(".")[0])
    strongly_typed = major >= 11
    if precision == "int8":
        from hema.export.precision.onnx_int8 import quantise_onnx

        model = quantise_onnx(source, calibration, settings)
    elif strongly_typed:
        model = half_precision_onnx(model)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory() as folder:  # the parser resolves nothing external: one file is enough
        onnx_path = Path(folder) / "model.onnx"
        onnx.save(model, str(onnx_path))
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
            raise RuntimeError(f"TensorRT cannot parse {source}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    shape = (card.input.height, card.input.width, 3)
    profile = builder.create_optimization_profile()
    profile.set_shape(IMAGE_INPUT, (1, *shape), (min(optimal_batch, max_batch), *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {source} (see its log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(serialized))
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    card = replace(card, precision=precision, quantisation=read_card(model).quantisation)
    write_manifest(
        out,
        "tensorrt",
        [out],
        card=card.to_json(),
        details={
            "precision": precision,
            "tensorrt_version": trt.__version__,
            "strongly_typed": strongly_typed,
            "gpu": _gpu_name(),
            "batch": {"min": 1, "optimal": min(optimal_batch, max_batch), "max": max_batch},
            "source": source.name,
        },
    )
    return out
