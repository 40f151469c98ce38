"""Image folders from a zip: every file decoded, the broken ones set aside with the reason, the mislabelled ones kept
and listed, hostile archives refused."""

import io
import stat
import zipfile

import numpy as np
import pytest

from clr.image_folders import read_image_zip
from tests.helpers import image_bytes, image_folder_zip


def test_the_classes_become_labels_and_each_broken_file_is_set_aside_with_its_reason():
    folders = read_image_zip(image_folder_zip(per_class=6), (8, 8), "rgb")
    assert folders.class_names == ["bright", "dark"]
    assert folders.arrays["x_train"].shape == (13, 8, 8, 3) and folders.arrays["x_train"].dtype == np.uint8
    assert folders.arrays["x_test"].shape == (4, 8, 8, 3)
    reasons = {entry["path"]: entry["reason"] for entry in folders.quarantined}
    assert set(reasons) == {"train/dark/truncated.jpg", "train/bright/notes.jpg"}
    assert "truncated" in reasons["train/dark/truncated.jpg"].lower()
    assert reasons["train/bright/notes.jpg"] == "not an image Pillow can decode"
    assert folders.mislabelled == [{"path": "train/bright/actually_png.jpg", "format": "PNG"}]
    y, x = folders.arrays["y_train"], folders.arrays["x_train"]
    assert x[y == 0].mean() > 150 > 100 > x[y == 1].mean()  # "bright" is class 0, "dark" class 1


def test_grayscale_images_have_one_channel_and_a_wrapping_folder_is_looked_through():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pets/train/cat/a.png", image_bytes(30, "PNG"))
        archive.writestr("pets/train/dog/b.jpg", image_bytes(90, "JPEG"))
        archive.writestr("pets/README.txt", b"hello")
        archive.writestr("pets/test/fox/c.png", image_bytes(90, "PNG"))
    folders = read_image_zip(buffer.getvalue(), (5, 7), "grayscale")
    assert folders.arrays["x_train"].shape == (2, 5, 7, 1) and folders.class_names == ["cat", "dog"]
    assert folders.quarantined == [{"path": "pets/README.txt", "reason": "not in train/<class>/ or test/<class>/"},
                                   {"path": "pets/test/fox/c.png", "reason": "class 'fox' has no train/ folder"}]


def zip_with(name: str, attributes: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train/a/fine.png", image_bytes(10, "PNG"))
        member = zipfile.ZipInfo(name)
        member.external_attr = attributes << 16
        archive.writestr(member, image_bytes(20, "PNG"))
    return buffer.getvalue()


@pytest.mark.parametrize(("archive", "text"), [
    (zip_with("../evil.png"), "leaves the archive"),
    (zip_with("/etc/evil.png"), "leaves the archive"),
    (zip_with("train/a/link.png", stat.S_IFLNK | 0o777), "is a link"),
    (b"not a zip", "Not a readable zip archive"),
    (image_folder_zip(per_class=3, broken=False).replace(b"train/", b"Train/"), "no class folder under `train/`"),
])
def test_hostile_or_empty_archives_are_refused(archive, text):
    with pytest.raises(ValueError, match=text):
        read_image_zip(archive, (8, 8))


def test_the_arrays_must_fit_the_limit_before_any_is_made():
    with pytest.raises(ValueError, match="would take more than the limit of 1000 bytes"):
        read_image_zip(image_folder_zip(per_class=4, broken=False), (8, 8), max_bytes=1000)
