"""The API stays free of TensorFlow; the compose file is valid."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_api_imports_no_tensorflow_or_keras():
    code = (
        "import sys, api.main, clr_service.cli, clr.config, clr.analysis, clr.bounds, clr.schedules, clr.plots, worker.tasks;"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'));"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_compose_file_is_valid_publishes_only_the_api_and_needs_its_secrets():
    command = ["docker-compose", "-f", "docker-compose.yml", "config"]
    secrets = {"CLR_REDIS_PASSWORD": "redis-secret", "CLR_ADMIN_KEY": "admin-secret"}
    environment = {name: value for name, value in os.environ.items() if name not in secrets}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment | secrets)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    published = {name: service.get("ports") for name, service in config["services"].items() if service.get("ports")}
    assert list(published) == ["api"]
    assert "redis-secret" in " ".join(config["services"]["redis"]["command"])
    unset = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment)
    assert unset.returncode != 0 and "CLR_REDIS_PASSWORD" in unset.stderr  # nothing starts open by default
