"""``hema-train onboard``: adapt a hema model to a lab's analyser from its cells, and report how far to trust it.

Heavy imports (onnx, ONNX Runtime, scikit-learn) happen inside the command, so that ``hema-train --help``
answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hema.cli_support import batch_size_option, model_option, out_option, user_errors_exit_2

__all__ = ["onboard"]


def onboard(
    cells: Annotated[
        list[Path],
        typer.Option(
            "--cells",
            help="The lab's unlabelled cells: folders or files, any structure (a few hundred to a few thousand "
            "crops exported by its analyser). Repeat.",
        ),
    ],
    out: Annotated[Path, out_option("Folder for model.onnx (+ manifest), onboarding.json and onboarding.html.")],
    labelled: Annotated[
        Path | None,
        typer.Option(
            help="The lab's labelled cells, LABELLED/<class>/**/<image>, 10-20 or more per class; class names must "
            "be the model's. The onboarded model names the labelled classes and flags the others as unknown."
        ),
    ] = None,
    model: Annotated[Path | None, model_option("Base model (.onnx) [default: the embedded default model].")] = None,
    unknown_share: Annotated[
        float, typer.Option(min=0.01, max=0.5, help="Share of the lab's known cells flagged 'unknown cell type'.")
    ] = 0.10,
    align: Annotated[
        bool,
        typer.Option(
            help="Move the lab's embeddings onto the base model's training-cell statistics. Off by default: "
            "measured on BCCD it lowers accuracy when the lab's mix of cell types differs from the training lab's."
        ),
    ] = False,
    pseudo_labels: Annotated[
        int,
        typer.Option(
            min=0,
            help="Without --labelled: refit the head on the base model's N surest predictions per class of the "
            "lab's cells (0: keep the base head).",
        ),
    ] = 0,
    batch_size: Annotated[int, batch_size_option()] = 32,
) -> None:
    """Adapt a model to a lab from its unlabelled cells and, optionally, a few labelled cells per class.

    Writes OUT/model.onnx, one self-contained model like every hema model (use it with hema-infer classify
    --model OUT/model.onnx), and OUT/onboarding.json and .html: the shift before and after, the thresholds
    recalibrated for the lab, and with labelled cells the estimated accuracy per class at this lab.
    Unreadable files are skipped and counted in the report.
    """
    from hema.export.onboard.adaptation import OnboardSettings
    from hema.export.onboard.onboarding import onboard as run_onboarding
    from hema.export.onboard.report import write_onboarding_report
    from hema.export.review.thresholds import ReviewSettings
    from hema.runtime.default_model import resolve_model_path

    settings = OnboardSettings(
        align=align,
        pseudo_labels_per_class=pseudo_labels,
        review=ReviewSettings(novelty_percentile=100.0 * (1.0 - unknown_share)),
    )
    result = user_errors_exit_2(
        lambda: run_onboarding(
            cells=cells,
            out=out,
            model=resolve_model_path(model),
            labelled=labelled,
            settings=settings,
            batch_size=batch_size,
        )
    )
    json_path, html_path = write_onboarding_report(result.report, out)
    shift = result.report["shift"]
    typer.echo(f"wrote {result.model_path} ({', '.join(result.card.class_names)})")
    typer.echo(
        "the lab's cells flagged unknown cell type: "
        f"{shift['before']['flagged_unknown_cell_type']} with the base model, "
        f"{shift['after']['flagged_unknown_cell_type']} onboarded"
    )
    estimate = result.report["estimate_at_lab"]
    if estimate:
        low, high = estimate["balanced_accuracy_interval_95"]
        typer.echo(
            f"estimated balanced accuracy at this lab: {estimate['balanced_accuracy']:.3f} "
            f"(95 % interval {low:.3f}-{high:.3f}, out of fold on the labelled cells)"
        )
    typer.echo(f"report: {html_path} and {json_path} ({result.report['seconds']} s)")
