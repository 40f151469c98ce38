"""Errors a job reports as they are, and the service's words for the library's errors that need an operator."""

from clr.volume import MissingDataset


class JobError(Exception):
    """A failure to report on the job as it is, without a traceback."""


class Drained(Exception):
    """The job checkpointed and must go back to the queue: its worker is shutting down."""


def with_fetch_advice(error: MissingDataset) -> str:
    """`error`, and how to put the dataset on the data volume with the service's CLI."""
    return (f"{error}. Put it there first: `clr-service datasets fetch {error.name}` where there is internet, or "
            f"`clr-service datasets fetch {error.name} --from FILE.npz` with a copy you bring (x_train, y_train, "
            "x_test, y_test)")
