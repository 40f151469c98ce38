"""The demo's workflow (`api.workflow`, what `make demo` runs) against the real service."""

import numpy as np
import pytest

from api import workflow
from clr.plan import iterations_per_epoch
from clr.schedules import cyclical_lr

pytestmark = pytest.mark.slow


def test_the_demo_trains_one_whole_cycle_of_4_of_its_own_epochs_and_ends_at_base_lr(service, client, tmp_path):
    training = workflow.run(service.url, tmp_path)
    clr = training["result"]["clr"]
    per_epoch = iterations_per_epoch(1437, 32, validation_split=0.1)  # the training's epochs, not the range test's
    assert clr["step_size"] == 4 * per_epoch and training["warnings"] == []
    curves = client.get(f"/jobs/{training['id']}/curves").json()
    total = 2 * clr["step_size"]
    assert curves["iteration"] == list(range(total))
    schedule = cyclical_lr(clr["base_lr"], clr["max_lr"], clr["step_size"])
    np.testing.assert_allclose(curves["lr"], schedule(np.arange(total)), rtol=1e-6)
    assert schedule(total) == clr["base_lr"] and curves["lr"][-1] == pytest.approx(min(curves["lr"][clr["step_size"]:]))
    assert training["result"]["test_accuracy"] > 0.9
