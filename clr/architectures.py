"""The built-in architectures by name and the inputs each accepts (pure: the API checks a job against them
without Keras; `clr.models` builds them)."""

from __future__ import annotations

from typing import Literal, get_args

Architecture = Literal["seed_cnn", "mlp", "ResNet50V2", "ResNet50", "MobileNetV2", "MobileNetV3Small",
                       "EfficientNetV2B0", "ConvNeXtTiny", "DenseNet121", "InceptionV3", "Xception"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)

# `keras.applications` models (built with `weights=None`) and the smallest image side each accepts.
APPLICATIONS = {"ResNet50V2": 32, "ResNet50": 32, "MobileNetV2": 32, "MobileNetV3Small": 32, "EfficientNetV2B0": 32,
                "ConvNeXtTiny": 32, "DenseNet121": 32, "InceptionV3": 75, "Xception": 71}


def check_input_shape(architecture: str, input_shape: tuple[int, ...]) -> None:
    """Raise, naming the architecture and the samples' shape, when the architecture cannot take such samples."""
    smallest = APPLICATIONS.get(architecture)
    if smallest is None:
        return
    if len(input_shape) != 3:
        raise ValueError(f"{architecture} takes images (height, width, channels); the dataset's "
                         f"samples have shape {tuple(input_shape)}")
    if min(input_shape[:2]) < smallest:
        raise ValueError(f"{architecture} needs images of at least {smallest}x{smallest}; the "
                         f"dataset's are {input_shape[0]}x{input_shape[1]}")
