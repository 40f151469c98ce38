"""Where a training's attempt starts (its last checkpoint, or a fresh start) and how a new checkpoint becomes the
job's."""

from __future__ import annotations

import os
from pathlib import Path

from worker.engine import checkpoints
from worker.engine.data_order import fresh_data_seed
from worker.job_files import JobFiles
from worker.reporting import JobReporter
from worker.storage import Storage


def commit(saved: Path, checkpoint: Path, storage: Storage) -> None:
    """Make a saved checkpoint the job's, here and in the storage."""
    os.replace(saved, checkpoint)
    storage.publish(checkpoint)


def resume_point(reporter: JobReporter, checkpoint: Path, files: JobFiles, storage: Storage, seed: int | None
                 ) -> checkpoints.Checkpoint:
    """The checkpoint this attempt starts from, the curve cut back to it: the last one saved at `checkpoint` (on
    this host or in the storage, with the best model so far), or a fresh start."""
    saved = checkpoints.load(checkpoint) if storage.fetch(checkpoint) else None
    if saved is not None and reporter.resume(saved.iteration, saved.epoch, saved.history) == saved.iteration:
        storage.fetch(files.model("best", training_state=True))
        return saved
    reporter.resume(0)
    return checkpoints.Checkpoint(0, 0, fresh_data_seed(seed), [])
