"""A long curve's `max_points` answer comes from block summaries kept beside it: every bucket's lowest and highest
loss, the ends and the first non-finite point, exactly as the points give them; summaries extended as the curve
grows and dropped when a runner cuts it back."""

import numpy as np
import pytest

from clr.analysis import BLOCK, block_summaries, downsample_blocks
from worker.store import BLOCK_POINTS

POINTS = 1_100_000  # enough whole blocks for `max_points=2000`


def curve(points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    losses = (2.0 * np.exp(-np.arange(points) / 2e5) + 0.1 * rng.random(points)).astype(np.float32)
    losses[[12_345, 777_777]] = 40.0, -1.0  # spikes
    losses[900_001:] = np.nan  # diverged
    return np.geomspace(1e-4, 1.0, points).astype(np.float32), losses


@pytest.fixture
def long_job(store):
    job_id = store.create("training", {})
    attempt = store.claim(job_id, "test:1", 5, 60.0, False).attempts
    lrs, losses = curve(POINTS)
    stored = POINTS - 10_000
    for first in range(0, stored, 200_000):
        end = min(first + 200_000, stored)
        store.report(job_id, attempt, first, lrs[first:end], losses[first:end])
    return job_id, attempt, lrs, losses


def expected(lrs, losses, max_points=2000) -> dict[str, list]:
    """The same downsampling computed from every point (the summaries of the whole curve, in memory)."""
    ends = tuple((index, float(lrs[index]), float(losses[index])) for index in (0, len(losses) - 1))
    iterations, kept_lrs, kept_losses = downsample_blocks(block_summaries(0, lrs, losses, BLOCK_POINTS), ends,
                                                          max_points)
    return {"iteration": iterations.tolist(), "lr": kept_lrs.tolist(),
            "loss": [None if not np.isfinite(loss) else loss for loss in kept_losses.tolist()]}


def test_a_long_curve_is_downsampled_from_its_block_summaries_keeping_its_spikes_and_divergence(client, store,
                                                                                               long_job):
    job_id, attempt, lrs, losses = long_job
    stored = POINTS - 10_000
    answer = client.get(f"/jobs/{job_id}/curves", params={"max_points": 2000}).json()
    assert answer == {**answer, **expected(lrs[:stored], losses[:stored])}
    assert len(answer["iteration"]) <= 2000 and {0, 12_345, 777_777, 900_001, stored - 1} <= set(answer["iteration"])
    assert len(store.redis.get(f"clr:curve:{job_id}:blocks")) == stored // BLOCK_POINTS * BLOCK.itemsize  # kept

    store.report(job_id, attempt, stored, lrs[stored:], losses[stored:])  # the curve grows: summaries extended
    grown = client.get(f"/jobs/{job_id}/curves", params={"max_points": 2000}).json()
    assert grown == {**grown, **expected(lrs, losses)}


def test_a_resume_drops_the_summaries_and_they_are_rebuilt_from_the_new_points(client, store, long_job):
    job_id, attempt, lrs, losses = long_job
    client.get(f"/jobs/{job_id}/curves", params={"max_points": 2000})
    second = store.claim(job_id, "test:2", 5, 60.0, True).attempts
    store.resume(job_id, second, 500_000, 0, [])
    assert store.redis.get(f"clr:curve:{job_id}:blocks") is None
    new_lrs, new_losses = curve(POINTS, seed=1)
    new_losses[:500_000] = losses[:500_000]  # what the cut kept
    new_lrs[:500_000] = lrs[:500_000]
    store.report(job_id, second, 500_000, new_lrs[500_000:], new_losses[500_000:])
    answer = client.get(f"/jobs/{job_id}/curves", params={"max_points": 2000}).json()
    assert answer == {**answer, **expected(new_lrs, new_losses)}
