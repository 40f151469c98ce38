"""A client that openapi-python-client generates from the service's OpenAPI document runs the workflow with typed
answers: jobs and their results as models, curves as a model and as CSV text, the figure and the model as bytes."""

import os
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from api.examples import RANGE_TEST_EXAMPLE, TRAINING_EXAMPLES
from api.result_views import BoundSuggestionView, StepSizeAdviceView, VerifiedCandidate
from clr.bounds import BoundSuggestion
from clr.schedules import StepSizeAdvice
from clr.verification import Candidate
from tests.helpers import wait_until
from worker.records import TERMINAL_STATES

pytestmark = pytest.mark.slow

# `make test` installs the generator in a venv of its own (its pins clash with this project's typer) and names it here
GENERATOR = shutil.which(os.environ.get("OPENAPI_PYTHON_CLIENT", "openapi-python-client"),
                        path=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
# No post hooks (they run ruff), and PNG read as bytes: the generator reads JSON, text and octet-stream answers only.
CONFIG = "post_hooks: []\ncontent_type_overrides:\n  image/png: application/octet-stream\n"
PACKAGE = "clr_service_client"  # the generator's name for the package of the API titled `clr-service`
TINY = {"model": {"architecture": "mlp"}, "batch_size": 64, "epochs": 2, "seed": 0}
RANGE_TEST = RANGE_TEST_EXAMPLE | TINY
BOUNDS = TRAINING_EXAMPLES["bounds"]["value"]
TRAINING = BOUNDS | TINY | {"clr": BOUNDS["clr"] | {"step_size_epochs": 1}}


@pytest.fixture(scope="module")
def generator() -> str:
    """The generator's command, or a skip before the service starts."""
    if GENERATOR is None:
        pytest.skip("LOUD SKIP: openapi-python-client is not installed (`make test` installs it in .venv-openapi), so "
                    "no generated client was checked")
    return GENERATOR


@pytest.fixture(scope="module")
def api(generator, client, service, tmp_path_factory):
    """The generated client, its package importable, authenticated with the service's admin key."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / "openapi.json").write_text(client.get("/openapi.json").text)
    (folder / "config.yml").write_text(CONFIG)
    run = subprocess.run([generator, "generate", "--path", str(folder / "openapi.json"), "--config",
                          str(folder / "config.yml"), "--output-path", str(folder / "client")],
                         check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "Warning" not in run.stdout, run.stdout + run.stderr  # every answer understood
    sys.path.insert(0, str(folder / "client"))
    from clr_service_client import AuthenticatedClient

    with AuthenticatedClient(base_url=service.url, token=service.api_key, raise_on_unexpected_status=True,
                             timeout=httpx.Timeout(30)) as typed:
        yield typed
    sys.path.remove(str(folder / "client"))
    for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
        del sys.modules[name]


def ended(api, job_id: str):
    from clr_service_client.api.jobs import get_job_jobs_job_id_get as get_job

    job = get_job.sync(job_id, client=api)
    return job if job.state in TERMINAL_STATES else None


@pytest.fixture(scope="module")
def jobs(api):
    """A short range test and a short training, submitted together through the generated client, once ended."""
    from clr_service_client.api.jobs import submit_range_test_range_tests_post as submit_range_test
    from clr_service_client.api.jobs import submit_training_trainings_post as submit_training
    from clr_service_client.models import RangeTestSpec, TrainingSpec

    submitted = (submit_range_test.sync(client=api, body=RangeTestSpec.from_dict(RANGE_TEST)),
                 submit_training.sync(client=api, body=TrainingSpec.from_dict(TRAINING)))
    assert all(job.state == "queued" for job in submitted), submitted
    return [wait_until(lambda job=job: ended(api, job.id), f"job {job.id} ended", timeout=120) for job in submitted]


def test_jobs_and_their_results_are_models(jobs):
    from clr_service_client.models import (
        BoundSuggestionView,
        RangeTestJob,
        RangeTestResult,
        StepSizeAdviceView,
        TrainingJob,
        TrainingResult,
    )

    range_test, training = jobs
    assert isinstance(range_test, RangeTestJob) and isinstance(training, TrainingJob)
    assert range_test.state == training.state == "succeeded", (range_test.error, training.error)
    assert isinstance(range_test.result, RangeTestResult) and isinstance(training.result, TrainingResult)
    assert range_test.progress.iteration == range_test.result.iterations
    assert isinstance(range_test.result.stopped_early, bool)
    bounds = range_test.result.suggested_bounds
    assert isinstance(bounds, BoundSuggestionView) and 1e-4 <= bounds.min_lr < bounds.max_lr <= 1.0
    assert bounds.confidence in ("high", "medium", "low") and isinstance(bounds.reasons, list)
    assert isinstance(range_test.result.step_size_advice, StepSizeAdviceView)
    assert "suggested_bounds" not in range_test.result.additional_properties
    assert training.progress.epoch == training.result.epochs == 2 and training.result.iterations > 0
    assert len(training.result.history["loss"]) == 2 and training.result.clr["max_lr"] == BOUNDS["clr"]["max_lr"]
    assert isinstance(training.result.additional_properties["test_accuracy"], float)  # a key of its own per metric


def test_curves_are_a_model_and_csv_text(api, jobs):
    from clr_service_client.api.curves import get_curves_csv_jobs_job_id_curves_csv_get as get_curves_csv
    from clr_service_client.api.curves import get_curves_jobs_job_id_curves_get as get_curves
    from clr_service_client.models import Curves

    range_test, training = jobs
    curves = get_curves.sync(range_test.id, client=api)
    assert isinstance(curves, Curves) and curves.iteration == list(range(range_test.result.iterations))
    assert len(curves.smoothed_loss) == len(curves.lr) == len(curves.iteration) and curves.epochs
    table = get_curves_csv.sync(training.id, client=api)
    assert isinstance(table, str) and table.splitlines()[0] == "iteration,lr,loss"
    assert len(table.splitlines()) == 1 + training.result.iterations


def test_the_figure_and_the_model_are_bytes(api, jobs):
    from clr_service_client.api.curves import get_plot_jobs_job_id_plot_png_get as get_plot
    from clr_service_client.api.jobs import download_model_jobs_job_id_model_get as download_model
    from clr_service_client.types import File

    range_test, training = jobs
    figure = get_plot.sync(range_test.id, client=api)
    assert isinstance(figure, File) and figure.payload.read().startswith(b"\x89PNG")
    model = download_model.sync(training.id, client=api).payload.read()
    assert model.startswith(b"PK") and len(model) == training.result.model_bytes  # a .keras file is a zip


def test_the_event_stream_of_an_ended_job_is_text(api, jobs):
    from clr_service_client.api.curves import stream_job_events_jobs_job_id_events_get as stream_job_events

    stream = stream_job_events.sync(jobs[0].id, client=api)
    assert isinstance(stream, str) and "event: points" in stream and '"state": "succeeded"' in stream


@pytest.mark.parametrize(("view", "written"), [(BoundSuggestionView, BoundSuggestion),
                                              (StepSizeAdviceView, StepSizeAdvice), (VerifiedCandidate, Candidate)])
def test_the_result_views_type_every_field_the_worker_writes(view, written):
    assert {field.name for field in fields(written)} <= set(view.model_fields)
