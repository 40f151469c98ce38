"""Recording under `tf.distribute.MirroredStrategy`, on two logical CPU devices (the CPU path of several GPUs per
job): one point per global iteration, holding the loss of the whole global batch. (Keras's `fit` under
MirroredStrategy with `steps_per_execution > 1` fails on this TensorFlow, recorder or not: the worker runs such
jobs one step per execution.)"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.backends import tensorflow_only

pytestmark = [pytest.mark.slow, tensorflow_only]

# Logical devices must be set before TensorFlow starts, so the training runs in a fresh interpreter.
SCRIPT = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from clr import models
from clr.datasets import synthetic_images
from clr.keras_schedule import CyclicalSchedule
from clr.recording import IterationRecorder

class Points(IterationRecorder):
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.points = []
    def on_train_batch_end(self, batch, logs=None):
        self.poll()
    def on_iterations(self, iterations, lrs, losses, accuracies):
        self.points += zip(iterations.tolist(), lrs.tolist(), losses.tolist())

data = synthetic_images(256, (8, 8, 1))
keras.utils.set_random_seed(0)
weights = models.mlp(data.input_shape, 10).get_weights()

def run(strategy):
    with strategy.scope():
        model = models.mlp(data.input_shape, 10)
        model.set_weights(weights)
        model.compile(keras.optimizers.SGD(CyclicalSchedule(0.01, 0.1, 8)), "sparse_categorical_crossentropy",
                      steps_per_execution=1)
    recorder = Points()
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[recorder])
    return recorder.points

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "one_device": run(tf.distribute.get_strategy()),
                  "mirrored": run(mirrored)}))
"""


def test_mirrored_training_records_every_global_iteration_with_the_global_batch_loss():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    one_device, mirrored = np.array(result["one_device"]), np.array(result["mirrored"])
    assert mirrored[:, 0].tolist() == list(range(16))  # 256 samples / 32 per global batch, 2 epochs
    np.testing.assert_allclose(mirrored[:, 1], one_device[:, 1], rtol=1e-12)
    np.testing.assert_allclose(mirrored[:, 2], one_device[:, 2], rtol=1e-4)
