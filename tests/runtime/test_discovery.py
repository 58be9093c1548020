"""Expanding the user's files and folders into the images to classify."""

from __future__ import annotations

from pathlib import Path

from hema.runtime.discovery import find_cell_images


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_folders_are_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    files = [
        _touch(tmp_path / "slide_b" / "cell_2.jpg"),
        _touch(tmp_path / "slide_a" / "cell_9.png"),
        _touch(tmp_path / "slide_a" / "deeper" / "even_deeper" / "cell_1.tif"),
        _touch(tmp_path / "top.bmp"),
    ]
    found = find_cell_images([tmp_path])
    assert set(found.images) == set(files)
    assert list(found.images) == sorted(found.images)
    assert found.skipped == () and found.missing == ()


def test_hidden_files_and_folders_are_ignored(tmp_path: Path) -> None:
    visible = _touch(tmp_path / "slide" / "cell.jpg")
    _touch(tmp_path / "slide" / ".hidden.jpg")
    _touch(tmp_path / ".cache" / "thumb.jpg")
    _touch(tmp_path / "slide" / ".ipynb_checkpoints" / "cell-checkpoint.jpg")
    _touch(tmp_path / ".DS_Store")
    found = find_cell_images([tmp_path])
    assert found.images == (visible,)
    assert found.skipped == ()


def test_hidden_parent_of_the_named_folder_does_not_hide_its_images(tmp_path: Path) -> None:
    image = _touch(tmp_path / ".exports" / "slide" / "cell.jpg")
    assert find_cell_images([tmp_path / ".exports"]).images == (image,)


def test_non_image_files_in_folders_are_reported_as_skipped(tmp_path: Path) -> None:
    image = _touch(tmp_path / "slide" / "cell.jpg")
    notes = _touch(tmp_path / "slide" / "notes.txt")
    manifest = _touch(tmp_path / "manifest.csv")
    no_suffix = _touch(tmp_path / "slide" / "README")
    found = find_cell_images([tmp_path])
    assert found.images == (image,)
    assert set(found.skipped) == {notes, manifest, no_suffix}


def test_explicitly_named_files_are_always_included_whatever_their_suffix(tmp_path: Path) -> None:
    notes = _touch(tmp_path / "notes.txt")
    odd = _touch(tmp_path / "cell.jpg.bak")
    hidden = _touch(tmp_path / ".hidden.jpg")
    found = find_cell_images([notes, odd, hidden])
    assert found.images == (notes, odd, hidden)
    assert found.skipped == () and found.missing == ()


def test_missing_paths_are_reported_and_the_rest_still_found(tmp_path: Path) -> None:
    image = _touch(tmp_path / "cell.jpg")
    gone_file = tmp_path / "gone.jpg"
    gone_folder = tmp_path / "no_such_slide"
    found = find_cell_images([gone_file, image, gone_folder])
    assert found.images == (image,)
    assert found.missing == (gone_file, gone_folder)


def test_upper_and_mixed_case_suffixes_are_images(tmp_path: Path) -> None:
    names = ["A.JPG", "b.Jpeg", "c.PNG", "d.TIFF", "e.Bmp", "f.jpg"]
    files = [_touch(tmp_path / name) for name in names]
    _touch(tmp_path / "g.TXT")
    found = find_cell_images([tmp_path])
    assert set(found.images) == set(files)
    assert found.skipped == (tmp_path / "g.TXT",)


def test_a_file_named_twice_or_inside_a_named_folder_is_listed_once(tmp_path: Path) -> None:
    image = _touch(tmp_path / "slide" / "cell.jpg")
    found = find_cell_images([tmp_path, image, tmp_path / "slide"])
    assert found.images == (image,)


def test_folders_come_in_the_order_given(tmp_path: Path) -> None:
    second = _touch(tmp_path / "b" / "cell.jpg")
    first = _touch(tmp_path / "a" / "cell.jpg")
    assert find_cell_images([tmp_path / "b", tmp_path / "a"]).images == (second, first)


def test_symlink_loops_and_dangling_links_are_listed_so_they_get_an_error_row(tmp_path: Path) -> None:
    image = _touch(tmp_path / "slide" / "cell.jpg")
    (tmp_path / "slide" / "loop_a.jpg").symlink_to("loop_b.jpg")
    (tmp_path / "slide" / "loop_b.jpg").symlink_to("loop_a.jpg")
    (tmp_path / "slide" / "moved.png").symlink_to("gone.png")
    (tmp_path / "slide" / "notes").symlink_to("gone.txt")
    (tmp_path / "slide" / ".hidden_loop.jpg").symlink_to(".hidden_loop.jpg")
    found = find_cell_images([tmp_path])
    assert [path.name for path in found.images] == ["cell.jpg", "loop_a.jpg", "loop_b.jpg", "moved.png"]
    assert found.images[0] == image
    assert [path.name for path in found.skipped] == ["notes"]


def test_a_symlink_loop_named_explicitly_is_an_image_not_missing(tmp_path: Path) -> None:
    loop = tmp_path / "loop.jpg"
    loop.symlink_to("loop.jpg")
    found = find_cell_images([loop, tmp_path / "gone.jpg"])
    assert found.images == (loop,)
    assert found.missing == (tmp_path / "gone.jpg",)


def test_links_to_folders_are_not_followed_so_a_folder_loop_ends(tmp_path: Path) -> None:
    image = _touch(tmp_path / "slide" / "cell.jpg")
    (tmp_path / "slide" / "again").symlink_to("..")
    (tmp_path / "slide" / "self").symlink_to(".")
    found = find_cell_images([tmp_path])
    assert found.images == (image,)
    assert found.skipped == ()
