"""DINO self-supervised training of a backbone on unlabelled cells (``hema-train ssl``).

:mod:`.loss` (:class:`~hema.train.dino.loss.DINOLoss`), :mod:`.projector` (the DINO projection head),
:mod:`.training` (:func:`~hema.train.dino.training.train_dino`) and :mod:`.command`. Nothing is imported here, so
that ``hema-train --help`` does not load torch.
"""
