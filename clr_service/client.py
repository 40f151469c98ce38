"""A typed Python client of the clr-service API (httpx): one method per endpoint, errors carrying the server's
message, and the live event stream with reconnection."""

from __future__ import annotations

import io
import json
import reprlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from httpx_sse import connect_sse

TERMINAL_STATES = ("succeeded", "failed", "cancelled")
RECONNECTS = 30


def readable(detail: Any) -> str:
    """The server's message as a person reads it: a validation error list as `field: message (got value)` per
    field (a missing one without the object it is missing from), any other detail as it came."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and all(isinstance(item, dict) and {"loc", "msg"} <= item.keys() for item in detail):
        return "; ".join(f"{'.'.join(str(part) for part in item['loc'][1:] or item['loc'])}: {item['msg']}"
                         + (f" (got {reprlib.repr(item['input'])})" if item.get("type") != "missing" else "")
                         for item in detail)
    return json.dumps(detail)


class ServiceError(RuntimeError):
    """An error answer: its status code and the server's message."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code, self.detail = status_code, detail
        super().__init__(f"{status_code}: {readable(detail)}")


class Client:
    """The API at `url` with the key `api_key`."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **options) -> httpx.Response:
        response = self.http.request(method, path, **options)
        if response.is_error:
            try:
                detail = response.json()["detail"]
            except (ValueError, KeyError):
                detail = response.text
            raise ServiceError(response.status_code, detail)
        return response

    def submit_range_test(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/range-tests", json=spec).json()

    def submit_training(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/trainings", json=spec).json()

    def submit_comparison(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Queue a comparison: `{"training": {...}, "arms": [...], "seeds": [...]}`."""
        return self._call("POST", "/comparisons", json=spec).json()

    def table_csv(self, job_id: str) -> str:
        """A finished comparison's table, as CSV."""
        return self._call("GET", f"/jobs/{job_id}/table.csv").text

    def jobs(self, kind: str | None = None, state: str | None = None, offset: int = 0, limit: int = 50
             ) -> dict[str, Any]:
        params = {name: value for name, value in (("kind", kind), ("state", state)) if value is not None}
        return self._call("GET", "/jobs", params=params | {"offset": offset, "limit": limit}).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{job_id}/cancel").json()

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/jobs/{job_id}")

    def curves(self, job_id: str, since: int = 0, max_points: int | None = None, phase: str = "training"
               ) -> dict[str, Any]:
        params = {"since": since, "phase": phase} | ({"max_points": max_points} if max_points else {})
        return self._call("GET", f"/jobs/{job_id}/curves", params=params).json()

    def curves_csv(self, job_id: str) -> str:
        return self._call("GET", f"/jobs/{job_id}/curves", params={"format": "csv"}).text

    def plot(self, job_id: str, phase: str = "training") -> bytes:
        return self._call("GET", f"/jobs/{job_id}/plot.png", params={"phase": phase}).content

    def model(self, job_id: str, which: str = "final", include_optimizer: bool = False) -> bytes:
        params = {"which": which, "include_optimizer": include_optimizer}
        return self._call("GET", f"/jobs/{job_id}/model", params=params).content

    def preview(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/schedules/preview", json=request).json()

    def upload_dataset(self, path: Path, image_size: int | None = None, color_mode: str = "rgb",
                       part_bytes: int = 64 * 2**20) -> dict[str, Any]:
        """Upload an `.npz`, or with `image_size` a `.zip` of class folders (`train/<class>/<image>`), the zip in
        parts of `part_bytes` when it is larger (`PUT /datasets/uploads/{id}/archive`)."""
        params = {} if image_size is None else {"image_size": image_size, "color_mode": color_mode}
        if image_size is not None and path.stat().st_size > part_bytes:
            upload_id = self._call("POST", "/datasets/uploads").json()["id"]
            with path.open("rb") as file:
                for offset in range(0, path.stat().st_size, part_bytes):
                    self._call("PUT", f"/datasets/uploads/{upload_id}/archive", params={"offset": offset},
                               content=file.read(part_bytes))
            return self._call("POST", f"/datasets/uploads/{upload_id}/finish", params=params).json()
        with path.open("rb") as file:
            return self._call("POST", "/datasets", params=params, files={"file": (path.name, file)}).json()

    def upload_arrays(self, arrays: dict[str, np.ndarray], part_bytes: int = 64 * 2**20) -> dict[str, Any]:
        """Upload `x_train`, `y_train` (and `x_test`, `y_test`) of any size, memory-maps included, in `.npy` parts of
        about `part_bytes`; return the dataset. An interrupted upload resumes from `GET /datasets/uploads/{id}`."""
        upload_id = self._call("POST", "/datasets/uploads").json()["id"]
        for name, array in arrays.items():
            rows = max(1, part_bytes // max(1, array[:1].nbytes))
            for start in range(0, len(array), rows):
                part = io.BytesIO()
                np.save(part, np.ascontiguousarray(array[start:start + rows]), allow_pickle=False)
                self._call("PUT", f"/datasets/uploads/{upload_id}/arrays/{name}", params={"offset": start},
                           content=part.getvalue())
        return self._call("POST", f"/datasets/uploads/{upload_id}/finish").json()

    def datasets(self) -> dict[str, Any]:
        return self._call("GET", "/datasets").json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health").json()

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's events, `(name, data)`, until it ends; reconnects after a dropped connection from the last
        `points` event received, so no iteration is missed or repeated (giving up after `RECONNECTS` failed tries in
        a row)."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with connect_sse(self.http, "GET", f"/jobs/{job_id}/events", headers=headers,
                                 timeout=httpx.Timeout(self.http.timeout.connect, read=60)) as source:
                    if source.response.is_error:
                        source.response.read()
                        raise ServiceError(source.response.status_code, source.response.json()["detail"])
                    for event in source.iter_sse():
                        failures = 0
                        if not event.data:  # a keep-alive ping
                            continue
                        if event.id:
                            last_event_id = event.id
                        data = json.loads(event.data)
                        yield event.event, data
                        if event.event == "state" and data["state"] in TERMINAL_STATES:
                            return
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout, httpx.ConnectError):
                failures += 1
                if failures > RECONNECTS:
                    raise
                time.sleep(1)

    def wait(self, job_id: str) -> dict[str, Any]:
        """The job once it has ended."""
        for _ in self.events(job_id):
            pass
        return self.job(job_id)
