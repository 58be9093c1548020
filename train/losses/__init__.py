"""Training losses, one per module, re-exported flat: ``from hema.train.losses import DINOLoss``."""

from hema.train.losses.dino import DINOLoss
from hema.train.losses.mdd import MarginDisparityDiscrepancy

__all__ = ["DINOLoss", "MarginDisparityDiscrepancy"]
