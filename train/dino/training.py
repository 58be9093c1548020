"""DINO self-supervised training of a backbone on unlabelled cells (``hema-train ssl``).

Caron et al. 2021, after facebookresearch/dino: a student sees 2 global and several local crops, an EMA teacher
sees the global crops, and the student learns to match the teacher's centred, sharpened prototype distribution.
All schedules (learning rate, weight decay, teacher momentum, teacher temperature) are arrays computed up front
and indexed by step. Runs on one CPU, one GPU, or many GPUs through ``torchrun``.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from hema.train.backbones.cell_backbone import CellBackbone, create_backbone
from hema.train.data.augmentations import MultiCropAugmentation, MultiCropConfig, collate_multicrop
from hema.train.data.datasets import AugmentedCells
from hema.train.data.folders import find_unlabelled_images
from hema.train.data.sampling import GlobalBatchSampler
from hema.train.dino.config import DINOConfig
from hema.train.dino.loss import DINOLoss
from hema.train.dino.projector import DINOHead, cancel_last_layer_gradients
from hema.train.run.distributed import DistributedContext, all_reduce_mean, init_distributed, shutdown_distributed
from hema.train.run.log import RunLog
from hema.train.run.loop import Budget, MixedPrecision, set_train_mode, unwrap, wrap_distributed
from hema.train.run.resumable_checkpoint import restore_training_state, save_training_checkpoint, training_checkpoint
from hema.train.run.schedules import cosine_schedule, teacher_temperature_schedule

__all__ = ["DINOModel", "train_dino"]

CHECKPOINT = "checkpoint.pt"


class DINOModel(nn.Module):
    """Backbone + DINO head over a list of crops; crops of one resolution go through the backbone together."""

    def __init__(self, backbone: CellBackbone, head: DINOHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """Head outputs ``(sum of crop batches, out_dim)``, in crop order."""
        groups = itertools.groupby(crops, key=lambda crop: crop.shape[1:3])
        embeddings = [self.backbone(torch.cat(list(group))) for _, group in groups]
        return self.head(torch.cat(embeddings))


def _parameter_groups(model: nn.Module) -> list[dict]:
    """Weights get weight decay; biases and normalisation parameters do not (as in DINO)."""
    decayed, plain = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (plain if name.endswith(".bias") or parameter.ndim <= 1 else decayed).append(parameter)
    return [{"params": decayed}, {"params": plain, "weight_decay": 0.0}]


@dataclass
class DINOTraining:
    """Everything one DINO run holds while it trains (built by :func:`train_dino`)."""

    config: DINOConfig
    context: DistributedContext
    student: nn.Module  # DistributedDataParallel under torchrun
    teacher: DINOModel
    loss_fn: DINOLoss
    optimizer: torch.optim.Optimizer
    precision: MixedPrecision
    schedules: dict[str, np.ndarray]
    budget: Budget
    log: RunLog

    def checkpoint(self, epoch: int, step: int, steps_per_epoch: int) -> dict:
        position = {"epoch": epoch, "step": step, "step_in_epoch": step - epoch * steps_per_epoch}
        modules = {"student": unwrap(self.student), "teacher": self.teacher, "loss": self.loss_fn}
        return training_checkpoint(
            self.config, "dino", self.teacher.backbone, modules, self.optimizer, self.precision.scaler, position
        )


def train_one_epoch(run: DINOTraining, loader: DataLoader, epoch: int, step: int, bar: tqdm) -> int:
    """One pass over the loader, starting at global ``step``; returns the step reached."""
    config, schedules, optimizer = run.config, run.schedules, run.optimizer
    student = unwrap(run.student)
    for crops in loader:
        for index, group in enumerate(optimizer.param_groups):
            group["lr"] = float(schedules["lr"][step])
            if index == 0:
                group["weight_decay"] = float(schedules["weight_decay"][step])
        crops = [crop.to(run.context.device, non_blocking=True) for crop in crops]
        with run.precision.autocast():
            with torch.no_grad():
                teacher_output = run.teacher(crops[:2])
            loss = run.loss_fn(run.student(crops), teacher_output, epoch)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"DINO loss is {loss.item()} at step {step}: stopping")
        norm = run.precision.step(
            loss,
            optimizer,
            run.student.parameters(),
            config.clip_grad,
            before_step=lambda: cancel_last_layer_gradients(student, epoch, config.freeze_last_layer_epochs),
        )
        with torch.no_grad():  # teacher = m * teacher + (1 - m) * student
            momentum = float(schedules["momentum"][step])
            for teacher_parameter, student_parameter in zip(run.teacher.parameters(), student.parameters()):
                teacher_parameter.mul_(momentum).add_(student_parameter.detach(), alpha=1.0 - momentum)
        mean_loss = all_reduce_mean(loss.detach().clone()).item()
        run.log.log(
            step,
            {
                "epoch": epoch,
                "loss": mean_loss,
                "lr": float(schedules["lr"][step]),
                "weight_decay": float(schedules["weight_decay"][step]),
                "teacher_momentum": momentum,
                "teacher_temp": run.loss_fn.teacher_temp(epoch),
                "grad_norm": norm,
            },
        )
        bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.4f}")
        bar.update(1)
        step += 1
        run.budget.steps_taken += 1
        if run.budget.exhausted():
            break
    return step


def train_dino(config: DINOConfig) -> Path:
    """Run (or resume) DINO training; returns the checkpoint path. See :class:`~hema.train.dino.config.DINOConfig`."""
    context = init_distributed(config.device)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    paths = find_unlabelled_images([Path(folder) for folder in config.cells], config.split)
    crops = MultiCropConfig(
        global_size=config.global_size, local_size=config.local_size, local_crops=config.local_crops
    )
    dataset = AugmentedCells(paths, MultiCropAugmentation(crops), seed=config.seed)
    sampler = GlobalBatchSampler(len(dataset), config.batch_size, config.seed, context.rank, context.world_size)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate_multicrop,
        pin_memory=context.device.type == "cuda",
    )
    steps_per_epoch = sampler.steps_per_epoch()

    backbone = create_backbone(config.backbone, config.arch, config.pretrained, config.global_size)
    student = DINOModel(backbone, DINOHead(backbone.info.embedding_dim, config.out_dim)).to(context.device)
    teacher = copy.deepcopy(student).eval()
    teacher.requires_grad_(False)
    temperatures = teacher_temperature_schedule(
        config.warmup_teacher_temp, config.teacher_temp, config.warmup_teacher_temp_epochs, config.epochs
    )
    loss_fn = DINOLoss(config.out_dim, temperatures, config.student_temp).to(context.device)
    optimizer = torch.optim.AdamW(_parameter_groups(student))
    precision = MixedPrecision(context.device, config.amp)
    peak_lr = config.lr * config.batch_size / 256.0
    schedules = {
        "lr": cosine_schedule(peak_lr, config.min_lr, config.epochs, steps_per_epoch, config.warmup_epochs),
        "weight_decay": cosine_schedule(config.weight_decay, config.weight_decay_end, config.epochs, steps_per_epoch),
        "momentum": cosine_schedule(config.momentum_teacher, 1.0, config.epochs, steps_per_epoch),
    }

    epoch, step = 0, 0
    if config.resume and (out / CHECKPOINT).is_file():
        modules = {"student": student, "teacher": teacher, "loss": loss_fn}
        position = restore_training_state(out / CHECKPOINT, modules, optimizer, precision.scaler)
        epoch, step = position["epoch"], position["step"]
        if step - epoch * steps_per_epoch >= steps_per_epoch:
            epoch += 1
    student = set_train_mode(wrap_distributed(student, context, config.batchnorm), config.batchnorm)
    budget = Budget(config.max_steps, config.time_budget_minutes)
    log = RunLog(out, enabled=context.is_main, resume=step > 0)
    run = DINOTraining(config, context, student, teacher, loss_fn, optimizer, precision, schedules, budget, log)

    total = config.epochs * steps_per_epoch
    with tqdm(total=total, initial=step, unit="step", desc="DINO", disable=context.hide_progress) as bar:
        while epoch < config.epochs and not budget.exhausted():
            sampler.set_epoch(epoch, start_step=step - epoch * steps_per_epoch)
            step = train_one_epoch(run, loader, epoch, step, bar)
            if context.is_main:
                save_training_checkpoint(out / CHECKPOINT, run.checkpoint(epoch, step, steps_per_epoch))
            if step == (epoch + 1) * steps_per_epoch:
                epoch += 1
    log.close()
    shutdown_distributed()
    return out / CHECKPOINT
