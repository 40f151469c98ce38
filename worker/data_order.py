"""The order a training sees its samples in: one permutation per epoch, fixed by the job's data seed, so a run
resumed at any iteration sees exactly the batches the lost run would have seen next."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf


class SeededEpochs(keras.callbacks.Callback):
    """Batches for `fit` (a callback too: it must be one of the fit's): epoch `e` takes the samples in the order of
    a stateless shuffle seeded by `(data_seed, e)`, the last batch smaller as in `fit` on arrays.

    `epochs()` is a dataset of one epoch's batches that Keras iterates anew each epoch, the epoch set as it begins;
    `rest_of_epoch(epoch, done)` is epoch `epoch` without its first `done` batches, for a run resumed inside it."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, data_seed: int) -> None:
        super().__init__()
        self.batch_size, self.data_seed = batch_size, data_seed
        self.per_epoch = math.ceil(len(x) / batch_size)
        self._x, self._y = tf.constant(x), tf.constant(y)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch.assign(epoch)

    def _batches(self, epoch) -> tf.data.Dataset:
        seed = tf.stack([tf.constant(self.data_seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(len(self._x), dtype=tf.int64), seed=seed)
        return tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size)

    def _samples(self, indices: tf.data.Dataset) -> tf.data.Dataset:
        return indices.map(lambda index: (tf.gather(self._x, index), tf.gather(self._y, index)),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)

    def epochs(self) -> tf.data.Dataset:
        indices = tf.data.Dataset.range(1).flat_map(lambda _: self._batches(self._epoch.read_value()))
        return self._samples(indices.apply(tf.data.experimental.assert_cardinality(self.per_epoch)))

    def rest_of_epoch(self, epoch: int, done: int) -> tf.data.Dataset:
        return self._samples(self._batches(epoch).skip(done))
