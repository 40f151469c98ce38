"""The test files here need no worker: their `service`, `client` and `store` are the in-process API's (the
session's `in_process`), not the real stack's."""

import pytest


@pytest.fixture
def service(in_process):
    return in_process


@pytest.fixture
def client(in_process):
    return in_process.client


@pytest.fixture
def store(in_process):
    return in_process.store
