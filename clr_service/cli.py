"""`clr-service`: run the whole service on one machine, or one part of it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.console import Console

from api.keys import ApiKey, KeyStore
from clr import volume
from clr.datasets import BUILTIN_DATASETS
from clr_service import client_cli, workflow
from clr_service.stack import REDIS_URL_FILE, EmbeddedStack, free_port, uvicorn_command
from worker.settings import Settings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console()
Host = Annotated[str, typer.Option(help="Address the API listens on")]
Port = Annotated[int, typer.Option(help="Port the API listens on")]
DataDir = Annotated[Path, typer.Option(help="Uploaded datasets and the embedded Redis's files")]


client_cli.register(app)
keys_app = typer.Typer(help="API keys: every request but /health and the docs needs one.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _keys(data_dir: Path) -> KeyStore:
    """The keys in REDIS_URL's Redis, else in the embedded stack's running on `data_dir`."""
    url = os.environ.get("REDIS_URL")
    if url is None and (data_dir / REDIS_URL_FILE).exists():
        url = (data_dir / REDIS_URL_FILE).read_text().strip()
    if url is None:
        console.print("[red]Set REDIS_URL, or start `clr-service up` on this --data-dir first[/red]")
        raise typer.Exit(1)
    return KeyStore(redis.Redis.from_url(url))


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="The key's name: its tenant")],
    admin: Annotated[bool, typer.Option(help="Sees and acts on every tenant's work")] = False,
    max_active_jobs: Annotated[int | None, typer.Option(min=1, help="Queued + running jobs at once")] = None,
    max_storage_mb: Annotated[float | None, typer.Option(min=0, help="Datasets and models stored")] = None,
    rate: Annotated[float | None, typer.Option(min=0.01, help="Requests per second")] = None,
    data_dir: DataDir = Path(".clr-data"),
) -> None:
    """Make a key and print its token, once: only its hash is kept."""
    try:
        token = _keys(data_dir).create(ApiKey(name, admin, max_active_jobs, max_storage_mb, rate))
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    print(token)


@keys_app.command("list")
def list_keys(data_dir: DataDir = Path(".clr-data")) -> None:
    """The keys and their limits (never their tokens)."""
    for key in sorted(_keys(data_dir).list(), key=lambda key: key.name):
        console.print(f"{key.name}: admin={key.admin} max_active_jobs={key.max_active_jobs} "
                      f"max_storage_mb={key.max_storage_mb} rate={key.rate}")


@keys_app.command("revoke")
def revoke_key(name: str, data_dir: DataDir = Path(".clr-data")) -> None:
    """Remove a key: its next request gets 401."""
    if not _keys(data_dir).revoke(name):
        console.print(f"[red]No key named {name!r}[/red]")
        raise typer.Exit(1)
    console.print(f"Revoked {name}")


datasets_app = typer.Typer(help="Built-in datasets on the data volume: jobs never download them.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("fetch")
def fetch_dataset(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(BUILTIN_DATASETS)}")],
    source: Annotated[Path | None, typer.Option("--from", help="An .npz you bring, instead of downloading")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="The data volume (default: CLR_DATA_DIR)")] = None,
) -> None:
    """Put a built-in dataset on the data volume, downloaded where there is internet or from a file."""
    directory = Settings(**({"data_dir": data_dir} if data_dir else {})).builtin_dir
    try:
        described = volume.fetch(name, directory, source)
    except (ValueError, OSError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    console.print(f"{name}: {described['train_samples']} training samples in {directory}")


def _stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


@app.command()
def up(host: Host = "127.0.0.1", port: Port = 8000, data_dir: DataDir = Path(".clr-data")) -> None:
    """Start Redis (embedded, unless REDIS_URL is set), one worker and the API; Ctrl-C or SIGTERM stops all."""
    _stop_on_sigterm()
    with EmbeddedStack(host, port, os.environ.get("REDIS_URL"), data_dir) as stack:
        if stack.key_file is not None:
            console.print(f"First start: the admin API key is in {stack.key_file} (mode 0600); send it as "
                          "`Authorization: Bearer <key>`, or make others with `clr-service keys create NAME`")
        console.print(f"clr-service is up at {stack.url} (docs at {stack.url}/docs); Ctrl-C stops it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            console.print("Stopping ...")


@app.command()
def api(host: Host = "0.0.0.0", port: Port = 8000,
        workers: Annotated[int, typer.Option(min=1, help="API processes serving the port")] = 1) -> None:
    """Only the API (needs REDIS_URL)."""
    os.execv(sys.executable, uvicorn_command(host, port, workers))


@app.command()
def worker() -> None:
    """Only a Celery worker, one job at a time (needs REDIS_URL)."""
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--loglevel",
                              "INFO", "--pool", "prefork", "--without-mingle"])


@app.command()
def demo(output_dir: Annotated[Path, typer.Option(help="Where the figures go")] = Path("out"),
         data_dir: DataDir = Path(".clr-data"),
         seed: Annotated[int, typer.Option(help="Seed of the range test and the training")] = 0) -> None:
    """Start the embedded service, run the article's workflow on digits over HTTP, save both figures, stop."""
    _stop_on_sigterm()
    with EmbeddedStack(port=free_port(), data_dir=data_dir, worker_loglevel="WARNING") as stack:
        console.print(f"Embedded service at {stack.url}")
        workflow.run(stack.url, stack.api_key, output_dir, console, seed)
