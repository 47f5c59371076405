"""Tests of the gradient checker itself: it must pass correct ops and fail each kind of broken one.

The ops below are small forward/backward pairs written for these tests (the checker must not know
about ntm_ref). Dimension letters: N rows, D columns.
"""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

import gradcheck
from gradcheck import Report, assert_gradients, assert_loss_gradients, check_loss, check_op
from gradcheck import strategies as gst

SIMPLEX_TOL = 1e-12


# ---------------------------------------------------------------------------------------------------
# correct ops
# ---------------------------------------------------------------------------------------------------

def tanh_layer_forward(W, x):
    """y = tanh(W x).  W (N, D), x (D,) -> y (N,)."""
    y = np.tanh(W @ x)
    return y, (W, x, y)


def tanh_layer_backward(dy, cache):
    """dy (N,) -> (dW (N, D), dx (D,))."""
    W, x, y = cache
    da = dy * (1.0 - y ** 2)            # in the forward pass this was y = tanh(a)
    return np.outer(da, x), W.T @ da     # a = W x


def softmax_forward(x):
    """Row softmax.  x (N, D) -> y (N, D)."""
    y = softmax(x, axis=-1)
    return y, y


def softmax_backward(dy, y):
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def product_forward(x, z):
    """Elementwise product.  x, z (N, D) -> x * z."""
    return x * z, (x, z)


def product_backward(dout, cache):
    x, z = cache
    return dout * z, dout * x


def sum_and_product_forward(x, z):
    """Two outputs: (x + z, x * z)."""
    return (x + z, x * z), (x, z)


def sum_and_product_backward(douts, cache):
    dsum, dprod = douts
    x, z = cache
    return dsum + dprod * z, dsum + dprod * x


def sqrt_forward(x):
    """y = sqrt(x), defined for x >= 0 only (raises outside, so any step past the bound shows)."""
    if np.any(x < 0):
        raise ValueError("sqrt of a negative entry")
    y = np.sqrt(x)
    return y, y


def sqrt_backward(dy, y):
    return dy / (2.0 * y)


def power_forward(w, gamma):
    """y = w ** gamma, gamma >= 1 only (raises below, as a sharpening exponent would be invalid).
    w (N,) positive, gamma (1,)."""
    if np.any(gamma < 1):
        raise ValueError("gamma below 1")
    y = w ** gamma
    return y, (w, gamma, y)


def power_backward(dy, cache):
    w, gamma, y = cache
    return dy * gamma * w ** (gamma - 1.0), np.array([np.sum(dy * y * np.log(w))])


def abs_forward(x):
    return np.abs(x), x


def abs_backward_claiming_one_at_zero(dy, x):
    return dy * np.where(x >= 0, 1.0, -1.0)


# ---------------------------------------------------------------------------------------------------
# broken backwards
# ---------------------------------------------------------------------------------------------------

def scaled_backward(dy, cache):
    dW, dx = tanh_layer_backward(dy, cache)
    return 1.0001 * dW, 1.0001 * dx


def one_wrong_element_backward(dy, cache):
    dW, dx = tanh_layer_backward(dy, cache)
    dW[1, 2] += 1e-3
    return dW, dx


def ignores_dout_backward(dy, cache):
    return tanh_layer_backward(np.ones_like(dy), cache)


def mutating_forward(W, x):
    y, cache = tanh_layer_forward(W, x)
    x *= 1.0 + 1e-9
    return y, cache


def mutating_backward(dy, cache):
    grads = tanh_layer_backward(dy, cache)
    cache[0][0, 0] += 1.0
    return grads


def zeros_backward(dy, cache):
    W, x, _ = cache
    return np.zeros_like(W), np.zeros_like(x)


def accumulating_forward(W, x):
    y, (W, x, y) = tanh_layer_forward(W, x)
    return y, dict(W=W, x=x, y=y, dW=np.zeros_like(W))


def accumulating_backward(dy, cache):
    dW, dx = tanh_layer_backward(dy, (cache["W"], cache["x"], cache["y"]))
    cache["dW"] += dW                    # never zeroed: a second call returns twice the gradient
    return cache["dW"].copy(), dx


def wrong_shape_backward(dy, cache):
    dW, dx = tanh_layer_backward(dy, cache)
    return dW, dx[:, None]


def nonlinear_backward(dy, cache):
    return tanh_layer_backward(dy + 0.1 * dy ** 2, cache)


def tanh_inputs(seed=0, N=3, D=4):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(N, D)), rng.normal(size=D)]


# ---------------------------------------------------------------------------------------------------
# check_op passes correct ops
# ---------------------------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 5), D=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_passes_correct_tanh_layer(N, D, seed):
    report = check_op(tanh_layer_forward, tanh_layer_backward, tanh_inputs(seed, N, D), seed=seed,
                      names=["W", "x"])
    assert report.ok, str(report)
    assert [b.name for b in report.blocks] == ["W", "x"]
    assert report.block("W").checked == N * D


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 4), D=st.integers(2, 6), seed=st.integers(0, 2 ** 16))
def test_passes_correct_softmax_and_product(N, D, seed):
    rng = np.random.default_rng(seed)
    assert_gradients(softmax_forward, softmax_backward, [3.0 * rng.normal(size=(N, D))], seed=seed)
    assert_gradients(product_forward, product_backward, [rng.normal(size=(N, D)), rng.normal(size=(N, D))],
                     seed=seed)


def test_passes_op_with_two_outputs():
    rng = np.random.default_rng(1)
    report = assert_gradients(sum_and_product_forward, sum_and_product_backward,
                              [rng.normal(size=(2, 3)), rng.normal(size=(2, 3))])
    assert report.ok


@pytest.mark.parametrize("x", [[1e-3, 0.5, 2.0], [4e-5, 1.0, 9.0], [0.02, 3e-4, 1e-3]])
def test_bounded_op_near_its_bound(x):
    x = np.array(x)
    report = check_op(sqrt_forward, sqrt_backward, [x], bounds={0: (0.0, None)})
    assert report.ok, str(report)


@pytest.mark.parametrize("gamma", [1.0, 1.0 + 1e-9, 1.0 + 1e-5, 1.0 + 2e-4, 2.5])
def test_bounded_op_at_its_bound_goes_one_sided(gamma):
    w = np.array([0.3, 0.9, 1.7])
    report = check_op(power_forward, power_backward, [w, np.array([gamma])], names=["w", "gamma"],
                      bounds={"gamma": (1.0, None), "w": (0.0, None)})
    assert report.ok, str(report)


def test_one_sided_differences_at_a_bound_still_catch_1_0001():
    def power_backward_scaled(dy, cache):
        dw, dgamma = power_backward(dy, cache)
        return dw, 1.0001 * dgamma

    report = check_op(power_forward, power_backward_scaled, [np.array([0.3, 0.9, 1.7]), np.array([1.0])],
                      names=["w", "gamma"], bounds={"gamma": (1.0, None)})
    assert report.block("w").ok
    [entry] = report.block("gamma").failures
    assert (entry.scheme, entry.verdict) == ("forward", "wrong gradient")


def test_step_past_an_undeclared_bound_is_explained():
    with pytest.raises(RuntimeError, match="bounds="):
        check_op(power_forward, power_backward, [np.array([0.5, 2.0]), np.array([1.0])], names=["w", "gamma"])


def test_two_sided_bounds():
    def log_gate_forward(g):
        if np.any((g <= 0) | (g >= 1)):
            raise ValueError("gate outside (0, 1)")
        return np.log(g) + 2.0 * np.log1p(-g), g

    def log_gate_backward(dy, g):
        return dy * (1.0 / g - 2.0 / (1.0 - g))

    g = np.array([1e-3, 0.5, 1.0 - 1e-3, 0.9999])
    assert_gradients(log_gate_forward, log_gate_backward, [g], bounds={0: (0.0, 1.0)})


def test_does_not_touch_the_callers_arrays():
    inputs = tanh_inputs()
    copies = [x.copy() for x in inputs]
    check_op(mutating_forward, tanh_layer_backward, inputs)
    for x, c in zip(inputs, copies):
        assert np.array_equal(x, c)


def test_max_entries_checks_a_seeded_subset():
    inputs = tanh_inputs(N=6, D=7)
    report = check_op(tanh_layer_forward, tanh_layer_backward, inputs, max_entries=5)
    assert report.ok and report.block("x0").checked == 5 and report.block("x1").checked == 5
    assert "max_entries" in str(report)


# ---------------------------------------------------------------------------------------------------
# check_op fails broken ones
# ---------------------------------------------------------------------------------------------------

def _fails(backward, forward=tanh_layer_forward, **kw):
    report = check_op(forward, backward, tanh_inputs(), names=["W", "x"], **kw)
    assert not report.ok
    with pytest.raises(AssertionError, match="gradcheck FAILED"):
        assert_gradients(report)
    return report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fails_scaled_by_1_0001(seed):
    report = _fails(scaled_backward, seed=seed)
    assert report.block("W").verdict == "wrong gradient"
    assert report.block("x").verdict == "wrong gradient"


def test_fails_one_wrong_element_and_names_it():
    report = _fails(one_wrong_element_backward)
    W = report.block("W")
    assert W.verdict == "wrong gradient" and report.block("x").ok
    assert [e.index for e in W.failures] == ["(1, 2)"]
    assert "(1, 2)" in str(report)


def test_fails_backward_that_ignores_dout():
    report = _fails(ignores_dout_backward)
    assert not report.check("backward linear in dout").ok
    assert not report.check("zero dout gives zero gradient").ok


def test_fails_forward_that_mutates_its_input():
    report = _fails(tanh_layer_backward, forward=mutating_forward)
    assert "x changed by forward" in report.check("inputs not mutated").message


def test_fails_backward_that_mutates_its_cache_input():
    report = _fails(mutating_backward)
    assert "W changed by backward" in report.check("inputs not mutated").message


def test_fails_vacuous_zero_gradient():
    report = _fails(zeros_backward)
    assert not report.check("vacuity").ok
    assert report.block("W").verdict == "vacuous" and report.block("W").fraction_nonzero == 0.0
    assert "all zero" in str(report)


def test_fails_backward_that_accumulates_state():
    report = _fails(accumulating_backward, forward=accumulating_forward)
    assert not report.check("backward deterministic").ok


def test_fails_wrong_shape():
    report = _fails(wrong_shape_backward)
    assert not report.check("gradient shapes and dtypes").ok
    assert report.block("x").verdict == "not checked"


def test_fails_wrong_number_of_gradients():
    report = _fails(lambda dy, cache: tanh_layer_backward(dy, cache)[0])
    assert not report.check("gradient count").ok


def test_fails_backward_not_linear_in_dout():
    report = _fails(nonlinear_backward)
    assert not report.check("backward linear in dout").ok


# ---------------------------------------------------------------------------------------------------
# verdicts: kink or noise vs wrong gradient
# ---------------------------------------------------------------------------------------------------

def test_a_valid_subgradient_at_a_kink_passes_and_strict_fails_it():
    """|x| at 0 with the backward claiming slope 1 there: a valid subgradient (between the left slope -1
    and the right slope +1), so it passes by default, listed with both slopes; strict=True fails it."""
    x = np.array([0.0, 0.7, -1.2])
    report = check_op(abs_forward, abs_backward_claiming_one_at_zero, [x])
    block = report.block("x0")
    assert report.ok and not block.failures
    assert [(e.index, e.verdict) for e in block.kinks] == [("(0,)", "kink: valid subgradient")]
    kink = block.kinks[0]
    assert kink.left < 0 < kink.right and np.isclose(kink.left, -kink.right, rtol=1e-6)
    assert "left slope" in str(report) and "valid subgradient" in str(report)
    strict = check_op(abs_forward, abs_backward_claiming_one_at_zero, [x], strict=True)
    assert not strict.ok
    assert [(e.index, e.verdict) for e in strict.block("x0").failures] == [("(0,)", "kink: valid subgradient (strict)")]
    assert "strict=True" in strict.reproduce
    with pytest.raises(AssertionError, match="allow_kinks=False"):
        assert_gradients(report, allow_kinks=False)
    assert_gradients(report)


def test_a_kink_inside_the_step_is_a_valid_subgradient():
    """|x| at 3e-7 and -2e-6 beside entries of size 1 (the input's scale, so steps of ~5e-4): smooth there,
    but every step crosses the kink at 0. The side away from 0 settles, the other does not; the correct
    sign(x) equals the settled side. (Alone, entries this small get steps of their own size: smooth.)"""
    report = check_op(abs_forward, abs_backward_claiming_one_at_zero, [np.array([3e-7, 1.1, -2e-6, -0.6])])
    assert report.ok
    assert [e.index for e in report.block("x0").kinks] == ["(0,)", "(2,)"]
    assert {e.verdict for e in report.block("x0").kinks} == {"kink: valid subgradient"}
    small = check_op(abs_forward, abs_backward_claiming_one_at_zero, [np.array([3e-7, -2e-6])])
    assert small.ok and not small.block("x0").kinks


def leaky_relu_forward(x):
    return np.where(x > 0, x, 0.01 * x), x


@pytest.mark.parametrize("x", [np.array([0.0, 1.3, -0.4]), np.array([0.0, 0.0, 2.0, -1e-6])])
def test_a_gradient_wrong_only_at_the_kink_is_wrong(x):
    """Leaky ReLU whose backward gives slope 0 at exactly 0, outside [0.01, 1]: wrong, not 'kink'."""
    wrong = check_op(leaky_relu_forward, lambda d, x: d * np.where(x > 0, 1.0, np.where(x == 0, 0.0, 0.01)), [x])
    assert not wrong.ok
    zeros = [str((int(i),)) for i in np.flatnonzero(x == 0)]
    assert sorted(e.index for e in wrong.block("x0").failures) == sorted(zeros)
    assert {e.verdict for e in wrong.block("x0").failures} == {"wrong gradient at a kink"}
    right = check_op(leaky_relu_forward, lambda d, x: d * np.where(x > 0, 1.0, 0.01), [x])
    assert right.ok and {e.index for e in right.block("x0").kinks} >= set(zeros)


def test_relu_at_its_kink_with_either_convention_passes():
    x = np.array([0.0, -0.0, 2.5, -1.0, 4e-6])
    for at_zero in (0.0, 0.5, 1.0):
        report = check_op(lambda x: (np.maximum(x, 0.0), x),
                          lambda d, x: d * np.where(x > 0, 1.0, np.where(x == 0, at_zero, 0.0)), [x])
        assert report.ok, str(report)
    too_big = check_op(lambda x: (np.maximum(x, 0.0), x),
                       lambda d, x: d * np.where(x == 0, 1.5, (x > 0).astype(float)), [x])   # wrong only at 0
    assert not too_big.ok
    assert {f.index for f in too_big.failures()} == {"(0,)", "(1,)"}
    assert {f.verdict for f in too_big.failures()} == {"wrong gradient at a kink"}


def noisy_square_forward(x):
    """y = x^2 plus 1e-8 of deterministic noise (a fixed function of x's bytes, so forward is repeatable)."""
    rng = np.random.default_rng(zlib.crc32(x.tobytes()))      # not hash(): that changes per process
    return x ** 2 + 1e-8 * rng.normal(size=x.shape), x


@pytest.mark.parametrize("seed", range(5))
def test_noise_is_never_called_a_wrong_gradient(seed):
    x = np.random.default_rng(seed).normal(size=4)
    correct = check_op(noisy_square_forward, lambda dy, x: 2.0 * dy * x, [x], seed=seed)
    wrong = check_op(noisy_square_forward, lambda dy, x: 2.02 * dy * x, [x], seed=seed)
    assert {e.verdict for e in correct.block("x0").failures} <= {"kink or noise"}
    assert not correct.block("x0").kinks and not wrong.block("x0").kinks    # noise is not passed as a kink
    assert not wrong.ok and "kink or noise" in {e.verdict for e in wrong.block("x0").failures}
    assert {e.verdict for e in wrong.block("x0").failures} <= {"kink or noise", "wrong gradient at a kink"}


def test_clean_wrong_gradient_is_wrong_gradient():
    report = check_op(abs_forward, lambda dy, x: 0.5 * dy * np.sign(x), [np.array([0.3, -0.8])])
    assert {e.verdict for e in report.block("x0").failures} == {"wrong gradient"}


# ---------------------------------------------------------------------------------------------------
# dtypes, arguments, the report text
# ---------------------------------------------------------------------------------------------------

def test_float32_needs_permission():
    inputs32 = [x.astype(np.float32) for x in tanh_inputs()]
    with pytest.raises(TypeError, match="allow_float32"):
        check_op(tanh_layer_forward, tanh_layer_backward, inputs32)
    report = check_op(tanh_layer_forward, tanh_layer_backward, inputs32, allow_float32=True)
    assert report.ok, str(report)
    assert "float32" in report.reproduce and "low precision" in str(report)


def test_only_integer_inputs_and_a_single_array_are_rejected():
    with pytest.raises(ValueError, match="nothing to differentiate"):       # integers are never differentiated
        check_op(abs_forward, abs_backward_claiming_one_at_zero, [np.array([1, 2])])
    with pytest.raises(TypeError, match="sequence"):
        check_op(abs_forward, abs_backward_claiming_one_at_zero, np.array([1.0, 2.0]))


def test_bad_bounds_are_rejected():
    with pytest.raises(ValueError, match="not one of"):
        check_op(sqrt_forward, sqrt_backward, [np.array([1.0])], bounds={"nope": (0.0, None)})
    with pytest.raises(ValueError, match="outside its bounds"):
        check_op(sqrt_forward, sqrt_backward, [np.array([-1.0])], bounds={0: (0.0, None)})


def test_report_text_can_be_acted_on():
    report = check_op(tanh_layer_forward, scaled_backward, tanh_inputs(), seed=7, names=["W", "x"])
    text = str(report)
    assert isinstance(report, Report) and report.seed == 7
    assert text.splitlines()[0].startswith("gradcheck FAILED")
    assert "check_op(tanh_layer_forward, scaled_backward, inputs, seed=7, rtol=1e-06, names=['W', 'x'])" in text
    for column in ("index", "analytic", "numeric", "abs err", "rel err", "err est", "step", "verdict"):
        assert column in text
    assert text.count("wrong gradient") >= 5


def test_import_gradcheck_does_not_import_hypothesis():
    import subprocess
    import sys
    code = "import sys, gradcheck; assert 'hypothesis' not in sys.modules; assert 'ntm_ref' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_project_root()))
    assert gradcheck.strategies is gst


def _project_root():
    import pathlib
    return pathlib.Path(gradcheck.__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------------
# check_loss: a tiny two-layer net with a dict of parameters
# ---------------------------------------------------------------------------------------------------

def make_net(seed=0):
    """loss(p) = 0.5 |tanh(X W1^T + b1) W2^T + b2 - Y|^2 over 5 examples -> (loss, grads_of, params)."""
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    params = dict(W1=0.7 * rng.normal(size=(4, 3)), b1=0.1 * rng.normal(size=4),
                  W2=0.7 * rng.normal(size=(2, 4)), b2=0.1 * rng.normal(size=2))

    def forward(p):
        H = np.tanh(X @ p["W1"].T + p["b1"])
        return H, H @ p["W2"].T + p["b2"] - Y

    def loss(p):
        return 0.5 * float(np.sum(forward(p)[1] ** 2))

    def grads(p):
        H, err = forward(p)
        dA = (err @ p["W2"]) * (1.0 - H ** 2)
        return dict(W1=dA.T @ X, b1=dA.sum(axis=0), W2=err.T @ H, b2=err.sum(axis=0))

    return loss, grads, params


@pytest.mark.parametrize("mode", ["full", "probe"])
@pytest.mark.parametrize("seed", [0, 3])
def test_check_loss_passes_correct_net(mode, seed):
    loss, grads_of, params = make_net(seed)
    report = assert_loss_gradients(loss, params, grads_of(params), mode=mode, seed=seed)
    assert [b.name for b in report.blocks] == ["W1", "b1", "W2", "b2"]
    assert all(b.fraction_nonzero == 1.0 for b in report.blocks)


@pytest.mark.parametrize("mode", ["full", "probe"])
def test_check_loss_fails_scaled_gradient(mode):
    loss, grads_of, params = make_net()
    grads = grads_of(params)
    grads["W1"] = 1.0001 * grads["W1"]
    report = check_loss(loss, params, grads, mode=mode)
    assert not report.ok
    assert report.block("W1").verdict == "wrong gradient"
    assert all(report.block(n).ok for n in ("b1", "W2", "b2"))


@pytest.mark.parametrize("mode", ["full", "probe"])
def test_check_loss_fails_one_wrong_element_and_names_it(mode):
    loss, grads_of, params = make_net()
    grads = grads_of(params)
    grads["W2"][1, 3] += 1e-4 * (1.0 + abs(grads["W2"][1, 3]))
    report = check_loss(loss, params, grads, mode=mode)
    assert not report.ok
    W2 = report.block("W2")
    assert [e.index for e in W2.failures] == ["(1, 3)"]
    assert "(1, 3)" in str(report)
    if mode == "probe":
        assert W2.method == "probes, then entries" and W2.probes


def test_check_loss_probes_are_cheap_when_all_pass():
    loss, grads_of, params = make_net()
    grads = grads_of(params)
    calls = []
    counted = lambda p: calls.append(1) or loss(p)
    check_loss(counted, params, grads, mode="probe", probes=2)
    n_full = sum(p.size for p in params.values())
    assert len(calls) < 4 * n_full


def test_check_loss_never_changes_the_callers_params():
    loss, grads_of, params = make_net()
    grads = grads_of(params)
    copies = {k: v.copy() for k, v in params.items()}
    check_loss(loss, params, grads, mode="full")
    assert all(np.array_equal(params[k], copies[k]) for k in params)


def test_check_loss_reports_missing_extra_and_misshapen_gradients():
    loss, grads_of, params = make_net()
    grads = grads_of(params)
    del grads["b1"]
    grads["extra"] = np.zeros(3)
    grads["W2"] = grads["W2"].T.copy()
    report = check_loss(loss, params, grads)
    assert not report.ok
    assert "missing from grads: ['b1']" in report.check("gradient keys").message
    assert "['extra']" in report.check("gradient keys").message
    assert "grads['W2']" in report.check("gradient shapes and dtypes").message
    assert report.block("W1").ok and report.block("W2").verdict == "not checked"


@pytest.mark.parametrize("mode", ["full", "probe"])
def test_check_loss_vacuity(mode):
    loss, grads_of, params = make_net()
    grads = grads_of(params)
    grads["b2"] = np.zeros_like(grads["b2"])
    report = check_loss(loss, params, grads, mode=mode)
    assert report.block("b2").verdict == "vacuous" and not report.check("vacuity").ok


@pytest.mark.parametrize("mode", ["full", "probe"])
def test_check_loss_bounds_and_names(mode):
    loss, grads_of, params = make_net()
    params["b1"] = np.abs(params["b1"])
    params["b1"][0] = 0.0                           # on the bound: one-sided steps

    def loss_b1_nonnegative(p):
        if np.any(p["b1"] < 0):
            raise ValueError("b1 must be >= 0")
        return loss(p)

    report = check_loss(loss_b1_nonnegative, params, grads_of(params), mode=mode, names=["b1", "W2"],
                        bounds={"b1": (0.0, None)})
    assert [b.name for b in report.blocks] == ["b1", "W2"]
    assert report.ok, str(report)


# ---------------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------------

def _no_ties(a, allowed=0.0):
    """No value repeats within a row (last axis) of a, other than the deliberate `allowed` (exact zeros)."""
    for row in a.reshape(-1, a.shape[-1]):
        values = row[row != allowed]
        if np.unique(values).size != values.size:
            return False
    return True


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_strategies_shapes_and_domains(data):
    sh = data.draw(gst.shapes())
    B, H, N, M, S = sh["B"], sh["H"], sh["N"], sh["M"], sh["S"]
    assert S == 2 * sh["shift_range"] + 1 and N >= S
    memory = data.draw(gst.memories(B, N, M))
    key = data.draw(gst.keys(B, H, M))
    beta = data.draw(gst.key_strengths(B, H, max_beta=5.0))
    g = data.draw(gst.gates(B, H))
    s = data.draw(gst.shift_kernels(B, H, S))
    w = data.draw(gst.weightings(B, H, N))
    w0 = data.draw(gst.weightings(B, H, N, exact_zeros=True))
    gamma = data.draw(gst.sharpening_exponents(B, H, max_gamma=7.0))
    e = data.draw(gst.erase_vectors(B, H, M))
    a = data.draw(gst.add_vectors(B, H, M))
    shapes = [(memory, (B, N, M)), (key, (B, H, M)), (beta, (B, H)), (g, (B, H)), (s, (B, H, S)),
              (w, (B, H, N)), (w0, (B, H, N)), (gamma, (B, H)), (e, (B, H, M)), (a, (B, H, M))]
    for array, shape in shapes:
        assert isinstance(array, np.ndarray) and array.dtype == np.float64 and array.shape == shape
        assert np.all(np.isfinite(array))
    for simplex in (s, w, w0):
        assert np.all(simplex >= 0) and np.allclose(simplex.sum(axis=-1), 1.0, rtol=0, atol=SIMPLEX_TOL)
    assert np.all((g > 0) & (g < 1)) and np.all((e > 0) & (e < 1))
    assert np.all(beta > 0) and np.all(beta <= 5.0)
    assert np.all(gamma >= 1) and np.all(gamma <= 7.0)
    assert np.all(w0.max(axis=-1) > 0)
    if N >= 2:
        assert np.all(np.any(w0 == 0, axis=-1))
    for array in (key, beta, g, s, w, gamma, e, a):
        assert _no_ties(array)
    assert _no_ties(memory) and _no_ties(w0)


def test_strategies_can_make_zero_rows_and_keys():
    has_zero_row = lambda a: bool(np.any(np.all(a == 0, axis=-1)))
    seen = []

    @settings(max_examples=30, deadline=None, database=None)
    @given(gst.memories(2, 4, 3), gst.keys(2, 3, 3, zero=True), gst.memories(2, 4, 3, zero_rows=False))
    def collect(memory, key, full_memory):
        assert not has_zero_row(full_memory)
        seen.append((has_zero_row(memory), has_zero_row(key)))

    collect()
    assert any(m for m, _ in seen) and any(k for _, k in seen)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_strategies_feed_check_op(data):
    sh = data.draw(gst.shapes(max_B=2, max_H=2, max_N=5, max_M=3))
    w = data.draw(gst.weightings(sh["B"], sh["H"], sh["N"]))
    gst.observe(assert_gradients(softmax_forward, softmax_backward, [np.log(w)]))


def pairwise_max(x):
    return x.reshape(-1, 2).max(axis=1), x


def test_tied_max_pool_entries_that_both_take_the_gradient_are_wrong():
    """Each tied entry alone is a valid subgradient (left slope 0, right slope 1); moved together the max
    rises with slope 1, and 1 + 1 is wrong: the check of the tied entries together says so."""
    x = np.array([0.3, 0.3, -1.2, 0.5, 2.0, 2.0])

    def first_max(d, x):
        p = x.reshape(-1, 2)
        first = p[:, 0] >= p[:, 1]
        return np.stack([d * first, d * ~first], axis=1).reshape(-1)

    def both_at_tie(d, x):
        p = x.reshape(-1, 2)
        return np.stack([d * (p[:, 0] >= p[:, 1]), d * (p[:, 1] >= p[:, 0])], axis=1).reshape(-1)
    assert check_op(pairwise_max, first_max, [x]).ok
    wrong = check_op(pairwise_max, both_at_tie, [x])
    assert not wrong.ok
    assert {e.index for e in wrong.block("x0").failures} == {"together: (0,) + (1,)", "together: (4,) + (5,)"}
    assert {e.verdict for e in wrong.block("x0").failures} <= {"wrong gradient", "wrong gradient at a kink"}


def test_kinks_of_different_kinds_are_not_moved_together():
    """clip at -1 and at +1 in one input: correct with any sign of the upstream gradient."""
    x = np.array([1.0, -1.0, 1.0, -1.0, 0.3])
    for seed in range(6):
        assert check_op(lambda x: (np.clip(x, -1.0, 1.0), x), lambda d, x: d * (np.abs(x) < 1), [x], seed=seed).ok


# ---------------------------------------------------------------------------------------------------
# the checker's own resolution: each test fails a looser variant of the checker (found by a mutation
# campaign: a noise floor 100x too large, a Richardson step of the wrong order, the sharpness condition
# dropped, the allowed error rtol (|a| + |n|) instead of rtol max(|a|, |n|))
# ---------------------------------------------------------------------------------------------------

def test_richardson_estimate_has_the_promised_order():
    """R = (4 G(h/2) - G(h)) / 3 of exp at 0.3 with h = 7.4e-4: error O(h^4) ~ 1e-14 relative; a wrong
    combination (e.g. 2 G(h/2) - G(h), O(h^2) ~ 1e-7) is far outside."""
    from gradcheck.numeric import Ladder, Noise
    x = 0.3
    phi = lambda t: (np.exp(x + t), t)                            # noqa: E731
    ladder = Ladder(phi, np.exp(x), 7.4e-4, "central", Noise(np.finfo(float).eps, np.exp(x))).extend(2)
    assert abs(ladder.level(0).value - np.exp(x)) <= 1e-11 * np.exp(x)
    one_sided = Ladder(phi, np.exp(x), 7.4e-4, "forward", Noise(np.finfo(float).eps, np.exp(x))).extend(2)
    assert abs(one_sided.level(0).value - np.exp(x)) <= 1e-8 * np.exp(x)      # O(h^3) ~ 4e-10


def test_a_small_absolute_error_in_a_small_entry_is_caught():
    """Gradient entries of 1e-8 beside entries of 1, and 3e-10 added to one small entry: far above the
    round-off floor (~1e-11 here), so it must fail, naming that entry."""
    scale = np.array([1.0, 1e-8, 0.5])

    def forward(x):
        return x * scale, None

    def backward(d, cache):
        g = d * scale
        g[1] += 3e-10
        return g
    report = check_op(forward, backward, [np.array([0.4, -1.1, 2.0])])
    assert not report.ok
    assert [e.index for e in report.block("x0").failures] == ["(1,)"]


def test_a_function_that_varies_within_one_step_does_not_hide_a_mistake():
    """sin(300 x): at the first step h = 7.4e-4 the Richardson estimate is off by ~1e-3 relative, and its
    error estimate with it; a 3e-4 relative mistake must still fail (the ladder goes down first)."""
    x = np.array([0.2, -0.7, 1.3])
    forward = lambda x: (np.sin(300.0 * x), x)                                     # noqa: E731
    assert check_op(forward, lambda d, x: d * 300.0 * np.cos(300.0 * x), [x]).ok
    wrong = check_op(forward, lambda d, x: d * 300.0 * np.cos(300.0 * x) * 1.0003, [x])
    assert not wrong.ok and {e.verdict for e in wrong.block("x0").failures} == {"wrong gradient"}


@pytest.mark.parametrize("factor", [1.5, 1.9])
def test_an_error_between_one_and_two_rtol_fails(factor):
    """tanh, smooth and exact to ~1e-12 here: a backward off by factor x rtol (relative) fails at rtol."""
    x = np.array([0.3, -0.8, 1.1, 0.05])
    rtol = 1e-6
    forward = lambda x: (np.tanh(x), x)                                            # noqa: E731
    assert check_op(forward, lambda d, x: d * (1 - np.tanh(x) ** 2), [x], rtol=rtol).ok
    report = check_op(forward, lambda d, x: d * (1 - np.tanh(x) ** 2) * (1 + factor * rtol), [x], rtol=rtol)
    assert not report.ok


def test_failures_are_records():
    """Report.failures(): data to filter and assert on, one record per failing entry and per failing check."""
    x = np.array([0.0, 0.7, -1.2, 0.0])
    report = check_op(leaky_relu_forward, lambda d, x: d * np.where(x > 0, 1.0, np.where(x == 0, 0.0, 0.02)), [x],
                      names=["x"])
    records = report.failures()
    assert {(f.where, f.index) for f in records} == {("x", "(2,)"), ("x", "(0,)"), ("x", "(3,)")}
    at_kink = [f for f in records if f.verdict == "wrong gradient at a kink"]
    assert {f.index for f in at_kink} == {"(0,)", "(3,)"}
    assert all(not min(f.left, f.right) <= f.analytic <= max(f.left, f.right) and f.analytic == 0.0
               and f.error > f.allowed for f in at_kink)
    wrong = next(f for f in records if f.index == "(2,)")
    assert wrong.verdict == "wrong gradient" and np.isclose(wrong.numeric / wrong.analytic, 0.5, rtol=1e-6)
    assert check_op(np.tanh and (lambda x: (np.tanh(x), x)), lambda d, x: d * (1 - np.tanh(x) ** 2), [x]).failures() == []


# ---------------------------------------------------------------------------------------------------
# ordinary layers: integer inputs, inputs not differentiated, a float loss
# ---------------------------------------------------------------------------------------------------

def embedding_forward(table, idx):
    return table[idx], (idx, table.shape)


def embedding_backward(d, cache):
    idx, shape = cache
    g = np.zeros(shape)
    np.add.at(g, idx, d)
    return g, None                                    # no gradient for the integer indices


def test_integer_inputs_are_passed_through_and_their_slot_may_be_none():
    table, idx = np.random.default_rng(0).normal(size=(5, 3)), np.array([0, 2, 2, 4])
    report = check_op(embedding_forward, embedding_backward, [table, idx], names=["table", "idx"])
    assert report.ok, str(report)
    assert report.block("idx").summary == "not differentiated" and report.block("table").checked == 15
    assert "nondiff=['idx']" in report.reproduce and "names=['table', 'idx']" in report.reproduce

    def repeats_missed(d, cache):                     # g[idx] += d drops the second 2
        idx, shape = cache
        g = np.zeros(shape)
        g[idx] += d
        return g, None
    wrong = check_op(embedding_forward, repeats_missed, [table, idx], names=["table", "idx"])
    assert not wrong.ok and {f.index[:3] for f in wrong.failures()} == {"(2,"}


def test_a_float_loss_and_integer_labels():
    """log-softmax + NLL returning a Python float, labels an int array."""
    def nll_forward(logits, labels):
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(labels)), labels].mean()), (logp, labels)

    def nll_backward(d, cache):
        logp, labels = cache
        p = np.exp(logp)
        p[np.arange(len(labels)), labels] -= 1.0
        return d * p / len(labels), None
    x, labels = np.random.default_rng(1).normal(size=(4, 3)), np.array([0, 2, 1, 1])
    assert check_op(nll_forward, nll_backward, [x, labels]).ok
    assert not check_op(nll_forward, lambda d, c: (nll_backward(d, c)[0] * 1.001, None), [x, labels]).ok


def test_nondiff_by_name_and_a_fixed_input_mutated():
    x, mask = np.random.default_rng(2).normal(size=(3, 4)), np.array([1.0, 0.0, 1.0, 1.0])
    report = check_op(lambda x, m: (x * m, m), lambda d, m: (d * m, None), [x, mask], names=["x", "mask"],
                      nondiff=["mask"])
    assert report.ok and report.block("mask").summary == "not differentiated"

    def mutating_forward(x, m):
        m[0] = 5.0                                    # changes the fixed input it was given
        return x * m, m
    mutated = check_op(mutating_forward, lambda d, m: (d * m, None), [x, mask], nondiff=[1])
    assert [c.name for c in mutated.checks if not c.ok] == ["fixed inputs not mutated"]
    assert mask[0] == 1.0                             # the caller's array is never touched
    with pytest.raises(ValueError, match="nondiff: 'y' is not one of the inputs"):
        check_op(lambda x, m: (x * m, m), lambda d, m: (d * m, None), [x, mask], nondiff=["y"])
    with pytest.raises(ValueError, match="nothing to differentiate"):
        check_op(lambda m: (m * 1.0, m), lambda d, m: None, [np.array([1, 2])])


# ---------------------------------------------------------------------------------------------------
# tiny scales: steps follow the input's size; a check without power says so instead of passing
# ---------------------------------------------------------------------------------------------------

def test_a_small_mistake_at_a_tiny_scale_is_caught():
    """Inputs of size 1e-4 and a function that varies on that scale: with a step of 7e-4 (the old floor of
    1) the estimate was off by ~5% and a 1.0001 scaling passed; steps now follow the input's size."""
    x = np.random.default_rng(0).normal(size=6) * 1e-4
    forward = lambda x: (np.sin(3e3 * x), x)                                       # noqa: E731
    backward = lambda d, x: d * 3e3 * np.cos(3e3 * x)                              # noqa: E731
    assert check_op(forward, backward, [x]).ok
    wrong = check_op(forward, lambda d, x: backward(d, x) * 1.0001, [x])
    assert not wrong.ok and wrong.block("x0").verdict == "wrong gradient"


def test_l2_normalise_at_a_tiny_norm_misses_no_term():
    def l2_forward(x):
        n = np.sqrt(np.sum(x ** 2))
        return x / n, (x, n)

    def l2_backward(d, cache):
        x, n = cache
        y = x / n
        return (d - y * np.sum(d * y)) / n
    x = np.random.default_rng(3).normal(size=4) * 5e-8          # norm ~1e-7
    assert check_op(l2_forward, l2_backward, [x]).ok
    missing = check_op(l2_forward, lambda d, c: d / c[1], [x])
    assert not missing.ok and missing.block("x0").verdict == "wrong gradient"


def test_a_check_without_power_is_inconclusive_not_passed():
    """exp(50 x) with step=5: even at step/2048 the truncation error allows more than 1e-4 of the largest
    gradient, so the block is 'inconclusive', a failing verdict, though every entry is within its (huge)
    allowed error. The default step resolves it (entries that pass only with a large truncation error go
    on halving first)."""
    x = np.array([0.01, -0.02])
    forward, backward = (lambda x: (np.exp(50.0 * x), x)), (lambda d, x: d * 50.0 * np.exp(50.0 * x))
    report = check_op(forward, backward, [x], step=5.0)
    assert not report.ok and report.block("x0").verdict == "inconclusive"
    assert "no power" in report.block("x0").summary and "step=5.0" in report.reproduce
    assert [f.verdict for f in report.failures()] == ["inconclusive"]
    assert check_op(forward, backward, [x]).ok


def test_save_writes_the_point_and_the_reproduce_line_runs(tmp_path):
    """report.save(path): the inputs in an .npz, and a reproduce line that loads them and gives the same report."""
    x = np.array([0.0, 0.7, -1.2, 0.0])

    def leaky_wrong_at_zero(d, x):
        return d * np.where(x > 0, 1.0, np.where(x == 0, 0.0, 0.01))
    report = check_op(leaky_relu_forward, leaky_wrong_at_zero, [x], seed=3)
    line = report.save(tmp_path / "failing.npz")
    assert "gradcheck.load_inputs(" in line and "seed=3" in line
    again = eval(line, {"gradcheck": gradcheck, "check_op": check_op,                       # noqa: S307
                        "leaky_relu_forward": leaky_relu_forward, "leaky_wrong_at_zero": leaky_wrong_at_zero})
    assert [(f.index, f.verdict) for f in again.failures()] == [(f.index, f.verdict) for f in report.failures()]
    params, grads = {"w": np.array([0.5, -1.0])}, {"w": np.array([1.0, -2.0])}
    loss_report = check_loss(lambda p: float(np.sum(p["w"] ** 2)), params, grads)
    loss_line = loss_report.save(tmp_path / "loss.npz")
    p2, g2 = gradcheck.load_inputs(tmp_path / "loss.npz")
    assert "*gradcheck.load_inputs(" in loss_line and np.array_equal(p2["w"], params["w"]) and np.array_equal(g2["w"], grads["w"])

    def squares(p):
        return float(np.sum(p["w"] ** 2))
    loss_report = check_loss(squares, params, grads)
    loss_report.save(tmp_path / "first.npz")
    line = loss_report.save(tmp_path / "second.npz")            # a second save points the line at the new file
    assert "second.npz" in line and "first.npz" not in line
    assert eval(line, {"gradcheck": gradcheck, "check_loss": check_loss, "squares": squares}).ok   # noqa: S307

    def inputs_forward(x):                                        # a name holding "inputs" stays as it is
        return leaky_relu_forward(x)
    named = check_op(inputs_forward, leaky_wrong_at_zero, [x], seed=3)
    assert named.save(tmp_path / "n.npz").startswith("check_op(inputs_forward, leaky_wrong_at_zero, gradcheck.")


def test_a_backward_that_mutates_its_input_is_reported_once():
    """backward scales the input it cached in place: 'inputs not mutated' fails; the determinism and
    linearity checks, which only fail as a consequence, say they were not judged."""
    def forward(x):
        return x ** 2, x                                  # the cache is the input array itself

    def backward(d, x):
        g = 2.0 * d * x
        x *= 1.5                                          # mutates the input
        return g
    report = check_op(forward, backward, [np.array([0.3, -1.2, 2.0])])
    failed = [c.name for c in report.checks if not c.ok]
    assert failed == ["inputs not mutated"], str(report)
    assert "not judged" in report.check("backward deterministic").message


def test_dout_is_not_the_users_own_random_stream():
    """Inputs drawn from default_rng(0) and a check with seed=0: dout must not equal the input, or the
    gradient of l2-normalise (orthogonal to x) vanishes to round-off and a doubled backward passes."""
    x = np.random.default_rng(0).normal(size=(3, 5))

    def l2_forward(x):
        n = np.sqrt(np.sum(x ** 2, axis=-1, keepdims=True))
        return x / n, (x / n, n)

    def l2_backward(d, cache):
        y, n = cache
        return (d - y * np.sum(d * y, axis=-1, keepdims=True)) / n
    assert check_op(l2_forward, l2_backward, [x], seed=0).ok
    assert not check_op(l2_forward, lambda d, c: 2.0 * l2_backward(d, c), [x], seed=0).ok



def test_kinks_of_different_kinds_at_one_value_are_not_a_false_alarm():
    """relu(x * s) with s = +-1 at zeros: each entry is a valid subgradient alone; moved together the
    directions cross kinks of both kinds, which is not judged (a sum of subgradients need not lie between
    the slopes). Also CReLU-like uses of one input in two branches."""
    s = np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0])
    x = np.array([0.0, 0.0, 0.0, 0.0, 0.7, -0.4])
    for seed in range(10):
        report = check_op(lambda x: (np.maximum(x * s, 0.0), x), lambda d, x: d * s * (x * s > 0), [x], seed=seed)
        assert report.ok, str(report)
