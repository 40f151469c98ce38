"""The order a training sees its samples in: one permutation per epoch, fixed by the job's data seed, so a run
resumed at any iteration sees exactly the batches the lost run would have seen next."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from clr.datasets import images


class SeededEpochs(keras.callbacks.Callback):
    """Batches for `fit` (a callback too: it must be one of the fit's): epoch `e` takes the samples in the order of
    a stateless shuffle seeded by `(data_seed, e)`, the last batch smaller as in `fit` on arrays.

    `epochs()` is a dataset of one epoch's batches that Keras iterates anew each epoch, the epoch set as it begins;
    `rest_of_epoch(epoch, done)` is epoch `epoch` without its first `done` batches, for a run resumed inside it."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, data_seed: int) -> None:
        super().__init__()
        self.batch_size, self.data_seed = batch_size, data_seed
        self.samples, self.per_epoch = len(x), math.ceil(len(x) / batch_size)
        self._gather = _from_disk(x, y) if isinstance(x, np.memmap) else _from_memory(x, y)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch.assign(epoch)

    def _batches(self, epoch) -> tf.data.Dataset:
        seed = tf.stack([tf.constant(self.data_seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(self.samples, dtype=tf.int64), seed=seed)
        return tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size)

    def _samples(self, indices: tf.data.Dataset) -> tf.data.Dataset:
        return indices.map(self._gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
                           ).prefetch(tf.data.AUTOTUNE)

    def epochs(self) -> tf.data.Dataset:
        indices = tf.data.Dataset.range(1).flat_map(lambda _: self._batches(self._epoch.read_value()))
        return self._samples(indices.apply(tf.data.experimental.assert_cardinality(self.per_epoch)))

    def rest_of_epoch(self, epoch: int, done: int) -> tf.data.Dataset:
        return self._samples(self._batches(epoch).skip(done))


def _from_memory(x: np.ndarray, y: np.ndarray):
    """Batches gathered from arrays held in memory as tensors."""
    x, y = tf.constant(x), tf.constant(y)
    return lambda index: (tf.gather(x, index), tf.gather(y, index))


def _from_disk(x: np.memmap, y: np.ndarray):
    """Batches read from a memory-mapped array as training takes them (only those pages are loaded), made into
    model inputs (`clr.datasets.images`) one batch at a time."""
    y = np.asarray(y)
    sample_shape = images(x[:1]).shape[1:]

    def read(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return images(x[index]), y[index]

    def gather(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        samples, labels = tf.numpy_function(read, [index], (tf.float32, tf.as_dtype(y.dtype)), stateful=False)
        return tf.ensure_shape(samples, (None, *sample_shape)), tf.ensure_shape(labels, (None, *y.shape[1:]))

    return gather


def fresh_data_seed(seed: int | None) -> int:
    """The seed of a job's batch order: its `seed`, or a random one."""
    return seed if seed is not None else int(np.random.default_rng().integers(2**32))
