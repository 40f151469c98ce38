"""Where a job's start goes, in a fresh process as a worker's child runs it: importing TensorFlow and Keras, loading
digits, building and compiling the model, the first training step (tracing). Prints seconds per phase as JSON."""

from __future__ import annotations

import json
import time

PHASES: dict[str, float] = {}
_last = time.perf_counter()


def done(phase: str) -> None:
    """Close `phase`: the seconds since the previous one ended."""
    global _last
    now = time.perf_counter()
    PHASES[phase], _last = now - _last, now


def main() -> None:
    import tensorflow  # noqa: F401

    done("import TensorFlow")
    import worker.engine.training  # noqa: F401

    done("import Keras and the worker's training code")
    from clr import models, volume
    from worker.settings import Settings

    data = volume.load("digits", Settings().builtin_dir)
    done("load digits")
    model = models.build("mlp", data.input_shape, data.num_classes)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], steps_per_execution=8)
    done("build and compile the model")
    model.fit(data.x_train[:128], data.y_train[:128], batch_size=128, epochs=1, verbose=0)
    done("first step (tracing)")
    print(json.dumps(PHASES))


if __name__ == "__main__":
    main()
