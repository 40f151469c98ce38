import itertools

import numpy as np
import pytest

from clr.schedules import MODES, SHAPES, cyclical_lr, range_sweep, step_size_advice

BASE, PEAK, STEP = 0.001, 0.006, 5
GAMMA = {"triangular": 1.0, "triangular2": 1.0, "exp_range": 0.99}


def closed_form(it: int, mode: str, shape: str, gamma: float) -> float:
    """The schedule written piecewise, independently of the module's formula."""
    cycle, position = divmod(it, 2 * STEP)
    up = position / STEP if position <= STEP else 2 - position / STEP  # 0 at the cycle start, 1 at its peak
    distance = 1 - up
    window = {"linear": up, "parabolic": 1 - distance**2, "sinusoidal": (1 + np.cos(np.pi * distance)) / 2}[shape]
    scale = {"triangular": 1.0, "triangular2": 0.5**cycle, "exp_range": gamma**it}[mode]
    return BASE + (PEAK - BASE) * window * scale


@pytest.mark.parametrize(("mode", "shape"), list(itertools.product(MODES, SHAPES)))
def test_every_iteration_around_each_boundary_matches_the_closed_form(mode, shape):
    schedule = cyclical_lr(BASE, PEAK, STEP, mode=mode, gamma=GAMMA[mode], shape=shape)
    iterations = np.arange(8 * STEP + 1)
    expected = [closed_form(int(it), mode, shape, GAMMA[mode]) for it in iterations]
    np.testing.assert_allclose(schedule(iterations), expected, rtol=1e-12)
    assert [schedule(int(it)) for it in iterations] == pytest.approx(expected, rel=1e-12)
    assert schedule(0) == BASE
    assert schedule(STEP) == pytest.approx(PEAK if mode == "triangular" else closed_form(STEP, mode, shape, GAMMA[mode]))


@pytest.mark.parametrize("mode", MODES)
def test_linear_shape_equals_pytorch_cyclic_lr_over_many_cycles(mode):
    torch = pytest.importorskip("torch")
    step_size, iterations = 37, 37 * 2 * 12
    gamma = 0.9995 if mode == "exp_range" else 1.0
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    scheduler = torch.optim.lr_scheduler.CyclicLR(
        optimizer, BASE, PEAK, step_size_up=step_size, mode=mode, gamma=gamma, cycle_momentum=False
    )
    theirs = []
    for _ in range(iterations):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    ours = cyclical_lr(BASE, PEAK, step_size, mode=mode, gamma=gamma)(np.arange(iterations))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_custom_scale_fn_replaces_the_mode():
    halving = cyclical_lr(BASE, PEAK, STEP, scale_fn=lambda cycle: 0.5 ** (cycle - 1))
    np.testing.assert_allclose(halving(np.arange(60)), cyclical_lr(BASE, PEAK, STEP, "triangular2")(np.arange(60)))
    by_iteration = cyclical_lr(BASE, PEAK, STEP, scale_fn=lambda it: 0.99**it, scale_mode="iterations")
    np.testing.assert_allclose(
        by_iteration(np.arange(60)), cyclical_lr(BASE, PEAK, STEP, "exp_range", gamma=0.99)(np.arange(60))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_lr": 0.01, "max_lr": 0.001}, "Argument `base_lr` must be < `max_lr`. Received: base_lr=0.01"),
        ({"base_lr": 0.01, "max_lr": 0.01}, "must be < `max_lr`"),
        ({"base_lr": 0.0}, "Argument `base_lr` must be a finite number > 0. Received: base_lr=0.0"),
        ({"max_lr": float("nan")}, "Argument `max_lr` must be a finite number > 0. Received: max_lr=nan"),
        ({"max_lr": float("inf")}, "max_lr=inf"),
        ({"step_size": 0}, "Argument `step_size` must be >= 1. Received: step_size=0"),
        ({"mode": "cosine"}, "Argument `mode` must be one of triangular, triangular2, exp_range. Received: mode='cosine'"),
        ({"shape": "square"}, "must be one of linear, parabolic, sinusoidal. Received: shape='square'"),
        ({"mode": "exp_range", "gamma": 0.0}, "Argument `gamma` must be in (0, 1]. Received: gamma=0.0"),
        ({"mode": "exp_range", "gamma": 1.5}, "Received: gamma=1.5"),
        ({"gamma": 0.99}, "Argument `gamma` is only used with mode='exp_range'. Received: gamma=0.99"),
        ({"scale_mode": "epoch"}, "Argument `scale_mode` must be one of cycle, iterations"),
    ],
)
def test_invalid_arguments_are_named_with_their_value(kwargs, message):
    arguments = {"base_lr": BASE, "max_lr": PEAK, "step_size": STEP} | kwargs
    with pytest.raises(ValueError) as raised:
        cyclical_lr(**arguments)
    assert message in str(raised.value)


@pytest.mark.parametrize("iterations", [-1, 1.5, np.array([[0, 1]]), np.array([0.0, 1.0])])
def test_iterations_must_be_non_negative_integers(iterations):
    with pytest.raises(ValueError, match="Iterations must be an int >= 0"):
        cyclical_lr(BASE, PEAK, STEP)(iterations)


def test_scalar_in_float_out_and_array_in_array_out():
    schedule = cyclical_lr(BASE, PEAK, STEP)
    assert isinstance(schedule(3), float)
    assert isinstance(schedule(np.int64(3)), float)
    assert schedule(np.arange(4)).dtype == np.float64


def test_exponential_sweep_is_geometric_from_start_to_end():
    lrs = range_sweep(1e-5, 1.0, 101)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10 ** (5 / 100))
    np.testing.assert_allclose(lrs[50], 10**-2.5)


def test_linear_sweep_is_evenly_spaced():
    lrs = range_sweep(0.1, 1.1, 11, sweep="linear")
    np.testing.assert_allclose(lrs, np.linspace(0.1, 1.1, 11))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.0, 0.1, 10), "Argument `start_lr` must be < `end_lr`"),
        ((1e-5, 1.0, 1), "Argument `num_iterations` must be an int >= 2. Received: num_iterations=1"),
        ((1e-5, 1.0, 10, "cubic"), "Argument `sweep` must be one of exponential, linear"),
    ],
)
def test_sweep_validation(args, message):
    with pytest.raises(ValueError, match=message):
        range_sweep(*args)


def test_step_size_advice_is_two_to_ten_epochs_of_iterations():
    advice = step_size_advice(num_samples=1437, batch_size=32)
    assert advice.iterations_per_epoch == 45
    assert (advice.min_step_size, advice.max_step_size) == (90, 450)
    assert advice.contains(180) and not advice.contains(89) and not advice.contains(451)
    assert advice.epochs(180) == 4
    with pytest.raises(ValueError, match="Argument `batch_size` must be an int >= 1. Received: batch_size=0"):
        step_size_advice(100, 0)
