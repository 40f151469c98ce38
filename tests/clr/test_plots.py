import io

import numpy as np
from matplotlib.image import imread

from bench.bounds_panel import synthetic_range_test
from clr.analysis import smooth
from clr.bounds import suggest_bounds
from clr.plots import range_test_png, training_png


def size_of(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return imread(io.BytesIO(png), format="png").shape[:2]


def test_range_test_figure_is_a_png_with_and_without_bounds():
    lrs, losses = synthetic_range_test()
    losses[-50:] = np.nan
    height, width = size_of(range_test_png(lrs, losses, smooth(losses), suggest_bounds(lrs, losses)))
    assert width > 400 and height > 300
    size_of(range_test_png(lrs[:10], losses[:10], smooth(losses[:10]), no_suggestion="too short"))


def test_training_figure_is_a_png_with_and_without_epoch_metrics():
    iterations = np.arange(300)
    lrs, losses = np.sin(iterations / 20) + 2, np.exp(-iterations / 100)
    with_metrics = size_of(training_png(iterations, lrs, losses, {"val_accuracy": [0.5, 0.8, 0.9]}))
    without = size_of(training_png(iterations, lrs, losses))
    assert with_metrics[0] > without[0]


def test_training_figure_draws_a_cycled_momentum():
    iterations = np.arange(300)
    lrs, losses = np.sin(iterations / 20) + 2, np.exp(-iterations / 100)
    plain = imread(io.BytesIO(training_png(iterations, lrs, losses)), format="png")
    with_momentum = imread(io.BytesIO(training_png(iterations, lrs, losses, momenta=0.9 - lrs / 20)), format="png")
    assert plain.shape == with_momentum.shape and not np.array_equal(plain, with_momentum)
