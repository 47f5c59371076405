"""Training with the parallel engine (TrainSettings.engine, ntm-ref train --engine, ntm-ref sweep --engine):
the same metrics as the fast engine to round-off, the engine kept across a resume, old runs without the
setting still resumable, bad values refused in one line, and the grid names of a sweep."""
import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from ntm_ref import cli, train as training
from ntm_ref.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ntm_ref.config import NTMConfig
from ntm_ref.engines import parallel
from ntm_ref.sweep import SweepError, check_folders, plan_from_args
from ntm_ref.train import TrainSettings, build_model, load_model, resume_settings, train

# batch 16: at least parallel.MIN_BATCH (8), so every training batch is split over the 2 processes
# (checked in the test below); validation chunks of 32 sequences are split too
TINY = dict(task="copy", model="ntm-ff", batch_size=16, eval_every=5, checkpoint_every=5, val_size=32,
            optimizer="graves_rmsprop", task_options={"max_length": 3},
            config_overrides={"memory_slots": 8, "memory_width": 4, "controller_size": 12})
COLUMNS = ("cost_bits", "bit_errors", "val_cost_bits", "val_bit_errors", "grad_norm")
# The parallel engine computes each half of the batch with the fast engine and combines the halves'
# batch means, so its sums are grouped differently and its numbers differ from the fast engine's in the
# last bits; training carries such differences on through the parameters. Measured 2026-12 on this
# tiny configuration (batch 16): at most 4.4e-16 relative in any metrics.csv column over 30 and over
# 200 steps (ntm-ff and ntm-lstm, Graves RMSProp and Adam); 1e-9 leaves a margin of over a million
# while any real difference (another batch, another step, another model) is orders of magnitude larger.
RTOL = 1e-9


def quiet(*_):
    pass


def metrics(out):
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture
def parallel_calls(monkeypatch):
    """The batch sizes of every parallel.run call (NTM.run with engine "parallel" goes through it)."""
    calls, real = [], parallel.run

    def spy(params, config, buffers, x, *args, **kwargs):
        calls.append(np.shape(x)[0])
        return real(params, config, buffers, x, *args, **kwargs)

    monkeypatch.setattr(parallel, "run", spy)
    return calls


@pytest.mark.parametrize("model", ["ntm-ff", "ntm-lstm"])
def test_parallel_training_gives_the_fast_engines_metrics(tmp_path, parallel_calls, model):
    rows = {}
    for engine in ("fast", "parallel"):
        del parallel_calls[:]
        out = str(tmp_path / engine)
        train(TrainSettings(**{**TINY, "model": model}, steps=20, engine=engine), out, log=quiet)
        rows[engine] = metrics(out)
        with open(os.path.join(out, "settings.json")) as f:
            assert json.load(f)["engine"] == engine
        if engine == "fast":
            assert parallel_calls == []
        else:    # every training step (20) and every validation (4) went through the split engine
            assert parallel_calls.count(16) == 20 and parallel_calls.count(32) == 4, parallel_calls
            assert min(parallel_calls) >= parallel.MIN_BATCH
    fast, par = rows["fast"], rows["parallel"]
    assert [r["step"] for r in fast] == [r["step"] for r in par] == [5, 10, 15, 20]
    assert [r["sequences"] for r in fast] == [r["sequences"] for r in par]
    for a, b in zip(fast, par):
        for column in COLUMNS:
            assert b[column] == pytest.approx(a[column], rel=RTOL, abs=0), (a["step"], column, a[column], b[column])


def test_build_model_uses_the_engine_and_load_model_the_fast_one(tmp_path):
    assert build_model(TrainSettings(**TINY))[0].engine == "fast"
    assert build_model(TrainSettings(**TINY, engine="parallel"))[0].engine == "parallel"
    out = str(tmp_path / "run")
    train(TrainSettings(**TINY, steps=5, engine="parallel"), out, log=quiet)
    model, settings, _ = load_model(os.path.join(out, "checkpoint.npz"))
    assert settings["engine"] == "parallel" and model.engine == "fast"     # eval and plot: no worker processes


def test_resume_of_a_parallel_run_stays_parallel_and_equals_the_uninterrupted_run(tmp_path, parallel_calls):
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    train(TrainSettings(**TINY, steps=15, engine="parallel"), straight, log=quiet)
    train(TrainSettings(**TINY, steps=10, engine="parallel"), split, log=quiet)
    settings = resume_settings(split, steps=15)
    assert settings.engine == "parallel"
    del parallel_calls[:]
    train(settings, split, resume=True, log=quiet)
    assert parallel_calls.count(16) == 5, parallel_calls          # the 5 resumed steps ran split
    a, b = (load_checkpoint(os.path.join(out, "checkpoint.npz")) for out in (straight, split))
    for k in a.params:          # the split is fixed, so the parallel engine repeats itself bit for bit
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert b.meta["settings"]["engine"] == "parallel"
    with pytest.raises(CheckpointError, match=r"other settings \(engine\)"):   # a resume keeps the engine
        train(TrainSettings(**TINY, steps=20), split, resume=True, log=quiet)


def _drop_engine(out):
    """Make a run folder look like one saved before TrainSettings had an engine."""
    path = os.path.join(out, "settings.json")
    with open(path) as f:
        saved = json.load(f)
    saved.pop("engine", None)
    with open(path, "w") as f:
        json.dump(saved, f)
    ckpt_path = os.path.join(out, "checkpoint.npz")
    ckpt = load_checkpoint(ckpt_path)
    meta = dict(ckpt.meta, settings={k: v for k, v in ckpt.meta["settings"].items() if k != "engine"})
    save_checkpoint(ckpt_path, ckpt.params, ckpt.opt_state, NTMConfig.from_dict(ckpt.config), meta, ckpt.buffers)
    assert "engine" not in load_checkpoint(ckpt_path).meta["settings"]


def test_a_run_saved_without_the_engine_setting_resumes_with_the_fast_engine(tmp_path, parallel_calls):
    out = str(tmp_path / "old")
    train(TrainSettings(**TINY, steps=5), out, log=quiet)
    _drop_engine(out)
    settings = resume_settings(out, steps=10)
    assert settings.engine == "fast"
    row = train(settings, out, resume=True, log=quiet)
    assert row["step"] == 10 and parallel_calls == []
    # and a sweep rerun does not take such a folder for another run's (check_folders compares settings.json,
    # which a resume leaves as the run first wrote it)
    with open(os.path.join(out, "settings.json")) as f:
        assert "engine" not in json.load(f)
    from ntm_ref.sweep import Point
    check_folders(str(tmp_path), [Point("old", TrainSettings(**TINY, steps=10))])
    with pytest.raises(SweepError, match=r"other settings \(engine\)"):
        check_folders(str(tmp_path), [Point("old", TrainSettings(**TINY, steps=10, engine="parallel"))])


@pytest.mark.parametrize("bad, words", [
    (dict(engine="reference"), r"^engine: got 'reference'; allowed: 'fast', 'parallel'$"),
    (dict(engine="Parallel"), r"^engine: got 'Parallel'"),
    (dict(engine=None), r"^engine: got None"),
    (dict(engine="parallel", model="lstm", config_overrides={}), r"^engine: got 'parallel' with model 'lstm'"),
])
def test_bad_engine_is_refused_naming_the_field(bad, words):
    with pytest.raises(ValueError, match=words) as err:
        TrainSettings(**{**TINY, **bad})
    assert "\n" not in str(err.value)


def test_lstm_trains_with_the_default_engine():
    assert TrainSettings(**{**TINY, "model": "lstm", "config_overrides": {}}).engine == "fast"


def _cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


TINY_ARGV = ["--task", "copy", "--batch-size", "16", "--eval-every", "5", "--checkpoint-every", "5",
             "--val-size", "16", "--set", "memory_slots=8", "--set", "memory_width=4", "--set", "controller_size=12"]


def test_cli_engine_option(tmp_path, capsys):
    out = str(tmp_path / "run")
    code, stdout, _ = _cli(["train", *TINY_ARGV, "--steps", "5", "--engine", "parallel", "--out", out], capsys)
    assert code == 0 and "parallel engine" in stdout
    assert resume_settings(out).engine == "parallel"
    before = {n: open(os.path.join(out, n), "rb").read() for n in sorted(os.listdir(out))}
    for engine in ("parallel", "fast"):          # with --resume: refused in one line, nothing changed
        code, _, stderr = _cli(["train", "--resume", out, "--engine", engine], capsys)
        assert code == 2 and "--engine" in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert {n: open(os.path.join(out, n), "rb").read() for n in sorted(os.listdir(out))} == before
    code, _, stderr = _cli(["train", *TINY_ARGV, "--steps", "5", "--model", "lstm", "--engine", "parallel",
                            "--out", str(tmp_path / "lstm")], capsys)
    assert code == 2 and "engine: got 'parallel' with model 'lstm'" in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "lstm").exists()
    with pytest.raises(SystemExit):                # argparse's choices
        cli.main(["train", "--engine", "reference"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_parallel_engines_workers_leave_no_traceback_at_exit(tmp_path):
    """Forked during training, the workers would inherit train's SIGTERM handler; the pool is ended at
    interpreter exit with SIGTERM, which then printed an Interrupted traceback from the worker."""
    out = str(tmp_path / "run")
    done = subprocess.run([sys.executable, "-m", "ntm_ref.cli", "train", *TINY_ARGV, "--steps", "5", "--engine",
                           "parallel", "--out", out], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "parallel engine" in done.stdout, done.stderr
    assert done.stderr == "", done.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_during_training_ignores_ctrl_c_and_dies_on_sigterm():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("train installs its signal handlers only in the main thread")
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    read, write = os.pipe()
    with training._Interrupts(quiet):
        ours = signal.getsignal(signal.SIGTERM)
        pid = os.fork()
        if pid == 0:                           # the child: report its handlers and leave at once
            try:
                ok = signal.getsignal(signal.SIGINT) is signal.SIG_IGN and \
                    signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
        assert signal.getsignal(signal.SIGTERM) == ours       # the training process keeps its own
    os.close(write)
    try:
        report = os.read(read, 1)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert report == b"1"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def plan(argv):
    return plan_from_args(cli.build_parser().parse_args(argv))


SWEEP = ["sweep", "--task", "copy", "--steps", "4", "--eval-every", "2", "--checkpoint-every", "2",
         "--val-size", "4", "--set", "memory_slots=8", "controller_size=8", "--task-option", "max_length=3"]


def test_sweep_grid_over_engines(tmp_path, capsys):
    out = tmp_path / "S"
    points = plan([*SWEEP, "--out", str(out), "--engine", "fast", "parallel", "--seeds", "0-1"])
    assert [p.name for p in points] == ["copy-ntm-ff-enginefast-seed0", "copy-ntm-ff-enginefast-seed1",
                                        "copy-ntm-ff-engineparallel-seed0", "copy-ntm-ff-engineparallel-seed1"]
    assert [p.settings.engine for p in points] == ["fast", "fast", "parallel", "parallel"]
    # one engine, given or not, stays out of the names: existing sweeps keep their point folders
    for extra in ([], ["--engine", "fast"], ["--engine", "parallel"]):
        assert [p.name for p in plan([*SWEEP, "--out", str(out), *extra])] == ["copy-ntm-ff-seed0"]
    assert plan([*SWEEP, "--out", str(out), "--engine", "parallel"])[0].settings.engine == "parallel"
    # the LSTM baseline has no parallel engine: one line naming the option and the point, nothing written
    assert cli.main([*SWEEP, "--out", str(out), "--model", "ntm-ff", "lstm", "--engine", "fast", "parallel"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntm-ref sweep: error: --engine parallel (grid point copy-lstm-engineparallel-seed0)")
    assert err.count("\n") == 1, err
    assert not out.exists()


def test_a_sweep_runs_parallel_engine_points_on_its_local_cluster(tmp_path, capsys):
    """The local cluster's worker processes are daemonic by default, and a daemonic process may not start
    the parallel engine's worker processes (multiprocessing: AssertionError); with a parallel point in the
    grid they are not."""
    if os.environ.get("NTM_REF_REQUIRE_DASK"):     # CI (.ci/run): a missing dask fails, as in test_sweep.py
        importlib.import_module("dask.distributed")
    else:
        pytest.importorskip("dask.distributed")
    out = tmp_path / "S"
    assert cli.main([*SWEEP, "--out", str(out), "--batch-size", "16", "--engine", "fast", "parallel",
                     "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "all 2 points finished" in printed, printed
    fast, par = (metrics(str(out / f"copy-ntm-ff-engine{e}-seed0")) for e in ("fast", "parallel"))
    assert [r["step"] for r in fast] == [r["step"] for r in par] == [2, 4]
    for a, b in zip(fast, par):
        for column in COLUMNS:
            assert b[column] == pytest.approx(a[column], rel=RTOL, abs=0), (a["step"], column)
