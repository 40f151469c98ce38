"""What the API costs per request against the least a request can cost: `GET /jobs/{id}` of the API beside the same
path on a bare FastAPI route (`bench.anchor_api`: the key's digest looked up, the job's hash answered as JSON),
both served the same way (uvicorn, one process, the guarded protocol) on one embedded Redis and loaded in turn by
`wrk` (a C load generator: the generator is not what is measured), `--connections` connections for `--seconds`
each, `--repetitions` times, the two alternating. Prints each side's requests/s and latency, and the paired ratio
anchor/ours with its bootstrap interval against the target (ours within 2x of the anchor)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess

from api.keys import ApiKey, KeyStore
from bench.common import claimed_job, interleaved_runs, median_ratio, redis_store, table
from clr_service.stack import free_port, start_api, stop

TARGET_RATIO = 2.0
SPEC = {"model": {"architecture": "mlp"}, "dataset": {"name": "digits"}, "optimizer": {"name": "sgd"},
        "batch_size": 32, "epochs": 4, "clr": {"base_lr": 0.001, "max_lr": 0.01, "step_size": 90}}


def wrk(url: str, token: str, connections: int, seconds: int) -> dict[str, float]:
    """`wrk`'s requests/s and p50 and p99 latency (ms) on `url`; fails on any answer that is not 2xx."""
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"Answers other than 2xx from {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"requests/s": rate} | {f"p{level} ms": _ms(re.search(rf"\s{level}%\s+([\d.]+\w+)", out).group(1))
                                   for level in (50, 99)}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    with redis_store() as (store, redis_url):
        job_id, _ = claimed_job(store, spec=SPEC)
        token = KeyStore(store.redis).create(ApiKey("bench", admin=True))
        env = os.environ | {"REDIS_URL": redis_url}
        ours_port, anchor_port = free_port(), free_port()
        servers = [start_api("127.0.0.1", ours_port, env),
                   start_api("127.0.0.1", anchor_port, env, app="bench.anchor_api:app")]
        try:
            runs = interleaved_runs({
                side: lambda port=port: wrk(f"http://127.0.0.1:{port}/jobs/{job_id}", token, args.connections,
                                            args.seconds)
                for side, port in (("ours", ours_port), ("anchor", anchor_port))}, args.repetitions)
        finally:
            stop(servers)
    rows = [[side, *(f"{sorted(run[name] for run in side_runs)[len(side_runs) // 2]:.1f}" for name in side_runs[0])]
            for side, side_runs in runs.items()]
    print(table([f"`GET /jobs/{{id}}`, {args.connections} connections, median of {args.repetitions}",
                 "requests/s", "p50 ms", "p99 ms"], rows))
    ratio = median_ratio([run["requests/s"] for run in runs["anchor"]], [run["requests/s"] for run in runs["ours"]])
    met = "met" if ratio.high <= TARGET_RATIO else f"missed by {ratio.median - TARGET_RATIO:.2f}" if (
        ratio.median > TARGET_RATIO) else f"missed: its interval reaches {ratio.high:.2f}"
    print(f"\nanchor / ours, requests/s: {ratio} (paired by repetition, bootstrap 95 % interval; target "
          f"<= {TARGET_RATIO:g}: {met})")


if __name__ == "__main__":
    main()
