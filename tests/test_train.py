"""Training: a short run lowers the cost, resume equals uninterrupted, bad checkpoints give one clear
line and change nothing, a non-finite loss stops training with a replayable dump, the CLI works."""
import json
import os

import numpy as np
import pytest

from ntm_ref import cli, train as training
from ntm_ref.checkpoint import CheckpointError
from ntm_ref.train import TrainSettings, TrainingStopped, train

TINY = dict(task="copy", model="ntm-ff", batch_size=4, eval_every=10, checkpoint_every=10, val_size=32,
            task_options={"max_length": 3}, config_overrides={"memory_slots": 8, "memory_width": 4,
                                                              "controller_size": 12})


def quiet(*_):
    pass


def params_of(out):
    from ntm_ref.checkpoint import load_checkpoint
    return load_checkpoint(os.path.join(out, "checkpoint.npz"))[0]


def test_short_run_lowers_the_cost(tmp_path):
    settings = TrainSettings(**{**TINY, "steps": 400, "optimizer": "graves_rmsprop", "lr": 1e-3,
                                "eval_every": 100, "val_size": 64})
    train(settings, str(tmp_path / "run"), log=quiet)
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    val_costs = [float(r[5]) for r in rows]
    assert len(rows) == 4 and val_costs[-1] < 0.8 * val_costs[0], val_costs


@pytest.mark.parametrize("model", ["ntm-ff", "ntm-lstm", "lstm"])
def test_resume_equals_uninterrupted(tmp_path, model):
    base = {**TINY, "model": model, "optimizer": "graves_rmsprop"}
    if model == "lstm":
        base["config_overrides"] = {"controller_size": (12, 8)}
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    train(TrainSettings(**base, steps=30), straight, log=quiet)
    train(TrainSettings(**base, steps=20), split, log=quiet)
    settings = TrainSettings(**base, steps=30)
    train(settings, split, resume=True, log=quiet)
    a, b = params_of(straight), params_of(split)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with open(os.path.join(straight, "metrics.csv")) as f1, open(os.path.join(split, "metrics.csv")) as f2:
        rows1 = [r.split(",")[:2] + r.split(",")[3:] for r in f1.read().splitlines()]
        rows2 = [r.split(",")[:2] + r.split(",")[3:] for r in f2.read().splitlines()]
    assert rows1 == rows2   # every column but the wall time


def test_refuses_to_overwrite_a_saved_run(tmp_path):
    out = str(tmp_path / "run")
    train(TrainSettings(**TINY, steps=10), out, log=quiet)
    before = open(os.path.join(out, "checkpoint.npz"), "rb").read()
    with pytest.raises(CheckpointError, match="already saved"):
        train(TrainSettings(**TINY, steps=10), out, log=quiet)
    assert open(os.path.join(out, "checkpoint.npz"), "rb").read() == before


def _cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tiny_argv(out, steps=10):
    return ["train", "--task", "copy", "--steps", str(steps), "--batch-size", "4", "--eval-every", "5",
            "--checkpoint-every", "5", "--val-size", "16", "--out", out, "--set", "memory_slots=8",
            "--set", "memory_width=4", "--set", "controller_size=12"]


def test_cli_train_eval_and_progress(tmp_path, capsys):
    out = str(tmp_path / "run")
    code, stdout, _ = _cli(_tiny_argv(out), capsys)
    assert code == 0
    assert "step" in stdout and "seq/s" in stdout and "val cost" in stdout and "left" in stdout
    for name in ("metrics.csv", "settings.json", "config.json", "checkpoint.npz"):
        assert os.path.exists(os.path.join(out, name))
    header = open(os.path.join(out, "metrics.csv")).readline().strip().split(",")
    for column in ("step", "sequences", "seconds", "cost_bits", "bit_errors", "val_cost_bits", "val_bit_errors"):
        assert column in header
    assert json.load(open(os.path.join(out, "config.json")))["memory_slots"] == 8
    code, stdout, _ = _cli(["eval", os.path.join(out, "checkpoint.npz"), "--sequences", "4"], capsys)
    assert code == 0 and "validation" in stdout and "length_120" in stdout


def _corrupt(path, how):
    data = open(path, "rb").read()
    if how == "truncated":
        open(path, "wb").write(data[: len(data) // 3])
    elif how == "corrupted":
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
        arrays["param/out.b"] = arrays["param/out.b"] + 1.0
        np.savez(path, **arrays)
    elif how == "wrong-version":
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
        arrays["format_version"] = np.array(99)
        np.savez(path, **arrays)
    elif how == "missing":
        os.remove(path)


@pytest.mark.parametrize("how, words", [("missing", "no such checkpoint"), ("truncated", "truncated or corrupted"),
                                        ("corrupted", "checksum mismatch"), ("wrong-version", "version 99")])
def test_bad_checkpoint_gives_one_line_and_changes_nothing(tmp_path, capsys, how, words):
    out = str(tmp_path / "run")
    assert _cli(_tiny_argv(out), capsys)[0] == 0
    path = os.path.join(out, "checkpoint.npz")
    _corrupt(path, how)
    before = {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)}
    for argv in (["train", "--resume", out, "--steps", "20"], ["eval", path]):
        code, stdout, stderr = _cli(argv, capsys)
        assert code == 2
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "checkpoint.npz" in lines[0] and words in lines[0], stderr
        assert "Traceback" not in stderr
    after = {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)}
    assert after == before


def test_wrong_shape_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert _cli(_tiny_argv(out), capsys)[0] == 0
    settings = json.load(open(os.path.join(out, "settings.json")))
    settings["config_overrides"]["controller_size"] = 13
    json.dump(settings, open(os.path.join(out, "settings.json"), "w"))
    code, _, stderr = _cli(["train", "--resume", out, "--steps", "20"], capsys)
    assert code == 2 and "has shape" in stderr and len(stderr.strip().splitlines()) == 1


def test_bad_option_is_one_line(tmp_path, capsys):
    code, _, stderr = _cli(_tiny_argv(str(tmp_path / "r")) + ["--set", "memory_init=zeros"], capsys)
    assert code == 2 and "memory_init" in stderr and len(stderr.strip().splitlines()) == 1


def test_non_finite_loss_stops_with_a_replayable_dump(tmp_path, monkeypatch):
    real_build = training.build_model

    def poisoned_build(settings):
        model, task = real_build(settings)
        real_batch, calls = task.batch, []

        def batch(rng, batch_size, **kw):
            x, y, mask = real_batch(rng, batch_size, **kw)
            calls.append(batch_size)
            if calls.count(settings.batch_size) == 7 and batch_size == settings.batch_size:   # training batch 7
                x[0, 0, 0] = np.nan
            return x, y, mask
        task.batch = batch
        return model, task
    monkeypatch.setattr(training, "build_model", poisoned_build)
    out = str(tmp_path / "run")
    with pytest.raises(TrainingStopped) as err:
        train(TrainSettings(**{**TINY, "steps": 20, "checkpoint_every": 5}), out, log=quiet)
    message = str(err.value)
    assert "step 7" in message and "not finite" in message
    dump = os.path.join(out, "nonfinite-step7.npz")
    with np.load(dump, allow_pickle=False) as d:
        assert np.isnan(d["x"]).any() and "param/out.W" in d.files
        saved = {k[len("param/"):]: d[k] for k in d.files if k.startswith("param/")}
    assert all(np.all(np.isfinite(v)) for v in saved.values())
    # the checkpoint of step 5 is intact
    from ntm_ref.checkpoint import load_checkpoint
    assert load_checkpoint(os.path.join(out, "checkpoint.npz"))[3]["step"] == 5
