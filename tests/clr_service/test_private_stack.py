"""The embedded stack is private to its user: a Redis that wants a password no command line shows, and a data dir
whose files no other local user can read."""

import io
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import redis

from clr_service.stack import REDIS_URL_FILE, EmbeddedStack, free_port

pytestmark = pytest.mark.slow


def others_may_read(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def test_the_embedded_redis_wants_its_password_and_the_data_dir_is_private(tmp_path):
    data_dir = tmp_path / "data"
    with EmbeddedStack(port=free_port(), data_dir=data_dir, worker_loglevel="WARNING") as stack, \
            stack.client() as client:
        buffer = io.BytesIO()
        np.savez(buffer, x_train=np.zeros((20, 4), np.float32), y_train=np.arange(20) % 2)
        assert client.post("/datasets", files={"file": ("tiny.npz", buffer.getvalue())}).status_code == 201

        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=stack.redis_port).ping()
        assert redis.Redis.from_url((data_dir / REDIS_URL_FILE).read_text()).ping()
        command_lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert stack.redis_password not in command_lines

        written = [data_dir, *data_dir.rglob("*")]
        assert {path.name for path in written} >= {"api-key", REDIS_URL_FILE, "redis.conf", "datasets"}
        assert any(path.suffix == ".npz" for path in written) and any("appendonly" in path.name for path in written)
        assert [str(path) for path in written if others_may_read(path)] == []
