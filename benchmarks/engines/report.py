"""Write the benchmark as JSON (everything) and Markdown (ultralytics-style table, details, profile, machine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["markdown_report", "to_jsonable", "write_json", "write_markdown"]

MB = 1e6


def to_jsonable(value: object) -> object:
    """``value`` with numpy scalars and arrays turned into plain Python, dicts and lists recursively."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(result), indent=2) + "\n", encoding="utf-8")
    return path


def _number(value: object, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _rate(row: dict, size: int) -> float | None:
    return row.get("throughput", {}).get(str(size), {}).get("cells_per_s")


def _precision(row: dict) -> str:
    ran = row.get("ran_precision")
    if ran and ("hint" in row["precision"] or "fp16" in row["precision"]):  # int8 IRs report f32 for the rest
        return f"{row['precision']} (ran {ran})"
    return row["precision"]


def _main_table(rows: list[dict]) -> list[str]:
    lines = [
        "| Engine | Format | Precision | Status | Size (MB) | Balanced accuracy | Agreement with ORT FP32 "
        "| ms/cell batch 1 (p50) | cells/s batch 32 | x eager (batch 32) |",
        "|---|---|---|:-:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        ok = row["status"] == "ok"
        agreement = row.get("label_agreement")
        lines.append(
            f"| {row['label']} | {row['format']} | {_precision(row)} | {'✅' if ok else '❌'} "
            f"| {_number(row.get('size_bytes') and row['size_bytes'] / MB)} "
            f"| {_number(row.get('balanced_accuracy'), 4)} "
            f"| {'—' if agreement is None else f'{agreement:.2%}'} "
            f"| {_number(row.get('latency_ms', {}).get('p50'), 2)} "
            f"| {_number(_rate(row, 32))} | {_number(row.get('speedup_vs_eager_b32'), 2)} |"
        )
    missing = [f"- {row['label']}: {row['status']} — {row['reason']}" for row in rows if row["status"] != "ok"]
    return lines + ([""] + missing if missing else [])


def _detail_table(rows: list[dict], sizes: list[int]) -> list[str]:
    header = " | ".join(f"cells/s b{size}" for size in sizes)
    lines = [
        f"| Engine | p50 ms | p95 ms | p99 ms | {header} | RSS after load Δ (MB) | peak RSS Δ (MB) | cold start (s) "
        "| max Δp vs ORT FP32 "
        "| threads | runs as |",
        "|---|" + "--:|" * (3 + len(sizes) + 5) + "---|",
    ]
    for row in rows:
        if row["status"] != "ok":
            continue
        latency = row["latency_ms"]
        rates = " | ".join(_number(_rate(row, size)) for size in sizes)
        lines.append(
            f"| {row['label']} | {latency['p50']:.2f} | {latency['p95']:.2f} | {latency['p99']:.2f} | {rates} "
            f"| {_number(row.get('loaded_rss_delta_mb'), 0)} | {_number(row.get('peak_rss_delta_mb'), 0)} "
            f"| {_number(row.get('cold_start_s'), 2)} "
            f"| {_number(row.get('max_probability_difference'), 6)} "
            f"| {row.get('threads', '—')} | {row.get('describe', '')} |"
        )
    return lines


def _end_to_end(runs: list[dict]) -> list[str]:
    lines = [
        "| Run | cells | wall (s) | cells/s (wall clock) | start-up (s) | cells/s without start-up |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        lines.append(
            f"| `{run['command']}` | {run['rows']}/{run['cells']} | {run['wall_s']:.2f} "
            f"| {_number(run['cells_per_s'])} | {run['startup_s']:.2f} | {_number(run['steady_cells_per_s'])} |"
        )
    return lines


def _builds(rows: list[dict]) -> list[str]:
    seen, lines = set(), []
    for row in rows:
        build = row.get("build") or {}
        if not build or row["artifact"] in seen:
            continue
        seen.add(row["artifact"])
        written = build.get("exit_code") == 0 and not build.get("error")
        outcome = "written" if written else f"not written: {str(build.get('error')).split(': ', 1)[-1]}"
        lines.append(f"- {Path(row['artifact']).name}: {_number(build.get('build_s'), 0)} s, {outcome}")
    return lines


def _profile(profile: dict) -> list[str]:
    ms = profile["ms_per_cell"]
    total = profile["total_ms_per_cell"]
    lines = [
        f"Each stage alone, one thread, {profile['cells']} cells; engine: {profile['engine']} at batch "
        f"{profile['batch_size']}.",
        "",
        "| Stage | ms/cell | share |",
        "|---|--:|--:|",
    ]
    lines += [f"| {name} | {value:.3f} | {value / total:.0%} |" for name, value in ms.items()]
    lines += [f"| total (serial) | {total:.3f} | 100% |", "", "Tried:"]
    lines += [f"- {item}" for item in profile.get("tried", [])]
    return lines


def markdown_report(result: dict) -> str:
    """The whole report as Markdown."""
    machine = result["machine"]
    cpu = machine["cpu"]
    flags = ", ".join(f"{name} {'yes' if have else 'no'}" for name, have in cpu["flags"].items())
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items() if version)
    settings = result["settings"]
    lines = [
        f"# Engine benchmark: {result['model']['name']}",
        "",
        f"{result['data']['cells']} cells of {result['data']['folder']} ({result['data']['split']} split); "
        f"label agreement against ONNX Runtime FP32; speed-up against PyTorch eager FP32 at batch 32. Each engine "
        f"in a fresh process; batch-1 latency after {settings['warmup']} warm-up runs over {settings['latency_runs']} "
        f"runs; throughput is the median of {settings['repeats']} passes. The run took "
        f"{_number(result.get('duration_s'), 0)} s.",
        "",
        *_main_table(result["engines"]),
        "",
        "## Details",
        "",
        *_detail_table(result["engines"], settings["batch_sizes"]),
        "",
        "## End to end: hema-infer classify (JPEG decoding included)",
        "",
        *_end_to_end(result.get("end_to_end", [])),
    ]
    builds = _builds(result["engines"])
    if builds:
        lines += ["", "## Builds (make edge-models, from the logs beside the artifacts)", "", *builds]
    if result.get("profile"):
        lines += ["", "## Profile: where a cell's time goes", "", *_profile(result["profile"])]
    if result.get("goals"):
        lines += ["", "## Goals", ""]
        for goal, entry in result["goals"].items():
            verdict = "met" if entry["met"] else "not met"
            lines.append(
                f"- {goal}: target {entry['target']:g}, measured {_number(entry['measured'], 2)} "
                f"({entry['by']}): {verdict}"
            )
    lines += [
        "",
        "## Machine",
        "",
        f"- CPU: {cpu['model']}, {machine['cores']} cores; {flags}",
        f"- Memory {machine['memory_gb']} GB; {machine['os']} (kernel {machine['kernel']}); Python {machine['python']}",
        f"- Load average at start {machine['load_average']}, at end {result.get('load_average_end')}",
        f"- {versions}",
        "",
        "## Command",
        "",
        "```",
        result["command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def write_markdown(result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_report(result), encoding="utf-8")
    return path
