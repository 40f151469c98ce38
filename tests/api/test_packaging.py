"""The API stays free of TensorFlow; the compose file is valid."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_api_imports_no_tensorflow_or_keras():
    code = (
        "import sys, api.main, api.cli, clr.config, clr.analysis, clr.bounds, clr.schedules, clr.plots, worker.tasks;"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'));"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_compose_file_is_valid():
    result = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
