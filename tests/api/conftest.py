"""The API tests look into the service's own store."""

import pytest

from worker.store import JobStore


@pytest.fixture
def store(service) -> JobStore:
    return JobStore.from_url(service.redis_url)
