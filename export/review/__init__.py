"""The review flags' thresholds, calibrated at export on out-of-fold training cells, and non-cell test images.

:mod:`.thresholds` (:func:`~hema.export.review.thresholds.calibrate_review`), :mod:`.out_of_fold` and
:mod:`.non_cells`. Nothing is imported here, so that ``hema-export --help`` loads neither onnx nor torch.
"""
