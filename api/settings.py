"""The API's settings: the shared ones (`worker.settings.Settings`) and the limits only the API checks."""

from __future__ import annotations

from pydantic import Field

from worker.settings import Settings


class ApiSettings(Settings):
    """The shared settings, and what an upload may hold that only the API checks."""

    max_classes: int = Field(100_000, ge=2)  # integer labels are classes 0 to max_classes - 1, an output unit each
