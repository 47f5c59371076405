"""ntm_ref.engines.parallel (fast.run on parts of the batch in forked worker processes) against fast.run on the
whole batch and against the reference NTM.run: loss, logits, probs, every gradient, dx and dstate0 to
rtol 1e-10; repeated calls bit-identical; the in-process fallback; worker errors. No timing here."""
import os

import numpy as np
import pytest

from ntm_ref.engines import fast, parallel
from ntm_ref.config import NTMConfig
from ntm_ref.controller import ControllerState
from ntm_ref.model import NTM, NTMState
from model_helpers import generic_model, make_batch
from test_fast import assert_agrees, compared_arrays   # helpers, not tests

TINY = dict(input_size=3, output_size=2, memory_slots=6, memory_width=3, controller_size=5)

CONFIGS = {
    "ff-defaults": dict(),
    "lstm-defaults": dict(controller="lstm"),
    "ff-2x2-learned": dict(read_heads=2, write_heads=2, memory_init="learned"),
    "lstm-2x2-random-2layers-write-first": dict(controller="lstm", controller_size=(4, 3), read_heads=2,
                                                write_heads=2, memory_init="random", step_order="write_first"),
    "ff-2layers-relu-clip": dict(controller_size=(4, 5), controller_activation="relu", clip_value=0.6,
                                 read_heads=2),
}


@pytest.fixture(autouse=True, scope="module")
def small_min_batch():
    """Split from 2 sequences on, so that the small batches below really use the worker processes."""
    old = parallel.MIN_BATCH
    parallel.MIN_BATCH = 2
    yield
    parallel.MIN_BATCH = old


def runs(model, x, y=None, mask=None, state=None, workers=2):
    """(parallel, fast on the whole batch, reference)."""
    p = parallel.run(model.params, model.config, model.buffers, x, y, mask, state=state, workers=workers)
    f = fast.run(model.params, model.config, model.buffers, x, y, mask, state=state, threads=1)
    ref = model.run(x, y, mask, state=state, engine="reference")
    return p, f, ref


def explicit_state(model, B, seed=9):
    """A random explicit initial state (LSTM h and c included)."""
    rng = np.random.default_rng(seed)
    s = model.initial_state(B)
    ctrl = ControllerState(tuple(rng.normal(size=h.shape) for h in s.controller.h),
                           tuple(rng.normal(size=c.shape) for c in s.controller.c))
    N, R, W = model.config.memory_slots, model.config.read_heads, model.config.write_heads
    return NTMState(rng.normal(size=s.memory.shape), rng.normal(size=s.reads.shape),
                    rng.dirichlet(np.ones(N), size=(B, R)), rng.dirichlet(np.ones(N), size=(B, W)), ctrl)


@pytest.mark.parametrize("B", [1, 2, 5])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_agrees_with_fast_and_reference(name, B):
    config = NTMConfig(**{**TINY, **CONFIGS[name]})
    model = generic_model(config, seed=B)
    x, y, mask = make_batch(config, B=B, T=5, seed=B)
    p, f, ref = runs(model, x, y, mask)
    assert_agrees(p, f)
    assert_agrees(p, ref)


@pytest.mark.parametrize("controller", ["feedforward", "lstm"])
def test_explicit_initial_state(controller):
    config = NTMConfig(**{**TINY, "controller_size": (4, 5)}, controller=controller, read_heads=2, write_heads=2)
    model = generic_model(config, seed=4)
    x, y, mask = make_batch(config, B=5, T=4)
    state = explicit_state(model, 5)
    p, f, ref = runs(model, x, y, mask, state=state)
    assert_agrees(p, f)
    assert_agrees(p, ref)
    assert len(p.dstate0.controller.h) == (2 if controller == "lstm" else 0)


def test_mask_of_shape_b_t_o_and_three_workers():
    config = NTMConfig(**TINY, controller="lstm", read_heads=2, write_heads=2, memory_init="learned")
    model = generic_model(config, seed=0)
    x, y, _ = make_batch(config, B=5, T=5)
    mask = (np.random.default_rng(5).random(y.shape) > 0.3).astype(float)
    for workers in (1, 2, 3, 7):
        p, f, ref = runs(model, x, y, mask, workers=workers)
        assert_agrees(p, f)
        assert_agrees(p, ref)


def test_forward_only():
    config = NTMConfig(**TINY, controller="lstm")
    model = generic_model(config, seed=2)
    x, _, _ = make_batch(config, B=4, T=5)
    p, f, ref = runs(model, x)
    assert p.loss is None and p.grads is None and p.dx is None and p.dstate0 is None and p.caches is None
    assert_agrees(p, f)
    assert_agrees(p, ref)


def test_paper_copy_configuration_batch_64_at_41_steps(capsys):
    """The paper's copy configuration (controller 100, memory 128 x 20, 1 + 1 heads), batch 64, 41 steps."""
    parallel.MIN_BATCH = 8                    # the shipped default path
    config = NTMConfig(input_size=9, output_size=8, controller_size=100)
    model = NTM(config, seed=0)
    x, y, mask = make_batch(config, B=64, T=41, seed=7)
    p, f, ref = runs(model, x, y, mask)
    assert_agrees(p, f)
    error = assert_agrees(p, ref)
    assert error < 1e-11
    with capsys.disabled():
        print(f"\nparallel vs reference (copy config, B 64, T 41): max normwise relative error {error:.2e}")
    parallel.MIN_BATCH = 2


def test_repeated_calls_are_bit_identical_and_params_untouched():
    config = NTMConfig(**TINY, controller="lstm", read_heads=2, write_heads=2, memory_init="learned")
    model = generic_model(config, seed=1)
    before = {k: v.copy() for k, v in model.params.items()}
    x, y, mask = make_batch(config, B=5, T=4)
    a = parallel.run(model.params, config, model.buffers, x, y, mask)
    kept = {name: np.array(v, copy=True) for name, (v, _) in compared_arrays(a, a).items()}
    # other shapes in between (the workers reuse their buffers), then the same call again
    for B, T in ((3, 6), (7, 2)):
        xs, ys, ms = make_batch(config, B=B, T=T, seed=B)
        parallel.run(model.params, config, model.buffers, xs, ys, ms)
    for _ in range(2):
        b = parallel.run(model.params, config, model.buffers, x, y, mask)
        assert a.loss == b.loss
        for name, (v, _) in compared_arrays(b, b).items():
            np.testing.assert_array_equal(v, kept[name], err_msg=name)
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])


def test_in_process_fallback_gives_the_same_numbers(monkeypatch):
    """Without fork every part runs in the main process, with the same arithmetic: bit-identical."""
    config = NTMConfig(**TINY, read_heads=2)
    model = generic_model(config, seed=3)
    x, y, mask = make_batch(config, B=5, T=4)
    a = parallel.run(model.params, config, model.buffers, x, y, mask)
    monkeypatch.setattr(parallel, "_fork_available", lambda: False)
    monkeypatch.setattr(parallel, "_POOL", None)
    b = parallel.run(model.params, config, model.buffers, x, y, mask)
    for name, (v, w) in compared_arrays(a, b).items():
        np.testing.assert_array_equal(v, w, err_msg=name)


def test_errors_reach_the_caller_and_the_pool_recovers(monkeypatch):
    config = NTMConfig(**TINY)
    model = generic_model(config, seed=0)
    x, y, mask = make_batch(config, B=5, T=3)                 # parts of 2 (main) and 3 (worker)
    bad = {k: v for k, v in model.params.items() if k != "out.W"}
    with pytest.raises(KeyError):                              # raised in the main process's part
        parallel.run(bad, config, model.buffers, x, y, mask)
    # raised in the worker's part only: workers forked from a process whose fast.run fails on 3 sequences
    real_run = fast.run

    def failing_run(params, config, buffers, x, *args, **kwargs):
        if x.shape[0] == 3:
            raise FloatingPointError("part of 3")
        return real_run(params, config, buffers, x, *args, **kwargs)

    parallel.shutdown()
    monkeypatch.setattr(fast, "run", failing_run)
    with pytest.raises(FloatingPointError, match="part of 3"):
        parallel.run(model.params, config, model.buffers, x, y, mask)
    parallel.shutdown()                                        # drop the workers with the patched fast.run
    monkeypatch.setattr(fast, "run", real_run)
    p, f, _ = runs(model, x, y, mask)
    assert_agrees(p, f)


def test_workers_are_persistent_forked_processes():
    if parallel._fork_available():
        config = NTMConfig(**TINY)
        model = generic_model(config, seed=0)
        x, y, mask = make_batch(config, B=4, T=3)
        parallel.run(model.params, config, model.buffers, x, y, mask)
        pool = parallel._POOL
        assert pool is not None and pool.pid == os.getpid()
        assert all(proc.is_alive() and proc.pid != os.getpid() for proc in pool.procs)
        parallel.run(model.params, config, model.buffers, x, y, mask)
        assert parallel._POOL is pool                          # reused, not restarted
    with pytest.raises(ValueError):
        parallel.run({}, NTMConfig(**TINY), {}, np.zeros((2, 3, 3)), workers=0)


def _run_in_daemon(conn, config, params, buffers, x, y, mask):
    """In a daemonic process (a Dask worker's kind), which multiprocessing forbids to start children."""
    parallel._POOL = None                   # the parent's pool is not ours
    parallel.MIN_BATCH = 2
    try:
        result = parallel.run(params, config, buffers, x, y, mask)
        conn.send(("ok", result.loss, {k: v for k, v in result.grads.items()}, parallel._POOL is None))
    except BaseException as exc:            # noqa: BLE001  (sent to the test)
        conn.send(("error", repr(exc), None, None))


def test_a_daemonic_process_runs_every_part_itself():
    """Workers cannot start in a daemonic process: every part runs in that process, with the numbers of
    fast.run (not an AssertionError from multiprocessing)."""
    if not parallel._fork_available():
        pytest.skip("needs fork")
    import multiprocessing
    config = NTMConfig(**TINY, read_heads=2)
    model = generic_model(config, seed=3)
    x, y, mask = make_batch(config, B=5, T=4)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_run_in_daemon, args=(child, config, model.params, model.buffers, x, y, mask),
                       daemon=True)
    proc.start()
    status, loss, grads, no_pool = parent.recv()
    proc.join(timeout=30)
    assert status == "ok", loss
    assert no_pool
    f = fast.run(model.params, config, model.buffers, x, y, mask, threads=1)
    np.testing.assert_allclose(loss, f.loss, rtol=1e-12)
    for name in f.grads:
        np.testing.assert_allclose(grads[name], f.grads[name], rtol=1e-10, atol=1e-14, err_msg=name)
