"""Head-parameter activations: finite-difference gradients, ranges, no overflow for |x| up to 1e3."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck import assert_gradients
from ntm_ref import activations as act

NAMES = sorted(act.ACTIVATIONS)      # every elementwise map, softmax, and softmax_<name> for each
# where the piecewise-linear maps are not differentiable; finite differences are not drawn within
# KINK_MARGIN of them (a step across a kink measures an average slope, not a derivative)
KINKS = {"relu": (0.0,), "one_plus_relu": (0.0,), "hard_sigmoid": (-2.5, 2.5), "clip01": (0.0, 1.0),
         "torch_softplus": (20.0,), "torch_oneplus": (20.0,)}
KINKS.update({f"softmax_{name}": kinks for name, kinks in KINKS.items()})
UNBOUNDED = ("exp", "softmax_exp")   # exp(x) overflows to inf beyond x ~ 709, as the maths says
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


@pytest.mark.parametrize("name", [n for n in NAMES if n not in UNBOUNDED])
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


def test_exp_is_finite_up_to_its_float64_limit_and_inf_beyond():
    """exp has no bounded form: finite (with a finite gradient) up to x = 709, inf above, like numpy.exp."""
    x = np.array([-1e3, -50.0, 0.0, 50.0, 709.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = act.exp_forward(x)
        dx = act.exp_backward(np.ones_like(x), cache)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    with np.errstate(over="ignore"):
        assert act.exp_forward(np.array([710.0]))[0][0] == np.inf


@pytest.mark.parametrize("inner", [n for n in act.ELEMENTWISE if n != "identity"])
def test_softmax_of_is_softmax_after_the_inner_map(inner):
    """softmax_<inner>(z) is softmax(inner(z)) along the last axis, row by row, written out here."""
    z = np.random.default_rng(0).normal(size=(2, 3, 5)) * 2
    u = act.ELEMENTWISE[inner][0](z)[0]
    expected = np.exp(u - u.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(act.ACTIVATIONS[f"softmax_{inner}"][0](z)[0], expected, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
def test_backward_from_values_is_the_backward(name, data, seed):
    """What the fast engine calls (input and output only) gives the same gradient as the cached backward."""
    x = data.draw(arrays_away_from_kinks(name))
    forward, backward = act.ACTIVATIONS[name]
    y, cache = forward(x)
    dy = np.random.default_rng(seed).normal(size=y.shape)
    np.testing.assert_array_equal(act.backward_from_values(name, dy, x, y), backward(dy, cache))


def test_ranges_are_what_the_maps_give():
    """Each elementwise map stays inside the range ELEMENTWISE declares for it (the range decides which
    head parameter may use it: ntm_ref.config.HEAD_ACTIVATION_CHOICES)."""
    x = np.concatenate([np.linspace(-40, 40, 801), [-1e3, 1e3]])
    for name, (forward, _, (low, high)) in act.ELEMENTWISE.items():
        with np.errstate(over="ignore"):
            y = forward(x)[0]
        assert np.all(y >= low) and np.all(y <= high), name
        assert np.isclose(y.min(), low, atol=1e-6) or low == -np.inf, name     # the bounds are tight
        assert np.isclose(y.max(), high, atol=1e-6) or high == np.inf, name


def test_torch_softplus_is_pytorchs():
    """torch_softplus is x above 20 (gradient 1), log(1 + e^x) below: PyTorch's F.softplus defaults."""
    x = np.array([-30.0, 0.0, 19.5, 20.0, 20.5, 40.0])
    y, cache = act.torch_softplus_forward(x)
    np.testing.assert_array_equal(y[[4, 5]], x[[4, 5]])
    np.testing.assert_allclose(y[:4], np.log1p(np.exp(x[:4])), rtol=1e-15)
    dx = act.torch_softplus_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(dx[[4, 5]], 1.0)
    np.testing.assert_allclose(dx[:4], 1 / (1 + np.exp(-x[:4])), rtol=1e-15)
    np.testing.assert_array_equal(act.torch_oneplus_forward(x)[0], 1.0 + y)
