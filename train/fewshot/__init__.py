"""Few-shot heads on frozen features (``hema-train fewshot``): features, heads (scikit-learn, stored as arrays or
ONNX), fitting and repeated draws."""

from hema.train.fewshot.draws import FewShotResult, run_fewshot
from hema.train.fewshot.heads import HEAD_KINDS, FittedHead, HeadConfig, fit_head

__all__ = ["FewShotResult", "FittedHead", "HEAD_KINDS", "HeadConfig", "fit_head", "run_fewshot"]
