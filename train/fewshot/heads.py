"""Few-shot heads fitted on frozen embeddings, stored as arrays (or ONNX), never as pickles.

Kinds and what the exported graph computes (``x`` is the embedding):

* ``lr``: standardised multinomial logistic regression; ``softmax(x @ W + b)`` with the scaler folded into
  ``W, b``; equals scikit-learn's ``predict_proba``.
* ``linear-svm``: standardised ``LinearSVC``; ``softmax`` of its one-vs-rest decision function.
* ``knn``: cosine k-nearest neighbours; the vote share of each class among the ``k`` most similar stored
  training embeddings (``k`` is capped by the smallest class); equals ``KNeighborsClassifier.predict_proba``.
* ``svm``: standardised RBF ``SVC``; ``softmax`` of its one-vs-rest decision function (ONNX via skl2onnx,
  ``ai.onnx.ml`` operators: ONNX Runtime only).
* ``rf``: random forest; its ``predict_proba`` (ONNX via skl2onnx, ONNX Runtime only).

The first three are stored as ``head.npz`` and become plain MatMul/TopK graph ops that every engine runs; the
last two are stored as ``head.onnx`` (input ``embedding``, output ``probabilities``). Every head checks at fit
time that its stored form reproduces scikit-learn's probabilities on the training embeddings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HEAD_KINDS", "PLAIN_HEADS", "FittedHead", "HeadConfig", "fit_head", "l2_normalise", "softmax"]

HEAD_KINDS = ("lr", "linear-svm", "svm", "knn", "rf")
PLAIN_HEADS = ("lr", "linear-svm", "knn")
HEAD_JSON, HEAD_NPZ, HEAD_ONNX = "head.json", "head.npz", "head.onnx"
_PARITY_ATOL = 1e-4


@dataclass(frozen=True)
class HeadConfig:
    """How to fit a head.

    Attributes:
        kind: One of :data:`HEAD_KINDS`.
        c: Inverse regularisation strength (``lr``, ``linear-svm``, ``svm``).
        k: Neighbours for ``knn`` (capped by the smallest class's count).
        trees: Trees for ``rf``.
        seed: Random seed (``rf``, ``linear-svm``).
    """

    kind: str = "lr"
    c: float = 1.0
    k: int = 10
    trees: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"unknown head {self.kind!r}; choose one of {', '.join(HEAD_KINDS)}")


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean length (zero rows stay zero)."""
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@dataclass
class FittedHead:
    """A fitted head in its stored form.

    Attributes:
        kind: Head kind.
        class_names: Output classes in order.
        params: Fitting parameters actually used (``k`` after capping, ...).
        arrays: Plain heads: ``weight (dim, classes)`` and ``bias (classes,)`` for linear heads;
            ``memory (n, dim)`` (L2-normalised) and ``votes (n, classes)`` one-hot for ``knn``.
        onnx: Serialized ONNX head (``svm``, ``rf``).
        metadata: Anything recorded beside the head (backbone, training data).
    """

    kind: str
    class_names: tuple[str, ...]
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    onnx: bytes | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_dim(self) -> int:
        """Length of the embedding the head takes."""
        return int(self.params["embedding_dim"])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` of embeddings ``(n, dim)``, as the exported graph computes them."""
        features = np.asarray(features, dtype=np.float32)
        if self.onnx is not None:
            import onnxruntime as ort

            session = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
            return session.run(["probabilities"], {"embedding": features})[0]
        if self.kind == "knn":
            similarity = l2_normalise(features) @ self.arrays["memory"].T
            k = int(self.params["k"])
            nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
            return self.arrays["votes"][nearest].mean(axis=1)
        return softmax(features @ self.arrays["weight"] + self.arrays["bias"])

    def save(self, directory: str | Path) -> None:
        """Write ``head.json`` and ``head.npz`` or ``head.onnx`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "kind": self.kind,
            "class_names": list(self.class_names),
            "params": self.params,
            "format": "onnx" if self.onnx is not None else "npz",
            **self.metadata,
        }
        (directory / HEAD_JSON).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        if self.onnx is not None:
            (directory / HEAD_ONNX).write_bytes(self.onnx)
        else:
            np.savez(directory / HEAD_NPZ, **self.arrays)

    @classmethod
    def load(cls, directory: str | Path) -> FittedHead:
        """Read a head written by :meth:`save` (``allow_pickle=False``).

        Raises:
            FileNotFoundError: If ``directory`` holds no head.
        """
        directory = Path(directory)
        if not (directory / HEAD_JSON).is_file():
            raise FileNotFoundError(f"{directory} holds no {HEAD_JSON}: not a fitted head (hema-train fewshot --out)")
        document = json.loads((directory / HEAD_JSON).read_text(encoding="utf-8"))
        kind, names, params = document.pop("kind"), tuple(document.pop("class_names")), document.pop("params")
        if document.pop("format") == "onnx":
            return cls(kind, names, params, onnx=(directory / HEAD_ONNX).read_bytes(), metadata=document)
        with np.load(directory / HEAD_NPZ, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        return cls(kind, names, params, arrays=arrays, metadata=document)


def fit_head(features: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], config: HeadConfig) -> FittedHead:
    """Fit a head with scikit-learn and convert it to its stored form.

    Args:
        features: Embeddings ``(n, dim)``.
        labels: Integer labels ``(n,)`` into ``class_names``; every class must occur.
        class_names: Output classes.
        config: Head kind and parameters.

    Raises:
        ValueError: If a class has no example or fewer than two classes are given.
        RuntimeError: If the stored form does not reproduce scikit-learn's probabilities.
    """
    from hema.train.fewshot.head_fitting import fit_stored_head

    features = np.asarray(features, dtype=np.float32)
    counts = np.bincount(labels, minlength=len(class_names))
    if len(class_names) < 2 or (counts == 0).any():
        empty = [name for name, count in zip(class_names, counts) if count == 0]
        raise ValueError(f"a head needs at least two classes, each with an example; without examples: {empty}")
    arrays, onnx_bytes, params, reference = fit_stored_head(features, labels, counts, config)
    head = FittedHead(config.kind, tuple(class_names), {**asdict(config), **params}, arrays, onnx_bytes)
    worst = float(np.abs(head.predict_proba(features) - reference).max())
    if worst > _PARITY_ATOL:
        raise RuntimeError(f"{config.kind} head: stored form differs from scikit-learn by {worst:.2e}")
    return head
