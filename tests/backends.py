"""What a library test allows for the Keras backend it runs on: the suite runs tests/clr's Keras tests on JAX and
PyTorch too, each in a pytest of its own (tests/clr/test_backends.py; `KERAS_BACKEND` is read once, at Keras's
import)."""

import keras
import pytest

BACKEND = keras.backend.backend()
ONE_STEP_PER_EXECUTION = BACKEND == "torch"  # PyTorch's Keras refuses more

tensorflow_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="a TensorFlow feature (tf.distribute or "
                                     "mixed_float16's loss scaling), which the service offers on TensorFlow only")

several_steps_per_execution = pytest.mark.skipif(ONE_STEP_PER_EXECUTION,
                                                 reason="PyTorch's Keras runs one step per execution")


def steps_per_execution(steps: int) -> int:
    """`steps`, or 1 on PyTorch, whose Keras runs one step per execution."""
    return 1 if ONE_STEP_PER_EXECUTION else steps


def schedule_tolerance(peak: float) -> dict:
    """`assert_allclose`'s tolerance for an in-graph schedule against its float64 oracle: 1e-6 relative where the
    backend computes it in float64; on JAX without x64, float32's rounding, which reaches 1e-5 of the schedule's peak
    where warm restarts grow their period by a fraction (as in Keras's own `CosineDecayRestarts`)."""
    from clr.keras_schedule import widest_float

    return {"rtol": 1e-6} if widest_float() == "float64" else {"rtol": 1e-6, "atol": 1e-5 * peak}
