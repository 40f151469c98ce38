"""`/metrics`, parsed with prometheus-client's own parser, counts the jobs the store holds, and the jobs ended with
counters that only grow."""

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from api.keys import ApiKey, KeyStore, first_admin_key
from clr_service.stack import free_port, start_api, stop
from worker.store import JobStore

pytestmark = pytest.mark.slow

TRAINING = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
            "batch_size": 64, "epochs": 1, "clr": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 20}}
RANGE_TEST = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
              "batch_size": 64}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_jobs_by_kind_and_state_and_requests_by_route(redis_server, tmp_path):
    url = f"{redis_server}/4"  # no worker serves it: the jobs stay as the test leaves them
    first_admin_key(KeyStore(redis.Redis.from_url(url)), tmp_path)
    tenant = KeyStore(redis.Redis.from_url(url)).create(ApiKey("tenant"))
    port = free_port()
    api = start_api("127.0.0.1", port, {"REDIS_URL": url, "CLR_DATA_DIR": str(tmp_path), "PATH": ""})
    admin_key = (tmp_path / "api-key").read_text().strip()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {admin_key}"},
                          timeout=30) as admin:
            trainings = [admin.post("/trainings", json=TRAINING).json()["id"] for _ in range(3)]
            admin.post("/range-tests", json=RANGE_TEST)
            admin.post(f"/jobs/{trainings[0]}/cancel")
            admin.get(f"/jobs/{'0' * 32}")
            scraped = admin.get("/metrics")
            assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
            figures = samples(scraped.text)
            assert figures["clr_jobs", (("kind", "training"), ("state", "queued"))] == 2
            assert figures["clr_jobs", (("kind", "training"), ("state", "cancelled"))] == 1
            assert figures["clr_jobs", (("kind", "range_test"), ("state", "queued"))] == 1
            assert figures["clr_queue_depth", ()] == 4 and figures["clr_running_jobs", ()] == 0
            assert figures["clr_http_requests_total", (("method", "POST"), ("route", "/trainings"),
                                                       ("status", "202"))] == 3
            assert figures["clr_http_requests_total", (("method", "GET"), ("route", "/jobs/{job_id}"),
                                                       ("status", "404"))] == 1
            assert figures["clr_jobs", (("kind", "training"), ("state", "running"))] == 0  # present, reading 0
            assert figures["clr_jobs_ended_total", (("kind", "training"), ("state", "cancelled"))] == 1
            assert figures["clr_jobs_ended_total", (("kind", "range_test"), ("state", "succeeded"))] == 0
            tenant_scrape = admin.get("/metrics", headers={"Authorization": f"Bearer {tenant}"})
            assert tenant_scrape.status_code == 403

            store = JobStore.from_url(url)  # a worker's part: run one training to its end
            attempt = store.claim(trainings[1], "test", 3, 60.0, False).attempts
            assert store.finish(trainings[1], attempt, "succeeded", {})
            assert "cancelled" in admin.get(f"/jobs/{trainings[0]}/events").text  # a stream that ends at once
            assert admin.delete(f"/jobs/{trainings[0]}").status_code == 204
            assert admin.delete(f"/jobs/{trainings[1]}").status_code == 204
            assert admin.get("/openapi.json").status_code == 200
            figures = samples(admin.get("/metrics").text)
            assert figures["clr_jobs", (("kind", "training"), ("state", "cancelled"))] == 0
            assert figures["clr_jobs_ended_total", (("kind", "training"), ("state", "cancelled"))] == 1
            assert figures["clr_jobs_ended_total", (("kind", "training"), ("state", "succeeded"))] == 1
            assert figures["clr_job_duration_seconds_count", ()] == 1
            assert figures["clr_job_duration_seconds_bucket", (("le", "10"),)] == 1
            assert figures["clr_http_requests_total", (("method", "GET"), ("route", "/openapi.json"),
                                                       ("status", "200"))] == 1
            events = ("route", "/jobs/{job_id}/events")
            assert figures["clr_http_requests_total", (("method", "GET"), events, ("status", "200"))] == 1
            assert ("clr_http_request_duration_seconds_count", (("method", "GET"), events)) not in figures
    finally:
        stop([api])
