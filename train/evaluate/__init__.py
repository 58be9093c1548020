"""``hema-train evaluate``: metrics, learning curves, the cross-lab table, UMAP, saliency maps and the report.

:mod:`.metrics` is used by every stage that scores a model; :mod:`.report`
(:func:`~hema.train.evaluate.report.run_evaluation`) builds the whole report; :mod:`.command` is its command line.
Nothing is imported here, so that ``hema-train --help`` does not load torch.
"""
