"""`clr-service` commands that drive a running service through `clr_service.client`: submit, watch, list, fetch, cancel,
export."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

from api.keys import KEY_FILE
from clr_service.client import TERMINAL_STATES, Client, ServiceError

console = Console()
error_console = Console(stderr=True, style="red", soft_wrap=True)
Url = Annotated[str, typer.Option("--url", envvar="CLR_URL", help="The service")]
Key = Annotated[str | None, typer.Option("--key", envvar="CLR_API_KEY", help="API key (default: <data-dir>/api-key)")]
DataDir = Annotated[Path, typer.Option(help="Where `clr-service up` keeps its admin key")]
JobId = Annotated[str, typer.Argument(help="The job's id")]
Output = Annotated[Path, typer.Option("-o", "--output", help="File to write")]
DEFAULT_URL = "http://127.0.0.1:8000"


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with `message` on one line, no traceback."""
    error_console.print(message, markup=False, highlight=False)
    raise typer.Exit(code)


def _key(key: str | None, data_dir: Path) -> str:
    """The API key given, else the one `clr-service up` wrote to `data_dir`; a usable header value either way."""
    source = "--key / CLR_API_KEY"
    if key is None and (data_dir / KEY_FILE).exists():
        key, source = (data_dir / KEY_FILE).read_text().strip(), str(data_dir / KEY_FILE)
    if key is None:
        fail(f"No API key: pass --key, set CLR_API_KEY, or run next to {data_dir / KEY_FILE}", 2)
    if not key or not key.isascii() or not key.isprintable() or " " in key:
        fail(f"The API key from {source} is {'empty' if not key else 'not a key (spaces or unprintable characters)'}",
             2)
    return key


@contextlib.contextmanager
def _service(url: str, key: str | None, data_dir: Path) -> Iterator[Client]:
    """A client of the service; an error answer, or no answer, ends the command with one line and exit code 1."""
    with Client(url, _key(key, data_dir)) as client:
        try:
            yield client
        except ServiceError as error:
            fail(str(error))
        except httpx.TransportError as error:
            fail(f"No answer from the service at {url} ({type(error).__name__}: {error}); is it running there? "
                 "(--url or CLR_URL)")


SpecFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                          help="The job's spec, JSON or YAML, as `POST` takes it")]


def _spec(file: Path) -> dict[str, Any]:
    """The spec in `file`, or the command ends naming the file and where it is not JSON or YAML."""
    text = file.read_text()
    try:
        spec = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        fail(f"{file} is not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {' '.join(str(error).split())}")
    if not isinstance(spec, dict):
        fail(f"{file} must hold a mapping of the job's fields, not {type(spec).__name__}")
    return spec


submit_app = typer.Typer(help="Queue a job from a JSON or YAML file holding its spec (as `POST` takes it).",
                         no_args_is_help=True)


def _submit(kind: str, file: Path, url: str, key: str | None, data_dir: Path, then_watch: bool) -> None:
    with _service(url, key, data_dir) as client:
        submit = {"range-test": client.submit_range_test, "training": client.submit_training,
                  "comparison": client.submit_comparison}[kind]
        job = submit(_spec(file))
        print(job["id"])
        for warning in job["warnings"]:
            console.print(f"warning: {warning}")
        if then_watch:
            (_watch_comparison if job.get("children") is not None else _watch)(client, job["id"])


@submit_app.command("range-test")
def submit_range_test(file: SpecFile, url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data"),
                      watch: Annotated[bool, typer.Option(help="Then watch it")] = False) -> None:
    """Queue a range test; print its id."""
    _submit("range-test", file, url, key, data_dir, watch)


@submit_app.command("training")
def submit_training(file: SpecFile, url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data"),
                    watch: Annotated[bool, typer.Option(help="Then watch it")] = False) -> None:
    """Queue a training; print its id."""
    _submit("training", file, url, key, data_dir, watch)


@submit_app.command("comparison")
def submit_comparison(file: SpecFile, url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data"),
                      watch: Annotated[bool, typer.Option(help="Then watch it and print its table")] = False) -> None:
    """Queue a comparison (the same training under several schedules and seeds); print its id."""
    _submit("comparison", file, url, key, data_dir, watch)


def _watch_comparison(client: Client, job_id: str, poll_s: float = 2.0) -> None:
    """A bar of the comparison's trainings as they end, then its table; exit 1 unless it succeeds."""
    comparison = client.job(job_id)
    runs = [child for seeds in comparison["children"].values() for child in seeds.values()]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
        task = progress.add_task(f"{job_id[:8]} trainings ended", total=len(runs))
        while comparison["state"] not in TERMINAL_STATES:
            time.sleep(poll_s)
            ended = sum(client.job(child)["state"] in TERMINAL_STATES for child in runs)
            progress.update(task, completed=ended)
            comparison = client.job(job_id)
    console.print(f"{job_id}: {comparison['state']}" + (f" ({comparison['error']})" if comparison["error"] else ""))
    if comparison["result"]:
        console.print(client.table_csv(job_id), end="")
    if comparison["state"] != "succeeded":
        raise typer.Exit(1)


def _watch(client: Client, job_id: str) -> None:
    """A progress bar from the job's event stream; exit 1 unless it succeeds."""
    columns = (TextColumn("{task.description}"), BarColumn(None, table_column=Column(ratio=1)), MofNCompleteColumn(),
               TextColumn("epoch {task.fields[epoch]}"), TextColumn("loss {task.fields[loss]}"),
               TextColumn("lr {task.fields[lr]}"), TextColumn("{task.fields[speed]} it/s"), TimeRemainingColumn())
    started, final = time.monotonic(), {}
    with Progress(*columns, console=console, expand=True) as progress:  # the bar takes what the figures leave
        task = progress.add_task(job_id[:8], total=None, epoch="-", loss="-", lr="-", speed="-")
        first, total, epochs = None, None, None
        for name, data in client.events(job_id):
            if name == "progress":
                total, epochs = data["total_iterations"] or None, data["epochs"]
                progress.update(task, total=total)
            elif name == "points" and data["iteration"]:
                first = data["iteration"][0] if first is None else first
                done = data["iteration"][-1] + 1
                speed = (done - first) / max(time.monotonic() - started, 1e-9)
                progress.update(task, completed=done, loss=f"{data['loss'][-1]:.4g}" if data["loss"][-1] is not None
                                else "nan", lr=f"{data['lr'][-1]:.3g}", speed=f"{speed:.0f}")
                if total and epochs:  # the epoch under way, as Keras counts (the job's `epoch` counts those ended)
                    progress.update(task, epoch=f"{min((done - 1) * epochs // total + 1, epochs)}/{epochs}")
            elif name == "state":
                final = data
    console.print(f"{job_id}: {final.get('state')}" + (f" ({final['error']})" if final.get("error") else ""))
    if final.get("state") != "succeeded":
        raise typer.Exit(1)


def watch(job: JobId, url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data")) -> None:
    """Follow a job live (iteration/total, epoch, loss, lr, iterations/s, ETA); exit 1 if it fails or is
    cancelled."""
    with _service(url, key, data_dir) as client:
        _watch(client, job)


def jobs(url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data"),
         limit: Annotated[int, typer.Option(min=1, max=500)] = 20) -> None:
    """The newest jobs."""
    with _service(url, key, data_dir) as client:
        for job in client.jobs(limit=limit)["jobs"]:
            progress = job["progress"]
            console.print(f"{job['id']}  {job['kind']:<10} {job['state']:<9} "
                          f"{progress['iteration']}/{progress['total_iterations']}  {job['created_at']}")


def curves(job: JobId, url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data"),
           csv: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False) -> None:
    """Print a job's per-iteration curve."""
    with _service(url, key, data_dir) as client:
        print(client.curves_csv(job) if csv else json.dumps(client.curves(job)), end="" if csv else "\n")


def plot(job: JobId, output: Output, url: Url = DEFAULT_URL, key: Key = None,
         data_dir: DataDir = Path(".clr-data")) -> None:
    """Save a job's figure (PNG)."""
    with _service(url, key, data_dir) as client:
        output.write_bytes(client.plot(job))


def model(job: JobId, output: Output, url: Url = DEFAULT_URL, key: Key = None,
          data_dir: DataDir = Path(".clr-data"),
          which: Annotated[str, typer.Option(help="final or best")] = "final",
          include_optimizer: Annotated[bool, typer.Option(
              help="the full training state: this package's optimizer and schedules, to train on with clr")] = False,
          ) -> None:
    """Save a training's model (`.keras`); plain Keras loads it."""
    with _service(url, key, data_dir) as client:
        output.write_bytes(client.model(job, which, include_optimizer))


def cancel(job: JobId, url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data")) -> None:
    """Cancel a job."""
    with _service(url, key, data_dir) as client:
        console.print(f"{job}: {client.cancel(job)['state']}")


TensorBoardDir = Annotated[Path | None, typer.Option(metavar="DIR", help="Write a TensorBoard run to DIR/<job id>")]
TrackingUri = Annotated[str | None, typer.Option(metavar="TRACKING_URI", help="Log an MLflow run there")]


def export(job: JobId, tensorboard: TensorBoardDir = None, mlflow: TrackingUri = None,
           experiment: Annotated[str, typer.Option(help="The MLflow experiment of the run")] = "clr-service",
           url: Url = DEFAULT_URL, key: Key = None, data_dir: DataDir = Path(".clr-data")) -> None:
    """Export a job to TensorBoard and/or MLflow: its curves (step = iteration), epoch metrics, figures and spec, and
    to MLflow its models; print where each went. Needs the `export` extra."""
    if tensorboard is None and mlflow is None:
        fail("Nothing to export to: give --tensorboard DIR, --mlflow TRACKING_URI or both", 2)
    try:
        from mlflow.exceptions import MlflowException

        from clr_service.export import to_mlflow, to_tensorboard
    except ImportError as error:
        fail(f"Exporting needs the `export` extra ({error}): pip install 'clr-service[export]'")
    with _service(url, key, data_dir) as client:
        try:
            if tensorboard is not None:
                print(f"tensorboard: {to_tensorboard(client, job, tensorboard)}")
            if mlflow is not None:
                print(f"mlflow run: {to_mlflow(client, job, mlflow, experiment)}")
        except (MlflowException, OSError) as error:
            fail(f"Export failed: {' '.join(str(error).split())}")


def register(app: typer.Typer) -> None:
    """Add the client commands to `app`."""
    app.add_typer(submit_app, name="submit")
    for command in (watch, jobs, curves, plot, model, cancel, export):
        app.command()(command)
