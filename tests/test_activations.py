"""Head-parameter activations: finite-difference gradients, ranges, no overflow for |x| up to 1e3."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck import assert_gradients
from ntm_ref import activations as act

NAMES = ["sigmoid", "tanh", "softplus", "oneplus", "softmax", "identity",
         "relu", "one_plus_relu", "hard_sigmoid", "clip01"]
# where the piecewise-linear maps are not differentiable; finite differences are not drawn within
# KINK_MARGIN of them (a step across a kink measures an average slope, not a derivative)
KINKS = {"relu": (0.0,), "one_plus_relu": (0.0,), "hard_sigmoid": (-2.5, 2.5), "clip01": (0.0, 1.0)}
KINK_MARGIN = 1e-2



def arrays_away_from_kinks(name):
    """Float64 arrays of 1-3 dims with distinct elements (unique=True: no ties from a repeated fill),
    no element within KINK_MARGIN of one of the activation's kinks."""
    kinks = KINKS.get(name, ())
    elements = st.floats(-6, 6).filter(lambda v: all(abs(v - k) > KINK_MARGIN for k in kinks))
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                      elements=elements, unique=True)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
def test_gradient(name, data, seed):
    x = data.draw(arrays_away_from_kinks(name))
    forward, backward = act.ACTIVATIONS[name]
    assert_gradients(forward, backward, [x], names=["x"], seed=seed)


@pytest.mark.parametrize("name", NAMES)
def test_no_overflow_for_large_inputs(name):
    x = np.array([[-1e3, -700.0, -50.0, 0.0, 50.0, 700.0, 1e3]])
    forward, backward = act.ACTIVATIONS[name]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = forward(x)
        dx = backward(np.linspace(-1, 1, x.size).reshape(x.shape), cache)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


def test_ranges_and_values():
    x = np.linspace(-30, 30, 61)
    assert np.all((act.sigmoid_forward(x)[0] >= 0) & (act.sigmoid_forward(x)[0] <= 1))
    assert np.all(act.softplus_forward(x)[0] > 0)
    assert np.all(act.oneplus_forward(x)[0] >= 1)
    np.testing.assert_allclose(act.softplus_forward(np.array([0.0]))[0], np.log(2.0), rtol=1e-15)
    np.testing.assert_allclose(act.softplus_forward(np.array([1e3]))[0], 1e3, rtol=1e-15)
    y, _ = act.softmax_forward(np.array([[1e3, 0.0, -1e3], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(y[1], 1 / 3, rtol=1e-15)
