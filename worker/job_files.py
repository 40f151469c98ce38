"""A job's files on the shared volume, one folder per job: its final and best models (each as a portable file and
with its full training state) and its checkpoint."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MODEL_FILES = {"final": "model", "best": "best"}
STAGES = ("", "unfrozen")  # the stages of a training that checkpoint: its only or first, the whole network's
STORED_SIZES = ("model_bytes", "best_model_bytes", "training_state_bytes")  # a training's result: what it stores


def stored_bytes(result: dict) -> int:
    """The bytes of the model files a job's `result` says it keeps (what its owner's quota counts)."""
    return sum(result.get(name, 0) for name in STORED_SIZES)


@dataclass(frozen=True)
class JobFiles:
    """The files of job `folder.name` (an id the store made, never a client's path)."""

    folder: Path

    @classmethod
    def of(cls, data_dir: Path, job_id: str) -> JobFiles:
        return cls(data_dir / "jobs" / job_id)

    def model(self, which: str = "final", training_state: bool = False) -> Path:
        """The trained model (`final`), or the one with the lowest validation loss (`best`): the portable file plain
        Keras loads, or (`training_state`) the one with this package's optimizer and in-graph schedules."""
        return self.folder / f"{MODEL_FILES[which]}{'.training' if training_state else ''}.keras"

    @property
    def checkpoint(self) -> Path:
        """The last checkpoint whose iterations the stored curve holds."""
        return self.stage_checkpoint("")

    def stage_checkpoint(self, stage: str) -> Path:
        """The last checkpoint of a training's stage (`worker.engine.training.Stage.curve`; "": its only or first)."""
        return self.folder / f"checkpoint{f'.{stage}' if stage else ''}.npz"

    @property
    def head_weights(self) -> Path:
        """A fine-tuning's weights once its head trained, which the whole network's stage starts from."""
        return self.folder / "head.weights.npz"

    def resume_files(self) -> list[Path]:
        """What only a running job needs: every stage's checkpoint and the head's weights."""
        return [self.stage_checkpoint(stage) for stage in STAGES] + [self.head_weights]

    def remove_checkpoints(self) -> None:
        """Delete the checkpoints, any saved after them, and the head's weights (a finished job resumes no more)."""
        for path in [*self.folder.glob("checkpoint*.npz"), self.head_weights]:
            path.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete every file of the job."""
        shutil.rmtree(self.folder, ignore_errors=True)
