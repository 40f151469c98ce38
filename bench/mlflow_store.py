"""MLflow's side of the curve-store comparison; runs in its own virtual environment (MLflow only).

Prints JSON: seconds to write a (lr, loss) curve with `log_batch` at its 1,000-metric limit, seconds to read it back
with `get_metric_history`, and the bytes the local SQLite store holds on disk.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

POINTS_PER_BATCH = 500  # two metrics a point: 1,000 metrics, log_batch's limit


def main(points: int) -> None:
    rng = np.random.default_rng(0)
    lrs, losses = rng.random(points), rng.random(points)
    with tempfile.TemporaryDirectory() as directory:
        # MLflow's default local store: SQLite (its file store is in maintenance mode).
        client = MlflowClient(tracking_uri=f"sqlite:///{directory}/mlflow.db")
        run_id = client.create_run(client.create_experiment("curves")).info.run_id
        now = int(time.time() * 1000)
        start = time.perf_counter()
        for first in range(0, points, POINTS_PER_BATCH):
            steps = range(first, min(first + POINTS_PER_BATCH, points))
            metrics = [Metric("lr", float(lrs[i]), now, i) for i in steps]
            metrics += [Metric("loss", float(losses[i]), now, i) for i in steps]
            client.log_batch(run_id, metrics=metrics)
        write = time.perf_counter() - start
        start = time.perf_counter()
        history = {name: client.get_metric_history(run_id, name) for name in ("lr", "loss")}
        read = time.perf_counter() - start
        assert all(len(values) == points for values in history.values())
        size = sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file())
    print(json.dumps({"write_s": write, "read_s": read, "bytes": size}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
