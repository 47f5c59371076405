"""A run folder is never stuck and Ctrl-C loses at most the current step.

Interrupts are real signals sent to this process (os.kill) at chosen moments of a run: while a batch is
drawn, during a validation, in the middle of writing a checkpoint. After each, the run resumes and must end
bit for bit where an uninterrupted run ends.
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from ntm_ref import cli, train as training
from ntm_ref.checkpoint import CheckpointError, load_checkpoint
from ntm_ref.train import Interrupted, TrainSettings, train

TINY = dict(task="copy", model="ntm-ff", batch_size=2, eval_every=5, checkpoint_every=10, val_size=8,
            task_options={"max_length": 3}, config_overrides={"memory_slots": 8, "memory_width": 4,
                                                              "controller_size": 12})


def quiet(*_):
    pass


def final_state(out):
    ckpt = load_checkpoint(os.path.join(out, "checkpoint.npz"))
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = [r.split(",") for r in f.read().splitlines()]
    return ckpt.params, ckpt.meta["step"], [r[:2] + r[3:] for r in rows]     # every column but wall time


def assert_same_run(a, b):
    pa, sa, ra = final_state(a)
    pb, sb, rb = final_state(b)
    assert sa == sb and ra == rb
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)


def no_temp_files(out):
    return not [n for n in os.listdir(out) if ".tmp" in n]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("straight") / "run")
    train(TrainSettings(**TINY, steps=23), out, log=quiet)
    return out


def _interrupt_on_call(monkeypatch, obj, name, n, sig=signal.SIGINT):
    """Send ``sig`` to this process on the n-th call of obj.name (from inside the call)."""
    real, calls = getattr(obj, name), []

    def wrapped(*a, **k):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), sig)
        return real(*a, **k)
    monkeypatch.setattr(obj, name, wrapped)


def _change_what_train_builds(monkeypatch, change):
    """Have train's build_model call change(settings, model, task) on what it builds."""
    real_build = training.build_model

    def build(settings):
        model, task = real_build(settings)
        change(settings, model, task)
        return model, task
    monkeypatch.setattr(training, "build_model", build)


def _interrupt_in_batch(monkeypatch, n, sig=signal.SIGINT):
    """Send ``sig`` while the run draws its n-th training batch (the batch of step n)."""
    def change(settings, model, task):
        real_batch, calls = task.batch, []

        def batch(rng, batch_size, **kw):
            if batch_size == settings.batch_size:      # not the validation set's
                calls.append(1)
                if len(calls) == n:
                    os.kill(os.getpid(), sig)
            return real_batch(rng, batch_size, **kw)
        task.batch = batch
    _change_what_train_builds(monkeypatch, change)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_step_saves_the_last_finished_step_and_resumes_exactly(tmp_path, monkeypatch, straight,
                                                                                sig):
    out, lines = str(tmp_path / "run"), []
    _interrupt_in_batch(monkeypatch, 14, sig)            # while drawing the batch of step 14
    with pytest.raises(Interrupted) as err:
        train(TrainSettings(**TINY, steps=23), out, log=lines.append)
    assert err.value.signum == sig
    assert load_checkpoint(os.path.join(out, "checkpoint.npz")).meta["step"] == 13     # not the 10th
    assert "saved step 13" in lines[-1] and f"ntm-ref train --resume {out}" in lines[-1]
    assert no_temp_files(out)
    monkeypatch.undo()
    train(TrainSettings(**TINY, steps=23), out, resume=True, log=quiet)
    assert_same_run(straight, out)


def test_interrupt_during_validation_resumes_with_that_validation(tmp_path, monkeypatch, straight):
    out = str(tmp_path / "run")
    _interrupt_on_call(monkeypatch, training, "cost_and_bit_errors", 3)       # the validation of step 15
    with pytest.raises(Interrupted):
        train(TrainSettings(**TINY, steps=23), out, log=quiet)
    meta = load_checkpoint(os.path.join(out, "checkpoint.npz")).meta
    assert meta["step"] == 15 and meta["eval_pending"]
    monkeypatch.undo()
    train(TrainSettings(**TINY, steps=23), out, resume=True, log=quiet)
    assert_same_run(straight, out)


def test_interrupt_while_saving_a_checkpoint_is_held_until_it_is_written(tmp_path, monkeypatch, straight):
    out = str(tmp_path / "run")
    _interrupt_on_call(monkeypatch, np, "savez", 1)      # inside the first checkpoint write (step 10)
    with pytest.raises(Interrupted):
        train(TrainSettings(**TINY, steps=23), out, log=quiet)
    assert load_checkpoint(os.path.join(out, "checkpoint.npz")).meta["step"] == 10
    assert no_temp_files(out)
    monkeypatch.undo()
    train(TrainSettings(**TINY, steps=23), out, resume=True, log=quiet)
    assert_same_run(straight, out)


def test_interrupt_before_the_first_step_saves_step_0(tmp_path, monkeypatch, straight):
    out = str(tmp_path / "run")
    _interrupt_in_batch(monkeypatch, 1)
    with pytest.raises(Interrupted):
        train(TrainSettings(**TINY, steps=23), out, log=quiet)
    assert load_checkpoint(os.path.join(out, "checkpoint.npz")).meta["step"] == 0
    monkeypatch.undo()
    train(TrainSettings(**TINY, steps=23), out, resume=True, log=quiet)
    assert_same_run(straight, out)


def test_cli_exit_status_of_an_interrupt(tmp_path, monkeypatch, capsys):
    _interrupt_in_batch(monkeypatch, 3, signal.SIGTERM)
    out = str(tmp_path / "run")
    code = cli.main(["train", "--task", "copy", "--steps", "20", "--batch-size", "2", "--val-size", "8",
                     "--set", "memory_slots=8", "--set", "controller_size=12", "--out", out])
    captured = capsys.readouterr()
    assert code == 128 + signal.SIGTERM
    assert "saved step 2" in captured.out and captured.err.strip() == "ntm-ref train: interrupted"


def test_a_failure_before_the_first_checkpoint_leaves_a_resumable_folder(tmp_path, monkeypatch, straight):
    out = str(tmp_path / "run")

    def out_of_memory(*a, **k):
        raise MemoryError
    _change_what_train_builds(monkeypatch, lambda settings, model, task: setattr(task, "validation_set",
                                                                                 out_of_memory))
    with pytest.raises(MemoryError):
        train(TrainSettings(**TINY, steps=23), out, log=quiet)
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(out, "checkpoint.npz"))
    with pytest.raises(CheckpointError) as err:            # a new run names the way out
        train(TrainSettings(**TINY, steps=23), out, log=quiet)
    assert f"ntm-ref train --resume {out} starts it over, or remove the folder" in str(err.value)
    settings = training.resume_settings(out)               # --resume finds the settings without a checkpoint
    assert settings == TrainSettings(**TINY, steps=23)
    train(settings, out, resume=True, log=quiet)
    assert_same_run(straight, out)


def test_a_damaged_unfinished_folder_names_its_removal(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "settings.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="remove the folder"):
        training.resume_settings(str(out))


def test_one_writer_per_run_folder(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / ".ntm-ref.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)      # another process holds the folder
        os.write(fd, b"4242")
        with pytest.raises(CheckpointError, match=r"another ntm-ref train \(pid 4242\)"):
            train(TrainSettings(**TINY, steps=3), str(out), log=quiet)
        assert sorted(os.listdir(out)) == [".ntm-ref.lock"]     # nothing written
    finally:
        os.close(fd)
    train(TrainSettings(**TINY, steps=3), str(out), log=quiet)   # released: the run goes ahead


@pytest.mark.parametrize("argv, words", [
    (["--set", "input_size=3"], "input_size=3, but the copy task"),
    (["--batch-size", "100000000"], "a training batch of 100,000,000 sequences"),
    (["--val-size", "1000000000"], "the validation set of 1,000,000,000 sequences"),
    (["--set", "memory_slots=10000000000"], "the model (ntm-ff, memory_slots 10000000000"),
])
def test_an_impossible_run_is_refused_before_any_file_is_written(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    code = cli.main(["train", "--out", str(out)] + argv)
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_demo_refuses_a_memory_it_cannot_hold(capsys):
    assert cli.main(["demo", "--slots", "1000000000"]) == 2
    assert "would need about" in capsys.readouterr().err


def test_empty_out_is_refused(capsys):
    assert cli.main(["train", "--out", ""]) == 2
    assert "--out" in capsys.readouterr().err


def test_eval_every_alone_sets_a_matching_checkpoint_interval():
    assert TrainSettings(eval_every=300).checkpoint_every == 1200
    assert TrainSettings().checkpoint_every == 1000


def test_early_stop_eta_is_bounded_not_a_promise():
    row = dict(step=200, sequences=200, cost_bits=1.0, bit_errors=1.0, val_cost_bits=1.0, val_bit_errors=1.0)
    line = training._progress_line(row, TrainSettings(early_stop=True), 10.0)
    assert "until converged" in line
    assert "until converged" not in training._progress_line(row, TrainSettings(), 10.0)


def test_version_and_set_fields_in_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("ntm-ref 0.")
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "shift_convention" in capsys.readouterr().out.replace("\n", " ")


def test_a_closed_output_pipe_stops_printing_not_training(tmp_path):
    out = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-m", "ntm_ref.cli", "train", "--task", "copy", "--steps", "30",
                             "--eval-every", "5", "--checkpoint-every", "10", "--batch-size", "2", "--val-size",
                             "8", "--set", "memory_slots=8", "--set", "controller_size=12", "--out", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()            # `| head -1`
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert load_checkpoint(os.path.join(out, "checkpoint.npz")).meta["step"] == 30


def test_a_non_finite_stop_prints_no_numpy_warnings(tmp_path, monkeypatch, recwarn):
    def poison(settings, model, task):
        model.params["ctrl.0.W"][:] = np.inf      # inf - inf in the forward pass: NaN, and numpy warns
    _change_what_train_builds(monkeypatch, poison)
    with pytest.raises(training.TrainingStopped):
        train(TrainSettings(**TINY, steps=3), str(tmp_path / "run"), log=quiet)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_resume_removes_what_a_killed_writer_left(tmp_path, straight):
    out = str(tmp_path / "run")
    train(TrainSettings(**TINY, steps=10), out, log=quiet)
    for name in ("checkpoint.npz.999999.tmp", "metrics.csv.999999.tmp"):     # kill -9 during a write
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"partial")
    train(TrainSettings(**TINY, steps=23), out, resume=True, log=quiet)
    assert no_temp_files(out)
    assert_same_run(straight, out)


def test_a_slow_start_says_its_speed_once_and_only_before_the_first_progress_line(tmp_path, monkeypatch):
    """The early note ("step N: X seq/s; the first progress line comes at step E") never follows the first
    progress line (it did when the first validation itself outlasted the note's delay)."""
    import time
    monkeypatch.setattr(training, "FIRST_NOTE_SECONDS", 0.3)
    real = training.cost_and_bit_errors

    def slow(*a, **k):
        time.sleep(0.5)
        return real(*a, **k)
    monkeypatch.setattr(training, "cost_and_bit_errors", slow)
    lines = []
    train(TrainSettings(**TINY, steps=12), str(tmp_path / "run"), log=lines.append)
    assert lines[1] == "building the validation set (8 sequences)..."     # said before the wait, not after
    rows = [i for i, line in enumerate(lines) if " | seq " in line]
    notes = [i for i, line in enumerate(lines) if "the first progress line comes" in line]
    assert rows and all(i < rows[0] for i in notes) and len(notes) <= 1, lines


def test_a_converged_run_resumed_stays_as_it_was(tmp_path, monkeypatch):
    """--resume of a run that early stopping ended trains no further (it used to train on to the next
    validation); the checkpoint and metrics stay byte for byte."""
    monkeypatch.setattr(training, "cost_and_bit_errors", lambda *a, **k: (0.5, 0.0))    # converges at once
    out = str(tmp_path / "run")
    settings = TrainSettings(**{**TINY, "early_stop": True}, steps=50)
    train(settings, out, log=quiet)
    before = {n: open(os.path.join(out, n), "rb").read() for n in ("checkpoint.npz", "metrics.csv")}
    lines = []
    row = train(settings, out, resume=True, log=lines.append)
    assert "nothing to do" in lines[-1] and row["step"] == 5
    assert before == {n: open(os.path.join(out, n), "rb").read() for n in ("checkpoint.npz", "metrics.csv")}
