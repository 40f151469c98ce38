"""Keras models: the built-in architectures by name, and user models (`model.to_json()` or a `.keras` file) in
safe mode."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import keras

from clr.architectures import APPLICATIONS, ARCHITECTURES, check_input_shape


def seed_cnn(input_shape: tuple[int, ...], num_classes: int, activation: str = "softmax") -> keras.Model:
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
            keras.layers.Dense(num_classes, activation=activation),
        ],
        name="seed_cnn",
    )


def mlp(input_shape: tuple[int, ...], num_classes: int, activation: str = "softmax") -> keras.Model:
    """A small multilayer perceptron."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(num_classes, activation=activation),
        ],
        name="mlp",
    )


def application(name: str, input_shape: tuple[int, ...], outputs: int, activation: str) -> keras.Model:
    """A `keras.applications` model, untrained, its top sized for the task; it takes inputs in [0, 1] as they are
    (the models that would rescale them from [0, 255] are built without that layer)."""
    builder = getattr(keras.applications, name)
    takes_preprocessing = "include_preprocessing" in inspect.signature(builder).parameters
    options = {"include_preprocessing": False} if takes_preprocessing else {}
    return builder(weights=None, input_shape=input_shape, classes=outputs, classifier_activation=activation, **options)


def build(architecture: str, input_shape: tuple[int, ...], outputs: int, activation: str = "softmax") -> keras.Model:
    """A built-in architecture by name, `outputs` units with `activation` on top."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; built-in ones are {', '.join(ARCHITECTURES)}")
    check_input_shape(architecture, input_shape)
    if architecture in APPLICATIONS:
        return application(architecture, input_shape, outputs, activation)
    return {"seed_cnn": seed_cnn, "mlp": mlp}[architecture](input_shape, outputs, activation)


def from_json(model_json: str) -> keras.Model:
    """A model from `model.to_json()`, deserialized in safe mode (no code-carrying layers)."""
    return keras.saving.deserialize_keras_object(json.loads(model_json), safe_mode=True)


def from_file(path: Path) -> keras.Model:
    """A model from a `.keras` file, loaded in safe mode, uncompiled (the job compiles it with its own optimizer)."""
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def in_precision(model: keras.Model, policy: str) -> keras.Model:
    """`model` with every layer computing under the dtype policy `policy`, its weights kept (a saved or serialized
    model keeps the policy each layer had when it was saved; a built one takes the global policy)."""
    if {layer.dtype_policy.name for layer in model.layers} == {policy}:
        return model

    def under_policy(layer: keras.layers.Layer) -> keras.layers.Layer:
        return type(layer).from_config(layer.get_config() | {"dtype": policy})

    clone = keras.models.clone_model(model, clone_function=under_policy, recursive=True)
    clone.set_weights(model.get_weights())
    return clone
