"""The devices a job trains on: TensorFlow imported only here and in the job, never at the worker's import."""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def job_strategy(gpus_per_job: int) -> tf.distribute.Strategy:
    """`MirroredStrategy` over the first `gpus_per_job` visible GPUs when that is two or more: each global batch
    split between them, gradients summed; otherwise the default strategy (one GPU, or the CPU)."""
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")][:gpus_per_job]
    if gpus_per_job > 1 and len(gpus) < gpus_per_job:
        log.warning("CLR_GPUS_PER_JOB=%s but this worker sees %s GPUs: training on %s", gpus_per_job, len(gpus),
                    gpus or "the CPU")
    return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else tf.distribute.get_strategy()
