"""The OpenAPI contract holds under fuzzing: schemathesis, all checks, against the real API with a real key, its JSON
bodies also sent as other media types."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from api.keys import KeyStore, first_admin_key
from clr_service.stack import free_port, start_api, stop

pytestmark = pytest.mark.slow

# The one accepted exclusion: rules across fields that a JSON schema cannot state (`base_lr < max_lr`, exactly one of
# `clr` and `schedule`, of `epochs` and `cycles`, of `step_size` and `step_size_epochs`) reject requests the schema
# alone allows ("schema-valid request rejected").
EXCLUDED_CHECKS = ["positive_data_acceptance"]
# The event stream runs until its job ends, and no worker serves these jobs: it is tested on its own (test_live).
EXCLUDED_PATH = "/jobs/{job_id}/events"
# A request that breaks the schema may also be refused for its size (413: the body or upload limit), not only as
# invalid: schemathesis's default list of refusals leaves 413 out.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
"""
# Each JSON body is also declared, and so fuzzed, as these: JSON by another name, and a body that is not JSON at all
# (FastAPI reads every other type as it reads this one).
OTHER_MEDIA_TYPES = ("application/vnd.api+json", "text/plain")
# One thread: hypothesis parses its strategies' lambdas with `ast.parse`, which in CPython 3.11 can raise a spurious
# "AST constructor recursion depth mismatch" SystemError when threads parse at once (CPython issue 106905).
WORKERS = "1"


def with_other_media_types(spec: dict) -> dict:
    """The OpenAPI `spec`, each JSON request body also offered as each of `OTHER_MEDIA_TYPES`."""
    for operation in (operation for path in spec["paths"].values() for operation in path.values()):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            content.update(dict.fromkeys(OTHER_MEDIA_TYPES, content["application/json"]))
    return spec


def test_schemathesis_finds_no_failure_in_json_or_other_media_types(redis_server, tmp_path):
    url = f"{redis_server}/3"  # no worker serves it: the fuzzed jobs stay queued
    first_admin_key(KeyStore(redis.Redis.from_url(url)), tmp_path)
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    port = free_port()
    api = start_api("127.0.0.1", port, {"REDIS_URL": url, "CLR_DATA_DIR": str(tmp_path), "PATH": ""})
    try:
        spec = with_other_media_types(httpx.get(f"http://127.0.0.1:{port}/openapi.json").json())
        (tmp_path / "openapi.json").write_text(json.dumps(spec))
        run = subprocess.run(
            [str(Path(sys.executable).parent / "st"), "--config-file", str(tmp_path / "schemathesis.toml"), "run",
             str(tmp_path / "openapi.json"), "--url", f"http://127.0.0.1:{port}",
             "--header", f"Authorization: Bearer {(tmp_path / 'api-key').read_text().strip()}", "--checks", "all",
             "--exclude-checks", ",".join(EXCLUDED_CHECKS), "--exclude-path", EXCLUDED_PATH, "--max-examples", "10",
             "--workers", WORKERS, "--seed", "1", "--no-color"],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )
    finally:
        stop([api])
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
