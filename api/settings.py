"""The API's settings: the shared ones (`worker.settings.Settings`) and the limits only the API checks."""

from __future__ import annotations

from pydantic import Field

from worker.settings import Settings


class ApiSettings(Settings):
    """The shared settings, and the limits only the API checks: what an upload may hold, how large and how slow a
    request may be."""

    max_classes: int = Field(100_000, ge=2)  # integer labels are classes 0 to max_classes - 1, an output unit each
    max_head_bytes: int = Field(32 * 2**10, ge=1024)  # a request's line and headers together
    head_timeout_s: float = Field(10.0, gt=0)  # to send a request's head, from connecting or from the last answer
    body_idle_s: float = Field(30.0, gt=0)  # the longest pause within a request's body
