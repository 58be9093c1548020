"""Training metrics to CSV files and TensorBoard, written by the main process only."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

__all__ = ["RunLog"]


class _CsvStream:
    """One CSV file whose columns are fixed by its first row (or by the header of the file resumed)."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.columns: list[str] | None = None
        if resume and path.is_file():
            with path.open(encoding="utf-8") as existing:
                self.columns = next(csv.reader(existing), None)
        self.file: TextIO = path.open("a" if resume else "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)

    def write(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            self.columns = list(row)
            self.writer.writerow(self.columns)
        self.writer.writerow([row.get(column, "") for column in self.columns])
        self.file.flush()


class RunLog:
    """Per-step metrics: ``metrics.csv`` for training steps, ``<stream>.csv`` for others (``validation``, ...).

    Every numeric value also goes to TensorBoard under ``<stream>/<name>``.

    Args:
        directory: Run folder (CSV files and ``tensorboard/`` go there).
        enabled: False on non-main ranks: nothing is written.
        resume: Append to existing CSV files instead of starting them anew.
    """

    def __init__(self, directory: Path, enabled: bool = True, resume: bool = False) -> None:
        self.enabled = enabled
        self.directory = directory
        self.resume = resume
        self._streams: dict[str, _CsvStream] = {}
        self._tensorboard = None
        if not enabled:
            return
        directory.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(directory / "tensorboard"))
        except ImportError:  # tensorboard is in the [train] extra, but the CSV log is enough to train
            self._tensorboard = None

    def log(self, step: int, values: dict[str, Any], stream: str = "train") -> None:
        """Record ``values`` at global ``step`` in ``stream``."""
        if not self.enabled:
            return
        if stream not in self._streams:
            name = "metrics.csv" if stream == "train" else f"{stream}.csv"
            self._streams[stream] = _CsvStream(self.directory / name, self.resume)
        self._streams[stream].write({"step": step, **values})
        if self._tensorboard is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(f"{stream}/{key}", value, step)

    def close(self) -> None:
        for stream in self._streams.values():
            stream.file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
