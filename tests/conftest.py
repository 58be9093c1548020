"""Shared fixtures: where the real cell images are, and small ImageFolders of symlinks to them.

The real data lives beside the checkout in ``../shared/data`` (``HEMA_DATA_ROOT`` overrides it). Images are
never copied into the repository: the small folders below are symlinks under pytest's temporary directory.
A test that needs the data fails (it does not skip) when the folder is missing, so a CI run without the data
cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "HEMA_DATA_ROOT"

SMALL_TRAIN_PER_CLASS = 10
SMALL_EVAL_PER_CLASS = 4


def resolve_data_root() -> Path:
    """``$HEMA_DATA_ROOT`` or ``<repo>/../shared/data``."""
    override = os.environ.get(DATA_ENV)
    return Path(override).expanduser().resolve() if override else (REPO_ROOT.parent / "shared" / "data").resolve()


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.fail(
            f"{what} not found at {path}: the tests need the real cell images "
            f"(../shared/data beside the checkout, or set {DATA_ENV})",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding ``pbc/`` and ``bccd/``."""
    return _require_dir(resolve_data_root(), "real data folder")


@pytest.fixture(scope="session")
def pbc_dir(data_root: Path) -> Path:
    """PBC: 8 classes, 3,403 JPEGs, ImageFolder layout."""
    return _require_dir(data_root / "pbc", "PBC data")


@pytest.fixture(scope="session")
def bccd_dir(data_root: Path) -> Path:
    """BCCD: 5 classes, a second laboratory."""
    return _require_dir(data_root / "bccd", "BCCD data")


def link_image_folder(root: Path, paths_by_class: dict[str, list[Path]]) -> Path:
    """An ImageFolder of symlinks: ``root/<class>/<file name>`` -> the real image."""
    for name, paths in paths_by_class.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            (folder / path.name).symlink_to(path)
    return root


def _first_per_class(pbc: Path, split: str, per_class: int) -> dict[str, list[Path]]:
    from hema.train.data.folders import find_labelled_images

    labelled = find_labelled_images(pbc, split)
    chosen: dict[str, list[Path]] = {}
    for path, label in zip(labelled.paths, labelled.labels):
        members = chosen.setdefault(labelled.class_names[label], [])
        if len(members) < per_class:
            members.append(path)
    return chosen


@pytest.fixture(scope="session")
def small_pbc(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 train-split images of every PBC class, as symlinks."""
    root = tmp_path_factory.mktemp("small_pbc")
    return link_image_folder(root, _first_per_class(pbc_dir, "train", SMALL_TRAIN_PER_CLASS))


@pytest.fixture(scope="session")
def small_pbc_eval(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 test-split images of every PBC class, as symlinks."""
    root = tmp_path_factory.mktemp("small_pbc_eval")
    return link_image_folder(root, _first_per_class(pbc_dir, "test", SMALL_EVAL_PER_CLASS))


@pytest.fixture(scope="session")
def make_image_folder():
    """The :func:`link_image_folder` helper, for tests that build their own small ImageFolders."""
    return link_image_folder


@pytest.fixture(scope="session")
def pbc_test_split(pbc_dir: Path):
    """PBC's test split (:func:`hema.train.data.folders.find_labelled_images`), computed once."""
    from hema.train.data.folders import find_labelled_images

    return find_labelled_images(pbc_dir, "test")


@pytest.fixture()
def model_copy(tmp_path: Path) -> Path:
    """The embedded default model and its manifest, copied (for tests that damage or edit a model)."""
    from hema.runtime.default_model import DEFAULT_MODEL_PATH
    from hema.runtime.manifest import manifest_path

    path = tmp_path / "cells.onnx"
    shutil.copyfile(DEFAULT_MODEL_PATH, path)
    shutil.copyfile(manifest_path(DEFAULT_MODEL_PATH), manifest_path(path))
    return path
