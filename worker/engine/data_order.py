"""The order a training sees its samples in: one permutation per epoch, fixed by the job's data seed, so a run
resumed at any iteration sees exactly the batches the lost run would have seen next, on every Keras backend."""

from __future__ import annotations

import math

import keras
import numpy as np

from clr.datasets import images


def epoch_order(data_seed: int, epoch: int, samples: int) -> np.ndarray:
    """The samples of epoch `epoch` in the order `data_seed` fixes for it."""
    return np.random.default_rng([data_seed, epoch]).permutation(samples)


def devices_per_batch() -> int:
    """The devices each batch is split between: a JAX `DataParallel` distribution's (`worker.engine.devices`),
    which needs a batch that splits evenly; else 1 (TensorFlow's `MirroredStrategy` splits an uneven one itself)."""
    distribution = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    return distribution.num_model_replicas if isinstance(distribution, keras.distribution.DataParallel) else 1


class SeededEpochs(keras.callbacks.Callback):
    """Batches for `fit` (a callback too: it must be one of the fit's): epoch `e` takes the samples in the order
    `epoch_order(data_seed, e)`, the last batch smaller as in `fit` on arrays.

    `epochs()` gives one epoch's batches, which Keras iterates anew each epoch, the epoch set as it begins;
    `rest_of_epoch(epoch, done)` is epoch `epoch` without its first `done` batches, for a run resumed inside it. On
    TensorFlow they are a `tf.data` pipeline (its threads gather the next batches while a step runs); on JAX and
    PyTorch a `keras.utils.PyDataset`, which under a JAX `DataParallel` distribution pads a batch that does not
    split evenly between its devices (`EpochBatches`)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, data_seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.data_seed = x, np.asarray(y), batch_size, data_seed
        self.samples, self.per_epoch = len(x), math.ceil(len(x) / batch_size)
        self.epoch, self._last = 0, (-1, np.empty(0, np.int64))
        self._pipeline = TensorFlowBatches(self) if keras.backend.backend() == "tensorflow" else None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self._pipeline is not None:
            self._pipeline.epoch.assign(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """Epoch `epoch`'s samples, in its order (the last epoch's kept: each batch of it asks)."""
        if self._last[0] != int(epoch):
            self._last = (int(epoch), epoch_order(self.data_seed, int(epoch), self.samples))
        return self._last[1]

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The samples at `indices` and their labels; from a memory-mapped array (read only there) made into model
        inputs (`clr.datasets.images`), as arrays in memory already are."""
        samples = self.x[indices]
        return (images(samples) if isinstance(self.x, np.memmap) else samples), self.y[indices]

    def epochs(self):
        return self._pipeline.epochs() if self._pipeline is not None else EpochBatches(self)

    def rest_of_epoch(self, epoch: int, done: int):
        return self._pipeline.rest_of_epoch(epoch, done) if self._pipeline is not None else EpochBatches(
            self, epoch, done)


class EpochBatches(keras.utils.PyDataset):
    """One epoch's batches from batch `skip` on: epoch `epoch`'s, or (None) the epoch `seeded` is in. Split between
    several devices (JAX), every batch comes with sample weights, and one that does not split evenly is padded with
    the epoch's first samples (`evened`)."""

    def __init__(self, seeded: SeededEpochs, epoch: int | None = None, skip: int = 0) -> None:
        super().__init__()
        self.seeded, self.fixed_epoch, self.skip = seeded, epoch, skip

    def __len__(self) -> int:
        return self.seeded.per_epoch - self.skip

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        seeded, first = self.seeded, (self.skip + index) * self.seeded.batch_size
        epoch = seeded.epoch if self.fixed_epoch is None else self.fixed_epoch
        order = seeded.order(epoch)
        indices = order[first:first + seeded.batch_size]
        if (devices := devices_per_batch()) == 1:
            return seeded.batch(indices)
        return self.evened(seeded.batch(np.concatenate([indices, order[:-len(indices) % devices]])), len(indices))

    @staticmethod
    def evened(batch: tuple[np.ndarray, np.ndarray], real: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch padded to split evenly between devices: its `real` samples weighted so that the mean over the
        padded batch (Keras's loss) is their mean, the padding weighted 0."""
        samples = len(batch[1])
        return (*batch, np.r_[np.full(real, samples / real, np.float32), np.zeros(samples - real, np.float32)])


class TensorFlowBatches:
    """The batches as a `tf.data` pipeline: each epoch's order computed once, the batches gathered in parallel
    (from tensors in memory, or read from a memory-mapped array by numpy) and prefetched."""

    def __init__(self, seeded: SeededEpochs) -> None:
        import tensorflow as tf

        self.tf, self.seeded = tf, seeded
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._gather = self._from_disk() if isinstance(seeded.x, np.memmap) else self._from_memory()

    def _batches(self, epoch):
        tf = self.tf
        indices = tf.numpy_function(self.seeded.order, [epoch], tf.int64, stateful=False)
        return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(indices, (self.seeded.samples,))).batch(
            self.seeded.batch_size)

    def _samples(self, indices):
        tf = self.tf
        return indices.map(self._gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
                           ).prefetch(tf.data.AUTOTUNE)

    def epochs(self):
        tf = self.tf
        indices = tf.data.Dataset.range(1).flat_map(lambda _: self._batches(self.epoch.read_value()))
        return self._samples(indices.apply(tf.data.experimental.assert_cardinality(self.seeded.per_epoch)))

    def rest_of_epoch(self, epoch: int, done: int):
        return self._samples(self._batches(self.tf.constant(epoch, self.tf.int64)).skip(done))

    def _from_memory(self):
        tf = self.tf
        x, y = tf.constant(self.seeded.x), tf.constant(self.seeded.y)
        return lambda index: (tf.gather(x, index), tf.gather(y, index))

    def _from_disk(self):
        tf, seeded = self.tf, self.seeded
        sample_shape, y = images(seeded.x[:1]).shape[1:], seeded.y

        def gather(index):
            samples, labels = tf.numpy_function(seeded.batch, [index], (tf.float32, tf.as_dtype(y.dtype)),
                                                stateful=False)
            return tf.ensure_shape(samples, (None, *sample_shape)), tf.ensure_shape(labels, (None, *y.shape[1:]))

        return gather


def fresh_data_seed(seed: int | None) -> int:
    """The seed of a job's batch order: its `seed`, or a random one."""
    return seed if seed is not None else int(np.random.default_rng().integers(2**32))
