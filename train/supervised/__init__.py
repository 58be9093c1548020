"""Supervised fine-tuning of a backbone on labelled cells (``hema-train supervised``).

:mod:`.finetune` (:func:`~hema.train.supervised.finetune.train_supervised`), :mod:`.labelled_training` (pieces
MDD shares) and :mod:`.command`. Nothing is imported here, so that ``hema-train --help`` does not load torch.
"""
