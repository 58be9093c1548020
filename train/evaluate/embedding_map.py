"""A 2-D UMAP map of embeddings from several labs, on a subsample balanced between the labs.

A small lab would vanish among a large one's cells, so each lab gets an equal share of the subsample (a lab
with fewer cells gives all it has, the rest goes to the others). UMAP runs on cosine distance with a fixed
``random_state``, which makes it reproducible (and single-threaded).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["UMAP_SETTINGS", "subsample_by_lab", "umap_projection"]

UMAP_SETTINGS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"}


def subsample_by_lab(labs: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``total`` cells, shared as evenly as the labs' sizes allow.

    Args:
        labs: Lab index of every cell.
        total: Cells wanted (all cells if there are fewer).
        rng: Random generator for the draw within each lab.
    """
    members = [np.flatnonzero(labs == lab) for lab in np.unique(labs)]
    quota = np.zeros(len(members), dtype=np.int64)
    remaining = min(total, len(labs))
    while remaining > 0:  # hand out the remainder to labs that still have cells
        open_labs = [i for i, cells in enumerate(members) if quota[i] < len(cells)]
        share = max(remaining // len(open_labs), 1)
        for i in open_labs:
            grant = min(share, len(members[i]) - quota[i], remaining)
            quota[i] += grant
            remaining -= grant
    chosen = [rng.choice(cells, size=int(n), replace=False) for cells, n in zip(members, quota)]
    return np.sort(np.concatenate(chosen))


def umap_projection(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """``float32 (n, 2)`` UMAP coordinates of ``features`` (:data:`UMAP_SETTINGS`, ``random_state=seed``).

    Raises:
        ValueError: If fewer than 3 cells are given.
    """
    if len(features) < 3:
        raise ValueError(f"a UMAP map needs at least 3 cells, got {len(features)}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # umap-learn's own scikit-learn deprecations
        import umap

        settings = {**UMAP_SETTINGS, "n_neighbors": min(UMAP_SETTINGS["n_neighbors"], len(features) - 1)}
        reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1, **settings)
        return reducer.fit_transform(np.asarray(features, dtype=np.float32)).astype(np.float32)
