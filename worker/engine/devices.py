"""The devices a job trains on: TensorFlow's GPUs (memory growth, `MirroredStrategy` over several), JAX's (Keras's
`DataParallel` distribution over several), or PyTorch's one. Imported only in a job's process, never at the
worker's import."""

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


def visible_devices() -> tuple[list[str], list[str]]:
    """This process's GPUs and the CPU devices a job may train on, as the backend names them: one CPU, or on JAX
    as many as the host is made to show (`XLA_FLAGS=--xla_force_host_platform_device_count=N`)."""
    if on_tensorflow():
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices("GPU")], [
            tf.config.list_logical_devices("CPU")[0].name]
    if keras.backend.backend() == "torch":
        import torch

        return [f"cuda:{index}" for index in range(torch.cuda.device_count())], ["cpu:0"]
    devices = keras.distribution.list_devices()
    return [device for device in devices if not device.startswith("cpu")], [
        device for device in devices if device.startswith("cpu")] or ["cpu:0"]


def job_devices(gpus_per_job: int) -> list[str]:
    """The devices a job trains on: the first `gpus_per_job` visible GPUs (one on PyTorch), or the CPU where there
    are none (on JAX, as many CPU devices as it shows, up to `gpus_per_job`)."""
    gpus, cpus = visible_devices()
    most = 1 if keras.backend.backend() == "torch" else gpus_per_job
    usable = (gpus or cpus)[:most] if keras.backend.backend() == "jax" else gpus[:most] or cpus[:1]
    if gpus_per_job > most:
        log.warning("CLR_GPUS_PER_JOB=%s: a job trains on one device on PyTorch", gpus_per_job)
    elif len(usable) < gpus_per_job:
        log.warning("CLR_GPUS_PER_JOB=%s but this worker sees %s GPUs: training on %s", gpus_per_job, len(gpus),
                    usable)
    return usable


class OneDevice:
    """The strategy of a job on one device off TensorFlow: no replicas to split a batch between."""

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


class SplitBatches(OneDevice):
    """JAX over several devices: Keras's `DataParallel`, set as the process's distribution until Keras's session is
    cleared (before each job's model), so that the model is built and `fit` runs under it: every variable on each
    device, each batch split between them (`worker.engine.data_order` pads an uneven one)."""

    def __init__(self, devices: list[str]) -> None:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        self.num_replicas_in_sync = len(devices)


def job_strategy(devices: list[str]):
    """Over several `devices`, TensorFlow's `MirroredStrategy` (each global batch split between them, gradients
    summed) or `SplitBatches` on JAX; on one, TensorFlow's default strategy (which places the step on the GPU when
    there is one) or `OneDevice`."""
    if not on_tensorflow():
        return SplitBatches(devices) if len(devices) > 1 else OneDevice()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices) if len(devices) > 1 else tf.distribute.get_strategy()
