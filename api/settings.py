"""The API's settings: the shared ones (`worker.settings.Settings`) and those only the API reads."""

from __future__ import annotations

from pydantic import Field

from worker.settings import Settings


class ApiSettings(Settings):
    """The shared settings, and what only the API reads: its first admin key, what an upload may hold, how large and
    how slow a request may be, how often an idle event stream is pinged."""

    admin_key: str | None = None  # compose's first admin key, registered when there is no key yet
    max_body_bytes: int = 2 * 2**20  # a JSON request body
    max_upload_bytes: int = 200 * 2**20
    max_dataset_bytes: int = 2 * 2**30  # an upload's arrays once unpacked
    sse_ping_s: float = 15.0  # keep-alive comments on idle event streams (proxies cut silent connections)

    max_classes: int = Field(100_000, ge=2)  # integer labels are classes 0 to max_classes - 1, an output unit each
    max_head_bytes: int = Field(32 * 2**10, ge=1024)  # a request's line and headers together
    head_timeout_s: float = Field(10.0, gt=0)  # to send a request's head, from connecting or from the last answer
    body_idle_s: float = Field(30.0, gt=0)  # the longest pause within a request's body
