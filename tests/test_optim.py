"""Tests of ntm_ref.optim: each optimiser against a plain per-element scalar loop written here
(python floats and math.sqrt, not the module), purity, checkpoint round trips, clipping and
make_optimizer's errors. An optional comparison with torch.optim runs when torch is importable.
"""
import copy
import math

import numpy as np
import pytest

from ntm_ref import optim
from ntm_ref.optim import (Adam, GravesRMSProp, RMSPropMomentum, clip_elementwise,
                           clip_global_norm, global_norm, make_optimizer)

N_STEPS = 4


# ----------------------------------------------------------------------------------------------
# Fixtures: a small params dict (a matrix, a vector, a 0-d scalar; names with "/") and a
# sequence of non-trivial gradients: mixed signs and scales, sign flips, one exact zero.
# ----------------------------------------------------------------------------------------------

def make_params():
    rng = np.random.default_rng(0)
    return {
        "ctrl/W": rng.normal(size=(2, 3)),
        "b": rng.normal(size=(3,)),
        "s": np.array(0.7),
    }


def make_grad_seq(params, n_steps=N_STEPS):
    rng = np.random.default_rng(1)
    seq = []
    for t in range(n_steps):
        grads = {}
        for name, p in params.items():
            scale = 10.0 ** rng.uniform(-2, 1, size=np.shape(p))
            grads[name] = rng.choice([-1.0, 1.0], size=np.shape(p)) * scale
        if t == 0:
            grads["b"][1] = 0.0          # an exact zero gradient on the first step
        grads["s"] = np.array((-1.0) ** t * 0.3 + 0.05 * t)   # a sign flip every step
        seq.append(grads)
    return seq


def run(opt, params, grad_seq, state=None):
    """Apply opt for every gradient in grad_seq; return the list of (params, state) after each."""
    if state is None:
        state = opt.init_state(params)
    out = []
    for grads in grad_seq:
        params, state = opt.step(params, grads, state)
        out.append((params, state))
    return out


# ----------------------------------------------------------------------------------------------
# Independent scalar oracles: one parameter element, python floats, the formulas written out.
# Each returns, for every step, a dict with the parameter and the optimiser's slots.
# ----------------------------------------------------------------------------------------------

def graves_scalar(theta, gs, lr, decay, momentum, eps):
    n = gbar = delta = 0.0
    out = []
    for g in gs:
        n = decay * n + (1 - decay) * g * g
        gbar = decay * gbar + (1 - decay) * g
        delta = momentum * delta - lr * g / math.sqrt(n - gbar * gbar + eps)
        theta = theta + delta
        out.append({"theta": theta, "n": n, "gbar": gbar, "delta": delta})
    return out


def rmsprop_torch_form_scalar(theta, gs, lr, alpha, momentum, eps, centered, v_init):
    v, gbar, buf = v_init, 0.0, 0.0
    out = []
    for g in gs:
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            gbar = alpha * gbar + (1 - alpha) * g
            denom = math.sqrt(v - gbar * gbar) + eps
        else:
            denom = math.sqrt(v) + eps
        buf = momentum * buf + g / denom
        theta = theta - lr * buf
        rec = {"theta": theta, "v": v, "buf": buf}
        if centered:
            rec["gbar"] = gbar
        out.append(rec)
    return out


def rmsprop_tf1_form_scalar(theta, gs, lr, rho, momentum, eps, centered, v_init):
    ms, mg, mom = v_init, 0.0, 0.0
    out = []
    for g in gs:
        ms = rho * ms + (1 - rho) * g * g
        if centered:
            mg = rho * mg + (1 - rho) * g
            mom = momentum * mom + lr * g / math.sqrt(ms - mg * mg + eps)
        else:
            mom = momentum * mom + lr * g / math.sqrt(ms + eps)
        theta = theta - mom
        rec = {"theta": theta, "v": ms, "mom": mom}
        if centered:
            rec["gbar"] = mg
        out.append(rec)
    return out


def adam_scalar(theta, gs, lr, beta1, beta2, eps):
    m = v = 0.0
    out = []
    for t, g in enumerate(gs, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append({"theta": theta, "m": m, "v": v})
    return out


def check_against_scalar(opt, oracle, **hp):
    """Run opt on the fixtures and compare params and every slot, after every step, with the
    per-element oracle."""
    params = make_params()
    grad_seq = make_grad_seq(params)
    trajectory = run(opt, params, grad_seq)
    for name, p in params.items():
        flat_p = p.ravel().tolist()
        flat_gs = [g[name].ravel().tolist() for g in grad_seq]
        for i, theta0 in enumerate(flat_p):
            expected = oracle(theta0, [gs[i] for gs in flat_gs], **hp)
            for t, (new_params, new_state) in enumerate(trajectory):
                assert int(new_state["step"]) == t + 1
                got = new_params[name].ravel()[i]
                assert got == pytest.approx(expected[t]["theta"], rel=1e-12, abs=1e-300), \
                    (name, i, t, "theta")
                for slot, value in expected[t].items():
                    if slot == "theta":
                        continue
                    got = new_state[f"{slot}/{name}"].ravel()[i]
                    assert got == pytest.approx(value, rel=1e-12, abs=1e-300), (name, i, t, slot)
    # The parameters really moved, by more than round-off.
    final = trajectory[-1][0]
    for name in params:
        assert np.all(np.abs(final[name] - params[name]) > 1e-8)


# ----------------------------------------------------------------------------------------------
# 1. Each optimiser against its scalar oracle.
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hp", [
    dict(lr=1e-4, decay=0.95, momentum=0.9, eps=1e-4),     # the paper's setting
    dict(lr=3e-2, decay=0.8, momentum=0.5, eps=1e-3),      # something else, larger moves
])
def test_graves_rmsprop_matches_scalar_loop(hp):
    check_against_scalar(GravesRMSProp(**hp), graves_scalar, **hp)


def test_graves_rmsprop_defaults_are_the_papers():
    opt = GravesRMSProp()
    assert (opt.lr, opt.decay, opt.momentum, opt.eps) == (1e-4, 0.95, 0.9, 1e-4)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("v_init", [0.0, 1.0])
def test_rmsprop_torch_form_matches_scalar_loop(centered, v_init):
    hp = dict(lr=1e-2, alpha=0.9, momentum=0.8, eps=1e-8, centered=centered, v_init=v_init)
    opt = RMSPropMomentum(eps_inside_sqrt=False, **hp)
    check_against_scalar(opt, rmsprop_torch_form_scalar, **hp)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("v_init", [0.0, 1.0])
def test_rmsprop_tf1_form_matches_scalar_loop(centered, v_init):
    opt = RMSPropMomentum(lr=1e-2, alpha=0.9, momentum=0.8, eps=1e-6, centered=centered,
                          eps_inside_sqrt=True, v_init=v_init)
    check_against_scalar(opt, rmsprop_tf1_form_scalar, lr=1e-2, rho=0.9, momentum=0.8, eps=1e-6,
                         centered=centered, v_init=v_init)


def test_rmsprop_defaults_match_scalar_loop():
    opt = RMSPropMomentum()
    check_against_scalar(opt, rmsprop_torch_form_scalar, lr=1e-4, alpha=0.95, momentum=0.9,
                         eps=1e-10, centered=False, v_init=0.0)


@pytest.mark.parametrize("hp", [
    dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8),
    dict(lr=5e-2, beta1=0.5, beta2=0.9, eps=1e-3),
])
def test_adam_matches_scalar_loop(hp):
    check_against_scalar(Adam(**hp), adam_scalar, **hp)


def test_adam_first_step_is_about_lr_times_sign():
    params = make_params()
    grads = make_grad_seq(params)[0]
    opt = Adam(lr=1e-3)
    new_params, _ = opt.step(params, grads, opt.init_state(params))
    for name in params:
        moved = new_params[name] - params[name]
        expected = -1e-3 * np.sign(grads[name])
        # |g| >= 1e-2 here (or exactly 0), so lr * g / (|g| + eps) is within lr * 1e-6 of it.
        np.testing.assert_allclose(moved, expected, rtol=0, atol=1e-3 * 1e-6 + 1e-15)
    assert new_params["b"][1] == params["b"][1]   # a zero gradient does not move the parameter


def test_centered_tf1_rmsprop_with_zero_init_is_graves():
    """The relation stated in the docstrings: Graves 2013 = centred, eps inside sqrt, v from 0."""
    params = make_params()
    grad_seq = make_grad_seq(params)
    graves = run(GravesRMSProp(lr=1e-3, decay=0.9, momentum=0.7, eps=1e-4), params, grad_seq)
    tf1 = run(RMSPropMomentum(lr=1e-3, alpha=0.9, momentum=0.7, eps=1e-4, centered=True,
                              eps_inside_sqrt=True, v_init=0.0), params, grad_seq)
    for (pg, sg), (pt, st) in zip(graves, tf1):
        for name in params:
            np.testing.assert_allclose(pg[name], pt[name], rtol=1e-13, atol=0)
            np.testing.assert_allclose(sg[f"delta/{name}"], -st[f"mom/{name}"], rtol=1e-13, atol=0)


def test_tf1_ones_init_changes_early_steps():
    """v_init=1 (TF1) and v_init=0 give different updates early on, as documented."""
    params = make_params()
    grad_seq = make_grad_seq(params)
    kw = dict(lr=1e-3, eps_inside_sqrt=True)
    p0 = run(RMSPropMomentum(v_init=0.0, **kw), params, grad_seq)[-1][0]
    p1 = run(RMSPropMomentum(v_init=1.0, **kw), params, grad_seq)[-1][0]
    assert not np.allclose(p0["ctrl/W"], p1["ctrl/W"], rtol=1e-3)


# ----------------------------------------------------------------------------------------------
# 2. Purity, state layout, checkpoint round trip.
# ----------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "graves": lambda: GravesRMSProp(lr=1e-3),
    "rmsprop": lambda: RMSPropMomentum(lr=1e-3),
    "rmsprop_centered": lambda: RMSPropMomentum(lr=1e-3, centered=True),
    "rmsprop_tf1": lambda: RMSPropMomentum(lr=1e-3, centered=True, eps_inside_sqrt=True,
                                           v_init=1.0),
    "adam": lambda: Adam(),
}


@pytest.fixture(params=sorted(OPTIMIZERS))
def opt(request):
    return OPTIMIZERS[request.param]()


def test_step_does_not_mutate_or_alias_inputs(opt):
    params = make_params()
    grad_seq = make_grad_seq(params)
    state = run(opt, params, grad_seq[:2])[-1][1]      # a state with non-zero slots
    grads = grad_seq[2]
    saved = copy.deepcopy((params, grads, state))
    new_params, new_state = opt.step(params, grads, state)
    for before, after in zip(saved, (params, grads, state)):
        assert before.keys() == after.keys()
        for k in before:
            assert np.array_equal(before[k], after[k]), k
    inputs = list(params.values()) + list(grads.values()) + list(state.values())
    for out in list(new_params.values()) + list(new_state.values()):
        assert not any(np.shares_memory(out, x) for x in inputs)


def test_step_is_a_function_of_its_inputs_only(opt):
    """No hidden state in the optimiser object: the same inputs give the same outputs."""
    params = make_params()
    grads = make_grad_seq(params)[0]
    state = opt.init_state(params)
    a = opt.step(params, grads, state)
    opt.step(*a[:1], grads, a[1])                      # an unrelated call in between
    b = opt.step(params, grads, state)
    for da, db in zip(a, b):
        assert da.keys() == db.keys()
        for k in da:
            assert np.array_equal(da[k], db[k])


def test_state_layout(opt):
    params = make_params()
    state = opt.init_state(params)
    assert state["step"].dtype == np.int64 and state["step"].shape == () and state["step"] == 0
    for key, value in state.items():
        assert isinstance(key, str) and isinstance(value, np.ndarray)
        if key != "step":
            slot, name = key.split("/", 1)
            assert value.shape == np.shape(params[name]) and value.dtype == np.float64
    new_params, new_state = opt.step(params, make_grad_seq(params)[0], state)
    assert new_state.keys() == state.keys()
    assert new_state["step"].dtype == np.int64 and new_state["step"].shape == ()
    assert int(new_state["step"]) == 1
    for name, p in params.items():
        assert new_params[name].shape == p.shape and new_params[name].dtype == np.float64


def test_state_round_trips_through_npz(opt, tmp_path):
    params = make_params()
    grad_seq = make_grad_seq(params)
    straight = run(opt, params, grad_seq)
    mid_params, mid_state = straight[1]
    path = tmp_path / "ckpt.npz"
    np.savez(path, **mid_state)
    with np.load(path, allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    assert loaded.keys() == mid_state.keys()
    assert loaded["step"].dtype == np.int64 and loaded["step"].shape == ()
    resumed = run(opt, mid_params, grad_seq[2:], state=loaded)
    for (p1, s1), (p2, s2) in zip(straight[2:], resumed):
        for k in p1:
            assert np.array_equal(p1[k], p2[k])
        for k in s1:
            assert np.array_equal(s1[k], s2[k])


def test_mismatched_inputs_raise(opt):
    params = make_params()
    grads = make_grad_seq(params)[0]
    state = opt.init_state(params)
    with pytest.raises(ValueError, match="missing"):
        opt.step(params, {k: v for k, v in grads.items() if k != "b"}, state)
    with pytest.raises(ValueError, match="shape"):
        opt.step(params, {**grads, "b": np.zeros(4)}, state)
    with pytest.raises(ValueError, match="state"):
        opt.step(params, grads, {k: v for k, v in state.items() if not k.endswith("/b")})
    with pytest.raises(ValueError, match="step"):
        opt.step(params, grads, {**state, "step": np.array(1.5)})


def test_state_of_another_optimiser_is_refused():
    params = make_params()
    grads = make_grad_seq(params)[0]
    with pytest.raises(ValueError, match="state"):
        GravesRMSProp().step(params, grads, Adam().init_state(params))
    with pytest.raises(ValueError, match="state"):   # torch-form buf/ is not TF1-form mom/
        RMSPropMomentum(eps_inside_sqrt=True).step(
            params, grads, RMSPropMomentum().init_state(params))
    with pytest.raises(ValueError, match="state"):
        RMSPropMomentum(centered=True).step(params, grads, RMSPropMomentum().init_state(params))


def test_optimiser_objects_are_immutable():
    opt = GravesRMSProp()
    with pytest.raises(Exception):
        opt.lr = 1.0


# ----------------------------------------------------------------------------------------------
# 3. Clipping.
# ----------------------------------------------------------------------------------------------

def test_clip_elementwise():
    grads = {"a": np.array([[-25.0, -10.0, -3.0], [0.0, 9.99, 11.0]]), "s": np.array(-1e6)}
    saved = copy.deepcopy(grads)
    out = clip_elementwise(grads)
    np.testing.assert_array_equal(out["a"], [[-10.0, -10.0, -3.0], [0.0, 9.99, 10.0]])
    assert out["s"] == -10.0 and out["s"].shape == ()
    np.testing.assert_array_equal(clip_elementwise(grads, limit=2.5)["a"],
                                  [[-2.5, -2.5, -2.5], [0.0, 2.5, 2.5]])
    for k in grads:
        assert np.array_equal(grads[k], saved[k])
        assert not np.shares_memory(out[k], grads[k])


def test_global_norm_by_hand():
    grads = {"a": np.array([[3.0, 0.0], [0.0, 4.0]]), "b": np.array([12.0]), "s": np.array(84.0)}
    # sqrt(9 + 16 + 144 + 7056) = sqrt(7225) = 85
    assert global_norm(grads) == 85.0


def test_clip_global_norm_below_limit_is_identity():
    grads = {"a": np.array([3.0, -4.0]), "b": np.array([[12.0]])}      # norm 13
    out, norm = clip_global_norm(grads, max_norm=50.0)
    assert norm == 13.0
    for k in grads:
        assert np.array_equal(out[k], grads[k]) and not np.shares_memory(out[k], grads[k])
    out, norm = clip_global_norm(grads, max_norm=13.0)                  # exactly at the limit
    assert norm == 13.0 and np.array_equal(out["a"], grads["a"])


def test_clip_global_norm_above_limit_scales_all():
    grads = {"a": np.array([30.0, -40.0]), "b": np.array([[120.0]])}   # norm 130
    saved = copy.deepcopy(grads)
    out, norm = clip_global_norm(grads)                                  # default 50
    assert norm == 130.0
    np.testing.assert_allclose(out["a"], [30.0 * 50 / 130, -40.0 * 50 / 130], rtol=1e-15)
    np.testing.assert_allclose(out["b"], [[120.0 * 50 / 130]], rtol=1e-15)
    assert global_norm(out) == pytest.approx(50.0, rel=1e-14)
    for k in grads:
        assert np.array_equal(grads[k], saved[k])


def test_clip_global_norm_non_finite_passes_through():
    grads = {"a": np.array([np.inf, 1.0])}
    out, norm = clip_global_norm(grads)
    assert norm == np.inf and np.array_equal(out["a"], grads["a"])
    out, norm = clip_global_norm({"a": np.array([np.nan, 1.0])})
    assert math.isnan(norm) and out["a"][1] == 1.0


@pytest.mark.parametrize("call", [
    lambda: clip_elementwise({"a": np.ones(2)}, limit=0.0),
    lambda: clip_global_norm({"a": np.ones(2)}, max_norm=-1.0),
])
def test_clip_limits_must_be_positive(call):
    with pytest.raises(ValueError, match="allowed"):
        call()


# ----------------------------------------------------------------------------------------------
# 4. make_optimizer.
# ----------------------------------------------------------------------------------------------

def test_make_optimizer_builds_each():
    assert make_optimizer("graves_rmsprop") == GravesRMSProp()
    assert make_optimizer("graves_rmsprop", lr=3e-5) == GravesRMSProp(lr=3e-5)
    assert make_optimizer("rmsprop", centered=True, eps_inside_sqrt=True) == \
        RMSPropMomentum(centered=True, eps_inside_sqrt=True)
    assert make_optimizer("adam", beta2=0.99) == Adam(beta2=0.99)
    assert set(optim.OPTIMIZERS) == {"graves_rmsprop", "rmsprop", "adam"}


@pytest.mark.parametrize("name", ["sgd", "RMSProp", "", None])
def test_make_optimizer_unknown_name(name):
    with pytest.raises(ValueError) as e:
        make_optimizer(name)
    msg = str(e.value)
    assert repr(name) in msg and "graves_rmsprop" in msg and "adam" in msg and "rmsprop" in msg


@pytest.mark.parametrize("name, field, value", [
    ("graves_rmsprop", "lr", 0.0),
    ("graves_rmsprop", "lr", -1e-4),
    ("graves_rmsprop", "lr", float("nan")),
    ("graves_rmsprop", "decay", 1.0),
    ("graves_rmsprop", "decay", 0.0),
    ("graves_rmsprop", "momentum", 1.0),
    ("graves_rmsprop", "momentum", -0.1),
    ("graves_rmsprop", "eps", 0.0),
    ("rmsprop", "lr", float("inf")),
    ("rmsprop", "alpha", 1.5),
    ("rmsprop", "eps", -1e-8),
    ("rmsprop", "centered", "yes"),
    ("rmsprop", "eps_inside_sqrt", 1),
    ("rmsprop", "v_init", -1.0),
    ("adam", "lr", "1e-3"),
    ("adam", "lr", True),
    ("adam", "beta1", 1.0),
    ("adam", "beta2", -0.5),
    ("adam", "eps", 0.0),
])
def test_make_optimizer_invalid_hyperparameter(name, field, value):
    with pytest.raises(ValueError) as e:
        make_optimizer(name, **{field: value})
    msg = str(e.value)
    assert field in msg and repr(value) in msg and "allowed" in msg


def test_make_optimizer_unknown_hyperparameter():
    with pytest.raises(ValueError) as e:
        make_optimizer("adam", decay=0.9)
    msg = str(e.value)
    assert "decay" in msg and "0.9" in msg and "beta1" in msg   # names the allowed ones


def test_constructor_validates_too():
    with pytest.raises(ValueError, match="decay"):
        GravesRMSProp(decay=1.2)


# ----------------------------------------------------------------------------------------------
# 5. Optional: against torch.optim, in float64, over 5 steps (skipped only if torch is absent).
# ----------------------------------------------------------------------------------------------

def _torch_trajectory(torch, make_torch_opt, params, grad_seq):
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for k, v in params.items()}
    topt = make_torch_opt(list(tparams.values()))
    out = []
    for grads in grad_seq:
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[k], dtype=torch.float64)
        topt.step()
        out.append({k: p.detach().numpy().copy() for k, p in tparams.items()})
    return out


@pytest.mark.parametrize("which", ["rmsprop", "rmsprop_centered", "adam"])
def test_against_torch(which):
    torch = pytest.importorskip("torch")
    params = make_params()
    grad_seq = make_grad_seq(params, n_steps=5)
    if which == "adam":
        ours = Adam(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6)
        make = lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6)
    else:
        centered = which == "rmsprop_centered"
        ours = RMSPropMomentum(lr=1e-2, alpha=0.9, momentum=0.8, eps=1e-8, centered=centered)
        make = lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.9, eps=1e-8, momentum=0.8,
                                              centered=centered)
    expected = _torch_trajectory(torch, make, params, grad_seq)
    got = run(ours, params, grad_seq)
    for (p_ours, _), p_torch in zip(got, expected):
        for k in params:
            np.testing.assert_allclose(p_ours[k], p_torch[k], rtol=1e-12, atol=1e-14)
