"""`clr-service`: run the whole service on one machine, or one part of it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api import workflow
from api.stack import EmbeddedStack, free_port

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console()
Host = Annotated[str, typer.Option(help="Address the API listens on")]
Port = Annotated[int, typer.Option(help="Port the API listens on")]
DataDir = Annotated[Path, typer.Option(help="Uploaded datasets and the embedded Redis's files")]


def _stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


@app.command()
def up(host: Host = "127.0.0.1", port: Port = 8000, data_dir: DataDir = Path(".clr-data")) -> None:
    """Start Redis (embedded, unless REDIS_URL is set), one worker and the API; Ctrl-C or SIGTERM stops all."""
    _stop_on_sigterm()
    with EmbeddedStack(host, port, os.environ.get("REDIS_URL"), data_dir) as stack:
        console.print(f"clr-service is up at {stack.url} (docs at {stack.url}/docs); Ctrl-C stops it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            console.print("Stopping ...")


@app.command()
def api(host: Host = "0.0.0.0", port: Port = 8000) -> None:
    """Only the API (needs REDIS_URL)."""
    os.execv(sys.executable, [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host, "--port", str(port)])


@app.command()
def worker() -> None:
    """Only a Celery worker, one job at a time (needs REDIS_URL)."""
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--loglevel",
                              "INFO", "--pool", "prefork", "--concurrency", "1"])


@app.command()
def demo(output_dir: Annotated[Path, typer.Option(help="Where the figures go")] = Path("out"),
         data_dir: DataDir = Path(".clr-data")) -> None:
    """Start the embedded service, run the article's workflow on digits over HTTP, save both figures, stop."""
    _stop_on_sigterm()
    with EmbeddedStack(port=free_port(), data_dir=data_dir, worker_loglevel="WARNING") as stack:
        console.print(f"Embedded service at {stack.url}")
        workflow.run(stack.url, output_dir, console)
