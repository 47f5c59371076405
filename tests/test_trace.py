"""Traces (ntm_ref.trace), their comparison (ntm_ref.compare) and the commands ntm-ref trace / compare /
gradcheck: contents match the documented schema and the model, user-supplied numbers are used exactly,
float32 runs stay float32, the comparison finds the first operation that differs, and every unusable input
gives exit status 2 with one line naming the problem."""
import json
import os
import re

import numpy as np
import pytest

from ntm_ref import cli
from ntm_ref.compare import TOLERANCES, compare_traces
from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM, check_arrays, init_buffers
from ntm_ref.trace import (FORMAT, PRESETS, SCHEMA_VERSION, TraceError, load_trace, make_trace,
                           params_of, preset_config, preset_inputs, preset_trace, random_params, save_trace,
                           trace_config)

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "trace-format.md")


def documented_patterns():
    """Regexes of every entry name in docs/trace-format.md's tables (first column, in backticks)."""
    patterns = []
    for line in open(DOC, encoding="utf-8"):
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            for name in re.findall(r"`([^`]+)`", first_cell):
                rx = re.escape(name).replace(re.escape("<l>"), r"\d+").replace(re.escape("<param name>"), r".+")
                patterns.append(re.compile(rx + "$"))
    return patterns


def write(tmp_path, name, trace):
    path = str(tmp_path / name)
    save_trace(path, trace)
    return path


# ---------------------------------------------------------------------------------------------------
# contents
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [{}, {"controller": "lstm", "controller_size": (5, 4)},
                                       {"memory_init": "learned"}, {"memory_init": "random"}])
def test_every_entry_is_documented_and_every_documented_kind_present(overrides):
    trace = preset_trace("tiny-ff", overrides=overrides)
    patterns = documented_patterns()
    undocumented = [k for k in trace if not any(p.match(k) for p in patterns)]
    assert not undocumented
    for required in ("format", "schema_version", "config", "dtype", "input/x", "input/y", "input/mask",
                     "init/memory", "fwd/controller_output", "fwd/read.w_shifted", "fwd/write.erase",
                     "fwd/memory", "fwd/logits", "loss", "grad/out.W", "grad/input/x"):
        assert required in trace


def test_shapes_follow_the_legend():
    t = preset_trace("tiny-lstm")
    c = trace_config(t)
    B, T = t["input/x"].shape[:2]
    N, M, R, W, S = c.memory_slots, c.memory_width, c.read_heads, c.write_heads, c.shift_width
    assert t["fwd/read.raw"].shape == (B, T, R, M + S + 3)
    assert t["fwd/write.raw"].shape == (B, T, W, M + S + 3 + 2 * M)
    assert t["fwd/read.w_content"].shape == (B, T, R, N)
    assert t["fwd/write.beta"].shape == (B, T, W)
    assert t["fwd/memory"].shape == (B, T, N, M)
    assert t["fwd/ctrl.c.1"].shape == (B, T, 4)
    assert t["init/ctrl.h.0"].shape == (B, 5)
    assert t["loss"].shape == ()


@pytest.mark.parametrize("name", ["tiny-ff", "tiny-lstm"])
def test_trace_agrees_with_the_model(name):
    """The trace's outputs, loss and gradients are NTM.run's (reference engine) on the same numbers."""
    t = preset_trace(name)
    model = NTM(trace_config(t), engine="reference")
    model.params = params_of(t)
    result = model.run(t["input/x"], t["input/y"], t["input/mask"])
    np.testing.assert_array_equal(t["fwd/logits"], result.logits)
    assert float(t["loss"]) == result.loss
    for k, g in result.grads.items():
        np.testing.assert_array_equal(t[f"grad/{k}"], g)
    np.testing.assert_array_equal(t["grad/input/x"], result.dx)
    np.testing.assert_array_equal(t["fwd/reads"][:, -1], result.caches[-1].state.reads)


def test_weightings_are_distributions_and_memory_chains():
    t = preset_trace("tiny-ff")
    for kind in ("read", "write"):
        for stage in ("w_content", "w_gated", "w_shifted", "w"):
            np.testing.assert_allclose(t[f"fwd/{kind}.{stage}"].sum(axis=-1), 1.0, rtol=1e-12)
    # the reads of step t (read first) are the step's read weighting applied to the memory before it
    prev = np.concatenate([t["init/memory"][:, None], t["fwd/memory"][:, :-1]], axis=1)
    np.testing.assert_allclose(t["fwd/reads"], np.einsum("btrn,btnm->btrm", t["fwd/read.w"], prev), rtol=1e-12)


def test_user_params_are_used_exactly():
    config = preset_config("tiny-ff")
    params = random_params(config, seed=5)
    x, y, mask = preset_inputs("tiny-ff", config, seed=5)
    t = make_trace(config, params, x, y, mask)
    for k, v in params.items():
        np.testing.assert_array_equal(t[f"param/{k}"], v)
    again = make_trace(trace_config(t), params_of(t), t["input/x"], t["input/y"], t["input/mask"])
    for k in t:
        np.testing.assert_array_equal(again[k], t[k])


def test_float32_run_is_float32_throughout_and_close_to_float64():
    t64, t32 = preset_trace("tiny-lstm"), preset_trace("tiny-lstm", dtype="float32")
    assert str(t32["dtype"]) == "float32"
    leaked = [k for k, v in t32.items() if v.dtype.kind == "f" and v.dtype != np.float32]
    assert not leaked
    assert compare_traces(t64, t32).agrees                                        # float32 defaults
    assert not compare_traces(t64, t32, rtol=TOLERANCES["float64"][0], atol=TOLERANCES["float64"][1]).agrees


def test_trace_without_targets_has_no_loss_or_gradients():
    config = preset_config("tiny-ff")
    x, _, _ = preset_inputs("tiny-ff", config)
    t = make_trace(config, random_params(config, 0), x)
    assert "loss" not in t and not any(k.startswith("grad/") for k in t) and "fwd/logits" in t


@pytest.mark.parametrize("change,match", [
    (lambda p: p.pop("out.b"), "missing parameter out.b"),
    (lambda p: p.update(extra=np.zeros(3)), "unknown parameter extra"),
    (lambda p: p.update({"read.W": np.zeros((2, 2))}), r"read.W: shape \(2, 2\); the config needs"),
    (lambda p: p["out.W"].__setitem__((0, 0), np.nan), "out.W: contains NaN"),
])
def test_bad_user_params_are_named(change, match):
    config = preset_config("tiny-ff")
    params = random_params(config, 0)
    change(params)
    with pytest.raises(ValueError, match=match):
        check_arrays(config, params)


def test_random_memory_needs_its_buffer():
    config = preset_config("tiny-ff", {"memory_init": "random"})
    with pytest.raises(ValueError, match="missing buffer memory0"):
        check_arrays(config, random_params(config, 0), buffers={})
    with pytest.raises(ValueError, match="missing buffer memory0"):      # no silent default either
        make_trace(config, random_params(config, 0), np.zeros((1, 2, config.input_size)))


# ---------------------------------------------------------------------------------------------------
# comparison: the first divergence points at the operation that differs
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,first", [
    ({"shift_convention": "correlation"}, "w_shifted"),
    ({"cosine_epsilon_mode": "denominator"}, "w_content"),
    ({"cosine_epsilon": 1e-2}, "w_content"),
    ({"sharpen_epsilon_mode": "denominator", "sharpen_epsilon": 1e-3}, "fwd/read.w"),
    ({"step_order": "write_first"}, "fwd/read.w_content"),
    ({"key_activation": "identity"}, "key"),
    ({"shift_activation": "softmax_relu"}, "fwd/read.s"),
    ({"erase_activation": "relu"}, "fwd/write.erase"),
])
def test_first_divergence_names_the_changed_operation(change, first):
    ref = preset_trace("tiny-ff")
    other = make_trace(preset_config("tiny-ff", change), params_of(ref), ref["input/x"], ref["input/y"],
                       ref["input/mask"])
    cmp = compare_traces(ref, other)
    assert not cmp.agrees
    assert first in cmp.first_divergence.name, cmp.first_divergence
    if any(k.endswith("_activation") for k in change):   # the operation names the reference's activation
        field = next(k for k in change if k.endswith("_activation"))
        assert cmp.first_divergence.operation.endswith(f"({getattr(trace_config(ref), field)})"), cmp.first_divergence
    # nothing computed before it differs: every differing forward array first differs at this step or later
    steps = [r.first_step for r in cmp.rows if not r.agrees and r.name.startswith("fwd/")]
    assert cmp.first_divergence.first_step == min(steps)
    assert any("configs differ" in n for n in cmp.notes)


def test_a_planted_error_at_a_later_step_is_found_there():
    ref = preset_trace("tiny-lstm")
    other = dict(ref)
    other["fwd/write.w_gated"] = ref["fwd/write.w_gated"].copy()
    other["fwd/write.w_gated"][1, 3, 0, 6] += 1e-7
    other["fwd/logits"] = ref["fwd/logits"].copy()
    other["fwd/logits"][0, 4, 1] = np.nan                      # later, and NaN never agrees
    cmp = compare_traces(ref, other)
    bad = {r.name: r for r in cmp.rows if not r.agrees}
    assert set(bad) == {"fwd/write.w_gated", "fwd/logits"}
    assert cmp.first_divergence.name == "fwd/write.w_gated"
    assert cmp.first_divergence.first_step == 3 and cmp.first_divergence.first_index == (1, 3, 0, 6)
    assert bad["fwd/logits"].first_step == 4 and np.isnan(bad["fwd/logits"].max_abs)


def test_rows_come_in_computation_order():
    ref = preset_trace("tiny-lstm")                           # write_first: the write heads address first
    names = [r.name for r in compare_traces(ref, ref).rows]
    pos = {n: i for i, n in enumerate(names)}
    assert pos["param/out.W"] < pos["input/x"] < pos["init/memory"] < pos["fwd/ctrl.h.0"] \
        < pos["fwd/controller_output"] < pos["fwd/write.w_content"] < pos["fwd/memory"] \
        < pos["fwd/read.w_content"] < pos["fwd/reads"] < pos["fwd/logits"] < pos["loss"] < pos["grad/ctrl.0.W"]


# ---------------------------------------------------------------------------------------------------
# the commands
# ---------------------------------------------------------------------------------------------------

def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_trace_and_compare_commands(tmp_path, capsys):
    ref, same, f32 = (str(tmp_path / n) for n in ("ref.npz", "same.npz", "f32.npz"))
    assert run_cli(capsys, "trace", "--preset", "tiny-ff", "--out", ref)[0] == 0
    assert run_cli(capsys, "trace", "--preset", "tiny-ff", "--out", same)[0] == 0
    status, out, _ = run_cli(capsys, "compare", ref, same)
    assert status == 0 and "AGREE" in out
    assert run_cli(capsys, "trace", "--preset", "tiny-ff", "--dtype", "float32", "--out", f32)[0] == 0
    status, out, _ = run_cli(capsys, "compare", ref, f32)
    assert status == 0 and "float32 defaults" in out
    status, out, _ = run_cli(capsys, "compare", ref, f32, "--rtol", "1e-10", "--atol", "1e-12", "--json")
    report = json.loads(out)
    assert status == 1 and report["agree"] is False and report["first_divergence"]["array"]
    status, _, err = run_cli(capsys, "trace", "--preset", "tiny-ff", "--out", ref)
    assert status == 2 and "exists" in err and len(err.strip().splitlines()) == 1


def test_trace_command_with_your_own_config_params_and_inputs(tmp_path, capsys):
    ref = preset_trace("tiny-ff", seed=3, overrides={"shift_convention": "correlation"})
    cfg = tmp_path / "config.json"
    cfg.write_text(str(ref["config"]))
    np.savez(tmp_path / "params.npz", **params_of(ref))                      # names without the prefix
    np.savez(tmp_path / "inputs.npz", x=ref["input/x"], y=ref["input/y"], mask=ref["input/mask"])
    out = str(tmp_path / "mine.npz")
    status, _, err = run_cli(capsys, "trace", "--config", str(cfg), "--params", str(tmp_path / "params.npz"),
                             "--inputs", str(tmp_path / "inputs.npz"), "--out", out)
    assert status == 0, err
    mine = load_trace(out)
    for k in ref:
        np.testing.assert_array_equal(mine[k], ref[k], err_msg=k)


@pytest.mark.parametrize("argv,match", [
    (["--set", "shift_convention=sideways"], "shift_convention"),
    (["--set", "cosine_epsilon=0"], "cosine_epsilon"),
    (["--set", "no_such_field=1"], "no_such_field"),
    (["--config", "missing.json"], "no such file"),
    (["--params", "missing.npz"], "no such file"),
])
def test_trace_command_errors_are_one_line(tmp_path, capsys, argv, match):
    status, _, err = run_cli(capsys, "trace", "--out", str(tmp_path / "t.npz"), *argv)
    assert status == 2 and match in err and len(err.strip().splitlines()) == 1


def test_trace_command_names_a_wrong_parameter(tmp_path, capsys):
    params = random_params(preset_config("tiny-ff"), 0)
    params["read.W"] = params["read.W"][:, :-1]
    np.savez(tmp_path / "p.npz", **params)
    status, _, err = run_cli(capsys, "trace", "--params", str(tmp_path / "p.npz"), "--out", str(tmp_path / "t.npz"))
    assert status == 2 and "read.W" in err and "shape" in err


@pytest.mark.parametrize("arrays,words", [
    (lambda p, b: p, "missing buffer memory0"),                               # never a random default
    (lambda p, b: {**p, "memory0": b["memory0"]}, "give it in buffers, buffer/memory0"),
    (lambda p, b: {**p, "buffer/memory0": b["memory0"], "read0": np.zeros((2, 5))},
     "unknown parameter read0 (read0 needs learn_initial_reads=True"),
])
def test_trace_params_file_must_hold_every_array_the_config_needs(tmp_path, capsys, arrays, words):
    """A --params file without the initial memory buffer was run with the reference's own random memory;
    now every array the config needs and the file lacks is an error, with the prefix or flag that fixes it."""
    config = preset_config("tiny-ff", {"memory_init": "random", "learn_initial_reads": False})
    cfg = tmp_path / "config.json"
    cfg.write_text(config.to_json())
    params = random_params(config, 0)
    np.savez(tmp_path / "p.npz", **arrays(params, init_buffers(config, 0)))
    status, _, err = run_cli(capsys, "trace", "--config", str(cfg), "--params", str(tmp_path / "p.npz"),
                             "--out", str(tmp_path / "t.npz"))
    assert status == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "t.npz").exists()


def test_compare_unusable_inputs_exit_2(tmp_path, capsys):
    ref = preset_trace("tiny-ff")
    good = write(tmp_path, "ref.npz", ref)
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    missing = dict(ref)
    del missing["fwd/read.w_gated"]
    reshaped = dict(ref, **{"fwd/memory": ref["fwd/memory"][:, :, :4]})
    old = dict(ref, schema_version=np.array(SCHEMA_VERSION + 1))
    foreign = dict(ref, format=np.array("something.else"))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array(FORMAT), schema_version=np.array(1), obj=np.array([{}], dtype=object))
    cases = {
        str(tmp_path / "nope.npz"): "no such file",
        str(text): "not a readable .npz",
        write(tmp_path, "missing.npz", missing): "missing 1 array(s) the reference has: fwd/read.w_gated",
        write(tmp_path, "reshaped.npz", reshaped): "fwd/memory has shape",
        write(tmp_path, "old.npz", old): "schema version 2",
        write(tmp_path, "foreign.npz", foreign): "not an ntm_ref trace",
        str(pickled): "pickle",
    }
    for path, match in cases.items():
        status, out, err = run_cli(capsys, "compare", good, path)
        assert status == 2, (path, out)
        assert match in err and len(err.strip().splitlines()) == 1, err
    # arrays the other implementation does not produce can be skipped
    status, out, _ = run_cli(capsys, "compare", good, write(tmp_path, "m2.npz", missing), "--skip", "fwd/*.w_gated")
    assert status == 0 and "skipped" in out


def test_gradcheck_command_passes_and_fails(capsys, monkeypatch):
    status, out, _ = run_cli(capsys, "gradcheck", "--preset", "tiny-lstm", "--mode", "probe")
    assert status == 0, out
    # a wrong backward (the read's memory gradient 1% too large) must fail the command
    from ntm_ref import model as model_module
    real = model_module.read_backward

    def wrong(dr, cache):
        dmem, dw = real(dr, cache)
        return dmem * 1.01, dw
    monkeypatch.setattr(model_module, "read_backward", wrong)
    # a smaller model: on a failure the checker goes on to check every entry, to name the wrong ones
    status, out, _ = run_cli(capsys, "gradcheck", "--preset", "tiny-ff", "--mode", "probe", "--set",
                             "controller_size=3", "--set", "memory_slots=4", "--set", "memory_width=2")
    assert status == 1, out
    assert "wrong gradient" in out


def test_trace_and_gradcheck_of_a_trained_checkpoint(tmp_path, capsys):
    """--checkpoint: the trained model's config and parameters, on sequences of its own task."""
    from ntm_ref.train import TrainSettings, load_model, train
    run = str(tmp_path / "run")
    train(TrainSettings(task="copy", model="ntm-ff", batch_size=2, steps=10, eval_every=10, checkpoint_every=10,
                        val_size=8, task_options={"max_length": 3},
                        config_overrides={"memory_slots": 8, "memory_width": 4, "controller_size": 6}),
          run, log=lambda *_: None)
    ckpt, out = os.path.join(run, "checkpoint.npz"), str(tmp_path / "t.npz")
    status, _, err = run_cli(capsys, "trace", "--checkpoint", ckpt, "--batch", "3", "--out", out)
    assert status == 0, err
    t, (model, _, _) = load_trace(out), load_model(ckpt)
    assert trace_config(t) == model.config and t["input/x"].shape[0] == 3 and t["input/x"].shape[2] == 9
    for k, v in model.params.items():
        np.testing.assert_array_equal(t[f"param/{k}"], v)
    status, out_text, _ = run_cli(capsys, "gradcheck", "--checkpoint", ckpt, "--mode", "probe")
    assert status == 0 and "PASSED" in out_text
    status, _, err = run_cli(capsys, "trace", "--checkpoint", ckpt, "--params", out, "--out", str(tmp_path / "x.npz"))
    assert status == 2 and "not both" in err
    status, _, err = run_cli(capsys, "trace", "--checkpoint", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "y.npz"))
    assert status == 2 and "nope.npz" in err and len(err.strip().splitlines()) == 1


def test_compare_follows_the_arrays_dtype_not_the_label():
    ref, f32 = preset_trace("tiny-ff"), preset_trace("tiny-ff", dtype="float32")
    mislabelled = dict(f32, dtype=np.array("float64"))
    cmp = compare_traces(ref, mislabelled)
    assert cmp.agrees and cmp.dtype == "float32"
    assert any("says float64 but its arrays are float32" in n for n in cmp.notes)


def test_compare_reports_every_bad_shape_with_a_hint(tmp_path, capsys):
    ref = preset_trace("tiny-ff")
    bad = dict(ref, **{"fwd/read.w": np.swapaxes(ref["fwd/read.w"], 0, 1).copy(),
                       "param/out.W": ref["param/out.W"].T.copy()})
    status, _, err = run_cli(capsys, "compare", write(tmp_path, "ref.npz", ref), write(tmp_path, "bad.npz", bad))
    assert status == 2 and "2 array(s) unusable" in err and "time is axis 1" in err and "(in, out)" in err


def test_compare_nan_json_and_skip_edge_cases(tmp_path, capsys):
    ref = preset_trace("tiny-ff")
    other = dict(ref, **{"fwd/logits": ref["fwd/logits"].copy()})
    other["fwd/logits"][0, 2, 1] = np.nan
    a, b = write(tmp_path, "ref.npz", ref), write(tmp_path, "nan.npz", other)
    status, out, _ = run_cli(capsys, "compare", a, b, "--json", "--failures-only")
    report = json.loads(out)
    assert status == 1 and [r["name"] for r in report["arrays"]] == ["fwd/logits"]
    assert report["arrays"][0]["max_abs"] is None and report["first_divergence"]["step"] == 2
    status, out, _ = run_cli(capsys, "compare", a, b)
    assert "nan" in [line for line in out.splitlines() if line.startswith("fwd/logits")][0]
    status, out, err = run_cli(capsys, "compare", a, b, "--skip", "*", "--json")
    assert status == 2 and json.loads(out)["error"].startswith("nothing to compare")
    status, out, _ = run_cli(capsys, "compare", a, b, "--skip", "fwd/logits", "--skip", "no/such/*")
    assert status == 0 and "matching no array of the reference: no/such/*" in out


def test_compare_by_step(tmp_path, capsys):
    ref = preset_trace("tiny-ff")
    other = dict(ref, **{"fwd/memory": ref["fwd/memory"].copy()})
    other["fwd/memory"][:, 3:] *= 1 + 1e-6                   # wrong from step 3 on
    a, b = write(tmp_path, "ref.npz", ref), write(tmp_path, "b.npz", other)
    status, out, _ = run_cli(capsys, "compare", a, b, "--by-step", "fwd/mem*")
    rows = [line.split() for line in out.split("fwd/memory (2, 5, 8, 5), by step:")[1].strip().splitlines()[1:]]
    assert status == 1 and [int(r[0]) for r in rows] == [0, 1, 2, 3, 4]
    assert [int(r[3]) > 0 for r in rows] == [False, False, False, True, True]
    status, out, _ = run_cli(capsys, "compare", a, b, "--json")
    per_step = {r["name"]: r["per_step"] for r in json.loads(out)["arrays"]}
    assert [s["bad"] > 0 for s in per_step["fwd/memory"]] == [False, False, False, True, True]
    assert per_step["param/out.W"] is None
    status, out, _ = run_cli(capsys, "compare", a, b, "--by-step", "param/*")
    assert "no compared array with a time axis matches" in out
