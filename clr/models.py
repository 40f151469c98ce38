"""Keras models: the built-in architectures by name, and user models from `model.to_json()` in safe mode."""

from __future__ import annotations

import json
from typing import get_args

import keras

from clr.config import Architecture

ARCHITECTURES: tuple[str, ...] = get_args(Architecture)


def seed_cnn(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The seed article's CNN, adapted to any image size, with the Flatten the article forgot."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="seed_cnn",
    )


def mlp(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """A small multilayer perceptron."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="mlp",
    )


def build(architecture: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """A built-in architecture by name."""
    builders = {"seed_cnn": seed_cnn, "mlp": mlp}
    if architecture not in builders:
        raise ValueError(f"Unknown architecture {architecture!r}; built-in ones are {', '.join(ARCHITECTURES)}")
    return builders[architecture](input_shape, num_classes)


def from_json(model_json: str) -> keras.Model:
    """A model from `model.to_json()`, deserialized in safe mode (no code-carrying layers)."""
    return keras.saving.deserialize_keras_object(json.loads(model_json), safe_mode=True)
