"""``make bench``: every inference engine of a hema model against PyTorch eager, in one run.

The script ``benchmarks/bench_engines.py`` drives it; each engine is measured in a fresh subprocess
(:mod:`engines.worker`) so that its peak memory and cold start are its own.
"""

__all__: list[str] = []
