"""MDD unsupervised domain adaptation from a labelled source lab to an unlabelled target lab (``hema-train adapt``).

Zhang et al. 2019, after thuml's Transfer-Learning-Library: backbone -> bottleneck -> main head, and an
adversarial head behind a warm-started gradient reversal. Each step minimises
``CE(source) - trade_off * MDD(source, target)``. The target's labels are never used for training: each epoch
the model is scored on the target without labels, by prediction entropy (lower is better) and soft neighbourhood
density (SND, higher is better), and the best epoch by ``--selection`` (default: entropy) is kept as ``best.pt``.
SND also rates near-uniform predictions highly, so early, barely trained epochs can win on SND alone: both
scores are logged for every epoch in ``target.csv``. If the target folder happens to be labelled, its balanced
accuracy is logged beside them, for reporting only. ``--trade-off 0`` trains the same network source-only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from hema.train.adapt.config import SELECTION_SCORES, AdaptConfig
from hema.train.adapt.gradient_reversal import WarmStartGradientReverseLayer
from hema.train.adapt.mdd import MarginDisparityDiscrepancy, MDDClassifier
from hema.train.adapt.target_scores import TargetCells, score_target
from hema.train.backbones.cell_backbone import create_backbone
from hema.train.data.augmentations import CellAugmentation
from hema.train.data.datasets import AugmentedCells
from hema.train.data.folders import find_labelled_images
from hema.train.data.sampling import GlobalBatchSampler
from hema.train.run.distributed import all_reduce_mean, init_distributed, shutdown_distributed
from hema.train.run.log import RunLog
from hema.train.run.loop import Budget, MixedPrecision, set_train_mode, wrap_distributed
from hema.train.run.resumable_checkpoint import restore_training_state, save_training_checkpoint, training_checkpoint
from hema.train.supervised.labelled_training import cycle_batches, inverse_frequency_weights, move

__all__ = ["adapt_mdd"]


def _loader(
    dataset: AugmentedCells, config: AdaptConfig, context, weights=None
) -> tuple[DataLoader, GlobalBatchSampler]:
    sampler = GlobalBatchSampler(
        len(dataset), config.batch_size, config.seed, context.rank, context.world_size, weights
    )
    loader = DataLoader(
        dataset, batch_sampler=sampler, num_workers=config.workers, pin_memory=context.device.type == "cuda"
    )
    return loader, sampler


def adapt_mdd(config: AdaptConfig) -> Path:
    """Run (or resume) MDD; returns the path of ``best.pt`` (the epoch with the best label-free target score)."""
    context = init_distributed(config.device)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    source = find_labelled_images(config.data, config.split)
    target = TargetCells.find(config.cells, config.cells_split, source.class_names)
    classes = len(source.class_names)
    weights = inverse_frequency_weights(source.labels, classes)
    backbone = create_backbone(config.backbone, config.arch, image_size=config.image_size)
    augment = CellAugmentation(config.image_size, view=backbone.info.input_spec())  # the backbone's own view
    source_loader, source_sampler = _loader(
        AugmentedCells(
            source.paths, augment, source.labels, config.seed, decode_min_side=backbone.info.decode_min_side
        ),
        config,
        context,
    )
    target_loader, target_sampler = _loader(
        AugmentedCells(target.paths, augment, seed=config.seed + 1, decode_min_side=backbone.info.decode_min_side),
        config,
        context,
    )

    grl = WarmStartGradientReverseLayer(alpha=1.0, lo=0.0, hi=0.1, max_iters=config.grl_max_iters)
    model = MDDClassifier(
        backbone, classes, backbone.info.embedding_dim, config.bottleneck_dim, config.width, grl=grl
    ).to(context.device)
    optimizer = torch.optim.SGD(
        model.parameter_groups(config.lr), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True
    )
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    precision = MixedPrecision(context.device, config.amp)
    class_weight = weights.to(context.device) if config.class_weights else None
    classification = nn.CrossEntropyLoss(weight=class_weight)
    mdd = MarginDisparityDiscrepancy(config.margin)

    progress = {"step": 0, "best_score": -float("inf"), "best_epoch": -1}
    if config.resume and (out / "checkpoint.pt").is_file():
        progress = restore_training_state(out / "checkpoint.pt", {"model": model}, optimizer, precision.scaler)
    module = model
    model = wrap_distributed(model, context, config.batchnorm)
    set_train_mode(model, config.batchnorm, scope=module.backbone)

    def save(name: str) -> None:
        save_training_checkpoint(
            out / name,
            training_checkpoint(
                config, "mdd", module.backbone, {"model": module}, optimizer, precision.scaler, progress
            ),
        )

    budget = Budget(config.max_steps, config.time_budget_minutes)
    log = RunLog(out, enabled=context.is_main, resume=progress["step"] > 0)
    source_batches = cycle_batches(source_loader, source_sampler, progress["step"])
    target_batches = cycle_batches(target_loader, target_sampler, progress["step"])
    total = config.epochs * config.iters_per_epoch
    bar = tqdm(total=total, initial=progress["step"], unit="step", desc="MDD", disable=context.hide_progress)
    while progress["step"] < total and not budget.exhausted():
        step = progress["step"]
        (images_s, labels_s), images_t = (
            move(next(source_batches), context.device),
            move(next(target_batches), context.device),
        )
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * (1.0 + config.lr_gamma * step) ** (-config.lr_decay)
        with precision.autocast():
            outputs = model(torch.cat([images_s, images_t]))
            n = len(images_s)
            y_s, y_t = outputs.logits[:n], outputs.logits[n:]
            y_s_adv, y_t_adv = outputs.adversarial_logits[:n], outputs.adversarial_logits[n:]
            classification_loss = classification(y_s.float(), labels_s)
            source_weights = class_weight[labels_s] if class_weight is not None else None
            transfer_loss = -mdd(y_s, y_s_adv, y_t, y_t_adv, w_s=source_weights)
            loss = classification_loss + config.trade_off * transfer_loss
        precision.step(loss, optimizer, model.parameters())
        module.step()
        progress["step"] = step = step + 1
        budget.steps_taken += 1
        values = {
            "epoch": (step - 1) // config.iters_per_epoch,
            "loss": all_reduce_mean(loss.detach().clone()).item(),
            "classification_loss": all_reduce_mean(classification_loss.detach().clone()).item(),
            "transfer_loss": all_reduce_mean(transfer_loss.detach().clone()).item(),
            "grl_coefficient": module.grl.coefficient,
            "lr": optimizer.param_groups[-1]["lr"],
        }
        log.log(step, values)
        bar.set_postfix(loss=f"{values['loss']:.3f}", transfer=f"{values['transfer_loss']:.3f}")
        bar.update(1)
        if step % config.iters_per_epoch == 0:
            epoch = step // config.iters_per_epoch - 1
            scores = score_target(module, target, backbone.info.input_spec(), context.device, config.workers)
            log.log(step, {"epoch": epoch, **scores}, stream="target")
            set_train_mode(model, config.batchnorm, scope=module.backbone)
            score = SELECTION_SCORES[config.selection] * scores[config.selection]
            if score > progress["best_score"]:
                progress.update(best_score=score, best_epoch=epoch, best_scores=scores)
                if context.is_main:
                    save("best.pt")
        if context.is_main and (step % config.iters_per_epoch == 0 or budget.exhausted()):
            save("checkpoint.pt")
    bar.close()
    log.close()
    shutdown_distributed()
    return out / "best.pt"
