"""How long every ``--help`` of hema-train, hema-export and hema-infer takes, from a cold interpreter.

    .venv/bin/python benchmarks/help_times.py --out benchmarks/results

Each command line is started ``--runs`` times as a new process (the console script in this venv); the fastest
and the median wall times are reported. Writes ``help-times.json`` and ``help-times.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOOLS = {
    "hema-train": ["", "ssl", "supervised", "adapt", "fewshot", "evaluate"],
    "hema-export": ["", "onnx", "onnx-int8", "openvino", "tensorrt", "check", "backbone"],
    "hema-infer": ["", "classify", "watch", "info"],
}


def time_help(executable: Path, command: str, runs: int) -> list[float]:
    """Wall seconds of ``executable [command] --help``, ``runs`` times."""
    argv = [str(executable), *([command] if command else []), "--help"]
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    rows = []
    for tool, commands in TOOLS.items():
        for command in commands:
            seconds = time_help(bin_dir / tool, command, args.runs)
            rows.append({"command": f"{tool} {command} --help".replace("  ", " "), "fastest_s": min(seconds),
                         "median_s": statistics.median(seconds)})  # fmt: skip
            print(f"{rows[-1]['command']}: {rows[-1]['median_s']:.2f} s (median of {args.runs})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "help-times.json").write_text(json.dumps({"runs": args.runs, "commands": rows}, indent=2) + "\n")
    lines = ["| command | median (s) | fastest (s) |", "|---|--:|--:|"]
    lines += [f"| `{row['command']}` | {row['median_s']:.2f} | {row['fastest_s']:.2f} |" for row in rows]
    (args.out / "help-times.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
