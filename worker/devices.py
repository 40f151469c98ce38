"""The devices a job trains on: TensorFlow imported only here and in the job, never at the worker's import."""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def job_devices(gpus_per_job: int) -> list[str]:
    """The devices a job trains on: the first `gpus_per_job` visible GPUs, or the CPU where there are none."""
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")][:gpus_per_job]
    if gpus_per_job > 1 and len(gpus) < gpus_per_job:
        log.warning("CLR_GPUS_PER_JOB=%s but this worker sees %s GPUs: training on %s", gpus_per_job, len(gpus),
                    gpus or "the CPU")
    return gpus or [tf.config.list_logical_devices("CPU")[0].name]


def job_strategy(devices: list[str]) -> tf.distribute.Strategy:
    """`MirroredStrategy` over `devices` when there are several (each global batch split between them, gradients
    summed); otherwise the default strategy, which places the step on the GPU when there is one."""
    return tf.distribute.MirroredStrategy(devices) if len(devices) > 1 else tf.distribute.get_strategy()
