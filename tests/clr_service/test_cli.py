"""The console script: the README's main command, and `up` stopping everything on SIGTERM."""

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clr_service.stack import free_port
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from clr_service.cli import app; app()"]
pytestmark = pytest.mark.slow


def test_demo_runs_the_articles_workflow_over_http_and_stops(tmp_path):
    result = subprocess.run([*CLI, "demo", "--output-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "suggested bounds: base_lr=" in result.stdout and "Verified by training" in result.stdout
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", result.stdout)[1])
    assert accuracy >= 0.964, result.stdout  # within a point of the best fixed LR at this protocol (0.974, 8 epochs)
    # step_size is 4 of the training's own epochs (its 10 % validation split out), and it ends on a whole cycle
    assert "step_size=164 iterations = 4 epochs of 41; 328 iterations = 1 whole cycles" in result.stdout
    assert "the schedule ends at lr=" in result.stdout and "= base_lr" in result.stdout
    assert "warning:" not in result.stdout
    for name in ("range_test.png", "training.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(b"\x89PNG")


def test_up_serves_and_stops_all_three_processes_on_sigterm(tmp_path):
    port = free_port()
    process = subprocess.Popen([*CLI, "up", "--port", str(port), "--data-dir", str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        health = wait_until(lambda: _health(port), "the service answering", timeout=120)
        assert health["redis"] == "ok" and len(health["workers"]) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    with pytest.raises(OSError):  # nothing is left listening, even when SIGTERM comes while it is starting
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _health(port: int) -> dict | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    except httpx.TransportError:
        return None
