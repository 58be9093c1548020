"""Few-shot heads fitted on frozen embeddings, stored as arrays (or ONNX), never as pickles.

Kinds and what the exported graph computes (``x`` is the embedding):

* ``lr``: standardised multinomial logistic regression; ``softmax(x @ W + b)`` with the scaler folded into
  ``W, b``; equals scikit-learn's ``predict_proba``.
* ``linear-svm``: standardised ``LinearSVC``; ``softmax`` of its one-vs-rest decision function.
* ``knn``: cosine k-nearest neighbours; the vote share of each class among the ``k`` most similar stored
  training embeddings (``k`` is capped by the smallest class); equals ``KNeighborsClassifier.predict_proba``
  wherever the ``k`` nearest neighbours are determined (see *kNN ties* below).
* ``svm``: standardised RBF ``SVC``; ``softmax`` of its one-vs-rest decision function (ONNX via skl2onnx,
  ``ai.onnx.ml`` operators: ONNX Runtime only).
* ``rf``: random forest; its ``predict_proba`` (ONNX via skl2onnx, ONNX Runtime only).

The first three are stored as ``head.npz`` and become plain MatMul/TopK graph ops that every engine runs; the
last two are stored as ``head.onnx`` (input ``embedding``, output ``probabilities``). Every head checks at fit
time that its stored form reproduces scikit-learn's probabilities on the training embeddings.

kNN ties. The ``k`` nearest neighbours of an embedding are determined only when its ``k``-th and ``(k+1)``-th
similarities differ by more than the arithmetic can resolve. The exported graph ranks float32 dot products,
and every engine sums them in its own order (numpy's BLAS differs between AVX2 and AVX-512 kernels; ONNX
Runtime, OpenVINO and TensorRT differ again), while scikit-learn ranks float64 Euclidean distances, which for
rows normalised in float32 (lengths ``1 +- ~dim * 2**-24``) is not even the same ranking as the dot product. So
when a cell's 5th and 6th neighbours carry different labels and lie within rounding of each other, one
neighbour of ``k = 5`` changes class between machines or engines and the vote share moves by ``1/k = 0.2``:
the "stored form differs from scikit-learn by 2.00e-01" failure, which a 1-ulp change to one training
embedding reproduces. No ordering can make float32 engines agree there, so the head's contract admits it:
neighbours more similar than the ``(k+1)``-th by more than :func:`knn_similarity_resolution` always vote,
those less similar than the ``k``-th by more than it never do, and any of the rest may fill the remaining
places. :meth:`FittedHead.vote_range` gives the least and most vote share of each class under that contract
(computed in float64, one value where the neighbours are determined), :func:`range_violation` how far
probabilities lie outside it; the fit-time check requires both scikit-learn's and the stored form's votes to
lie inside, which is exact equality with scikit-learn on every cell whose neighbours are determined.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "HEAD_KINDS",
    "PLAIN_HEADS",
    "FittedHead",
    "HeadConfig",
    "fit_head",
    "knn_similarity_resolution",
    "l2_normalise",
    "range_violation",
    "softmax",
]

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


def knn_similarity_resolution(dim: int) -> float:
    """How close two cosine similarities of ``dim``-long embeddings may be and still be ranked either way.

    With ``u = 2**-24``, a float32 dot product of two unit vectors summed in any order is within ``dim * u``
    of the exact one, normalising the query in float32 adds ``(dim / 2 + 2) * u``, and ranking by Euclidean
    distance instead of the dot product (scikit-learn) shifts a similarity by at most ``(dim / 2 + 2) * u``
    (half the spread of the stored rows' squared lengths). Each ranking is thus within ``e = (1.5 * dim + 4) * u``
    of the exact similarities, and two of them can order a pair differently only when its exact gap is at
    most ``2 * e``, the value returned. A worst-case bound: for 1,280 features it is 2.3e-4, while real cells'
    gaps between differently labelled 5th and 6th neighbours are mostly far larger.
    """
    return (3 * dim + 8) * 2.0**-24


def range_violation(probabilities: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per row, how far ``probabilities`` lie outside ``[low, high]`` or off summing to one (0: inside)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    outside = np.maximum(np.maximum(low - probabilities, probabilities - high), 0.0).max(axis=1)
    return np.maximum(outside, np.abs(probabilities.sum(axis=1) - 1.0))


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

    def vote_range(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``knn`` only: the least and most vote share ``(n, classes)`` of each class that any correct float32
        ranking of ``features`` can give (see *kNN ties* in the module docstring).

        Computed in float64 from the stored memory: neighbours more similar than the ``(k+1)``-th by more than
        :func:`knn_similarity_resolution` are certain, those within it of the ``k``-th are tied, and the tied
        ones fill the places the certain ones leave. Where a cell's neighbours are determined, ``low == high``.
        """
        if self.kind != "knn":
            raise ValueError(f"vote_range is defined for knn heads, not {self.kind!r}")
        memory = self.arrays["memory"].astype(np.float64)
        votes, k = self.arrays["votes"].astype(np.float64), int(self.params["k"])
        similarity = l2_normalise(np.asarray(features, dtype=np.float64)) @ memory.T
        ordered = -np.sort(-similarity, axis=1)
        kth = ordered[:, k - 1 : k]
        after = ordered[:, k : k + 1] if memory.shape[0] > k else np.full_like(kth, -np.inf)
        resolution = knn_similarity_resolution(memory.shape[1])
        certain = similarity > after + resolution
        tied = ~certain & (similarity >= kth - resolution)
        low = certain @ votes
        free = k - certain.sum(axis=1, keepdims=True)
        return low / k, (low + np.minimum(tied @ votes, free)) / k

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
    stored = head.predict_proba(features)
    if config.kind == "knn":  # equal where the neighbours are determined; either choice at a tie (module docstring)
        low, high = head.vote_range(features)
        worst = float(max(range_violation(stored, low, high).max(), range_violation(reference, low, high).max()))
    else:
        worst = float(np.abs(stored - reference).max())
    if worst > _PARITY_ATOL:
        raise RuntimeError(f"{config.kind} head: stored form differs from scikit-learn by {worst:.2e}")
    return head
