"""The settings of an MDD adaptation run (``hema-train adapt``): help and choices included; torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from hema.train.run.settings import SPLITS, RunSettings, setting

__all__ = ["SELECTION_SCORES", "AdaptConfig"]

SELECTION_SCORES = {"entropy": -1.0, "snd": 1.0}
"""Sign that makes each label-free score "higher is better"."""


@dataclass(frozen=True, kw_only=True)
class AdaptConfig(RunSettings):
    """An MDD adaptation run (defaults after thuml's MDD recipe, scaled to single-cell images).

    Every :class:`~hema.train.run.settings.RunSettings` field applies too (``workers`` defaults to 2 here: each
    domain has its own loader). Each field's help is in its :func:`~hema.train.run.settings.setting`
    (``hema-train adapt --help`` shows it with the default).
    """

    data: str = setting(
        short="-d", metavar="DIR", aliases=("source",), help="Labelled source lab: DIR/<class>/**/<image>."
    )
    cells: str = setting(
        metavar="DIR",
        aliases=("target",),
        help="Target lab's cells; class folders, if present, are only used to report accuracy.",
    )
    out: str = setting(
        short="-o",
        metavar="DIR",
        help="Run folder: checkpoint.pt (latest), best.pt (best target score), metrics.csv, target.csv.",
    )
    split: str = setting("train", choices=SPLITS, aliases=("source_split",), help="Part of --data to train on.")
    cells_split: str = setting(
        "all", choices=SPLITS, aliases=("target_split",), help="Part of --cells to adapt to (and score)."
    )
    backbone: str = setting(
        "efficientnet_lite0", help="timm name (efficientnet_lite0 starts from ImageNet) or checkpoint file."
    )
    arch: str | None = setting(None, help="timm architecture of a checkpoint that does not name it.")
    image_size: int = setting(224, min=16, help="Input side.")
    epochs: int = setting(10, min=1, help="Epochs of --iters-per-epoch steps; the target is scored after each.")
    iters_per_epoch: int = setting(100, min=1, help="Steps per epoch.")
    batch_size: int = setting(
        32, min=1, short="-b", help="Source images per step, and as many target images, over all processes."
    )
    lr: float = setting(0.004, min=0, help="Learning rate of the new layers (backbone: 0.1x); SGD, Nesterov.")
    lr_gamma: float = setting(0.0002, min=0, help="Decay lr * (1 + gamma * step) ** -lr_decay.")
    lr_decay: float = setting(0.75, min=0, help="See --lr-gamma.")
    weight_decay: float = setting(5e-4, min=0, help="SGD weight decay.")
    margin: float = setting(4.0, min=0, help="MDD margin gamma.")
    trade_off: float = setting(1.0, min=0, help="Weight of the transfer loss; 0 trains source-only.")
    bottleneck_dim: int = setting(1024, min=1, help="Bottleneck width (the adapted embedding).")
    width: int = setting(1024, min=1, help="Hidden width of both heads.")
    class_weights: bool = setting(True, help="Weight source classes by inverse frequency (classification and MDD).")
    grl_max_iters: int = setting(1000, min=1, help="Steps for the gradient-reversal coefficient to warm up.")
    selection: str = setting(
        "entropy",
        choices=tuple(SELECTION_SCORES),
        help="Label-free score that picks best.pt: entropy (lowest) or snd (highest).",
    )
    workers: int = setting(2, min=0, help="Data-loading worker processes per training process and domain.")
