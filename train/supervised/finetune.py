"""Supervised fine-tuning of a backbone on labelled cells (``hema-train supervised``).

Backbone + linear classifier, class-weighted cross-entropy or a class-balanced sampler, a one-cycle or cosine
learning-rate schedule computed up front, and early stopping on validation macro-F1. The best epoch's backbone
is written to ``best.pt`` in the layout ``hema-train fewshot`` and ``hema-export`` read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from hema.train.backbones.cell_backbone import ViewRules, create_backbone
from hema.train.backbones.embeddings import run_on_images
from hema.train.data.augmentations import CellAugmentation
from hema.train.data.datasets import AugmentedCells
from hema.train.data.folders import find_labelled_images, join_labelled
from hema.train.data.lab_shift import LabShift
from hema.train.data.sampling import GlobalBatchSampler
from hema.train.evaluate.metrics import classification_metrics
from hema.train.run.distributed import all_reduce_mean, init_distributed, shutdown_distributed
from hema.train.run.log import RunLog
from hema.train.run.loop import Budget, MixedPrecision, set_train_mode, unwrap, wrap_distributed
from hema.train.run.resumable_checkpoint import restore_training_state, save_training_checkpoint, training_checkpoint
from hema.train.run.schedules import cosine_schedule
from hema.train.supervised.config import SupervisedConfig
from hema.train.supervised.labelled_training import LinearClassifier, cycle_batches, inverse_frequency_weights, move

__all__ = ["learning_rate_schedule", "train_supervised", "validation_split"]


def learning_rate_schedule(kind: str, lr: float, epochs: int, steps_per_epoch: int) -> np.ndarray:
    """One learning-rate factor per step for the peak ``lr``."""
    if kind == "onecycle":
        warmup = max(1, round(0.3 * epochs))
        return cosine_schedule(lr, lr * 1e-4, epochs, steps_per_epoch, warmup, start_warmup_value=lr / 25)
    return cosine_schedule(lr, lr * 1e-4, epochs, steps_per_epoch)


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class random split of indices into ``(train, validation)``; every class keeps a training example."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held = min(len(members) - 1, round(fraction * len(members)))
        validation.extend(members[:held])
        train.extend(members[held:])
    return np.sort(train), np.sort(validation)


def train_supervised(config: SupervisedConfig) -> Path:
    """Fine-tune with early stopping; returns the path of ``best.pt``."""
    context = init_distributed(config.device)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    cells = join_labelled([find_labelled_images(root, config.split) for root in (config.data, *config.more_data)])
    train_index, val_index = validation_split(cells.labels, config.val_fraction, config.seed)
    classes = len(cells.class_names)
    train_labels = cells.labels[train_index]
    weights = inverse_frequency_weights(train_labels, classes)

    view = ViewRules(
        stain="standardised" if config.view == "cell" else "as-is",
        view=config.view,
        cell_context=config.cell_context,
        decode_min_side=config.decode_min_side,
    )
    backbone = create_backbone(config.backbone, config.arch, image_size=config.image_size, view=view)
    augment = CellAugmentation(
        config.image_size, view=backbone.info.input_spec(), lab_shift=LabShift() if config.lab_shift else None
    )
    dataset = AugmentedCells(
        [cells.paths[i] for i in train_index],
        augment,
        train_labels,
        config.seed,
        decode_min_side=backbone.info.decode_min_side,
    )
    sample_weights = weights[train_labels] if config.balance == "sampler" else None
    sampler = GlobalBatchSampler(
        len(dataset), config.batch_size, config.seed, context.rank, context.world_size, sample_weights
    )
    loader = DataLoader(
        dataset, batch_sampler=sampler, num_workers=config.workers, pin_memory=context.device.type == "cuda"
    )
    steps_per_epoch = sampler.steps_per_epoch()

    model = LinearClassifier(backbone, classes).to(context.device)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.backbone.parameters(), "lr_scale": config.backbone_lr_scale},
            {"params": model.classifier.parameters(), "lr_scale": 1.0},
        ],
        weight_decay=config.weight_decay,
    )
    precision = MixedPrecision(context.device, config.amp)
    schedule = learning_rate_schedule(config.schedule, config.lr, config.epochs, steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(
        weight=weights.to(context.device) if config.balance == "loss" else None,
        label_smoothing=config.label_smoothing,
    )

    progress = {"step": 0, "best_macro_f1": -1.0, "best_epoch": -1, "epochs_without_improvement": 0}
    if config.resume and (out / "checkpoint.pt").is_file():
        progress = restore_training_state(out / "checkpoint.pt", {"model": model}, optimizer, precision.scaler)
    model = set_train_mode(wrap_distributed(model, context, config.batchnorm), config.batchnorm)
    module = unwrap(model)

    def save(name: str) -> None:
        save_training_checkpoint(
            out / name,
            training_checkpoint(
                config, "supervised", module.backbone, {"model": module}, optimizer, precision.scaler, progress
            ),
        )

    budget = Budget(config.max_steps, config.time_budget_minutes)
    log = RunLog(out, enabled=context.is_main, resume=progress["step"] > 0)
    batches = cycle_batches(loader, sampler, progress["step"])
    validation = ([cells.paths[i] for i in val_index], cells.labels[val_index])
    total = config.epochs * steps_per_epoch
    bar = tqdm(total=total, initial=progress["step"], unit="step", desc="fine-tuning", disable=context.hide_progress)
    while progress["step"] < total and not budget.exhausted():
        images, labels = move(next(batches), context.device)
        step = progress["step"]
        for group in optimizer.param_groups:
            group["lr"] = float(schedule[step]) * group["lr_scale"]
        with precision.autocast():
            loss = loss_fn(model(images), labels)
        precision.step(loss, optimizer, model.parameters())
        progress["step"] = step = step + 1
        budget.steps_taken += 1
        mean_loss = all_reduce_mean(loss.detach().clone()).item()
        log.log(step, {"epoch": (step - 1) // steps_per_epoch, "loss": mean_loss, "lr": schedule[step - 1]})
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        bar.update(1)
        end_of_epoch, patience_ran_out = step % steps_per_epoch == 0, False
        if end_of_epoch:
            epoch = step // steps_per_epoch - 1
            patience_ran_out = _end_of_epoch(config, module, validation, classes, progress, epoch, step, context, log)
            set_train_mode(model, config.batchnorm)
            if context.is_main and progress["best_epoch"] == epoch:
                save("best.pt")
        if context.is_main and (end_of_epoch or budget.exhausted()):
            save("checkpoint.pt")
        if patience_ran_out:
            break
    bar.close()
    log.close()
    shutdown_distributed()
    return out / "best.pt"


def _end_of_epoch(config, module, validation, classes, progress, epoch, step, context, log) -> bool:
    """Score the validation cells, track the best epoch; True when patience has run out.

    Every process scores the same cells, so all take the same early-stopping decision without a collective.
    """
    paths, labels = validation
    spec = module.backbone.info.input_spec()
    logits = run_on_images(module, paths, spec, 64, context.device, config.workers, "validation")
    metrics = classification_metrics(labels, logits.argmax(axis=1), classes)
    if metrics["macro_f1"] > progress["best_macro_f1"]:
        progress.update(best_macro_f1=metrics["macro_f1"], best_epoch=epoch, epochs_without_improvement=0)
    else:
        progress["epochs_without_improvement"] += 1
    log.log(
        step,
        {
            "epoch": epoch,
            "val_macro_f1": metrics["macro_f1"],
            "val_balanced_accuracy": metrics["balanced_accuracy"],
            "best_macro_f1": progress["best_macro_f1"],
        },
        stream="validation",
    )
    return progress["epochs_without_improvement"] >= config.patience
