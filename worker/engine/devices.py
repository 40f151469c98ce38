"""The devices a job trains on: TensorFlow's GPUs (memory growth, `MirroredStrategy` over several), or on JAX and
PyTorch one device, where Keras places the step. Imported only in a job's process, never at the worker's import."""

from __future__ import annotations

import contextlib
import logging

import keras

log = logging.getLogger(__name__)


def on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def use_gpus_with_memory_growth() -> None:
    """Let TensorFlow grow GPU memory as needed on the GPUs in `CUDA_VISIBLE_DEVICES`; CPU when there are none (JAX
    and PyTorch allocate as their own settings say)."""
    if on_tensorflow():
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)


def visible_devices() -> tuple[list[str], str]:
    """This process's GPUs and its CPU, as the backend names them."""
    if on_tensorflow():
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices("GPU")], tf.config.list_logical_devices(
            "CPU")[0].name
    if keras.backend.backend() == "torch":
        import torch

        return [f"cuda:{index}" for index in range(torch.cuda.device_count())], "cpu:0"
    devices = keras.distribution.list_devices()
    return [device for device in devices if not device.startswith("cpu")], "cpu:0"


def job_devices(gpus_per_job: int) -> list[str]:
    """The devices a job trains on: the first `gpus_per_job` visible GPUs (one off TensorFlow), or the CPU where
    there are none."""
    gpus, cpu = visible_devices()
    wanted = gpus_per_job if on_tensorflow() else 1
    if gpus_per_job > wanted:
        log.warning("CLR_GPUS_PER_JOB=%s: a job trains on several GPUs on TensorFlow only; on %s, on one",
                    gpus_per_job, keras.backend.backend())
    elif gpus_per_job > 1 and len(gpus) < gpus_per_job:
        log.warning("CLR_GPUS_PER_JOB=%s but this worker sees %s GPUs: training on %s", gpus_per_job, len(gpus),
                    gpus or "the CPU")
    return gpus[:wanted] or [cpu]


class OneDevice:
    """The strategy of a job on one device off TensorFlow: no replicas to split a batch between."""

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def job_strategy(devices: list[str]):
    """`MirroredStrategy` over `devices` when there are several (each global batch split between them, gradients
    summed); otherwise TensorFlow's default strategy, which places the step on the GPU when there is one, or
    `OneDevice` on JAX and PyTorch."""
    if not on_tensorflow():
        return OneDevice()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices) if len(devices) > 1 else tf.distribute.get_strategy()
