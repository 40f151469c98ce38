"""1cycle, cyclical momentum and warm restarts against PyTorch's and Keras's own, at every step; the constant rate."""

import numpy as np
import pytest

from clr.policies import constant_lr, cosine_restarts_lr, cyclical_momentum, one_cycle_lr, one_cycle_momentum
from clr.schedules import MODES
from tests.backends import BACKEND, schedule_tolerance

torch = pytest.importorskip("torch")


def torch_schedule(make_scheduler, steps: int, key: str = "lr", momentum: float = 0.9) -> list[float]:
    """The value of `key` each of `steps` batches uses under a PyTorch scheduler."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=momentum)
    scheduler, values = make_scheduler(optimizer), []
    for _ in range(steps):
        values.append(optimizer.param_groups[0][key])
        optimizer.step()
        scheduler.step()
    return values


ONE_CYCLE_CASES = [
    {"total_steps": 1000},
    {"total_steps": 997, "pct_start": 0.25, "anneal_strategy": "linear"},
    {"total_steps": 503, "pct_start": 0.4, "three_phase": True, "div_factor": 10.0, "final_div_factor": 100.0},
    {"total_steps": 10, "pct_start": 0.5, "anneal_strategy": "linear", "three_phase": True},
]


@pytest.mark.parametrize("case", ONE_CYCLE_CASES, ids=lambda case: ",".join(f"{k}={v}" for k, v in case.items()))
def test_one_cycle_lr_and_momentum_equal_pytorchs_one_cycle_lr(case):
    steps = case["total_steps"]
    momentum_case = {key: value for key, value in case.items() if key not in ("div_factor", "final_div_factor")}

    def make(optimizer):
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.3, **case)

    np.testing.assert_allclose(one_cycle_lr(0.3, **case)(np.arange(steps)), torch_schedule(make, steps), rtol=1e-9)
    theirs = torch_schedule(make, steps, "momentum")
    np.testing.assert_allclose(one_cycle_momentum(**momentum_case)(np.arange(steps)), theirs, rtol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_cyclical_momentum_equals_pytorchs_cycle_momentum(mode):
    gamma = 0.999 if mode == "exp_range" else 1.0
    steps = 23 * 2 * 6

    def make(optimizer):
        return torch.optim.lr_scheduler.CyclicLR(optimizer, 0.01, 0.1, step_size_up=23, mode=mode, gamma=gamma,
                                                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.95)

    ours = cyclical_momentum(0.8, 0.95, 23, mode, gamma)(np.arange(steps))
    np.testing.assert_allclose(ours, torch_schedule(make, steps, "momentum"), rtol=1e-9)


@pytest.mark.parametrize(
    "case",
    [{}, {"t_mul": 1.0}, {"t_mul": 1.5, "m_mul": 0.8, "alpha": 0.1}, {"t_mul": 3.0, "m_mul": 0.5, "alpha": 0.01}],
    ids=str,
)
def test_cosine_restarts_equal_keras_cosine_decay_restarts(case):
    import keras

    steps = np.arange(2000)
    theirs = keras.optimizers.schedules.CosineDecayRestarts(0.1, 40, **case)
    expected = keras.ops.convert_to_numpy(theirs(keras.ops.convert_to_tensor(steps)))
    # Keras computes in float32: equal to its rounding (1e-6 of the initial LR near each period's end; 3e-6 on JAX,
    # whose cosine rounds otherwise)
    atol = 5e-7 if BACKEND == "jax" else 1e-7
    np.testing.assert_allclose(cosine_restarts_lr(0.1, 40, **case)(steps), expected, rtol=1e-5, atol=atol)


def test_restart_boundaries_and_phase_ends_are_exact():
    sgdr = cosine_restarts_lr(0.1, 10, t_mul=2.0, m_mul=0.5)
    assert sgdr(0) == pytest.approx(0.1) and sgdr(10) == pytest.approx(0.05) and sgdr(30) == pytest.approx(0.025)
    one_cycle = one_cycle_lr(0.3, 100, pct_start=0.3)
    assert one_cycle(0) == pytest.approx(0.3 / 25) and one_cycle(29) == pytest.approx(0.3)
    assert one_cycle(99) == pytest.approx(0.3 / 25 / 1e4)


@pytest.mark.parametrize(
    ("factory", "arguments", "message"),
    [
        (one_cycle_lr, {"max_lr": 0.1, "total_steps": 1}, "Argument `total_steps` must be an int >= 2"),
        (one_cycle_lr, {"max_lr": 0.1, "total_steps": 100, "pct_start": 1.0}, "Argument `pct_start` must be in"),
        (one_cycle_lr, {"max_lr": 0.1, "total_steps": 100, "anneal_strategy": "step"}, "`anneal_strategy` must be"),
        (one_cycle_momentum, {"total_steps": 100, "base_momentum": 0.99}, "Argument `base_momentum` must be"),
        (cosine_restarts_lr, {"initial_lr": 0.1, "first_decay_steps": 0}, "`first_decay_steps` must be an int >= 1"),
        (cyclical_momentum, {"base_momentum": 0.9, "max_momentum": 0.8, "step_size": 10}, "`base_momentum` must be"),
        (constant_lr, {"lr": 0.0}, "Argument `lr` must be a finite number > 0"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(factory, arguments, message):
    with pytest.raises(ValueError, match=message):
        factory(**arguments)
    with pytest.raises(ValueError, match="Received"):
        factory(**arguments)


def test_one_cycle_refuses_iterations_past_its_end_and_in_graph_holds_its_final_value():
    import keras

    from clr.keras_schedule import OneCycleMomentumSchedule, OneCycleSchedule

    with pytest.raises(ValueError, match="Argument `iterations` must be < total_steps=100"):
        one_cycle_lr(0.1, 100)(100)
    past = keras.ops.convert_to_tensor(np.array([100, 150, 200, 300, 10_000]))
    for in_graph, oracle in ((OneCycleSchedule(0.1, 100), one_cycle_lr(0.1, 100)),
                             (OneCycleMomentumSchedule(100, three_phase=True), one_cycle_momentum(100, three_phase=True))):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(in_graph(past)), oracle(99), rtol=1e-6)


@pytest.mark.parametrize(
    ("in_graph", "oracle", "steps"),
    [
        ("OneCycleSchedule", {"max_lr": 0.3, "total_steps": 997, "pct_start": 0.25}, 997),
        ("OneCycleSchedule", {"max_lr": 0.1, "total_steps": 503, "three_phase": True, "anneal_strategy": "linear"},
         503),
        ("CosineRestartsSchedule", {"initial_lr": 0.1, "first_decay_steps": 40, "t_mul": 1.5, "m_mul": 0.8}, 3000),
        ("CosineRestartsSchedule", {"initial_lr": 0.1, "first_decay_steps": 25, "t_mul": 1.0, "alpha": 0.05}, 3000),
        ("OneCycleMomentumSchedule", {"total_steps": 997, "pct_start": 0.25}, 997),
        ("OneCycleMomentumSchedule", {"total_steps": 503, "base_momentum": 0.8, "three_phase": True,
                                      "anneal_strategy": "linear"}, 503),
        ("CyclicalMomentumSchedule", {"base_momentum": 0.8, "max_momentum": 0.95, "step_size": 23,
                                      "mode": "exp_range", "gamma": 0.999}, 3000),
        ("CyclicalMomentumSchedule", {"base_momentum": 0.85, "max_momentum": 0.95, "step_size": 20,
                                      "mode": "triangular2", "shape": "sinusoidal"}, 3000),
        ("ConstantSchedule", {"lr": 0.03}, 100),
    ],
)
def test_in_graph_schedules_equal_their_oracle_and_round_trip(in_graph, oracle, steps):
    import keras

    from clr import keras_schedule

    schedule = getattr(keras_schedule, in_graph)(**oracle)
    factory = {"OneCycleSchedule": one_cycle_lr, "CosineRestartsSchedule": cosine_restarts_lr,
               "OneCycleMomentumSchedule": one_cycle_momentum, "CyclicalMomentumSchedule": cyclical_momentum,
               "ConstantSchedule": constant_lr}[in_graph]
    ours = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(np.arange(steps))))
    expected = factory(**oracle)(np.arange(steps))
    np.testing.assert_allclose(ours, expected, **schedule_tolerance(expected.max()))
    assert schedule.get_config() | oracle == schedule.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(restored) is type(schedule) and restored.get_config() == schedule.get_config()
