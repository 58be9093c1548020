"""hema: white-blood-cell classification from single-cell microscopy images.

Subpackages: :mod:`hema.train` (torch, GPU servers), :mod:`hema.export` (ONNX, OpenVINO, TensorRT),
:mod:`hema.runtime` (numpy, Pillow and an inference engine: the workstation beside the microscope).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hema")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
