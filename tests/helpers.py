"""Helpers shared by the service tests."""

import time

import httpx


def wait_for_state(client: httpx.Client, job_id: str, states: set[str], timeout: float = 180) -> dict:
    """Poll a job until it reaches one of `states`."""
    deadline = time.monotonic() + timeout
    job = client.get(f"/jobs/{job_id}").json()
    while job["state"] not in states:
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout}s: {job}"
        time.sleep(0.2)
        job = client.get(f"/jobs/{job_id}").json()
    return job


def wait_until(condition, what: str, timeout: float = 120):
    """Poll `condition()` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.1)
    return value
