"""MDD unsupervised domain adaptation to a new lab (``hema-train adapt``).

:mod:`.mdd` holds the method (loss and network), :mod:`.gradient_reversal` its warm-started gradient reversal,
:mod:`.training` the run (:func:`~hema.train.adapt.training.adapt_mdd`), :mod:`.target_scores` and
:mod:`.model_selection` the label-free scores of the target lab, :mod:`.command` the command line. Nothing is
imported here, so that ``hema-train --help`` does not load torch.
"""
