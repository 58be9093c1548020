"""The settings of a supervised fine-tuning run (``hema-train supervised``): help and choices included; torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from hema.runtime.preprocessing import VIEW_RULES
from hema.train.run.settings import SPLITS, RunSettings, setting

__all__ = ["BALANCING", "SCHEDULES", "SupervisedConfig"]

SCHEDULES = ("onecycle", "cosine")
BALANCING = ("loss", "sampler", "none")


@dataclass(frozen=True, kw_only=True)
class SupervisedConfig(RunSettings):
    """A supervised fine-tuning run; stored as a plain dict in its checkpoints.

    Every :class:`~hema.train.run.settings.RunSettings` field applies too. Each field's help is in its
    :func:`~hema.train.run.settings.setting` (``hema-train supervised --help`` shows it with the default).
    """

    data: str = setting(short="-d", metavar="DIR", help="Labelled cells: DIR/<class>/**/<image>.")
    out: str = setting(
        short="-o", metavar="DIR", help="Run folder: checkpoint.pt (latest), best.pt (best validation macro-F1)."
    )
    more_data: tuple[str, ...] = setting(
        (),
        metavar="DIR",
        help="Labelled cells of another lab, trained on with --data (classes joined by folder name). Repeat.",
    )
    split: str = setting(
        "train", choices=SPLITS, aliases=("data_split",), help="Part of --data to train and validate on."
    )
    val_fraction: float = setting(
        0.15, min=0, help="Share of each class held out for validation and early stopping (fixed by --seed)."
    )
    backbone: str = setting(
        "efficientnet_lite0", help="timm name (efficientnet_lite0 starts from ImageNet) or checkpoint file."
    )
    arch: str | None = setting(None, help="timm architecture of a checkpoint that does not name it.")
    image_size: int = setting(224, min=16, help="Training and evaluation input side.")
    view: str = setting(
        "image",
        choices=VIEW_RULES,
        help="What the model sees: image (the whole crop) or cell (a stain-standardised square around the cell).",
    )
    cell_context: float = setting(2.0, min=1, help="Cell view: crop side as a multiple of the cell's size.")
    decode_min_side: int = setting(
        0,
        min=0,
        help="Decode at half size (JPEG: in libjpeg-turbo's DCT domain) every image whose shorter side, halved, "
        "keeps at least this many pixels; 0: full size. Recorded in the model: hema-infer decodes the same way.",
    )
    lab_shift: bool = setting(
        False, help="Augment with random lab differences (stain, lamp, focus, magnification, JPEG)."
    )
    epochs: int = setting(15, min=1, help="Maximum epochs.")
    batch_size: int = setting(32, min=1, short="-b", help="Images per step over all processes.")
    lr: float = setting(1e-3, min=0, help="Peak learning rate of the classifier (backbone: x --backbone-lr-scale).")
    backbone_lr_scale: float = setting(0.1, min=0, help="Backbone learning-rate factor.")
    weight_decay: float = setting(0.05, min=0, help="AdamW weight decay.")
    schedule: str = setting(
        "onecycle", choices=SCHEDULES, help="onecycle: 30 % warm-up from lr/25, cosine down; cosine: no warm-up."
    )
    balance: str = setting(
        "loss", choices=BALANCING, help="loss: class-weighted cross-entropy; sampler: class-balanced sampling."
    )
    label_smoothing: float = setting(0.1, min=0, help="Cross-entropy label smoothing.")
    patience: int = setting(4, min=1, help="Epochs without a better validation macro-F1 before stopping.")
