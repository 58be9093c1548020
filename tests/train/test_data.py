"""Labelled ImageFolders and hema's fixed content-hash train/test split."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from hema.train.data.folders import find_labelled_images, split_of


@pytest.fixture(scope="module")
def pbc_all(pbc_dir: Path):
    return find_labelled_images(pbc_dir, "all")


@pytest.fixture(scope="module")
def pbc_train(pbc_dir: Path):
    return find_labelled_images(pbc_dir, "train")


def test_split_is_deterministic(pbc_dir: Path, pbc_train, pbc_test_split) -> None:
    again = find_labelled_images(pbc_dir, "test")
    assert again.paths == pbc_test_split.paths
    np.testing.assert_array_equal(again.labels, pbc_test_split.labels)
    assert pbc_train.paths == find_labelled_images(pbc_dir, "train").paths


def test_split_follows_the_documented_hash_rule(pbc_test_split, pbc_train) -> None:
    """Test split: first 8 hex digits of SHA-256(content) below 20 % of 2**32."""
    for path in [*pbc_test_split.paths[:20], *pbc_train.paths[:20]]:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        expected = "test" if int(digest[:8], 16) < 0.2 * 2**32 else "train"
        assert split_of(path) == expected


def test_split_depends_on_content_not_name(pbc_test_split, pbc_train, tmp_path: Path) -> None:
    test_file, train_file = pbc_test_split.paths[0], pbc_train.paths[0]
    for source, split in ((test_file, "test"), (train_file, "train")):
        copy = tmp_path / "renamed" / "elsewhere" / f"copy_of_{split}_{source.stem}.png"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        assert split_of(copy) == split_of(source) == split
    # Swapping the names of a test and a train file does not swap their splits.
    root = tmp_path / "swapped" / "cls"
    root.mkdir(parents=True)
    shutil.copyfile(test_file, root / train_file.name)
    shutil.copyfile(train_file, root / test_file.name)
    assert find_labelled_images(root.parent, "test").paths == (root / train_file.name,)
    assert find_labelled_images(root.parent, "train").paths == (root / test_file.name,)


def test_test_fraction_on_pbc_is_about_a_fifth(pbc_all, pbc_test_split) -> None:
    fraction = len(pbc_test_split) / len(pbc_all)
    assert 0.17 <= fraction <= 0.23, fraction
    for name, count in pbc_test_split.counts().items():  # every class is represented in the test split
        assert count > 0, name


def test_train_and_test_are_disjoint_and_cover_all(pbc_all, pbc_train, pbc_test_split) -> None:
    train, test = set(pbc_train.paths), set(pbc_test_split.paths)
    assert not train & test
    assert train | test == set(pbc_all.paths)
    assert len(pbc_all) == 3403
    assert pbc_all.class_names == pbc_train.class_names == pbc_test_split.class_names


def test_labels_index_the_class_folder_of_each_file(pbc_all, pbc_dir: Path) -> None:
    assert pbc_all.class_names == tuple(sorted(path.name for path in pbc_dir.iterdir() if path.is_dir()))
    for path, label in zip(pbc_all.paths[::97], pbc_all.labels[::97]):
        assert path.relative_to(pbc_dir).parts[0] == pbc_all.class_names[label]
    assert pbc_all.labels.dtype == np.int64
    assert sum(pbc_all.counts().values()) == len(pbc_all)
    assert not any(path.suffix == ".csv" for path in pbc_all.paths)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(path.name.encode())  # distinct content per file
    return path


def test_classes_are_first_level_folders_and_images_are_found_recursively(tmp_path: Path) -> None:
    a1 = _touch(tmp_path / "alpha" / "slide_1" / "deep" / "a1.jpg")
    a2 = _touch(tmp_path / "alpha" / "a2.png")
    b1 = _touch(tmp_path / "beta" / "slide_9" / "b1.JPG")
    _touch(tmp_path / "beta" / "notes.txt")
    _touch(tmp_path / "stray.jpg")  # not in a class folder
    _touch(tmp_path / ".hidden_class" / "h.jpg")
    (tmp_path / "gamma_empty").mkdir()
    labelled = find_labelled_images(tmp_path)
    assert labelled.class_names == ("alpha", "beta")
    assert dict(zip(labelled.paths, labelled.labels.tolist())) == {a2: 0, a1: 0, b1: 1}
    assert labelled.counts() == {"alpha": 2, "beta": 1}


def test_empty_folder_raises_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no labelled images"):
        find_labelled_images(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="no labelled images"):
        find_labelled_images(tmp_path)


def test_missing_folder_and_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        find_labelled_images(tmp_path / "absent")
    _touch(tmp_path / "cls" / "a.jpg")
    with pytest.raises(ValueError, match="unknown split"):
        find_labelled_images(tmp_path, "validation")
