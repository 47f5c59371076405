"""ntm_ref.engines.fast against the reference NTM.run: loss, logits, every gradient, dx and dstate0 to rtol 1e-10,
on configurations that together use every NTMConfig field value; plus finite-difference checks of the
fast engine itself (gradcheck.check_loss, full mode) and tests of its buffer reuse. No timing here."""
import numpy as np
import pytest

from gradcheck import assert_loss_gradients
from ntm_ref.engines import fast
from model_helpers import TINY, generic_model, make_batch
from ntm_ref.config import HEAD_ACTIVATION_CHOICES, NTMConfig
from ntm_ref.controller import ControllerState
from ntm_ref.loss import bce_bits_forward, normalise_mask
from ntm_ref.model import NTM, NTMState

RTOL = 1e-10          # the agreement bar; the achieved error is ~1e-13 (printed by test_report_max_error)
WHOLE_MODEL_RTOL = 1e-6


# Together these use every value of every NTMConfig field at least once.
CONFIGS = {
    "ff-defaults": dict(),
    "lstm-defaults": dict(controller="lstm"),
    "ff-2x2-learned": dict(read_heads=2, write_heads=2, memory_init="learned"),
    "lstm-3x3-random-2layers": dict(controller="lstm", controller_size=(4, 3), read_heads=3, write_heads=3,
                                    memory_init="random"),
    "ff-2layers-relu-write-first": dict(controller_size=(4, 5), controller_activation="relu",
                                        step_order="write_first", read_heads=2),
    "ff-sigmoid-write-first-2x3": dict(controller_activation="sigmoid", step_order="write_first",
                                       read_heads=2, write_heads=3, shift_range=0),
    "lstm-write-first-1x2-3layers": dict(controller="lstm", controller_size=(3, 4, 5), step_order="write_first",
                                         write_heads=2),
    "ff-lasagne-activations": dict(key_activation="clip01", beta_activation="relu",
                                   gate_activation="hard_sigmoid", gamma_activation="one_plus_relu",
                                   erase_activation="hard_sigmoid", add_activation="clip01", clip_value=None),
    "ff-pytorch-ntm-activations": dict(key_activation="identity", add_activation="identity",
                                       controller_activation="sigmoid", clip_value=None),
    "ff-clip-engaged": dict(clip_value=0.6, read_heads=2),
    "lstm-fixed-initial-state": dict(controller="lstm", learn_initial_reads=False,
                                     learn_initial_weights=False, shift_range=2),
    "ff-no-initial-learning-constant-2": dict(learn_initial_reads=False, memory_init_value=0.3,
                                              shift_range=2, memory_slots=5),
    "ff-correlation-dnc-beta-large-eps": dict(shift_convention="correlation", beta_activation="oneplus",
                                              cosine_epsilon=1e-2, sharpen_epsilon=1e-3, read_heads=2),
    "lstm-correlation-shift-2": dict(controller="lstm", shift_convention="correlation", shift_range=2,
                                     write_heads=2),
    "lstm-collier-state": dict(controller="lstm", memory_init="learned_constant",
                               learn_initial_controller_state=False, read_heads=2),
    "ff-pytorch-ntm-state": dict(learn_initial_weights=False, fixed_initial_weights="zeros",
                                 learn_initial_reads=False, memory_init="random"),
    "lstm-pytorch-ntm-fixed-reads": dict(controller="lstm", learn_initial_reads=False, fixed_initial_reads="random",
                                         read_heads=2, memory_init="random"),
}

# Every activation of every head field: config k takes the k-th choice of each field (cycling), so
# these ACTIVATION_CONFIGS together use every entry of HEAD_ACTIVATION_CHOICES.
_MOST = max(len(v) for v in HEAD_ACTIVATION_CHOICES.values())
CONFIGS.update({
    f"ff-activations-{k}": {field: choices[k % len(choices)] for field, choices in HEAD_ACTIVATION_CHOICES.items()}
    for k in range(_MOST)
})

# The epsilon modes the fast engine does not have: NTM.run falls back to the reference for them.
REFERENCE_ONLY = {
    "cosine-denominator": dict(cosine_epsilon_mode="denominator", cosine_epsilon=1e-8),
    "cosine-clamp-norms": dict(cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-8),
    "sharpen-denominator": dict(sharpen_epsilon_mode="denominator", sharpen_epsilon=1e-16),
    "cosine-smooth-norm-denominator": dict(cosine_epsilon_mode="smooth_norm_denominator"),
    "cosine-input-offset": dict(cosine_input_offset=1e-3),
}






def relative_error(a, b):
    """max |a - b| / max |b| (normwise over the array; 0 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if b.size else 0.0
    return 0.0 if diff == 0.0 else diff / scale


def compared_arrays(f, ref):
    """name -> (fast value, reference value) for every output the two runs share."""
    out = {"logits": (f.logits, ref.logits), "probs": (f.probs, ref.probs)}
    if ref.loss is None:
        return out
    out["loss"] = (f.loss, ref.loss)
    out["dx"] = (f.dx, ref.dx)
    for k in ref.grads:
        out[f"grads[{k}]"] = (f.grads[k], ref.grads[k])
    for field in ("memory", "reads", "w_read", "w_write"):
        out[f"dstate0.{field}"] = (getattr(f.dstate0, field), getattr(ref.dstate0, field))
    for l, (h, c) in enumerate(zip(ref.dstate0.controller.h, ref.dstate0.controller.c)):
        out[f"dstate0.h[{l}]"] = (f.dstate0.controller.h[l], h)
        out[f"dstate0.c[{l}]"] = (f.dstate0.controller.c[l], c)
    return out


def assert_agrees(f, ref, rtol=RTOL):
    """Every output agrees entrywise to rtol, with an absolute floor of rtol * 1e-3 * max |ref| per array
    (entries that cancel to ~0 carry the round-off of the large terms they came from)."""
    if ref.grads is not None:
        assert list(f.grads) == list(ref.grads)
    for name, (a, b) in compared_arrays(f, ref).items():
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, name
        floor = rtol * 1e-3 * (np.max(np.abs(b)) if b.size else 0.0)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=floor, err_msg=name)
    return max(relative_error(a, b) for a, b in compared_arrays(f, ref).values())


def both(model, x, y=None, mask=None, state=None, threads=1):
    ref = model.run(x, y, mask, state=state, engine="reference")
    f = fast.run(model.params, model.config, model.buffers, x, y, mask, state=state, threads=threads)
    return f, ref


# ---------------------------------------------------------------------------------------------------
# agreement with the reference
# ---------------------------------------------------------------------------------------------------

def test_supports_every_config():
    for extra in CONFIGS.values():
        assert fast.supports(NTMConfig(**{**TINY, **extra}))
    assert not fast.supports(dict(TINY))
    for extra in REFERENCE_ONLY.values():
        assert not fast.supports(NTMConfig(**{**TINY, **extra}))


@pytest.mark.parametrize("name", sorted(REFERENCE_ONLY))
def test_unsupported_modes_fall_back_to_the_reference(name):
    config = NTMConfig(**{**TINY, **REFERENCE_ONLY[name]})
    model = generic_model(config, seed=1)
    x, y, mask = make_batch(config)
    ref = model.run(x, y, mask, engine="reference")
    for engine in ("fast", "parallel"):
        got = model.run(x, y, mask, engine=engine)
        assert got.caches is not None                      # only the reference keeps the step caches
        assert got.loss == ref.loss


def test_configs_use_every_field_value():
    """The CONFIGS above really do use every value of every choice field of NTMConfig."""
    from ntm_ref.config import CONTROLLER_ACTIVATIONS, CONTROLLERS, HEAD_ACTIVATION_CHOICES, MEMORY_INITS, \
        FIXED_INITIAL_READS, FIXED_INITIAL_WEIGHTS, SHIFT_CONVENTIONS, STEP_ORDERS
    configs = [NTMConfig(**{**TINY, **extra}) for extra in CONFIGS.values()]
    choices = dict(HEAD_ACTIVATION_CHOICES, controller=CONTROLLERS, controller_activation=CONTROLLER_ACTIVATIONS,
                   memory_init=MEMORY_INITS, step_order=STEP_ORDERS, learn_initial_reads=(True, False),
                   learn_initial_weights=(True, False), read_heads=(1, 2, 3), write_heads=(1, 2, 3),
                   shift_range=(0, 1, 2), shift_convention=SHIFT_CONVENTIONS,
                   fixed_initial_weights=FIXED_INITIAL_WEIGHTS, learn_initial_controller_state=(True, False),
                   fixed_initial_reads=FIXED_INITIAL_READS)
    for field, values in choices.items():
        assert {getattr(c, field) for c in configs} >= set(values), field
    assert {c.clip_value for c in configs} >= {None, 20.0, 0.6}
    assert {len(c.controller_sizes) for c in configs} >= {1, 2, 3}
    assert len({(c.cosine_epsilon, c.sharpen_epsilon) for c in configs}) >= 2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_agrees_with_reference(name, seed):
    config = NTMConfig(**{**TINY, **CONFIGS[name]})
    model = generic_model(config, seed=seed)
    B, T = 1 + (seed + len(name)) % 5, 2 + (seed * 3 + len(name)) % 5
    x, y, mask = make_batch(config, B=B, T=T, seed=seed)
    for threads in (1, 2):
        assert_agrees(*both(model, x, y, mask, threads=threads))


@pytest.mark.parametrize("controller", ["feedforward", "lstm"])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 6])
def test_agrees_at_every_length(controller, T):
    config = NTMConfig(**TINY, controller=controller, read_heads=2, memory_init="learned")
    model = generic_model(config, seed=T)
    x, y, _ = make_batch(config, B=3, T=T, seed=T)
    assert_agrees(*both(model, x, y))


@pytest.mark.parametrize("B", [1, 2, 3, 4, 5])
def test_agrees_at_every_batch_size_with_two_threads(B):
    config = NTMConfig(**TINY, controller="lstm", read_heads=2, write_heads=2)
    model = generic_model(config, seed=B)
    x, y, mask = make_batch(config, B=B, T=4, seed=B)
    assert_agrees(*both(model, x, y, mask, threads=2))


def test_mask_of_shape_b_t_o():
    config = NTMConfig(**TINY, read_heads=2)
    model = generic_model(config, seed=0)
    x, y, _ = make_batch(config, B=3, T=5)
    mask = (np.random.default_rng(5).random(y.shape) > 0.3).astype(float)
    assert_agrees(*both(model, x, y, mask))


@pytest.mark.parametrize("step_order", ["read_first", "write_first"])
@pytest.mark.parametrize("controller", ["feedforward", "lstm"])
def test_explicit_initial_state(controller, step_order):
    """An explicit initial state: its gradient comes back as dstate0 (every part, LSTM h and c included)."""
    config = NTMConfig(**{**TINY, "controller_size": (4, 5)}, controller=controller, read_heads=2, write_heads=2,
                       step_order=step_order)
    model = generic_model(config, seed=4)
    x, y, mask = make_batch(config, B=3, T=4)
    rng = np.random.default_rng(9)
    s = model.initial_state(3)
    ctrl = s.controller
    if controller == "lstm":
        ctrl = ControllerState(tuple(rng.normal(size=h.shape) for h in ctrl.h),
                               tuple(rng.normal(size=c.shape) for c in ctrl.c))
    state = NTMState(rng.normal(size=s.memory.shape), rng.normal(size=s.reads.shape),
                     rng.dirichlet(np.ones(6), size=(3, 2)), rng.dirichlet(np.ones(6), size=(3, 2)), ctrl)
    f, ref = both(model, x, y, mask, state=state, threads=2)
    assert_agrees(f, ref)
    assert f.dstate0.memory.shape == (3, 6, 3) and f.dstate0.reads.shape == (3, 2, 3)


def test_forward_only():
    config = NTMConfig(**TINY, controller="lstm")
    model = generic_model(config, seed=2)
    x, _, _ = make_batch(config, B=4, T=5)
    f, ref = both(model, x)
    assert f.loss is None and f.grads is None and f.dx is None and f.dstate0 is None and f.caches is None
    assert_agrees(f, ref)


def test_paper_copy_configuration_at_41_steps():
    """The paper's copy configuration (controller 100, memory 128 x 20, 1 + 1 heads) over 41 steps."""
    config = NTMConfig(input_size=9, output_size=8, controller_size=100)
    model = NTM(config, seed=0)
    x, y, mask = make_batch(config, B=3, T=41, seed=7)
    f, ref = both(model, x, y, mask, threads=2)
    error = assert_agrees(f, ref)
    assert error < 1e-11


def test_report_max_error(capsys):
    """Not a bar of its own: prints the largest normwise relative error over the configs (for the log)."""
    worst = 0.0
    for name, extra in CONFIGS.items():
        config = NTMConfig(**{**TINY, **extra})
        model = generic_model(config, seed=3)
        x, y, mask = make_batch(config, B=4, T=6)
        f, ref = both(model, x, y, mask, threads=2)
        worst = max(worst, max(relative_error(a, b) for a, b in compared_arrays(f, ref).values()))
    with capsys.disabled():
        print(f"\nfast vs reference: max normwise relative error {worst:.2e}")
    assert worst < RTOL


# ---------------------------------------------------------------------------------------------------
# the fast engine on its own: finite differences, buffer reuse
# ---------------------------------------------------------------------------------------------------

def fast_loss_of_params(model, x, y, mask, threads):
    def loss_fn(params):
        logits = fast.run(params, model.config, model.buffers, x, threads=threads).logits     # forward only
        return bce_bits_forward(logits, y, normalise_mask(mask, logits.shape))[0]
    return loss_fn


@pytest.mark.parametrize("name,extra", [
    ("ff-2x2-write-first-learned", dict(read_heads=2, write_heads=2, step_order="write_first",
                                        memory_init="learned")),
    ("lstm-2layers-clip-engaged", dict(controller="lstm", controller_size=(4, 3), clip_value=0.6)),
])
def test_gradcheck_full(name, extra):
    config = NTMConfig(**{**TINY, **extra})
    model = generic_model(config, seed=5)
    x, y, mask = make_batch(config, B=2, T=4, seed=5)
    result = fast.run(model.params, config, model.buffers, x, y, mask, threads=2)
    assert_loss_gradients(fast_loss_of_params(model, x, y, mask, threads=2), model.params, result.grads,
                          mode="full", rtol=WHOLE_MODEL_RTOL)


def test_gradcheck_fails_on_a_wrong_gradient():
    """The check above has teeth: a 1e-4 error in one block of the fast gradients fails it."""
    config = NTMConfig(**TINY)
    model = generic_model(config, seed=5)
    x, y, mask = make_batch(config, B=2, T=3)
    grads = dict(fast.run(model.params, config, model.buffers, x, y, mask).grads)
    grads["write.W"] = grads["write.W"] * 1.0001
    from gradcheck import check_loss
    report = check_loss(fast_loss_of_params(model, x, y, mask, 1), model.params, grads, mode="full",
                        rtol=WHOLE_MODEL_RTOL, names=["write.W"])
    assert not report.ok


def test_results_do_not_alias_reused_buffers():
    """Work buffers are reused between calls; earlier results must not change, and runs of different
    lengths and batch sizes (shorter T reuses a longer tape's first steps) must still agree."""
    config = NTMConfig(**TINY, controller="lstm", read_heads=2)
    model = generic_model(config, seed=1)
    x, y, mask = make_batch(config, B=4, T=6)
    first = fast.run(model.params, config, model.buffers, x, y, mask, threads=2)
    kept = {name: np.array(a, copy=True) for name, (a, _) in compared_arrays(first, first).items()}
    for B, T in ((4, 3), (2, 6), (4, 6), (5, 2)):
        xs, ys, ms = make_batch(config, B=B, T=T, seed=B + T)
        assert_agrees(*both(model, xs, ys, ms, threads=2))
    for name, (a, _) in compared_arrays(first, first).items():
        np.testing.assert_array_equal(a, kept[name], err_msg=name)


def test_params_are_not_mutated_and_calls_repeat_exactly():
    config = NTMConfig(**TINY, read_heads=2, write_heads=2)
    model = generic_model(config, seed=1)
    before = {k: v.copy() for k, v in model.params.items()}
    x, y, mask = make_batch(config, B=3, T=4)
    a = fast.run(model.params, config, model.buffers, x, y, mask)
    b = fast.run(model.params, config, model.buffers, x, y, mask)
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])
        np.testing.assert_array_equal(a.grads[k], b.grads[k])
    assert a.loss == b.loss


@pytest.mark.parametrize("heads", [2, 3, 4, 8])
def test_times_others_is_the_product_of_the_other_heads(heads):
    """_times_others (prefix and suffix products) against memory._products_of_others and a plain loop, with
    some factors exactly zero (a slot fully erased by one head): no division, so exact zeros stay zeros
    and the other heads' products stay finite and right."""
    from ntm_ref.memory import _products_of_others
    rng = np.random.default_rng(heads)
    B, M, N = 3, 4, 5
    F = rng.uniform(0.1, 1.0, (B, heads, M, N))
    F[0, 0, 1, 2] = 0.0                      # head 0 fully erases one cell
    F[1, heads - 1, :, 3] = 0.0              # the last head a whole slot
    F[2, :, 0, 0] = 0.0                      # every head the same cell
    dF = rng.normal(size=(B, M, N))
    got = fast._times_others(F, dF, np.full((B, heads, M, N), np.nan))
    loop = np.empty_like(got)
    for h in range(heads):
        loop[:, h] = dF * np.prod(np.delete(F, h, axis=1), axis=1)
    np.testing.assert_allclose(got, loop, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got, dF[:, None] * _products_of_others(F), rtol=1e-14, atol=0)
    assert got[0, 0, 1, 2] != 0.0 and np.all(got[0, 1:, 1, 2] == 0.0)
    assert np.all(got[2, :, 0, 0] == 0.0)
