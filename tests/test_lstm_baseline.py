"""The LSTM baseline: finite-difference checks through time, wiring, batch independence."""
import numpy as np
import pytest

from gradcheck import assert_loss_gradients
from model_helpers import randomise_biases
from ntm_ref.config import NTMConfig
from ntm_ref.controller import ControllerState
from ntm_ref.lstm_baseline import LSTMBaseline

RTOL = 1e-6


def generic_baseline(config, seed, skip):
    """An LSTM baseline at a generic point (see model_helpers.randomise_biases)."""
    return randomise_biases(LSTMBaseline(config, seed=seed, skip_connections=skip), seed)


def batch(config, B=2, T=5, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, config.input_size))
    y = (rng.random((B, T, config.output_size)) > 0.5).astype(float)
    mask = np.ones((B, T))
    mask[1:, -2:] = 0.0
    return x, y, mask


def loss_fn(model, x, y, mask):
    def f(params):
        saved, model.params = model.params, params
        try:
            return model.run(x, y, mask).loss
        finally:
            model.params = saved
    return f


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("sizes", [(4,), (4, 3, 5)])
@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_gradients(skip, sizes, T, clip):
    config = NTMConfig(input_size=3, output_size=2, controller_size=sizes, clip_value=clip)
    model = generic_baseline(config, seed=T, skip=skip)
    x, y, mask = batch(config, T=T)
    mask[:] = 1.0 if T < 3 else mask
    result = model.run(x, y, mask)
    assert_loss_gradients(loss_fn(model, x, y, mask), model.params, result.grads, mode="full", rtol=RTOL)
    assert_loss_gradients(lambda p: model.run(p["x"], y, mask).loss, {"x": x}, {"x": result.dx},
                          mode="full", rtol=RTOL)
    for key, g in result.grads.items():
        assert np.any(g != 0), key


def test_gradient_of_explicit_initial_state():
    config = NTMConfig(input_size=3, output_size=2, controller_size=(4, 3))
    model = generic_baseline(config, seed=0, skip=True)
    x, y, mask = batch(config)
    rng = np.random.default_rng(2)
    arrays = {f"{k}{l}": rng.normal(size=(2, s)) for k in "hc" for l, s in enumerate((4, 3))}
    build = lambda a: ControllerState((a["h0"], a["h1"]), (a["c0"], a["c1"]))  # noqa: E731
    d = model.run(x, y, mask, state=build(arrays)).dstate0
    grads = {"h0": d.h[0], "h1": d.h[1], "c0": d.c[0], "c1": d.c[1]}
    assert_loss_gradients(lambda a: model.run(x, y, mask, state=build(a)).loss, arrays, grads, rtol=RTOL)


def test_batch_equals_single_runs():
    config = NTMConfig(input_size=3, output_size=2, controller_size=(4, 3))
    model = generic_baseline(config, seed=1, skip=True)
    x, y, mask = batch(config, B=3)
    loss, grads = model.loss_and_grads(x, y, mask)
    singles = [model.loss_and_grads(x[b:b + 1], y[b:b + 1], mask[b:b + 1]) for b in range(3)]
    np.testing.assert_allclose(loss, np.mean([s[0] for s in singles]), rtol=1e-12)
    for key in grads:
        np.testing.assert_allclose(grads[key], np.mean([s[1][key] for s in singles], axis=0),
                                   rtol=1e-12, atol=1e-14, err_msg=key)


def test_same_seed_same_params_and_shapes():
    config = NTMConfig(input_size=3, output_size=2, controller_size=(4, 3))
    a, b = LSTMBaseline(config, seed=5), LSTMBaseline(config, seed=5)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    x, _, _ = batch(config)
    assert a.forward(x).shape == (2, 5, 2)
    with pytest.raises(ValueError, match="^x: got shape"):
        a.run(np.zeros((2, 5, 4)))


def test_agrees_with_a_naive_two_step_forward():
    """Wiring (finite differences cannot see it): layer 2 at step t reads [x_t, h1_t], and the output
    reads [h1_t, h2_t], checked against a plain re-implementation of two steps."""
    config = NTMConfig(input_size=3, output_size=2, controller_size=(4, 3), clip_value=None)
    model = generic_baseline(config, seed=0, skip=True)
    p = model.params
    x, _, _ = batch(config, B=1, T=2)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731

    def cell(inp, h, c, l):
        z = np.concatenate([inp, h]) @ p[f"ctrl.{l}.W"] + p[f"ctrl.{l}.b"]
        C = h.size
        i, f, o, g = sig(z[:C]), sig(z[C:2 * C]), sig(z[2 * C:3 * C]), np.tanh(z[3 * C:])
        c = f * c + i * g
        return o * np.tanh(c), c

    h = [p["ctrl.0.h0"], p["ctrl.1.h0"]]
    c = [p["ctrl.0.c0"], p["ctrl.1.c0"]]
    expected = []
    for t in range(2):
        h[0], c[0] = cell(x[0, t], h[0], c[0], 0)
        h[1], c[1] = cell(np.concatenate([x[0, t], h[0]]), h[1], c[1], 1)
        expected.append(np.concatenate(h) @ p["out.W"] + p["out.b"])
    np.testing.assert_allclose(model.run(x).logits[0], np.array(expected), rtol=1e-13)
