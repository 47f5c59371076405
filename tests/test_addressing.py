"""Addressing (eqs 5-9): finite-difference gradients, invariants, the naive oracle, degenerate inputs."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import oracle
from gradcheck import assert_gradients
from gradcheck import strategies as gst
from ntm_ref import addressing as A

SIMPLEX_TOL = 1e-12


@st.composite
def addressing_case(draw, exact_zeros=False, zero_rows=True, max_gamma=20.0):
    """Every input of one addressing step, drawn in its own domain. -> dict of float64 arrays + shape ints."""
    sh = draw(gst.shapes())
    B, H, N, M, S = sh["B"], sh["H"], sh["N"], sh["M"], sh["S"]
    return dict(
        sh,
        memory=draw(gst.memories(B, N, M, zero_rows=zero_rows)),
        key=draw(gst.keys(B, H, M)),
        beta=draw(gst.key_strengths(B, H)),
        w_prev=draw(gst.weightings(B, H, N, exact_zeros=exact_zeros)),
        w=draw(gst.weightings(B, H, N, exact_zeros=exact_zeros)),
        g=draw(gst.gates(B, H)),
        s=draw(gst.shift_kernels(B, H, S)),
        gamma=draw(gst.sharpening_exponents(B, H, max_gamma=max_gamma)),
        seed=draw(st.integers(0, 2 ** 16)),
    )


def on_simplex(w):
    return np.all(w >= 0) and np.allclose(w.sum(axis=-1), 1.0, rtol=0, atol=SIMPLEX_TOL)


# ---------------------------------------------------------------------------------------------------
# finite differences through gradcheck, over drawn shapes and values
# ---------------------------------------------------------------------------------------------------

@given(addressing_case())
def test_cosine_similarity_gradient(c):
    assert_gradients(A.cosine_similarity_forward, A.cosine_similarity_backward,
                     [c["memory"], c["key"]], names=["memory", "key"], seed=c["seed"])


@given(addressing_case())
def test_content_gradient(c):
    assert_gradients(A.content_forward, A.content_backward, [c["memory"], c["key"], c["beta"]],
                     names=["memory", "key", "beta"], bounds={"beta": (0.0, None)}, seed=c["seed"])


@given(addressing_case())
def test_interpolate_gradient(c):
    assert_gradients(A.interpolate_forward, A.interpolate_backward, [c["w"], c["w_prev"], c["g"]],
                     names=["w_content", "w_prev", "g"], bounds={"g": (0.0, 1.0)}, seed=c["seed"])


@given(addressing_case())
def test_shift_gradient(c):
    assert_gradients(A.shift_forward, A.shift_backward, [c["w"], c["s"]], names=["w", "s"], seed=c["seed"])


@given(addressing_case())
def test_sharpen_gradient(c):
    assert_gradients(A.sharpen_forward, A.sharpen_backward, [c["w"], c["gamma"]], names=["w", "gamma"],
                     bounds={"w": (0.0, None), "gamma": (1.0, None)}, seed=c["seed"])


@given(addressing_case())
def test_address_gradient(c):
    inputs = [c[k] for k in ("memory", "w_prev", "key", "beta", "g", "s", "gamma")]
    assert_gradients(A.address_forward, A.address_backward, inputs,
                     names=["memory", "w_prev", "key", "beta", "g", "s", "gamma"],
                     bounds={"beta": (0.0, None), "g": (0.0, 1.0), "gamma": (1.0, None)}, seed=c["seed"])


@given(addressing_case(exact_zeros=True, max_gamma=20.0), st.floats(3.0, 20.0))
def test_sharpen_gradient_with_exact_zeros(c, gamma_floor):
    """Weightings with exact zeros: one-sided steps at the bound w >= 0. For gamma >= 3, w^gamma is
    smooth enough at 0 for finite differences to converge (the derivative there is 0)."""
    gamma = np.maximum(c["gamma"], gamma_floor)
    assert_gradients(A.sharpen_forward, A.sharpen_backward, [c["w"], gamma], names=["w", "gamma"],
                     bounds={"w": (0.0, None), "gamma": (1.0, None)}, seed=c["seed"])


# ---------------------------------------------------------------------------------------------------
# invariants
# ---------------------------------------------------------------------------------------------------

@given(addressing_case(exact_zeros=True))
def test_every_stage_returns_a_weighting(c):
    w, cache = A.address_forward(c["memory"], c["w_prev"], c["key"], c["beta"], c["g"], c["s"], c["gamma"])
    for stage in (cache.w_content, cache.w_gated, cache.w_shifted, cache.w):
        assert stage.shape == (c["B"], c["H"], c["N"])
        assert on_simplex(stage)
    assert w is cache.w


@given(addressing_case(), st.data())
def test_shift_with_one_hot_kernel_is_np_roll(c, data):
    k = data.draw(st.integers(0, c["S"] - 1))
    s = np.zeros((c["B"], c["H"], c["S"]))
    s[..., k] = 1.0
    out, _ = A.shift_forward(c["w"], s)
    shift_by = k - (c["S"] - 1) // 2
    np.testing.assert_array_equal(out, np.roll(c["w"], shift_by, axis=-1))


def test_shift_plus_one_moves_mass_to_the_next_slot():
    w = np.zeros((1, 1, 5))
    w[0, 0, 1] = 1.0
    s = np.array([[[0.0, 0.0, 1.0]]])  # shift_range 1: entries for shifts -1, 0, +1
    out, _ = A.shift_forward(w, s)
    assert out[0, 0, 2] == 1.0 and out.sum() == 1.0


def test_shift_wraps_around():
    w = np.zeros((1, 1, 4))
    w[0, 0, 3] = 1.0
    out, _ = A.shift_forward(w, np.array([[[0.0, 0.0, 1.0]]]))
    assert out[0, 0, 0] == 1.0


def test_shift_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        A.shift_forward(np.full((1, 1, 4), 0.25), np.full((1, 1, 2), 0.5))


@given(addressing_case())
def test_interpolate_gate_one_returns_content(c):
    out, _ = A.interpolate_forward(c["w"], c["w_prev"], np.ones_like(c["g"]))
    np.testing.assert_array_equal(out, c["w"])
    out, _ = A.interpolate_forward(c["w"], c["w_prev"], np.zeros_like(c["g"]))
    np.testing.assert_array_equal(out, c["w_prev"])


@given(addressing_case(exact_zeros=True))
def test_sharpen_gamma_one_is_identity(c):
    out, _ = A.sharpen_forward(c["w"], np.ones_like(c["gamma"]))
    np.testing.assert_allclose(out, c["w"], rtol=1e-13, atol=1e-15)


@given(addressing_case())
def test_content_prefers_the_row_equal_to_the_key(c):
    """A row parallel to head 0's key, at least as long as every other row, gets head 0's largest weight.
    (With the smooth norm the similarity of a parallel row, |v| / sqrt(|v|^2 + eps), grows with |v|, so
    the row must be the longest for this to hold exactly.)"""
    key = c["key"][:, 0, :]
    key_len = np.linalg.norm(key, axis=-1, keepdims=True)
    assume(np.all(key_len > 1e-3))
    memory = c["memory"].copy()
    longest = np.linalg.norm(memory, axis=-1).max(axis=-1)[:, None]
    memory[:, 0, :] = key / key_len * (longest + 1.0)
    w, _ = A.content_forward(memory, c["key"], np.full((c["B"], c["H"]), 50.0))
    assert np.all(w[:, 0, 0] >= w[:, 0, :].max(axis=-1) - 1e-12)


# ---------------------------------------------------------------------------------------------------
# agreement with the naive per-element loops in tests/oracle.py
# ---------------------------------------------------------------------------------------------------

@given(addressing_case(exact_zeros=True))
def test_agrees_with_naive_oracle(c):
    memory, key, beta = c["memory"], c["key"], c["beta"]
    np.testing.assert_allclose(A.cosine_similarity_forward(memory, key)[0],
                               oracle.cosine(memory, key, A.COSINE_EPS), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(A.content_forward(memory, key, beta)[0],
                               oracle.content(memory, key, beta, A.COSINE_EPS), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(A.interpolate_forward(c["w"], c["w_prev"], c["g"])[0],
                               oracle.interpolate(c["w"], c["w_prev"], c["g"]), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(A.shift_forward(c["w"], c["s"])[0], oracle.shift(c["w"], c["s"]),
                               rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(A.sharpen_forward(c["w"], c["gamma"])[0], oracle.sharpen(c["w"], c["gamma"]),
                               rtol=1e-11, atol=1e-14)


def test_shift_kernel_wider_than_memory_agrees_with_oracle():
    """N < S: several kernel entries land on the same shift modulo N; eq 8 adds their weights."""
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(2), size=(2, 1))
    s = rng.dirichlet(np.ones(5), size=(2, 1))
    np.testing.assert_allclose(A.shift_forward(w, s)[0], oracle.shift(w, s), rtol=1e-13)


# ---------------------------------------------------------------------------------------------------
# degenerate inputs: finite forward and backward, exact gradients where the function is smooth
# ---------------------------------------------------------------------------------------------------

def _all_finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


def _random_case(seed=0, B=2, H=2, N=6, M=3, S=3):
    rng = np.random.default_rng(seed)
    return dict(
        memory=rng.normal(size=(B, N, M)), key=rng.normal(size=(B, H, M)),
        beta=np.exp(rng.normal(size=(B, H))), w_prev=rng.dirichlet(np.ones(N), size=(B, H)),
        g=rng.uniform(0.1, 0.9, size=(B, H)), s=rng.dirichlet(np.ones(S), size=(B, H)),
        gamma=1.0 + np.exp(rng.normal(size=(B, H))), rng=rng,
    )


def _address_inputs(c):
    return [c[k] for k in ("memory", "w_prev", "key", "beta", "g", "s", "gamma")]


ADDRESS_NAMES = ["memory", "w_prev", "key", "beta", "g", "s", "gamma"]
ADDRESS_BOUNDS = {"beta": (0.0, None), "g": (0.0, 1.0), "gamma": (1.0, None)}


def test_zero_key_and_zero_memory_rows_are_finite_and_exact():
    c = _random_case()
    c["key"][0, 1] = 0.0
    c["memory"][1, 2:4] = 0.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        w, cache = A.address_forward(*_address_inputs(c))
        grads = A.address_backward(c["rng"].normal(size=w.shape), cache)
    assert _all_finite(w, *grads)
    # at a zero key the cosine varies on the scale sqrt(COSINE_EPS) = 1e-3: the default step (~4e-4 here)
    # leaves a truncation error of 1e-3 relative, which gradcheck calls inconclusive; 1e-5 resolves it
    assert_gradients(A.address_forward, A.address_backward, _address_inputs(c), names=ADDRESS_NAMES,
                     bounds=ADDRESS_BOUNDS, step=1e-5)


def test_all_zero_memory_is_finite_and_exact():
    c = _random_case(1)
    c["memory"][:] = 0.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        w, cache = A.address_forward(*_address_inputs(c))
        grads = A.address_backward(c["rng"].normal(size=w.shape), cache)
    assert _all_finite(w, *grads) and on_simplex(w)
    assert_gradients(A.address_forward, A.address_backward, _address_inputs(c), names=ADDRESS_NAMES,
                     bounds=ADDRESS_BOUNDS)


@pytest.mark.parametrize("big", [1e2, 1e3])
def test_large_beta_and_gamma_are_finite(big):
    c = _random_case(2)
    c["beta"][:] = big
    c["gamma"][:] = big
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        w, cache = A.address_forward(*_address_inputs(c))
        grads = A.address_backward(c["rng"].normal(size=w.shape), cache)
    assert _all_finite(w, *grads) and on_simplex(w)


def test_large_beta_gradient_is_exact():
    c = _random_case(4)
    c["beta"][:] = 1e3
    assert_gradients(A.content_forward, A.content_backward, [c["memory"], c["key"], c["beta"]],
                     names=["memory", "key", "beta"], bounds={"beta": (0.0, None)})


def test_sharpen_exact_zeros_large_gamma_finite():
    w = np.array([[[0.0, 0.5, 0.0, 0.5, 0.0]], [[1.0, 0.0, 0.0, 0.0, 0.0]]])
    for gamma in (1.0, 1.5, 13.0, 1e3):
        g = np.full((2, 1), gamma)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out, cache = A.sharpen_forward(w, g)
            dw, dgamma = A.sharpen_backward(np.arange(10.0).reshape(2, 1, 5) - 4.0, cache)
        assert _all_finite(out, dw, dgamma) and on_simplex(out)
        assert np.all(out[w == 0] < 1e-29)


def test_sharpen_stays_a_distribution_for_spread_weights_and_large_gamma():
    """The failure seen in the field: gamma ~ 13 on a spread weighting, sum w^gamma ~ 1e-12. The log-space
    form keeps the output summing to 1."""
    rng = np.random.default_rng(5)
    w = rng.dirichlet(np.ones(128) * 50.0, size=(4, 1))
    out, _ = A.sharpen_forward(w, np.full((4, 1), 13.0))
    assert on_simplex(out)
