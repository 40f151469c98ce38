"""What a job learns: the loss it minimises, the labels that loss needs, and the output layer and metrics that fit it.

Pure numpy: the API checks an upload's labels against a job's loss without Keras."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np

Loss = Literal["sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
               "mean_squared_error", "mean_absolute_error", "huber"]
LOSSES: tuple[str, ...] = get_args(Loss)
CLASSIFICATION = frozenset({"sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"})
ACTIVATIONS = {"sparse_categorical_crossentropy": "softmax", "categorical_crossentropy": "softmax",
               "binary_crossentropy": "sigmoid"}  # regression: linear
NEEDS = {"sparse_categorical_crossentropy": "one integer class >= 0 per sample (a 1-D integer array)",
         "categorical_crossentropy": "one column per class, each row 0s and a single 1 (one-hot)",
         "binary_crossentropy": "0 or 1 per sample (1-D), or per sample and label (2-D, multi-label)"}


def holds_real_numbers(array: np.ndarray) -> bool:
    """Whether `array` holds booleans, integers or floats: not complex numbers, times, strings or objects."""
    return array.dtype.kind in "biuf"


@dataclass(frozen=True)
class Labels:
    """What an array of labels holds, enough to check it against any loss (kept with an upload's metadata)."""

    dtype: str
    shape: tuple[int, ...]
    integer: bool
    low: float
    high: float
    one_hot: bool  # two or more columns, each row 0s and a single 1

    @classmethod
    def of(cls, y: np.ndarray) -> Labels:
        if not holds_real_numbers(y) or y.ndim not in (1, 2) or not len(y):
            raise ValueError(f"holds {y.dtype} of shape {y.shape}; labels are real numbers (booleans, integers or "
                             f"floats), one row per sample")
        if not np.isfinite(y).all():
            raise ValueError(f"holds {int(np.size(y) - np.isfinite(y).sum())} NaN or infinite values")
        integer = bool(np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_)
        one_hot = y.ndim == 2 and y.shape[1] > 1 and bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())
        return cls(str(y.dtype), tuple(y.shape), integer, float(y.min()), float(y.max()), one_hot)

    @classmethod
    def from_dict(cls, fields: dict) -> Labels:
        return cls(**fields | {"shape": tuple(fields["shape"])})

    def as_dict(self) -> dict:
        return asdict(self) | {"shape": list(self.shape)}

    @property
    def columns(self) -> int:
        return 1 if len(self.shape) == 1 else self.shape[1]

    def describe(self) -> str:
        return f"{self.dtype} of shape {self.shape} with values from {self.low:g} to {self.high:g}"

    def check_classes(self, name: str, max_classes: int) -> None:
        """Raise naming the array when its integer labels, as classes 0 to `max_classes` - 1 (an output unit each
        for a sparse loss), would need more."""
        if self.integer and len(self.shape) == 1 and self.high >= max_classes:
            raise ValueError(f"`{name}` holds class {self.high:.0f}; classes are 0 to {max_classes - 1} (integer "
                             f"labels are classes, an output unit each: send regression targets as floats)")


@dataclass(frozen=True)
class Task:
    """How a loss is trained: the labels it needs (in words and as a check), the output activation, the metrics."""

    loss: Loss

    @property
    def classification(self) -> bool:
        return self.loss in CLASSIFICATION

    @property
    def activation(self) -> str:
        return ACTIVATIONS.get(self.loss, "linear")

    @property
    def needs(self) -> str:
        return NEEDS.get(self.loss, "finite numbers, one per sample (1-D) or one row of targets per sample (2-D)")

    def fits(self, labels: Labels) -> bool:
        if self.loss == "sparse_categorical_crossentropy":
            return labels.integer and len(labels.shape) == 1 and labels.low >= 0
        if self.loss == "categorical_crossentropy":
            return labels.one_hot
        if self.loss == "binary_crossentropy":
            return labels.low >= 0 and labels.high <= 1
        return True

    def outputs(self, labels: Labels) -> int:
        """Units of the model's last layer for these labels (checked first)."""
        return int(labels.high) + 1 if self.loss == "sparse_categorical_crossentropy" else labels.columns

    def check(self, name: str, labels: Labels) -> None:
        """Raise naming the array and what it holds when `labels` do not fit the loss."""
        if not self.fits(labels):
            raise ValueError(f"`{name}` holds {labels.describe()}; loss {self.loss!r} needs {self.needs}")

    def required_outputs(self, named_labels: dict[str, Labels]) -> int:
        """Check every array of labels (`y_train`, `y_test`) and return the output units they need together."""
        for name, labels in named_labels.items():
            self.check(name, labels)
        return max(self.outputs(labels) for labels in named_labels.values())


def labels_in(meta: dict) -> dict[str, Labels]:
    """The labels a dataset's metadata describes: an upload's, or a built-in dataset's classes 0 to `num_classes`-1."""
    if "labels" in meta:
        return {name: Labels.from_dict(fields) for name, fields in meta["labels"].items()}
    return {"y_train": Labels("int64", (meta["train_samples"],), True, 0, meta["num_classes"] - 1, False)}
