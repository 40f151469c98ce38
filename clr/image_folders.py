"""Image datasets from a zip of class folders, `train/<class>/<image>` and optionally `test/<class>/<image>`: every
file opened and decoded (Pillow), converted to one colour mode and resized once into the `uint8` arrays an `.npz`
holds. A file that is no image Pillow can decode is set aside with the reason, never trained on; one whose content is
another format than its name says (a PNG named `.jpg`) is kept, and listed."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal, get_args

import numpy as np
from PIL import Image, UnidentifiedImageError

ColorMode = Literal["rgb", "grayscale"]
COLOR_MODES: tuple[str, ...] = get_args(ColorMode)
PILLOW_MODES = {"rgb": "RGB", "grayscale": "L"}
SPLITS = ("train", "test")
# The formats each image file name announces, as Pillow names them
FORMATS_BY_SUFFIX = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".webp": "WEBP",
                     ".tif": "TIFF", ".tiff": "TIFF"}
MAX_IMAGE_PIXELS = 50_000_000  # a larger image is set aside before it is decoded (a decompression bomb)


@dataclass
class ImageFolders:
    """The arrays (`x_train`, `y_train`, and `x_test`, `y_test` with a test folder), the class of each label index,
    the files set aside (`path`, `reason`) and those kept though named as another format (`path`, `format`)."""

    arrays: dict[str, np.ndarray]
    class_names: list[str]
    quarantined: list[dict[str, str]] = field(default_factory=list)
    mislabelled: list[dict[str, str]] = field(default_factory=list)


def checked_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's files; ValueError naming the first member whose path leaves the archive or that is a link
    (nothing is unpacked to disk, but such an archive is refused as a hostile one)."""
    members = []
    for member in archive.infolist():
        path = PurePosixPath(member.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"member {member.filename!r} has a path that leaves the archive")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise ValueError(f"member {member.filename!r} is a link")
        if not member.is_dir():
            members.append(member)
    return members


def _place(path: PurePosixPath, wrapper: str | None) -> tuple[str, str] | None:
    """(split, class) of an image's path, under an optional single top folder; None when it is not in one."""
    parts = path.parts[1:] if wrapper else path.parts
    return (parts[0], parts[1]) if len(parts) == 3 and parts[0] in SPLITS and parts[1] else None


def _wrapper(paths: list[PurePosixPath]) -> str | None:
    """The one folder every path is in, when the split folders are inside it (`pets/train/...`)."""
    tops = {path.parts[0] for path in paths if len(path.parts) > 1}
    return tops.pop() if len(tops) == 1 and not tops & set(SPLITS) else None


def decoded(data: bytes, size: tuple[int, int], mode: str) -> tuple[np.ndarray, str]:
    """The image in `data` as `uint8` pixels of `size` (height, width) in Pillow's `mode`, and its format; raises
    ValueError saying why it cannot be."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{image.width}x{image.height} pixels, more than {MAX_IMAGE_PIXELS}")
            image.load()
            pixels = image.convert(mode).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(pixels, dtype=np.uint8), image.format or "unknown"
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can decode") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:  # truncated, corrupt
        raise ValueError(f"cannot be decoded: {error}") from None


def read_image_zip(source: bytes | str, size: tuple[int, int], color_mode: ColorMode = "rgb",
                   max_bytes: int | None = None) -> ImageFolders:
    """The dataset the zip `source` (bytes or a path) holds, its images `size` (height, width) in `color_mode`; its
    arrays at most `max_bytes` together. ValueError when the archive is hostile or holds no usable image."""
    if color_mode not in COLOR_MODES:
        raise ValueError(f"Argument `color_mode` must be one of {', '.join(COLOR_MODES)}. Received: {color_mode!r}")
    channels = 3 if color_mode == "rgb" else 1
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"Not a readable zip archive: {error}") from error
    with archive:
        members = checked_members(archive)
        paths = [PurePosixPath(member.filename.replace("\\", "/")) for member in members]
        wrapper = _wrapper(paths)
        placed = sorted((place, path, member) for path, member in zip(paths, members, strict=True)
                        if (place := _place(path, wrapper)) is not None)
        folders = ImageFolders({}, sorted({klass for (split, klass), _, _ in placed if split == "train"}))
        if not folders.class_names:
            raise ValueError("The archive holds no class folder under `train/` (train/<class>/<image>)")
        if max_bytes is not None and len(placed) * size[0] * size[1] * channels > max_bytes:
            raise ValueError(f"{len(placed)} images of {size[0]}x{size[1]}x{channels} would take more than the limit "
                             f"of {max_bytes} bytes")
        folders.quarantined = [{"path": str(path), "reason": "not in train/<class>/ or test/<class>/"}
                               for path in paths if _place(path, wrapper) is None]
        samples: dict[str, list[tuple[np.ndarray, int]]] = {split: [] for split in SPLITS}
        for (split, klass), path, member in placed:
            if klass not in folders.class_names:
                folders.quarantined.append({"path": str(path), "reason": f"class {klass!r} has no train/ folder"})
                continue
            try:
                pixels, found = decoded(archive.read(member), size, PILLOW_MODES[color_mode])
            except ValueError as error:
                folders.quarantined.append({"path": str(path), "reason": str(error)})
                continue
            if FORMATS_BY_SUFFIX.get(path.suffix.lower()) != found:
                folders.mislabelled.append({"path": str(path), "format": found})
            samples[split].append((pixels.reshape(*size, channels), folders.class_names.index(klass)))
    if not samples["train"]:
        raise ValueError(f"No image under train/ could be decoded ({len(folders.quarantined)} set aside)")
    for split, kept in samples.items():
        if kept:
            folders.arrays[f"x_{split}"] = np.stack([pixels for pixels, _ in kept])
            folders.arrays[f"y_{split}"] = np.array([label for _, label in kept], dtype=np.int64)
    return folders


def save_npz(folders: ImageFolders, path: str) -> None:
    """Write the arrays as an uncompressed `.npz` at `path`, replacing what is there (the zip itself) whole."""
    partial = f"{path}.partial"
    with open(partial, "wb") as file:
        np.savez(file, **folders.arrays)
    os.replace(partial, path)
