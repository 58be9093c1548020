"""The review flags' thresholds, calibrated at export on out-of-fold training cells, and non-cell test images."""

from hema.export.review.thresholds import ReviewCalibration, ReviewSettings, calibrate_review

__all__ = ["ReviewCalibration", "ReviewSettings", "calibrate_review"]
