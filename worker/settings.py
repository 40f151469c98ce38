"""Settings shared by the API and the workers, from the environment (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.job_files import JobFiles
from worker.storage import Storage


KerasBackend = Literal["tensorflow", "jax", "torch"]


class Settings(BaseSettings):
    """Where Redis and the data live, and the limits of a job."""

    model_config = SettingsConfigDict(env_prefix="CLR_", extra="ignore")

    redis_url: str = Field("redis://localhost:6379/0", validation_alias=AliasChoices("REDIS_URL", "CLR_REDIS_URL"))
    data_dir: Path = Path(".clr-data")
    datasets_root: Path | None = None  # datasets registered by path lie under it, at the same path on every host
    storage_url: str | None = None  # where files are kept for every host: `s3://bucket/prefix`; unset: `data_dir`
    job_time_limit_s: int = 24 * 3600
    max_attempts: int = 3
    steps_per_execution: int = 8
    job_memory_mb: int | None = Field(None, ge=256)  # what a job's process may allocate; memory-mapped data aside
    warm_spares: int = Field(1, ge=0, le=8)  # pool children beside the job's, TensorFlow imported, for the next jobs
    jobs_per_child: int = Field(1, ge=1)  # jobs a pool child runs before it exits: 1 frees a GPU's memory each job
    gpus_per_job: int = Field(1, ge=1)  # several: one job trains on that many of the worker's GPUs (MirroredStrategy)
    keras_backend: KerasBackend = "tensorflow"  # what the workers train on; the API refuses at submit what it lacks
    flush_interval_s: float = 0.5
    stale_after_s: float = 30.0
    cancel_grace_s: float = 60.0
    checkpoint_every_s: float = 300.0

    @property
    def builtin_dir(self) -> Path:
        """Built-in datasets fetched ahead of time (`clr-service datasets fetch`), on the shared volume."""
        return self.data_dir / "builtin"

    @property
    def datasets_dir(self) -> Path:
        """Uploaded `.npz` files, on the volume the API and the workers share."""
        return self.data_dir / "datasets"

    @property
    def models_dir(self) -> Path:
        """Uploaded `.keras` models, on the shared volume."""
        return self.data_dir / "models"

    def registered(self, path: str) -> Path:
        """The dataset `path` names under `datasets_root` (links resolved); `ValueError` when registering is off or
        the path leads anywhere else."""
        if self.datasets_root is None:
            raise ValueError("datasets are not registered by path here (set CLR_DATASETS_ROOT to allow it)")
        root = self.datasets_root.resolve()
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root) or resolved == root:
            raise ValueError(f"{path!r} is not a dataset inside the datasets root")
        if not resolved.exists():
            raise ValueError(f"nothing at {path!r} under the datasets root")
        return resolved

    def storage(self) -> Storage:
        """The storage of the files under `data_dir`."""
        return Storage(self.storage_url, self.data_dir)

    def job_files(self, job_id: str) -> JobFiles:
        """A job's models and checkpoint, on the shared volume."""
        return JobFiles.of(self.data_dir, job_id)
