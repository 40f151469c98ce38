"""A job's files on the shared volume, one folder per job: its final and best models and its checkpoint."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MODEL_FILES = {"final": "model.keras", "best": "best.keras"}


@dataclass(frozen=True)
class JobFiles:
    """The files of job `folder.name` (an id the store made, never a client's path)."""

    folder: Path

    @classmethod
    def of(cls, data_dir: Path, job_id: str) -> JobFiles:
        return cls(data_dir / "jobs" / job_id)

    def model(self, which: str = "final") -> Path:
        """The trained model (`final`), or the one with the lowest validation loss (`best`)."""
        return self.folder / MODEL_FILES[which]

    @property
    def checkpoint(self) -> Path:
        """The last checkpoint whose iterations the stored curve holds."""
        return self.folder / "checkpoint.npz"

    def remove_checkpoints(self) -> None:
        """Delete the checkpoint and any saved after it (a finished job resumes no more)."""
        for path in self.folder.glob("checkpoint*.npz"):
            path.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete every file of the job."""
        shutil.rmtree(self.folder, ignore_errors=True)
