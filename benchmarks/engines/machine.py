"""What the benchmark ran on: CPU model and instruction sets, cores, memory, OS, load and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

__all__ = ["INSTRUCTION_SETS", "cpu_description", "describe_machine", "library_versions"]

# The flags that decide which int8 / bf16 kernels a CPU engine can use.
INSTRUCTION_SETS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
)
LIBRARIES = ("numpy", "pillow", "onnxruntime", "openvino", "torch", "timm", "nncf", "tensorrt")


def cpu_description(cpuinfo: str) -> dict[str, object]:
    """CPU model name and which of :data:`INSTRUCTION_SETS` it has, from ``/proc/cpuinfo`` text."""
    model, flags = "unknown", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "flags": {name: name in flags for name in INSTRUCTION_SETS}}


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that matter here (``None``: not installed)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _os_name() -> str:
    release = Path("/etc/os-release")
    if release.is_file():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def describe_machine() -> dict[str, object]:
    """The machine as the report prints it."""
    cpuinfo = Path("/proc/cpuinfo")
    memory_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        memory_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
    return {
        "cpu": cpu_description(cpuinfo.read_text() if cpuinfo.is_file() else ""),
        "cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory_kb / 1024**2, 1),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "versions": library_versions(),
    }
