"""Errors a job reports as they are."""


class JobError(Exception):
    """A failure to report on the job as it is, without a traceback."""


class Drained(Exception):
    """The job checkpointed and must go back to the queue: its worker is shutting down."""
