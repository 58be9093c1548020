"""hema: white-blood-cell classification from single-cell microscopy images.

Subpackages: :mod:`hema.train` (torch, GPU servers), :mod:`hema.export` (ONNX, OpenVINO, TensorRT),
:mod:`hema.runtime` (numpy, Pillow and an inference engine: the workstation beside the microscope).
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed package's metadata when first asked for (importing
    ``importlib.metadata`` costs about a tenth of a second of every ``hema-infer`` start)."""
    if name != "__version__":
        raise AttributeError(f"module 'hema' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hema")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"
