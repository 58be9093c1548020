"""``hema-train``: few-shot heads on frozen features, backbone training (DINO, supervised, MDD), onboarding a lab."""

from __future__ import annotations

import typer

from hema.export.onboard.command import onboard  # writes a fused model, so it lives in hema.export
from hema.train.adapt.command import adapt
from hema.train.dino.command import ssl
from hema.train.evaluate.command import evaluate
from hema.train.fewshot.command import fewshot
from hema.train.supervised.command import supervised

__all__ = ["app"]

app = typer.Typer(
    help="Train hema models: few-shot heads on frozen features, DINO backbones, fine-tuning, domain adaptation.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Train hema models: few-shot heads on frozen features, DINO backbones, fine-tuning, domain adaptation."""


app.command()(ssl)
app.command()(supervised)
app.command()(adapt)
app.command()(evaluate)
app.command()(fewshot)
app.command()(onboard)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m hema.train.cli ...
    app()
