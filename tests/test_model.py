"""The whole NTM (the reference engine): finite-difference checks through time, wiring tests, batch
independence, traces. The fast engine is checked against this one in tests/test_fast.py."""
import numpy as np
import pytest

from gradcheck import assert_loss_gradients, check_loss
from model_helpers import TINY, generic_model, make_batch
from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM, NTMState, step_forward
from ntm_ref.controller import ControllerState

WHOLE_MODEL_RTOL = 1e-6   # the relative-error bar for whole-model checks (docs/gradcheck.md)


# Each configuration covers something the others do not; together: both controllers, 1 and 2 read and
# write heads, every activation choice, every memory initialisation, with and without clipping (a small
# clip value so that it engages), both step orders, learned and fixed initial reads and weightings.
CONFIGS = {
    "ff-1x1-constant": dict(),
    "lstm-1x1-constant": dict(controller="lstm"),
    "ff-2x2-learned": dict(read_heads=2, write_heads=2, memory_init="learned"),
    "lstm-2x2-random-2layers": dict(controller="lstm", controller_size=(4, 3), read_heads=2, write_heads=2,
                                    memory_init="random"),
    "ff-2layers-relu-write-first": dict(controller_size=(4, 5), controller_activation="relu",
                                        step_order="write_first", read_heads=2),
    "lstm-write-first-1x2": dict(controller="lstm", step_order="write_first", write_heads=2),
    "ff-lasagne-activations": dict(key_activation="clip01", beta_activation="relu",
                                   gate_activation="hard_sigmoid", gamma_activation="one_plus_relu",
                                   erase_activation="hard_sigmoid", add_activation="clip01", clip_value=None),
    "ff-pytorch-ntm-activations": dict(key_activation="identity", add_activation="identity",
                                       controller_activation="sigmoid", clip_value=None),
    "ff-clip-engaged": dict(clip_value=0.6, read_heads=2),
    "lstm-fixed-initial-state": dict(controller="lstm", learn_initial_reads=False,
                                     learn_initial_weights=False, shift_range=2),
    # the convention switches (docs/conventions.md), each epsilon mode on both controllers
    "ff-pytorch-ntm-conventions": dict(shift_convention="correlation", cosine_epsilon_mode="clamp_norms",
                                       cosine_epsilon=1e-8, sharpen_epsilon_mode="denominator",
                                       sharpen_epsilon=1e-16, key_activation="identity",
                                       add_activation="identity", memory_init="random", read_heads=2),
    "lstm-collier-conventions-oneplus-beta": dict(controller="lstm", cosine_epsilon_mode="denominator",
                                         cosine_epsilon=1e-8, sharpen_epsilon_mode="denominator",
                                         sharpen_epsilon=0.0, beta_activation="oneplus", write_heads=2),
    "lstm-collier-state-dnc-cosine": dict(controller="lstm", controller_size=(4, 3),
                                          memory_init="learned_constant", learn_initial_controller_state=False,
                                          cosine_epsilon_mode="smooth_norm_denominator", read_heads=2),
    "ff-zero-initial-weights": dict(learn_initial_weights=False, fixed_initial_weights="zeros", write_heads=2),
    "lstm-clamp-sharpen-denominator": dict(controller="lstm", cosine_epsilon_mode="clamp_norms",
                                           cosine_epsilon=1e-3, sharpen_epsilon_mode="denominator",
                                           sharpen_epsilon=1e-6, shift_convention="correlation"),
}






def loss_of_params(model, x, y, mask):
    def loss_fn(params):
        saved = model.params
        model.params = params
        try:
            return model.loss(x, y, mask)
        finally:
            model.params = saved
    return loss_fn


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_whole_model_gradients_full(name):
    config = NTMConfig(**{**TINY, **CONFIGS[name]})
    model = generic_model(config, seed=3)
    x, y, mask = make_batch(config, T=4)        # longer sequences: test_gradients_at_every_length
    result = model.run(x, y, mask)
    assert_loss_gradients(loss_of_params(model, x, y, mask), model.params, result.grads, mode="full",
                          rtol=WHOLE_MODEL_RTOL)
    # and the gradient with respect to the inputs
    def loss_of_x(p):
        return model.loss(p["x"], y, mask)
    assert_loss_gradients(loss_of_x, {"x": x}, {"x": result.dx}, mode="full", rtol=WHOLE_MODEL_RTOL)


def test_clip_engages_in_the_clipping_config():
    """The clipping configuration above must actually clip something, or it would test nothing."""
    config = NTMConfig(**{**TINY, **CONFIGS["ff-clip-engaged"]})
    model = generic_model(config, seed=3)      # the model the gradient check above runs on
    x, _, _ = make_batch(config)
    caches = model.run(x).caches
    for clip in ("read_clip", "write_clip", "out_clip"):
        outside = sum((~getattr(c, clip).inside).sum() for c in caches)
        inside = sum(getattr(c, clip).inside.sum() for c in caches)
        assert outside > 0 and inside > 0, clip


def test_mask_of_shape_b_t_o():
    config = NTMConfig(**TINY)
    model = NTM(config, seed=0, engine="reference")
    x, y, _ = make_batch(config)
    mask = (np.random.default_rng(5).random(y.shape) > 0.3).astype(float)
    result = model.run(x, y, mask)
    assert_loss_gradients(loss_of_params(model, x, y, mask), model.params, result.grads, mode="full",
                          rtol=WHOLE_MODEL_RTOL)


@pytest.mark.parametrize("controller", ["feedforward", "lstm"])
@pytest.mark.parametrize("T", [1, 2, 3, 6])
def test_gradients_at_every_length(controller, T):
    """A missing recurrent term shows from the step where it starts to matter on: lengths 1-3 place it,
    6 holds every path that lengths 4 and 5 would (their own full checks took 40 s of the suite)."""
    config = NTMConfig(**TINY, controller=controller, read_heads=2, memory_init="learned")
    model = generic_model(config, seed=T)
    x, y, mask = make_batch(config, T=T, seed=T)
    mask[:] = 1.0
    result = model.run(x, y, mask)
    assert_loss_gradients(loss_of_params(model, x, y, mask), model.params, result.grads, mode="full",
                          rtol=WHOLE_MODEL_RTOL)


@pytest.mark.parametrize("controller", ["feedforward", "lstm"])
def test_gradient_of_explicit_initial_state(controller):
    """Every part of an explicitly given initial state: memory, reads, weightings, controller state."""
    config = NTMConfig(**TINY, controller=controller, read_heads=2)
    model = generic_model(config, seed=4)
    x, y, mask = make_batch(config, T=4)
    rng = np.random.default_rng(9)
    state0 = model.initial_state(2)
    state0 = state0._replace(memory=rng.normal(size=state0.memory.shape),
                             reads=rng.normal(size=state0.reads.shape))
    arrays = {"memory": state0.memory, "reads": state0.reads, "w_read": state0.w_read,
              "w_write": state0.w_write}
    if controller == "lstm":
        arrays["h"], arrays["c"] = state0.controller.h[0], rng.normal(size=state0.controller.c[0].shape)

    def build(a):
        ctrl = ControllerState((a["h"],), (a["c"],)) if controller == "lstm" else ControllerState((), ())
        return NTMState(a["memory"], a["reads"], a["w_read"], a["w_write"], ctrl)

    result = model.run(x, y, mask, state=build(arrays))
    d = result.dstate0
    grads = {"memory": d.memory, "reads": d.reads, "w_read": d.w_read, "w_write": d.w_write}
    if controller == "lstm":
        grads["h"], grads["c"] = d.controller.h[0], d.controller.c[0]
    assert_loss_gradients(lambda a: model.loss(x, y, mask, state=build(a)), arrays, grads, mode="full",
                          rtol=WHOLE_MODEL_RTOL)


def test_probe_mode_on_the_paper_copy_configuration():
    """The paper's copy configuration (memory 128 x 20, controller 100, 1 + 1 heads), random directions."""
    config = NTMConfig(input_size=9, output_size=8, controller_size=100)
    model = NTM(config, seed=0, engine="reference")
    x, y, mask = make_batch(config, B=2, T=8)
    result = model.run(x, y, mask)
    report = check_loss(loss_of_params(model, x, y, mask), model.params, result.grads, mode="probe",
                        rtol=WHOLE_MODEL_RTOL)
    assert report.ok, str(report)


# ---------------------------------------------------------------------------------------------------
# wiring
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_parameter_block_gets_a_gradient(name):
    config = NTMConfig(**{**TINY, **CONFIGS[name]})
    model = NTM(config, seed=3, engine="reference")
    x, y, mask = make_batch(config)
    grads = model.run(x, y, mask).grads
    assert set(grads) == set(model.params)
    for key, g in grads.items():
        assert g.shape == model.params[key].shape
        assert np.any(g != 0.0), f"{key} got an all-zero gradient"


@pytest.mark.parametrize("kind", ["read", "write"])
def test_a_heads_previous_weighting_changes_only_that_head(kind):
    config = NTMConfig(**TINY, read_heads=2, write_heads=2)
    model = NTM(config, seed=0, engine="reference")
    rng = np.random.default_rng(0)
    state = model.initial_state(2)
    state = state._replace(memory=rng.normal(size=state.memory.shape))   # distinct rows, so reads differ
    x_t = rng.normal(size=(2, config.input_size))
    field = f"w_{kind}"
    changed = getattr(state, field).copy()
    changed[:, 0] = rng.dirichlet(np.ones(config.memory_slots), size=2)
    _, new_a, cache_a = step_forward(model.params, config, x_t, state)
    _, new_b, cache_b = step_forward(model.params, config, x_t, state._replace(**{field: changed}))
    w_a, w_b = getattr(new_a, field), getattr(new_b, field)
    assert not np.allclose(w_a[:, 0], w_b[:, 0])
    np.testing.assert_array_equal(w_a[:, 1], w_b[:, 1])
    if kind == "read":
        assert not np.allclose(new_a.reads[:, 0], new_b.reads[:, 0])
        np.testing.assert_array_equal(new_a.reads[:, 1], new_b.reads[:, 1])
    # the other kind of head is not touched at all
    other = "w_write" if kind == "read" else "w_read"
    np.testing.assert_array_equal(getattr(new_a, other), getattr(new_b, other))


@pytest.mark.parametrize("controller", ["feedforward", "lstm"])
def test_batch_equals_single_runs(controller):
    """B sequences in one batch give the batch mean of B single runs (loss and every gradient)."""
    config = NTMConfig(**TINY, controller=controller, read_heads=2, memory_init="learned")
    model = NTM(config, seed=1, engine="reference")
    x, y, mask = make_batch(config, B=4, T=5)
    loss, grads = model.loss_and_grads(x, y, mask)
    singles = [model.loss_and_grads(x[b:b + 1], y[b:b + 1], mask[b:b + 1]) for b in range(4)]
    np.testing.assert_allclose(loss, np.mean([s[0] for s in singles]), rtol=1e-12)
    for key in grads:
        np.testing.assert_allclose(grads[key], np.mean([s[1][key] for s in singles], axis=0),
                                   rtol=1e-12, atol=1e-14, err_msg=key)


def test_forward_is_batch_size_independent():
    config = NTMConfig(**TINY)
    model = NTM(config, seed=1, engine="reference")
    x, _, _ = make_batch(config, B=3, T=5)
    full = model.forward(x)
    for b in range(3):
        np.testing.assert_allclose(model.forward(x[b:b + 1])[0], full[b], rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------------------------------
# parameters, interface, traces
# ---------------------------------------------------------------------------------------------------

def test_same_seed_gives_bit_identical_parameters():
    config = NTMConfig(**TINY, controller="lstm", memory_init="learned")
    a, b, c = (NTM(config, seed=s, engine="reference") for s in (7, 7, 8))
    assert list(a.params) == list(b.params)
    for key in a.params:
        assert a.params[key].dtype == np.float64
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params)


def test_forward_and_loss_shapes():
    config = NTMConfig(**TINY)
    model = NTM(config, engine="reference")
    x, y, mask = make_batch(config, B=3, T=4)
    p = model.forward(x)
    assert p.shape == (3, 4, 2) and np.all((p > 0) & (p < 1))
    loss, grads = model.loss_and_grads(x, y)
    assert np.isfinite(loss) and loss > 0


def test_loss_agrees_with_the_task_metric():
    """At generic logits the loss equals tasks.metrics' cost (an independent implementation), so a sign
    or a swapped target would show (finite differences alone would not: they follow whatever forward)."""
    from tasks.metrics import cost_bits_per_sequence
    config = NTMConfig(**TINY)
    model = NTM(config, seed=2, engine="reference")
    x, y, mask = make_batch(config, B=3, T=5)
    result = model.run(x, y, mask)
    np.testing.assert_allclose(result.loss, cost_bits_per_sequence(result.logits, y, mask, from_logits=True),
                               rtol=1e-13)
    np.testing.assert_allclose(result.loss, cost_bits_per_sequence(result.probs, y, mask), rtol=1e-9)


@pytest.mark.parametrize("order", ["read_first", "write_first"])
def test_step_order_reads_the_right_memory(order):
    """read_first reads M_{t-1}; write_first reads M_t (after this step's write)."""
    from ntm_ref.memory import read_forward
    config = NTMConfig(**TINY, step_order=order, read_heads=2)
    model = NTM(config, seed=0, engine="reference")
    rng = np.random.default_rng(0)
    state = model.initial_state(2)._replace(memory=rng.normal(size=(2, 6, 3)))
    _, new, _ = step_forward(model.params, config, rng.normal(size=(2, 3)), state)
    read_from = state.memory if order == "read_first" else new.memory
    np.testing.assert_array_equal(new.reads, read_forward(read_from, new.w_read)[0])
    assert not np.allclose(new.memory, state.memory)


def test_loss_is_bits_per_sequence():
    """With all logits 0 every output bit costs exactly 1 bit: the cost is T * O per sequence."""
    config = NTMConfig(**TINY)
    model = NTM(config, engine="reference")
    for key in ("out.W", "out.b"):
        model.params[key][:] = 0.0
    x, y, mask = make_batch(config, B=2, T=4)
    np.testing.assert_allclose(model.run(x, y).loss, 4 * 2, rtol=1e-14)
    np.testing.assert_allclose(model.run(x, y, mask).loss, (4 * 2 + 3 * 2) / 2, rtol=1e-14)


@pytest.mark.parametrize("bad", [
    dict(x_shape=(2, 4, 5)), dict(x_shape=(2, 4)), dict(y_shape=(2, 4, 3)), dict(mask_shape=(2, 3)),
])
def test_bad_shapes_are_clear_value_errors(bad):
    config = NTMConfig(**TINY)
    model = NTM(config, engine="reference")
    x = np.zeros(bad.get("x_shape", (2, 4, 3)))
    y = np.zeros(bad.get("y_shape", (2, 4, 2)))
    mask = np.ones(bad.get("mask_shape", (2, 4)))
    with pytest.raises(ValueError, match=r"^(x|y|mask): got shape"):
        model.run(x, y, mask)


def test_trace_holds_every_internal_value():
    config = NTMConfig(**TINY, read_heads=2, write_heads=1)
    model = NTM(config, engine="reference")
    x, _, _ = make_batch(config, B=2, T=4)
    tr = model.trace(x)
    B, T, N, M = 2, 4, 6, 3
    assert tr["controller_output"].shape == (B, T, 5)
    assert tr["memory"].shape == (B, T, N, M)
    assert tr["reads"].shape == (B, T, 2, M)
    assert tr["read.raw"].shape == (B, T, 2, config.read_head_size)
    assert tr["write.raw"].shape == (B, T, 1, config.write_head_size)
    for kind, H in (("read", 2), ("write", 1)):
        for stage in ("w_content", "w_gated", "w_shifted", "w"):
            w = tr[f"{kind}.{stage}"]
            assert w.shape == (B, T, H, N)
            np.testing.assert_allclose(w.sum(-1), 1.0, rtol=0, atol=1e-12)
        assert tr[f"{kind}.beta"].shape == (B, T, H) and tr[f"{kind}.s"].shape == (B, T, H, 3)
    assert tr["write.erase"].shape == (B, T, 1, M) and "read.erase" not in tr
    np.testing.assert_allclose(1 / (1 + np.exp(-tr["logits"])), model.forward(x), rtol=1e-14)


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_loss_is_the_loss_of_run(engine):
    """NTM.loss (forward only, used by the finite-difference checks) is exactly run(...).loss."""
    config = NTMConfig(**TINY, controller="lstm", read_heads=2)
    model = generic_model(config, seed=2, engine=engine)
    x, y, mask = make_batch(config, B=3, T=4, seed=2)
    assert model.loss(x, y, mask) == model.run(x, y, mask).loss
    state = model.initial_state(3)
    assert model.loss(x, y, mask, state=state) == model.run(x, y, mask, state=state).loss


def test_the_reference_is_what_runs_by_default_and_training_asks_for_speed():
    """A reader who edits an operation changes what NTM(...) computes; training chooses the fast engine."""
    from ntm_ref.train import TrainSettings, build_model
    config = NTMConfig(input_size=3, output_size=2, memory_slots=6, memory_width=3)
    assert NTM(config).engine == "reference"
    assert NTM.from_arrays(config, NTM(config).params).engine == "reference"
    assert NTM(config).run(np.zeros((1, 2, 3)), np.zeros((1, 2, 2))).caches is not None   # the step caches
    assert build_model(TrainSettings(task="copy"))[0].engine == "fast"
