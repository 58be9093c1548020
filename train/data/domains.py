"""Which classes two laboratories share, and how a second lab's folder names map onto the training classes.

PBC (the training lab, 8 folders) and BCCD (the second lab, 5 folders) were inspected folder by folder:

=============  =============  ====================================================================
BCCD folder    PBC class      note
=============  =============  ====================================================================
basophil       basophil       3 cells in BCCD: its recall rests on very few cells
eosinophil     eosinophil
lymphocyte     lymphocyte
monocyte       monocyte
neutrophil     neutrophil     PBC's folder holds segmented (SNE) and band (BNE) neutrophils
(none)         erythroblast   not a leukocyte class of BCCD
(none)         ig             immature granulocytes: absent from BCCD
(none)         platelet       BCCD crops white cells only
=============  =============  ====================================================================

The two labs happen to spell their shared classes alike, so :data:`BCCD_TO_PBC` is the identity on five
names; it is written out so that a renamed folder (``neutrophils``, ``segmented_neutrophil``) is added here in
one line rather than silently dropped. A lab without an entry in :data:`KNOWN_MAPPINGS` is matched by folder
name alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BCCD_TO_PBC", "KNOWN_MAPPINGS", "ClassMapping", "map_classes", "restrict_to_shared"]

BCCD_TO_PBC: dict[str, str] = {
    "basophil": "basophil",
    "eosinophil": "eosinophil",
    "lymphocyte": "lymphocyte",
    "monocyte": "monocyte",
    "neutrophil": "neutrophil",
}
KNOWN_MAPPINGS: dict[str, dict[str, str]] = {"bccd": BCCD_TO_PBC}


@dataclass(frozen=True)
class ClassMapping:
    """How a target lab's classes line up with the source (training) classes.

    Attributes:
        shared: Source class names that the target lab also has, in source order.
        target_to_source: Target folder name to source class name, for every target class that maps.
        source_only: Source classes the target lab lacks.
        target_only: Target folders with no source counterpart (left out of every comparison).
    """

    shared: tuple[str, ...]
    target_to_source: dict[str, str]
    source_only: tuple[str, ...]
    target_only: tuple[str, ...]


def map_classes(
    source_names: tuple[str, ...], target_names: tuple[str, ...], mapping: dict[str, str] | None = None
) -> ClassMapping:
    """Match target class folders to source classes.

    Args:
        source_names: Classes of the training lab.
        target_names: Class folders of the second lab.
        mapping: Target name to source name; names it does not list map to the source class of the same name.

    Raises:
        ValueError: If no class is shared, or two target folders map onto one source class.
    """
    mapping = mapping or {}
    target_to_source = {}
    for name in target_names:
        source = mapping.get(name, name)
        if source in source_names:
            target_to_source[name] = source
    mapped = list(target_to_source.values())
    if len(set(mapped)) != len(mapped):
        raise ValueError(f"two target classes map onto one source class: {target_to_source}")
    if not mapped:
        raise ValueError(f"no class shared between {list(source_names)} and {list(target_names)}")
    shared = tuple(name for name in source_names if name in mapped)
    return ClassMapping(
        shared=shared,
        target_to_source=target_to_source,
        source_only=tuple(name for name in source_names if name not in shared),
        target_only=tuple(name for name in target_names if name not in target_to_source),
    )


def restrict_to_shared(
    labels: np.ndarray, class_names: tuple[str, ...], shared: tuple[str, ...], rename: dict[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the cells of shared classes and relabel them as indices into ``shared``.

    Args:
        labels: Integer labels into ``class_names``.
        class_names: The lab's own class names.
        shared: The shared classes (source names), defining the new label order.
        rename: The lab's name to source name (:attr:`ClassMapping.target_to_source`): classes it does not list
            are dropped. ``None`` for the source lab itself (names kept as they are).

    Returns:
        ``(indices, new_labels)``: positions of the kept cells and their labels into ``shared``.
    """
    rename = dict(zip(class_names, class_names)) if rename is None else rename
    lookup = np.array([shared.index(rename[name]) if rename.get(name) in shared else -1 for name in class_names])
    new_labels = lookup[labels] if len(labels) else np.empty(0, dtype=np.int64)
    indices = np.flatnonzero(new_labels >= 0)
    return indices, new_labels[indices].astype(np.int64)
