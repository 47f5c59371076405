"""Read (eq 2) and write (eqs 3-4): finite-difference gradients, invariants, oracle, zero factors."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import oracle
from gradcheck import assert_gradients
from gradcheck import strategies as gst
from ntm_ref import memory as Mem


@st.composite
def memory_case(draw, exact_zeros=False):
    sh = draw(gst.shapes())
    B, H, N, M = sh["B"], sh["H"], sh["N"], sh["M"]
    return dict(
        sh,
        memory=draw(gst.memories(B, N, M)),
        w=draw(gst.weightings(B, H, N, exact_zeros=exact_zeros)),
        erase=draw(gst.erase_vectors(B, H, M)),
        add=draw(gst.add_vectors(B, H, M)),
        seed=draw(st.integers(0, 2 ** 16)),
    )


@given(memory_case())
def test_read_gradient(c):
    assert_gradients(Mem.read_forward, Mem.read_backward, [c["memory"], c["w"]], names=["memory", "w"],
                     seed=c["seed"])


@given(memory_case())
def test_write_gradient(c):
    assert_gradients(Mem.write_forward, Mem.write_backward, [c["memory"], c["w"], c["erase"], c["add"]],
                     names=["memory", "w", "erase", "add"], seed=c["seed"])


@given(memory_case(exact_zeros=True))
def test_agrees_with_naive_oracle(c):
    np.testing.assert_allclose(Mem.read_forward(c["memory"], c["w"])[0], oracle.read(c["memory"], c["w"]),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(Mem.write_forward(c["memory"], c["w"], c["erase"], c["add"])[0],
                               oracle.write(c["memory"], c["w"], c["erase"], c["add"]), rtol=1e-13, atol=1e-14)


@given(memory_case(), st.data())
def test_read_with_one_hot_weighting_returns_that_row(c, data):
    i = data.draw(st.integers(0, c["N"] - 1))
    w = np.zeros((c["B"], c["H"], c["N"]))
    w[:, :, i] = 1.0
    r, _ = Mem.read_forward(c["memory"], w)
    for h in range(c["H"]):
        np.testing.assert_array_equal(r[:, h], c["memory"][:, i])


@given(memory_case(), st.data())
def test_write_full_erase_on_one_hot_replaces_that_row(c, data):
    """e = 1 on a one-hot weighting replaces the row by a; with several heads on distinct rows, each
    head's row becomes its add vector and every other row is unchanged."""
    H = min(c["H"], c["N"])
    rows = data.draw(st.permutations(range(c["N"])))[:H]
    w = np.zeros((c["B"], H, c["N"]))
    for h, i in enumerate(rows):
        w[:, h, i] = 1.0
    new, _ = Mem.write_forward(c["memory"], w, np.ones((c["B"], H, c["M"])), c["add"][:, :H])
    for h, i in enumerate(rows):
        np.testing.assert_array_equal(new[:, i], c["add"][:, h])
    untouched = [i for i in range(c["N"]) if i not in rows]
    np.testing.assert_array_equal(new[:, untouched], c["memory"][:, untouched])


@given(memory_case())
def test_write_order_of_heads_does_not_matter(c):
    new, _ = Mem.write_forward(c["memory"], c["w"], c["erase"], c["add"])
    rev, _ = Mem.write_forward(c["memory"], c["w"][:, ::-1], c["erase"][:, ::-1], c["add"][:, ::-1])
    np.testing.assert_allclose(new, rev, rtol=1e-14, atol=1e-15)


def test_write_backward_exact_when_a_factor_is_zero():
    """Slot 1 fully erased by head 0 (w = 1, e = 1 -> factor 0): the gradients of head 1's erase and
    weighting through that slot are still exact (no division by the zero factor), and finite."""
    rng = np.random.default_rng(0)
    B, H, N, M = 2, 2, 4, 3
    memory = rng.normal(size=(B, N, M))
    w = rng.dirichlet(np.ones(N), size=(B, H))
    w[:, 0] = 0.0
    w[:, 0, 1] = 1.0
    erase = rng.uniform(0.1, 0.9, size=(B, H, M))
    erase[:, 0] = 1.0
    add = rng.normal(size=(B, H, M))
    out, cache = Mem.write_forward(memory, w, erase, add)
    assert np.all(cache.keep[:, 1] == 0.0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        grads = Mem.write_backward(rng.normal(size=out.shape), cache)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert_gradients(Mem.write_forward, Mem.write_backward, [memory, w, erase, add],
                     names=["memory", "w", "erase", "add"])
