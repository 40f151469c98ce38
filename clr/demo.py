"""The library demo: a range test with `LRFinder`, then CLR training with `CyclicLR`, on scikit-learn's digits."""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

from clr import datasets, models
from clr.callbacks import CyclicLR, LRFinder
from clr.plots import training_png
from clr.plan import iterations_per_epoch


def _compiled_cnn(data: datasets.Dataset) -> keras.Model:
    model = models.seed_cnn(data.input_shape, data.num_classes)
    model.compile(keras.optimizers.SGD(momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(output_dir: Path, batch_size: int = 32, epochs: int = 8) -> float:
    """Run the article's workflow, write `range_test.png` and `training.png` into `output_dir`; return test accuracy."""
    keras.utils.set_random_seed(0)
    data = datasets.digits()
    model = _compiled_cnn(data)
    finder = LRFinder(min_lr=1e-4, max_lr=1.0)
    model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=8, callbacks=[finder], verbose=0)
    bounds = finder.suggestion()
    print(f"Range test over {len(finder.losses)} iterations: {bounds.explanation}")
    print(f"Suggested bounds: base_lr={bounds.min_lr:.3g}, max_lr={bounds.max_lr:.3g}")

    step_size = 4 * iterations_per_epoch(len(data.x_train), batch_size, validation_split=0.1)  # the training's epochs
    clr = CyclicLR(base_lr=bounds.min_lr, max_lr=bounds.max_lr, step_size=step_size)
    history = model.fit(
        data.x_train,
        data.y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_split=0.1,
        callbacks=[clr],
        verbose=0,
    )
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    print(f"Trained {epochs} epochs with CyclicLR (step_size={step_size}): test accuracy {accuracy:.4f}")

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "range_test.png").write_bytes(finder.plot())
    epoch_metrics = {k: v for k, v in history.history.items() if k != "learning_rate"}
    (output_dir / "training.png").write_bytes(
        training_png(clr.history["iterations"], clr.history["lr"], clr.history["loss"], epoch_metrics, 2 * step_size)
    )
    print(f"Figures written to {output_dir}/range_test.png and {output_dir}/training.png")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output-dir", type=Path, default=Path("out"))
    main(parser.parse_args().output_dir)
