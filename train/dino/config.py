"""The settings of a DINO run (``hema-train ssl``): one field per setting, help and choices included; torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from hema.train.run.settings import SPLITS, RunSettings, setting

__all__ = ["DINOConfig"]


@dataclass(frozen=True, kw_only=True)
class DINOConfig(RunSettings):
    """Everything a DINO run needs; stored as a plain dict in its checkpoints.

    Every :class:`~hema.train.run.settings.RunSettings` field applies too. Each field's help is in its
    :func:`~hema.train.run.settings.setting` (``hema-train ssl --help`` shows it with the default).
    """

    cells: tuple[str, ...] = setting(
        metavar="DIR", aliases=("data",), help="A lab's unlabelled cells (any folders; labels are ignored). Repeat."
    )
    out: str = setting(short="-o", metavar="DIR", help="Run folder: checkpoint.pt, metrics.csv, tensorboard/.")
    split: str = setting(
        "all", choices=SPLITS, aliases=("data_split",), help="Part of --cells used (hema's content-hash split)."
    )
    backbone: str = setting(
        "efficientnet_lite0", help="timm name (efficientnet_lite0 starts from ImageNet) or checkpoint file."
    )
    arch: str | None = setting(None, help="timm architecture of a checkpoint that does not name it.")
    pretrained: bool = setting(
        True, flag="--pretrained/--scratch", help="Start Lite0 from ImageNet weights, or from random ones."
    )
    global_size: int = setting(224, min=16, help="Side of global crops (and the backbone's input size).")
    local_size: int = setting(96, min=16, help="Side of local crops.")
    local_crops: int = setting(6, min=0, help="Local crops per image.")
    out_dim: int = setting(4096, min=1, help="DINO prototypes.")
    epochs: int = setting(20, min=1, help="Epochs (the length of all schedules).")
    batch_size: int = setting(64, min=1, short="-b", help="Images per step over all processes.")
    lr: float = setting(5e-4, min=0, help="Peak learning rate per 256 images (scaled linearly with the batch size).")
    min_lr: float = setting(1e-6, min=0, help="Final learning rate.")
    warmup_epochs: int = setting(2, min=0, help="Epochs of linear learning-rate warm-up.")
    weight_decay: float = setting(0.04, min=0, help="Initial weight decay (cosine to --weight-decay-end).")
    weight_decay_end: float = setting(0.4, min=0, help="Final weight decay.")
    momentum_teacher: float = setting(0.996, min=0, help="Initial teacher EMA momentum (cosine to 1).")
    warmup_teacher_temp: float = setting(0.04, min=0, help="Teacher temperature of the first epoch.")
    teacher_temp: float = setting(0.04, min=0, help="Teacher temperature after warm-up.")
    warmup_teacher_temp_epochs: int = setting(0, min=0, help="Epochs of teacher-temperature warm-up.")
    student_temp: float = setting(0.1, min=0, help="Student temperature.")
    clip_grad: float = setting(3.0, min=0, help="Gradient-norm clip (0: none).")
    freeze_last_layer_epochs: int = setting(1, min=0, help="Epochs with the prototype layer frozen.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.warmup_epochs <= self.epochs or not 0 <= self.warmup_teacher_temp_epochs <= self.epochs:
            raise ValueError(f"warm-up epochs must lie between 0 and epochs ({self.epochs})")
