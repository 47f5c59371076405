"""ntm_ref.linear: the linear map and the clip, each by finite differences through gradcheck (float64, a
seeded random upstream gradient), and the clip's gradient at and beyond its limits."""
import numpy as np
import pytest

from gradcheck import assert_gradients, check_op
from ntm_ref.linear import clip_backward, clip_forward, linear_backward, linear_forward


@pytest.mark.parametrize("B, D, C", [(1, 1, 1), (3, 5, 4), (2, 7, 1)])
def test_linear_gradients(B, D, C):
    rng = np.random.default_rng(B * 100 + D * 10 + C)
    inputs = [rng.normal(size=(B, D)), rng.normal(size=(D, C)), rng.normal(size=C)]
    assert_gradients(check_op(linear_forward, linear_backward, inputs, names=["x", "W", "b"]))


@pytest.mark.parametrize("limit", [None, 20.0, 0.7])
def test_clip_gradients_away_from_the_limits(limit):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6)) * 2
    if limit is not None:      # keep every entry a clear distance from +-limit (the kinks)
        x = np.where(np.abs(np.abs(x) - limit) < 0.05, x + 0.2, x)
    assert_gradients(check_op(lambda v: clip_forward(v, limit), clip_backward, [x], names=["x"]))


def test_clip_passes_the_gradient_inside_and_stops_it_at_and_beyond_the_limits():
    x = np.array([[-3.0, -1.0, 0.0, 0.999, 1.0, 2.5]])
    y, cache = clip_forward(x, 1.0)
    np.testing.assert_array_equal(y, [[-1.0, -1.0, 0.0, 0.999, 1.0, 1.0]])
    dy = np.arange(1.0, 7.0)[None]
    np.testing.assert_array_equal(clip_backward(dy, cache), [[0.0, 0.0, 3.0, 4.0, 0.0, 0.0]])   # strictly inside only
