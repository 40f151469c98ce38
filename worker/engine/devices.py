"""The devices a job trains on, and TensorFlow's use of the GPUs: imported only in a job's process, never at the
worker's import."""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def use_gpus_with_memory_growth() -> None:
    """Let TensorFlow grow GPU memory as needed on the GPUs in `CUDA_VISIBLE_DEVICES`; CPU when there are none."""
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


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
