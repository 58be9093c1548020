"""Running beside the analyser's own software: a cap on every thread pool hema starts, and a lower priority.

``hema-infer classify`` and ``watch`` start two kinds of thread pool: the inference engine's (ONNX Runtime's
intra-op pool, OpenVINO's workers) and the decoding pool (which also makes ``report.html``'s thumbnails).
``--threads N`` caps both at ``N``; ``--nice N`` lowers the process's scheduling priority, so that an archive run
takes only the CPU time the analyser's software leaves idle. ``tests/runtime/test_politeness.py`` counts the
threads of a real run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ThreadBudget", "lower_priority"]


@dataclass(frozen=True)
class ThreadBudget:
    """The threads of each pool of a run.

    Attributes:
        engine: Inference threads (0: the engine's own choice, all physical cores).
        decode: Threads decoding images and making thumbnails.
    """

    engine: int
    decode: int

    @classmethod
    def capped(cls, threads: int, decode_threads: int) -> ThreadBudget:
        """The budget of ``--threads threads --decode-threads decode_threads``: no pool above ``threads`` (0: none)."""
        return cls(engine=threads, decode=min(decode_threads, threads) if threads else decode_threads)


def lower_priority(niceness: int) -> None:
    """Add ``niceness`` (0-19) to the process's nice value (its threads, started later, inherit it)."""
    if niceness:
        os.nice(niceness)
