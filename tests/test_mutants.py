"""Tests that kill mutants which survived a mutation campaign (docs/mutation.md lists them): each was a
one-line change to ntm_ref that the rest of the suite did not notice. Every test names its mutant."""
import os

import numpy as np
import pytest

import oracle
from model_helpers import TINY, generic_model, make_batch
from ntm_ref import activations as act
from ntm_ref import checkpoint as ckpt
from ntm_ref.checkpoint import CHECKPOINT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from ntm_ref.compare import compare_traces
from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM
from ntm_ref.optim import Adam, GravesRMSProp, RMSPropMomentum, make_optimizer
from ntm_ref.trace import preset_trace

CONFIG = NTMConfig(**TINY)


def _saved(tmp_path, name="checkpoint.npz"):
    """A valid checkpoint of a tiny model.  -> (path, model, optimiser state, meta)."""
    model = NTM(CONFIG, seed=1)
    state = Adam().init_state(model.params)
    meta = {"step": 3}
    path = str(tmp_path / name)
    save_checkpoint(path, model.params, state, CONFIG, meta)
    return path, model, state, meta


def _entries(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _rewrite(path, arrays, recompute_checksum):
    """Write ``arrays`` back to ``path`` as a checkpoint file, with a fresh checksum if asked (so that only
    the planted change is wrong) or with the stored one (so that the checksum must notice it)."""
    arrays = dict(arrays)
    if recompute_checksum:
        arrays.pop("checksum")
        arrays["checksum"] = np.array(ckpt._checksum(arrays))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# --- 1. _checksum hashing a.size instead of a.shape ----------------------------------------------------

def test_checksum_covers_the_shape_not_only_the_bytes(tmp_path):
    """A parameter reshaped (same bytes, same size, another shape) under the old checksum is corrupted."""
    path, model, *_ = _saved(tmp_path)
    arrays = _entries(path)
    W = arrays["param/read.W"]
    assert W.ndim == 2 and W.shape[0] != W.shape[1]
    arrays["param/read.W"] = W.reshape(W.shape[1], W.shape[0])     # the same bytes in C order
    _rewrite(path, arrays, recompute_checksum=False)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)                       # no expected_params: only the checksum can notice


# --- 2. version != CHECKPOINT_VERSION -> version > CHECKPOINT_VERSION -----------------------------------

@pytest.mark.parametrize("version", [CHECKPOINT_VERSION - 1, CHECKPOINT_VERSION + 1])
def test_an_older_or_newer_format_version_is_refused(tmp_path, version):
    """A file that is valid in every other way (its checksum recomputed) but of another version."""
    path, *_ = _saved(tmp_path)
    arrays = _entries(path)
    arrays["format_version"] = np.array(version, dtype=np.int64)
    _rewrite(path, arrays, recompute_checksum=True)
    with pytest.raises(CheckpointError, match=f"checkpoint format version {version}, this ntm_ref reads"):
        load_checkpoint(path)


# --- 3. the shape checks replaced by size checks --------------------------------------------------------

def _transposed(params, name="read.W"):
    """params with ``name`` (a non-square matrix) transposed: the same size, another shape."""
    W = params[name]
    assert W.ndim == 2 and W.shape[0] != W.shape[1]
    return {**params, name: np.ascontiguousarray(W.T)}


def test_load_refuses_a_transposed_parameter_of_the_same_size(tmp_path):
    model = NTM(CONFIG, seed=1)
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, _transposed(model.params), {}, CONFIG, {"step": 0})
    with pytest.raises(CheckpointError, match=r"parameter read\.W has shape"):
        load_checkpoint(path, expected_params=model.params)


def test_from_arrays_refuses_a_transposed_parameter_of_the_same_size():
    model = NTM(CONFIG, seed=1)
    with pytest.raises(ValueError, match=r"parameter read\.W: shape"):
        NTM.from_arrays(CONFIG, _transposed(model.params))


# --- 4. except BaseException -> except Exception around the atomic write -------------------------------

@pytest.mark.parametrize("where", ["savez", "fsync"])
def test_ctrl_c_during_a_save_leaves_only_the_previous_files(tmp_path, monkeypatch, where):
    """A KeyboardInterrupt while the checkpoint is written: the previous checkpoint is intact and no other
    file (whatever the temporary file is called) is left in the folder."""
    path, model, state, meta = _saved(tmp_path)
    before_files = sorted(os.listdir(tmp_path))
    before = open(path, "rb").read()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    if where == "savez":
        monkeypatch.setattr(np, "savez", interrupt)
    else:                                               # at the fsync: the data written, not yet renamed
        monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model.params, state, CONFIG, {"step": 4})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == before_files
    assert open(path, "rb").read() == before
    assert load_checkpoint(path).meta == meta


# --- 5. compare's float64 default rtol 1e-10 -> 1e-8; 6. <= -> < in the tolerance test -----------------

@pytest.fixture(scope="module")
def float64_trace():
    return preset_trace("tiny-ff")


def _scaled_logits(trace, factor):
    other = dict(trace)
    other["fwd/logits"] = trace["fwd/logits"] * factor
    return other


def test_a_relative_error_of_1e_9_differs_under_the_float64_defaults(float64_trace):
    logits = float64_trace["fwd/logits"]
    assert logits.dtype == np.float64 and np.abs(logits).max() > 1e-2   # where atol 1e-12 plays no part
    cmp = compare_traces(float64_trace, _scaled_logits(float64_trace, 1 + 1e-9))
    assert not cmp.agrees and cmp.first_divergence.name == "fwd/logits"
    assert compare_traces(float64_trace, _scaled_logits(float64_trace, 1 + 1e-11)).agrees


def test_identical_traces_agree_at_zero_tolerance(float64_trace):
    other = {k: np.array(v, copy=True) for k, v in float64_trace.items()}
    cmp = compare_traces(float64_trace, other, rtol=0, atol=0)
    assert cmp.agrees and all(r.bad == 0 for r in cmp.rows)
    assert not compare_traces(float64_trace, _scaled_logits(float64_trace, 1 + 1e-15), rtol=0, atol=0).agrees


@pytest.mark.parametrize("rtol, atol", [(0.0, 0.25), (0.5, 0.0), (0.25, 0.125)])
def test_an_error_exactly_at_the_tolerance_agrees(float64_trace, rtol, atol):
    """|other - ref| <= atol + rtol |ref| with equality (numbers exact in binary): inside; a hair less
    tolerance: outside."""
    ref = dict(float64_trace)
    ref["fwd/logits"] = float64_trace["fwd/logits"].copy()
    ref["fwd/logits"][0, 1, 0] = 0.5
    other = dict(ref)
    other["fwd/logits"] = ref["fwd/logits"].copy()
    other["fwd/logits"][0, 1, 0] = 0.75                          # an error of exactly 0.25
    assert atol + rtol * 0.5 == 0.25
    assert compare_traces(ref, other, rtol=rtol, atol=atol).agrees
    below = lambda v: np.nextafter(v, -1.0) if v else 0.0     # noqa: E731  (the next float down)
    tighter = compare_traces(ref, other, rtol=below(rtol), atol=below(atol))
    row = {r.name: r for r in tighter.rows}["fwd/logits"]
    assert row.bad == 1 and row.first_index == (0, 1, 0) and row.first_step == 1
    assert tighter.first_divergence.name == "fwd/logits"


# --- found by scripts/mutate.py (docs/mutation.md): compare's table and its two-axis arrays -------------

def test_a_two_axis_array_with_a_time_axis_reports_its_step(float64_trace):
    """A (B, T) input/mask (another producer's trace may keep the mask unbroadcast, in both traces): a
    change at step 3 is found at step 3, with per-step rows (mutant: `r.ndim >= 2` -> `r.ndim > 2`)."""
    ref = dict(float64_trace)
    ref["input/mask"] = float64_trace["input/mask"][:, :, 0].copy()          # (B, T)
    other = dict(ref)
    other["input/mask"] = ref["input/mask"].copy()
    other["input/mask"][0, 3] = 1.0 - ref["input/mask"][0, 3]
    row = {r.name: r for r in compare_traces(ref, other).rows}["input/mask"]
    assert row.bad == 1 and row.first_step == 3 and row.first_index == (0, 3)
    assert row.per_step is not None and len(row.per_step) == ref["input/mask"].shape[1]
    assert [bad for _, _, bad in row.per_step] == [0, 0, 0, 1, 0]


def test_the_table_lists_every_array_unless_only_failures(float64_trace):
    """format_table's default lists agreeing arrays too; only_failures=True leaves them out (mutants:
    the default True, and `only_failures and r.agrees` -> `or`)."""
    from ntm_ref.compare import format_table
    cmp = compare_traces(float64_trace, _scaled_logits(float64_trace, 1 + 1e-6))
    listed = lambda text: {line.split()[0] for line in text.splitlines() if line.startswith(("param/", "fwd/"))}  # noqa: E731
    full = listed(format_table(cmp))
    assert {"param/out.W", "fwd/logits"} <= full and full == listed(format_table(cmp, only_failures=False))
    assert listed(format_table(cmp, only_failures=True)) == {"fwd/logits"}


# --- 7. every head field goes through its own activation (gate and erase wired apart) ------------------
# A configuration whose seven fields all have different activations, checked against formulas written
# here and a forward pass built from tests/oracle.py (no ntm_ref code), on both engines.

def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


DISTINCT = dict(key_activation="identity", beta_activation="exp", gate_activation="hard_sigmoid",
                shift_activation="softmax_tanh", gamma_activation="one_plus_relu",
                erase_activation="sigmoid", add_activation="tanh")
FORMULAS = {   # field -> the activation DISTINCT names for it, written out
    "key": lambda x: x, "beta": np.exp, "g": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "s": lambda x: _softmax(np.tanh(x)), "gamma": lambda x: 1.0 + np.maximum(x, 0.0),
    "erase": lambda x: 1.0 / (1.0 + np.exp(-x)), "add": np.tanh,
}
DISTINCT_CONFIG = NTMConfig(**TINY, **DISTINCT, memory_init="learned")
FIELD_OPTION = {"key": "key_activation", "beta": "beta_activation", "g": "gate_activation",
                "s": "shift_activation", "gamma": "gamma_activation", "erase": "erase_activation",
                "add": "add_activation"}


def _split(raw, M, S, kind):
    """raw (..., P) -> {field: (...) for scalars, (..., width) for vectors}, by the layout of ntm_ref.heads'
    docstring: [key M | beta | g | s S | gamma] (+ [erase M | add M] for write heads)."""
    parts = {"key": raw[..., :M], "beta": raw[..., M], "g": raw[..., M + 1], "s": raw[..., M + 2:M + 2 + S],
             "gamma": raw[..., M + 2 + S]}
    if kind == "write":
        parts["erase"] = raw[..., M + 3 + S:2 * M + 3 + S]
        parts["add"] = raw[..., 2 * M + 3 + S:3 * M + 3 + S]
        assert raw.shape[-1] == 3 * M + 3 + S
    else:
        assert raw.shape[-1] == M + 3 + S
    return parts


def _activated(raw, config, kind):
    return {f: FORMULAS[f](v) for f, v in _split(raw, config.memory_width, config.shift_width, kind).items()}


def _oracle_logits(model, x):
    """The forward pass of a one-layer tanh feedforward NTM, read before write, learned memory, written
    from the paper's equations with tests/oracle.py.  x (B, T, I) -> logits (B, T, O)."""
    c, p = model.config, model.params
    B, T, _ = x.shape
    clip = c.clip_value
    memory = np.tile(p["memory0"], (B, 1, 1))
    reads = np.tile(np.tanh(p["read0"]), (B, 1, 1))
    w_read = np.tile(_softmax(p["w0.read"]), (B, 1, 1))
    w_write = np.tile(_softmax(p["w0.write"]), (B, 1, 1))

    def address(w_prev, hp):
        w = oracle.content(memory, hp["key"], hp["beta"], c.cosine_epsilon)
        w = oracle.interpolate(w, w_prev, hp["g"])
        return oracle.sharpen(oracle.shift(w, hp["s"]), hp["gamma"])

    logits = np.zeros((B, T, c.output_size))
    for t in range(T):
        h = np.tanh(np.concatenate([x[:, t], reads.reshape(B, -1)], axis=1) @ p["ctrl.0.W"] + p["ctrl.0.b"])
        rp = _activated(np.clip(h @ p["read.W"] + p["read.b"], -clip, clip).reshape(B, c.read_heads, -1),
                        c, "read")
        wp = _activated(np.clip(h @ p["write.W"] + p["write.b"], -clip, clip).reshape(B, c.write_heads, -1),
                        c, "write")
        w_read = address(w_read, rp)
        reads = oracle.read(memory, w_read)
        w_write = address(w_write, wp)
        memory = oracle.write(memory, w_write, wp["erase"], wp["add"])
        logits[:, t] = np.clip(np.concatenate([h, reads.reshape(B, -1)], axis=1) @ p["out.W"] + p["out.b"],
                               -clip, clip)
    return logits


def test_every_head_field_is_activated_by_its_own_activation_reference_trace():
    assert len(set(DISTINCT.values())) == len(DISTINCT) and set(FIELD_OPTION.values()) == set(DISTINCT)
    model = generic_model(DISTINCT_CONFIG, seed=4)
    x, _, _ = make_batch(DISTINCT_CONFIG, T=3)
    trace = model.trace(x)
    for kind in ("read", "write"):
        expected = _activated(trace[f"{kind}.raw"], DISTINCT_CONFIG, kind)
        for field, value in expected.items():
            np.testing.assert_allclose(trace[f"{kind}.{field}"], value, rtol=1e-13, atol=1e-15,
                                       err_msg=f"{kind}.{field} is not {DISTINCT[FIELD_OPTION[field]]} of its raw part")


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_distinct_head_activations_agree_with_an_independent_forward(engine):
    model = generic_model(DISTINCT_CONFIG, seed=4, engine=engine)
    x, _, _ = make_batch(DISTINCT_CONFIG, T=3)
    logits = model.run(x).logits
    np.testing.assert_allclose(logits, _oracle_logits(model, x), rtol=1e-9, atol=1e-12)
    # the gate and the erase vector matter here: wiring either to the other's activation moves the logits
    for field, other in (("gate_activation", "sigmoid"), ("erase_activation", "hard_sigmoid")):
        swapped = NTM.from_arrays(DISTINCT_CONFIG.replace(**{field: other}), model.params, engine=engine)
        assert np.abs(swapped.run(x).logits - logits).max() > 1e-6, field


def test_distinct_head_activations_fast_gradients_match_the_reference():
    reference = generic_model(DISTINCT_CONFIG, seed=4, engine="reference")
    x, y, mask = make_batch(DISTINCT_CONFIG, T=3)
    ref = reference.run(x, y, mask)
    fast = reference.run(x, y, mask, engine="fast")
    assert fast.caches is None and ref.caches is not None        # two engines did run
    for name in ref.grads:
        np.testing.assert_allclose(fast.grads[name], ref.grads[name], rtol=1e-10, atol=1e-13, err_msg=name)


# --- 8. momentum 0 (and Adam's beta1 = 0) accepted: the range is [0, 1) ---------------------------------

def test_momentum_zero_is_accepted_and_means_no_momentum():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(2, 3))}
    grads = [{"w": rng.normal(size=(2, 3))} for _ in range(2)]
    lr, decay, eps = 1e-2, 0.9, 1e-4
    for opt in (GravesRMSProp(lr=lr, decay=decay, momentum=0.0, eps=eps),
                make_optimizer("graves_rmsprop", lr=lr, decay=decay, momentum=0, eps=eps)):
        assert opt.momentum == 0.0
        p, state = params, opt.init_state(params)
        n = gbar = 0.0
        for g in grads:
            new, state = opt.step(p, g, state)
            n = decay * n + (1 - decay) * g["w"] ** 2
            gbar = decay * gbar + (1 - decay) * g["w"]
            # with momentum 0 each step is the scaled gradient alone, none of the previous step carried
            np.testing.assert_allclose(new["w"] - p["w"], -lr * g["w"] / np.sqrt(n - gbar ** 2 + eps),
                                       rtol=1e-12)
            p = new
    for opt in (RMSPropMomentum(momentum=0.0), RMSPropMomentum(momentum=0, eps_inside_sqrt=True, centered=True),
                make_optimizer("rmsprop", momentum=0.0), Adam(beta1=0.0), make_optimizer("adam", beta1=0),
                Adam(beta2=0.0)):
        new, _ = opt.step(params, grads[0], opt.init_state(params))
        assert np.all(np.isfinite(new["w"]))
    with pytest.raises(ValueError, match=r"momentum=-1e-12 is invalid; allowed: \[0, 1\)"):
        GravesRMSProp(momentum=-1e-12)


# --- 9. the ReLU backward at exactly 0 --------------------------------------------------------------------
# ntm_ref.activations: "Exactly at a kink the backward returns 0 (the slope of the flat piece)".

def test_relu_family_backward_is_zero_exactly_at_the_kink():
    x = np.array([-1.0, -0.0, 0.0, 1e-300, 2.0])
    dy = np.array([3.0, 5.0, 7.0, 11.0, 13.0])
    slope_right = np.array([0.0, 0.0, 0.0, 1.0, 1.0])          # 1 only where x > 0
    for name in ("relu", "one_plus_relu"):
        forward, backward = act.ACTIVATIONS[name]
        y, cache = forward(x)
        np.testing.assert_array_equal(backward(dy, cache), dy * slope_right, err_msg=name)
        np.testing.assert_array_equal(act.backward_from_values(name, dy, x, y), dy * slope_right, err_msg=name)
    # the other kinks: clip01 at 0 and 1, hard_sigmoid at -2.5 and 2.5
    at = np.array([0.0, 1.0, 0.5])
    np.testing.assert_array_equal(act.clip01_backward(np.ones(3), act.clip01_forward(at)[1]), [0.0, 0.0, 1.0])
    at = np.array([-2.5, 2.5, 0.0])
    np.testing.assert_array_equal(act.hard_sigmoid_backward(np.ones(3), act.hard_sigmoid_forward(at)[1]),
                                  [0.0, 0.0, 0.2])
    # and through the shift kernel's softmax(relu(z)): no gradient reaches an entry at exactly 0
    z = np.array([[0.0, 0.5, -0.3]])
    forward, backward = act.ACTIVATIONS["softmax_relu"]
    y, cache = forward(z)
    dz = backward(np.array([[1.0, -2.0, 0.5]]), cache)
    assert dz[0, 0] == 0.0 and dz[0, 2] == 0.0 and dz[0, 1] != 0.0


# --- scripts/mutate.py itself: its mutants are valid, one-line and of every kind -------------------------

def _mutate_script():
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "mutate.py")
    spec = importlib.util.spec_from_file_location("mutate_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLE = '''\
def f(a, b, shape_of):
    """0 < 1 and True"""
    if not a.shape == (1, 2) and b is not None or a < b:
        total = a + b * 2.5 - min(a, b)
        total -= -1
        return f"{a + 1}" + "x" + str(total)
    try:
        return max(a, 0.0)
    except BaseException:
        return a >= b  # pragma: no mutate
'''


def test_the_mutation_runner_makes_valid_one_line_mutants_of_every_kind():
    import ast
    mutate = _mutate_script()
    source = SAMPLE.encode()
    mutants = mutate.find_mutants("sample.py", source)
    assert {m.kind for m in mutants} == {"compare", "binop", "augassign", "boolop", "drop-not", "drop-minus",
                                         "constant", "constant-x100", "except", "attribute", "call"}
    for m in mutants:
        mutated = m.apply(source)
        ast.parse(mutated)                                           # valid Python
        changed = [i for i, (x, y) in enumerate(zip(SAMPLE.splitlines(), mutated.decode().splitlines()))
                   if x != y]
        assert changed == [m.line - 1] and len(mutated.decode().splitlines()) == len(SAMPLE.splitlines()), m
    made = {(m.original, m.replacement) for m in mutants}
    assert {("==", "!="), ("<", "<="), ("is not", "is"), ("and", "or"), ("or", "and"), ("+", "-"), ("*", "/"),
            ("-=", "+="), ("not ", ""), ("shape", "size"), ("BaseException", "Exception"), ("min", "max"),
            ("0.0", "1.0"), ("2.5", "250.0")} <= made
    lines = {m.line for m in mutants}
    assert 2 not in lines and 10 not in lines                       # the docstring; the pragma line
    assert not [m for m in mutants if m.line == 6 and m.kind == "binop"]   # f-string and string concatenation
    assert mutate.choose(mutants, 3, seed=1) == mutate.choose(mutants, 3, seed=1) != mutate.choose(mutants, 3, seed=2)


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan"), True])
def test_a_checkpoint_whose_seconds_are_not_a_finite_count_is_refused(tmp_path, seconds):
    """(checkpoint._check_meta_values: `or` -> `and` in the seconds test survived the runner.)"""
    model = NTM(NTMConfig(input_size=3, output_size=2, memory_slots=6, memory_width=3))
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, model.params, {}, model.config, {"step": 1, "sequences": 1, "seconds": seconds})
    with pytest.raises(CheckpointError, match="seconds"):
        load_checkpoint(path)
    save_checkpoint(path, model.params, {}, model.config, {"step": 1, "sequences": 1, "seconds": 2.5})
    assert load_checkpoint(path).meta["seconds"] == 2.5
