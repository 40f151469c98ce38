"""The checkpointer inside a real `fit`: a checkpoint due before the fit's first step is taken too."""

import keras
import numpy as np

from clr import models
from clr.datasets import synthetic_images
from worker.engine import checkpoints


def test_a_checkpoint_due_before_the_first_step_is_saved_with_no_epoch_metrics(tmp_path):
    data = synthetic_images(64, (8, 8, 1))
    model = models.mlp(data.input_shape, 10)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    saved = []
    checkpointer = checkpoints.Checkpointer(tmp_path / "checkpoint.npz", 0.0, 7, 16, 64, lambda: [],
                                            commit=lambda iteration, written: saved.append(iteration))
    model.fit(data.x_train, data.y_train, batch_size=16, epochs=1, verbose=0, callbacks=[checkpointer])
    assert saved[:2] == [0, 1]  # every step is due with `every_s` 0, the first before any metric is built
    first = checkpoints.load(tmp_path / "checkpoint-0.npz")
    assert first.iteration == 0 and first.epoch_metrics == {} and first.epoch_samples == 0
    second = checkpoints.load(tmp_path / "checkpoint-1.npz")
    assert second.epoch_samples == 16 and set(second.epoch_metrics) == {"loss", "accuracy"}
    assert np.isfinite(list(second.epoch_metrics.values())).all()
    keras.backend.clear_session()
