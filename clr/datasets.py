"""Datasets as numpy arrays: scikit-learn's digits (offline), Keras's downloads, uploaded `.npz` files."""

from __future__ import annotations

import io
import math
import tokenize
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clr.tasks import Labels, holds_real_numbers

BUILTIN_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# What numpy's header parser (`ast.literal_eval` of the header's text) raises on a malformed header, not only ValueError
NPY_HEADER_ERRORS = (ValueError, SyntaxError, tokenize.TokenError, TypeError, MemoryError, RecursionError)


@dataclass(frozen=True)
class Dataset:
    """Samples (as `images` makes them) and their labels: classes, one-hot rows or regression targets, as
    `clr.tasks` checks them against a loss. A memory-mapped `x_train` stays as stored; `images` applies per batch."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """The number of classes, from the largest label seen."""
        labels = [self.y_train] if self.y_test is None else [self.y_train, self.y_test]
        return int(max(int(y.max()) for y in labels)) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample."""
        shape = tuple(self.x_train.shape[1:])
        return (*shape, 1) if len(shape) == 2 else shape

    def labels(self) -> dict[str, Labels]:
        """What `y_train` (and `y_test`) hold, by name."""
        named = {"y_train": self.y_train} if self.y_test is None else {"y_train": self.y_train, "y_test": self.y_test}
        return {name: Labels.of(y) for name, y in named.items()}


def images(x: np.ndarray) -> np.ndarray:
    """Samples as the model takes them: float32, `uint8` images scaled to [0, 1], a channel axis on 2-D images."""
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else np.asarray(x, dtype=np.float32)
    return x[..., np.newaxis] if x.ndim == 3 else x


def _labels(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_ else y.astype(np.float32)


def digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, offline), split into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    x_train, x_test, y_train, y_test = train_test_split(
        x, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target
    )
    return Dataset(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))


def keras_arrays(name: str) -> dict[str, np.ndarray]:
    """One of Keras's datasets as it downloads it (only where there is internet: `clr.volume.fetch` uses it)."""
    import keras

    (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    return {"x_train": x_train, "y_train": y_train.reshape(-1), "x_test": x_test, "y_test": y_test.reshape(-1)}


def _readable(source: bytes | Path) -> io.BytesIO | Path:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def unpacked_size(source: bytes | Path) -> int:
    """The bytes an `.npz` archive's members take once unpacked, from its zip directory (nothing is unpacked)."""
    try:
        with zipfile.ZipFile(_readable(source)) as archive:
            return sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ValueError(f"Not a readable .npz archive without pickles: {error}") from error


def from_npz(source: bytes | Path) -> Dataset:
    """A dataset from an `.npz` (bytes or a file) with `x_train`, `y_train` and optional `x_test`, `y_test` (no
    pickles), loaded into memory once each array's header is checked."""
    try:
        with np.load(_readable(source), allow_pickle=False) as archive:
            _check_npy_headers(archive.zip)
            arrays = {key: archive[key] for key in NPZ_KEYS if key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"Not a readable .npz archive without pickles: {error}") from error
    return _checked(arrays, "The .npz archive")


def _check_npy_headers(archive: zipfile.ZipFile) -> None:
    """Raise naming the first array member (`x_train` or `x_train.npy`, ...) that is no `.npy` array or whose header
    declares more bytes (shape × itemsize) than the member holds, or a dimension that is negative or larger than the
    member: read before numpy allocates what it declares."""
    for member in archive.infolist():
        if (key := member.filename.removesuffix(".npy")) in NPZ_KEYS:
            with archive.open(member) as file:
                shape, dtype = _npy_header(file, key)
            if (declared := math.prod(shape) * dtype.itemsize) > member.file_size:
                raise ValueError(f"`{key}` declares shape {shape} of {dtype} in its .npy header, {declared} bytes, "
                                 f"but holds {member.file_size}")
            if not all(0 <= size <= member.file_size for size in shape):
                raise ValueError(f"`{key}` declares shape {shape} in its .npy header; each dimension must be 0 to "
                                 f"the {member.file_size} bytes it holds")


def _npy_header(file: io.BufferedIOBase, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype the `.npy` header of member `key` declares; `ValueError` naming it if it has none."""
    try:
        version = np.lib.format.read_magic(file)
        if version not in NPY_HEADER_READERS:
            raise ValueError(f"format version {version} is not one of {sorted(NPY_HEADER_READERS)}")
        shape, _, dtype = NPY_HEADER_READERS[version](file)
    except NPY_HEADER_ERRORS as error:
        raise ValueError(f"`{key}` is not an `.npy` array (np.save): {error}") from error
    return shape, dtype


def from_npy_folder(folder: Path) -> Dataset:
    """A dataset from a folder of `.npy` files named after `NPZ_KEYS` (a chunked upload's), `x_train` memory-mapped:
    its batches are read from disk as training takes them, so it may be larger than memory."""
    try:
        arrays = {key: np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False)
                  for key in NPZ_KEYS if (folder / f"{key}.npy").exists()}
    except (ValueError, OSError) as error:
        raise ValueError(f"Not readable `.npy` files without pickles: {error}") from error
    return _checked(arrays, "The upload")


def from_path(path: Path) -> Dataset:
    """A dataset from an `.npz` file or a folder of `.npy` files (memory-mapped)."""
    if path.is_dir():
        return from_npy_folder(path)
    if path.suffix == ".npz":
        return from_npz(path)
    raise ValueError(f"Neither an `.npz` file nor a folder of `.npy` files: {path.name}")


def _checked(arrays: dict[str, np.ndarray], holder: str) -> Dataset:
    """The dataset of `arrays` once each is what it must be; `ValueError` naming the first that is not."""
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise ValueError(f"{holder} lacks `{key}`; it holds {sorted(arrays) or 'none of ' + str(NPZ_KEYS)}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{holder} must hold both `x_test` and `y_test`, or neither")
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        if x_key not in arrays:
            continue
        x, y = arrays[x_key], arrays[y_key]
        if x.ndim < 2 or not holds_real_numbers(x):
            raise ValueError(f"`{x_key}` must be an array of samples of real numbers. Received: dtype={x.dtype}, "
                             f"shape={x.shape}")
        if len(y) != len(x):
            raise ValueError(f"`{y_key}` must hold one label (row) per sample of `{x_key}`. Received: {y.shape} for "
                             f"{len(x)} samples")
        if len(y):
            try:
                Labels.of(y)
            except ValueError as error:
                raise ValueError(f"`{y_key}` {error}") from error
    if len(arrays["x_train"]) == 0:
        raise ValueError("`x_train` holds no samples")
    if "x_test" in arrays:
        x_test, x_train = arrays["x_test"], arrays["x_train"]
        if len(x_test) == 0:
            raise ValueError("`x_test` holds no samples: leave out `x_test` and `y_test` instead")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"`x_test` samples must have the shape of `x_train`'s. Received: {x_test.shape[1:]} "
                             f"and {x_train.shape[1:]}")
        if arrays["y_test"].shape[1:] != arrays["y_train"].shape[1:]:
            raise ValueError(f"`y_test` rows must have the shape of `y_train`'s. Received: "
                             f"{arrays['y_test'].shape[1:]} and {arrays['y_train'].shape[1:]}")
    test = (images(arrays["x_test"]), _labels(arrays["y_test"])) if "x_test" in arrays else (None, None)
    x_train = arrays["x_train"]
    return Dataset(x_train if isinstance(x_train, np.memmap) else images(x_train), _labels(arrays["y_train"]), *test)


def synthetic_images(num_samples: int, shape: tuple[int, ...], num_classes: int = 10, seed: int = 0) -> Dataset:
    """Random images whose label depends on their mean brightness per band: learnable, made on the spot."""
    rng = np.random.default_rng(seed)
    x = rng.random((num_samples, *shape), dtype=np.float32)
    y = np.minimum((x.reshape(num_samples, -1).mean(axis=1) - 0.5) * 40 + num_classes / 2, num_classes - 1)
    return Dataset(x, np.maximum(y, 0).astype(np.int64))
