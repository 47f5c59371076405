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
    return load_checkpoint(os.path.join(out, "checkpoint.npz")).params


def _script(name):
    """scripts/<name>.py loaded as a module (the scripts are not a package)."""
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "scripts", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def files_of(out):
    return {name: open(os.path.join(out, name), "rb").read() for name in sorted(os.listdir(out))}


def test_short_run_lowers_the_cost(tmp_path):
    settings = TrainSettings(**{**TINY, "steps": 400, "optimizer": "graves_rmsprop", "lr": 1e-3,
                                "eval_every": 100, "checkpoint_every": 100, "val_size": 64})
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
    before = files_of(out)
    with pytest.raises(CheckpointError, match="already saved"):
        train(TrainSettings(**TINY, steps=10), out, log=quiet)
    os.remove(os.path.join(out, "checkpoint.npz"))      # a run that has not checkpointed yet is kept too
    before = files_of(out)
    with pytest.raises(CheckpointError, match="unfinished run with no checkpoint.*--resume .* starts it over"):
        train(TrainSettings(**TINY, steps=10), out, log=quiet)
    assert files_of(out) == before


def test_resume_from_an_earlier_checkpoint_through_the_cli(tmp_path, capsys):
    """A run killed after its step-10 checkpoint (later rows already in metrics.csv) resumes from that
    checkpoint, drops the later rows and ends bit for bit where an uninterrupted run ends."""
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    argv = lambda out, steps: _tiny_argv(out, steps)  # noqa: E731
    assert _cli(argv(straight, 30), capsys)[0] == 0
    assert _cli(argv(split, 10), capsys)[0] == 0
    saved10 = open(os.path.join(split, "checkpoint.npz"), "rb").read()
    assert _cli(["train", "--resume", split, "--steps", "20"], capsys)[0] == 0
    open(os.path.join(split, "checkpoint.npz"), "wb").write(saved10)      # as if killed after step 10
    assert _cli(["train", "--resume", split, "--steps", "30"], capsys)[0] == 0
    a, b = params_of(straight), params_of(split)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    strip = lambda out: [r.split(",")[:2] + r.split(",")[3:]  # noqa: E731
                         for r in open(os.path.join(out, "metrics.csv")).read().splitlines()]
    assert strip(straight) == strip(split)


def test_resume_refuses_changed_settings(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert _cli(_tiny_argv(out), capsys)[0] == 0
    code, _, stderr = _cli(["train", "--resume", out, "--lr", "0.5"], capsys)
    assert code == 2 and "--lr" in stderr and len(stderr.strip().splitlines()) == 1
    settings = TrainSettings(**{**TINY, "steps": 20, "lr": 0.5,
                                "config_overrides": {"memory_slots": 8, "memory_width": 4, "controller_size": 12},
                                "eval_every": 5, "checkpoint_every": 5, "val_size": 16, "batch_size": 4,
                                "task_options": {}})
    before = files_of(out)
    with pytest.raises(CheckpointError, match="other settings"):
        train(settings, out, resume=True, log=quiet)
    assert files_of(out) == before


def test_early_stop_and_time_limit(tmp_path):
    lines = []
    row = train(TrainSettings(**{**TINY, "steps": 1000, "early_stop": True, "stop_threshold": 1e9}),
                str(tmp_path / "a"), log=lines.append)
    assert row["step"] == TINY["eval_every"] and any("converged" in line for line in lines)
    lines = []
    row = train(TrainSettings(**{**TINY, "steps": 10 ** 6, "max_minutes": 1e-4}), str(tmp_path / "b"),
                log=lines.append)
    assert row["step"] < 10 ** 6 and any("time limit" in line for line in lines)
    assert params_of(str(tmp_path / "b"))          # a checkpoint was written at the stop


def test_eval_uses_the_saved_fixed_memory(tmp_path):
    """memory_init="random" with a seed other than 0: eval must see the run's own fixed memory."""
    from ntm_ref.train import build_model, cost_and_bit_errors as evaluate, load_model
    settings = TrainSettings(**{**TINY, "seed": 3, "steps": 5, "eval_every": 5, "checkpoint_every": 5,
                                "config_overrides": {**TINY["config_overrides"], "memory_init": "random"}})
    out = str(tmp_path / "run")
    train(settings, out, log=quiet)
    loaded, _, _ = load_model(os.path.join(out, "checkpoint.npz"))
    fresh, task = build_model(settings)
    np.testing.assert_array_equal(loaded.buffers["memory0"], fresh.buffers["memory0"])
    fresh.params = loaded.params
    x, y, mask = task.validation_set(16)
    assert evaluate(loaded, x, y, mask) == evaluate(fresh, x, y, mask)


@pytest.mark.parametrize("task_name, model_name", [("copy", "ntm-ff"), ("repeat_copy", "ntm-lstm"),
                                                  ("associative_recall", "lstm")])
def test_validation_in_length_sorted_cut_chunks_gives_the_whole_set_numbers(task_name, model_name):
    """cost_and_bit_errors runs chunks of similar length cut after their last scored step: the same numbers
    as the whole padded set in one run, while running fewer sequence-steps."""
    from tasks.metrics import bit_errors_per_sequence, cost_bits_per_sequence
    settings = TrainSettings(**{**TINY, "task": task_name, "model": model_name, "task_options": {}})
    model, task = training.build_model(settings)
    x, y, mask = task.validation_set(40)
    mask = mask.copy()
    mask[3] = 0                                   # a sequence that scores nothing costs nothing
    logits = model.run(x).logits
    whole = (cost_bits_per_sequence(logits, y, mask, from_logits=True),
             bit_errors_per_sequence(logits, y, mask, from_logits=True))
    steps_run = []
    real_run = model.run
    model.run = lambda xc: (steps_run.append(xc.shape[0] * xc.shape[1]), real_run(xc))[1]
    got = training.cost_and_bit_errors(model, x, y, mask, chunk=7)
    np.testing.assert_allclose(got, whole, rtol=1e-12, atol=0)
    assert len(steps_run) == 6 and sum(steps_run) < x.shape[0] * x.shape[1]


@pytest.mark.parametrize("bad, words", [
    (dict(config_overrides={"foo": 1}), "unknown NTMConfig field"),
    (dict(task_options={"max_lenght": 3}), "task_options"),
    (dict(checkpoint_every=7, eval_every=5), "multiple of eval_every"),
    (dict(lr=True), "lr"), (dict(seed=-1), "seed"), (dict(model="gru"), "model"),
])
def test_bad_settings_are_caught_when_made(bad, words):
    with pytest.raises(ValueError, match=words):
        TrainSettings(**{**TINY, **bad})


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
    # (a run folder without its checkpoint is not an error for --resume: it starts the run over, as
    # tests/test_train_robust.py checks)
    for argv in ([["train", "--resume", out, "--steps", "20"]] if how != "missing" else []) + [["eval", path]]:
        code, stdout, stderr = _cli(argv, capsys)
        assert code == 2
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "checkpoint.npz" in lines[0] and words in lines[0], stderr
        assert "Traceback" not in stderr
        if argv[0] == "train":      # the way out is named: remove the checkpoint, resume starts over
            assert f"rm {path} && ntm-ref train --resume {out}" in lines[0], lines[0]
    after = {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)}
    assert after == before


def test_wrong_shape_checkpoint(tmp_path, capsys):
    """A well-formed checkpoint whose parameters do not fit the model its settings make."""
    from ntm_ref.checkpoint import load_checkpoint, save_checkpoint
    from ntm_ref.config import NTMConfig
    out = str(tmp_path / "run")
    assert _cli(_tiny_argv(out), capsys)[0] == 0
    path = os.path.join(out, "checkpoint.npz")
    ckpt = load_checkpoint(path)
    params = dict(ckpt.params, **{"out.W": np.zeros((3, 3))})
    save_checkpoint(path, params, ckpt.opt_state, NTMConfig.from_dict(ckpt.config), ckpt.meta, ckpt.buffers)
    before = files_of(out)
    for argv, words in ((["train", "--resume", out, "--steps", "20"], "has shape"),
                        (["eval", path], "shape (3, 3); the config needs")):
        code, _, stderr = _cli(argv, capsys)
        assert code == 2 and words in stderr and "out.W" in stderr and len(stderr.strip().splitlines()) == 1
    assert files_of(out) == before


@pytest.mark.parametrize("extra, words", [(["--set", "memory_init=zeros"], "memory_init"),
                                          (["--set", "foo=1"], "foo"), (["--set", "nonsense"], "FIELD=VALUE")])
def test_bad_option_is_one_line(tmp_path, capsys, extra, words):
    code, _, stderr = _cli(_tiny_argv(str(tmp_path / "r")) + extra, capsys)
    assert code == 2 and words in stderr and len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr


def test_out_is_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    code, _, stderr = _cli(_tiny_argv(str(path)), capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_checkpoint_without_training_state_is_one_line(tmp_path, capsys):
    from ntm_ref.checkpoint import save_checkpoint
    from ntm_ref.config import NTMConfig
    from ntm_ref.model import NTM
    out = tmp_path / "run"
    out.mkdir()
    config = NTMConfig(input_size=9, output_size=8, memory_slots=8, memory_width=4, controller_size=12)
    save_checkpoint(str(out / "checkpoint.npz"), NTM(config).params, {}, config, {"step": 7})
    for argv in (["eval", str(out / "checkpoint.npz")], ["train", "--resume", str(out)]):
        code, _, stderr = _cli(argv, capsys)
        assert code == 2 and "not a training checkpoint" in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")   # the planted NaN
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
        train(TrainSettings(**{**TINY, "steps": 20, "checkpoint_every": 5, "eval_every": 5}), out, log=quiet)
    message = str(err.value)
    assert "step 7" in message and "not finite" in message
    dump = os.path.join(out, "nonfinite-step7.npz")
    with np.load(dump, allow_pickle=False) as d:
        assert np.isnan(d["x"]).any() and "param/out.W" in d.files
        saved = {k[len("param/"):]: d[k] for k in d.files if k.startswith("param/")}
    assert all(np.all(np.isfinite(v)) for v in saved.values())
    # the checkpoint of step 5 is intact
    from ntm_ref.checkpoint import load_checkpoint
    assert load_checkpoint(os.path.join(out, "checkpoint.npz")).meta["step"] == 5


def test_unset_batch_size_and_optimizer_come_from_the_tasks_measured_recipe():
    """docs/results.md's tables: copy keeps the paper's Graves RMSProp at batch 1 (the LSTM-controller NTM:
    pytorch-ntm's RMSProp); associative recall trains with Adam at batch 16 (both controllers); a pair
    without a measured entry has the paper's recipe; what is given is kept; the saved settings hold values."""
    from ntm_ref.train import RECIPES, recipe
    assert (TrainSettings().batch_size, TrainSettings().optimizer) == (1, "graves_rmsprop")
    ar = TrainSettings(task="associative_recall")
    assert (ar.batch_size, ar.optimizer) == (16, "adam") == tuple(RECIPES[("associative_recall", "ntm-ff")].values())
    assert recipe("associative_recall", "ntm-lstm") == {"batch_size": 16, "optimizer": "adam"}
    assert recipe("repeat_copy", "ntm-lstm") == {"batch_size": 1, "optimizer": "graves_rmsprop"}
    lstm_copy = TrainSettings(model="ntm-lstm")
    assert (lstm_copy.batch_size, lstm_copy.optimizer, training.learning_rate(lstm_copy)) == (1, "rmsprop", 1e-4)
    given = TrainSettings(task="associative_recall", batch_size=4, optimizer="graves_rmsprop")
    assert (given.batch_size, given.optimizer) == (4, "graves_rmsprop")
    saved = json.loads(ar.to_json())
    assert (saved["batch_size"], saved["optimizer"]) == (16, "adam")
    assert TrainSettings(**saved) == ar
    with pytest.raises(ValueError, match="optimizer: got 'sgd'"):
        TrainSettings(optimizer="sgd")


def test_gradient_rms_script_counts_the_elements_below_the_size(capsys):
    """scripts/gradient_rms.py (docs/results.md's LSTM-controller recipe): every parameter has a row, and the
    'all' row's fraction is that of the RMS gradients computed here."""
    _script("gradient_rms").main(["--model", "ntm-ff", "--sequences", "3", "--below", "0.005"])
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    settings = TrainSettings(task="copy", model="ntm-ff")
    model, task = training.build_model(settings)
    rng = np.random.default_rng(0)
    grads = [model.run(*task.batch(rng, 1)).grads for _ in range(3)]
    rms = np.concatenate([np.sqrt(sum(g[k] ** 2 for g in grads) / 3).ravel() for k in model.params])
    assert set(rows) == set(model.params) | {"all"}
    assert rows["all"][-1] == f"{np.mean(rms < 0.005):.0%}" and rows["all"][1] == f"{rms.size:,}"


def test_export_reference_model_writes_a_loadable_model_or_one_error_line(tmp_path, capsys):
    """scripts/export_reference_model.py: a run's checkpoint becomes a folder that loads and gives the
    validation numbers its eval.txt records; a missing or damaged checkpoint, a path as the name or
    --sequences 0 is one error line (exit 2) and leaves nothing under the root."""
    from ntm_ref.evaluate import load_for_eval
    from tasks import make_task
    script = _script("export_reference_model")
    run, root = tmp_path / "run", tmp_path / "root"
    root.mkdir()
    train(TrainSettings(**{**TINY, "steps": 10, "optimizer": "graves_rmsprop"}), str(run), log=quiet)
    (tmp_path / "damaged.npz").write_bytes(b"not a checkpoint")
    for argv in ([str(tmp_path / "missing.npz"), "m"], [str(tmp_path / "damaged.npz"), "m"],
                 [str(run / "checkpoint.npz"), "../m"], [str(run / "checkpoint.npz"), "m", "--sequences", "0"]):
        with pytest.raises(SystemExit) as stop:
            script.main(argv, root=str(root))
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and "Traceback" not in "\n".join(err) and "error:" in err[-1], err
        assert os.listdir(root) == []
    assert script.main([str(run / "checkpoint.npz"), "m", "--sequences", "2"], root=str(root)) == 0
    assert sorted(os.listdir(root)) == ["m"] and sorted(os.listdir(root / "m")) == ["config.json", "eval.txt",
                                                                                       "params.npz"]
    text = (root / "m" / "eval.txt").read_text()
    assert "reference_models/m" in text and ".part-" not in text
    model, _, _ = load_for_eval(str(root / "m"), task="copy")
    x, y, mask = make_task("copy").validation_set()     # eval.txt's sets are the task's defaults
    cost, errors = training.cost_and_bit_errors(model, x, y, mask)
    row = next(line.split() for line in text.splitlines() if line.startswith("validation"))
    assert (f"{cost:.3f}", f"{errors:.3f}") == (row[3], row[4])
