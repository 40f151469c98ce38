"""The order a training sees its samples in: one permutation per epoch, fixed by the job's data seed, so a run
resumed at any iteration sees exactly the batches the lost run would have seen next."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def batches_from(x: np.ndarray, y: np.ndarray, batch_size: int, data_seed: int, iteration: int,
                 epochs: int) -> tf.data.Dataset:
    """The batches of `epochs` epochs from global iteration `iteration` on; epoch `e` takes the samples in the
    order of a stateless shuffle seeded by `(data_seed, e)`, the last batch of an epoch smaller as in `fit`."""
    samples = len(x)
    first_epoch, skip = divmod(iteration, math.ceil(samples / batch_size))
    x, y = tf.constant(x), tf.constant(y)

    def epoch_batches(epoch):
        seed = tf.stack([tf.constant(data_seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(samples, dtype=tf.int64), seed=seed)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    indices = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches).skip(skip)
    return indices.map(lambda index: (tf.gather(x, index), tf.gather(y, index)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
