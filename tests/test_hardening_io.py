"""Hardening of every .npz the command line reads (ntm_ref.npzio) and of ntm-ref trace / compare /
gradcheck / eval: a file declaring an array larger than memory, a file that is not an .npz, bad metadata
or settings in a checkpoint, non-finite or out-of-range inputs, bad sizes and tolerances, infinities and
unusual dtypes in traces, and temporary files: each gives one line naming the file or option (exit 2),
never a traceback, and leaves no file behind."""
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from ntm_ref import cli, npzio
from ntm_ref.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ntm_ref.compare import compare_traces
from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM, init_buffers
from ntm_ref.trace import (TraceError, load_trace, make_trace, preset_config, preset_trace, random_params,
                           save_trace)
from ntm_ref.train import TrainSettings

GiB = 1 << 30


def run_cli(capsys, *argv):
    """-> (exit status, stdout, stderr) of ntm-ref argv."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(capsys, *argv):
    """stderr of a command that must fail with exit status 2 and exactly one line."""
    status, out, err = run_cli(capsys, *argv)
    assert status == 2, (argv, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def write_trace(tmp_path, name, trace):
    path = str(tmp_path / name)
    save_trace(path, trace)
    return path


@pytest.fixture(scope="module")
def ref_trace():
    return preset_trace("tiny-ff")


@pytest.fixture
def eight_gib(monkeypatch):
    """The machine has 8 GiB available (whatever it really has): limits do not depend on the machine."""
    monkeypatch.setattr(npzio, "available_bytes", lambda: 8 * GiB)


# ---------------------------------------------------------------------------------------------------
# 1. a small .npz that declares a huge array
# ---------------------------------------------------------------------------------------------------

def huge_npz(path, extra=None):
    """A ~56 KB .npz whose 'x.npy' header declares float64 (100000, 1000000): 800 GB; plus ``extra``
    (name -> array) written normally."""
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (100000, 1000000)})
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in (extra or {}).items():
            buf = io.BytesIO()
            np.save(buf, value)
            zf.writestr(f"{name}.npy", buf.getvalue())
        zf.writestr("x.npy", header.getvalue() + b"\0" * 56_000)
    return str(path)


def test_read_npz_refuses_a_declared_800_gb_array_before_reading_it(tmp_path, eight_gib):
    path = huge_npz(tmp_path / "huge.npz")
    assert os.path.getsize(path) < 60_000
    with pytest.raises(npzio.NpzError) as err:
        npzio.read_npz(path, "--params")
    message = str(err.value)
    assert message.startswith(f"--params {path}: ") and "'x'" in message and "(100000, 1000000)" in message
    assert "745 GiB" in message and "\n" not in message
    with pytest.raises(npzio.NpzError, match="declare"):            # an explicit limit
        npzio.read_npz(str(write_small(tmp_path)), "", max_bytes=100)
    assert npzio.read_npz(str(write_small(tmp_path)), "", max_bytes=10_000)["a"].shape == (10, 10)


def write_small(tmp_path):
    path = tmp_path / "small.npz"
    np.savez(path, a=np.zeros((10, 10)))                  # 800 bytes
    return path


def test_default_limit_is_a_fraction_of_the_available_memory(tmp_path, monkeypatch):
    path = str(write_small(tmp_path))
    monkeypatch.setattr(npzio, "available_bytes", lambda: 1000)      # limit 500 bytes < 800
    with pytest.raises(npzio.NpzError, match="800 B"):
        npzio.read_npz(path, "")
    monkeypatch.setattr(npzio, "available_bytes", lambda: 10_000)
    assert npzio.read_npz(path, "")["a"].shape == (10, 10)
    monkeypatch.undo()
    assert 0 < npzio.available_bytes() < 1 << 50                     # the real machine's, in bytes


def test_every_command_refuses_the_huge_npz_in_one_line(tmp_path, capsys, ref_trace, eight_gib):
    path = huge_npz(tmp_path / "huge.npz")
    ref = write_trace(tmp_path, "ref.npz", ref_trace)
    imported = tmp_path / "imported"
    imported.mkdir()
    (imported / "config.json").write_text(preset_config("tiny-ff").to_json())
    huge_npz(imported / "params.npz")
    out = tmp_path / "t.npz"
    for argv in (["compare", ref, path], ["compare", path, ref], ["eval", path],
                 ["eval", str(imported), "--task", "copy"], ["trace", "--params", path, "--out", out],
                 ["trace", "--inputs", path, "--out", out], ["trace", "--checkpoint", path, "--out", out],
                 ["gradcheck", "--params", path]):
        err = one_line_error(capsys, *argv)
        assert "huge.npz" in err or "params.npz" in err
        assert "745 GiB" in err and "(100000, 1000000)" in err, err
    assert not out.exists()


def test_object_arrays_are_refused_from_their_header(tmp_path, monkeypatch):
    path = tmp_path / "obj.npz"
    np.savez(path, ok=np.zeros(3), obj=np.array([{}, None], dtype=object))

    def no_load(*a, **k):
        raise AssertionError("numpy.load called before the headers were checked")
    monkeypatch.setattr(np, "load", no_load)
    with pytest.raises(npzio.NpzError, match="'obj' holds Python objects.*pickle"):
        npzio.read_npz(str(path), "")


# ---------------------------------------------------------------------------------------------------
# 2. messages that name the file and say what is wrong
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_parts():
    """(params, config, meta) of a small copy-task NTM checkpoint, as ntm-ref train saves them."""
    config = NTMConfig(input_size=9, output_size=8, memory_slots=8, memory_width=4, controller_size=6)
    settings = TrainSettings(task="copy", model="ntm-ff", batch_size=2, steps=10, eval_every=10,
                             checkpoint_every=10, val_size=4, task_options={"max_length": 3},
                             config_overrides={"memory_slots": 8, "memory_width": 4, "controller_size": 6})
    meta = {"step": 10, "sequences": 20, "seconds": 1.5, "model": "ntm-ff",
            "rng_state": np.random.default_rng(0).bit_generator.state, "settings": json.loads(settings.to_json())}
    return NTM(config, seed=0).params, config, meta


def make_checkpoint(tmp_path, parts, name="checkpoint.npz", **changes):
    """A checkpoint with a valid checksum whose meta has ``changes``; settings=dict(...) entries replace
    single settings (None removes one)."""
    params, config, meta = parts
    meta = json.loads(json.dumps(meta))
    settings = changes.pop("settings", {})
    meta.update(changes)
    for key, value in settings.items():
        if value is None:
            meta["settings"].pop(key)
        else:
            meta["settings"][key] = value
    path = str(tmp_path / name)
    save_checkpoint(path, params, {}, config, meta)
    return path


def test_a_text_file_is_not_an_npz_not_pickled_data(tmp_path, capsys):
    text = tmp_path / "notes.npz"
    text.write_text("hello, not a checkpoint\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_text("hello\n")
    for argv in (["eval", text], ["eval", run], ["trace", "--checkpoint", text, "--out", tmp_path / "t.npz"],
                 ["trace", "--params", text, "--out", tmp_path / "t.npz"], ["compare", text, text]):
        err = one_line_error(capsys, *argv)
        assert "not an .npz archive" in err and "pickle" not in err and "truncated" not in err, err
        assert "notes.npz" in err or "checkpoint.npz" in err
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(CheckpointError, match="single-array .npy file"):
        load_checkpoint(str(npy))


@pytest.mark.parametrize("change, words", [
    (dict(step="seven"), "step is 'seven'"),                      # was: Cannot specify ',' with 's'.
    (dict(sequences=-1), "sequences is -1"),
    (dict(rng_state={"bit_generator": "MT19937", "state": {}}), "rng_state"),   # was: state must be for a PCG64 RNG
    (dict(settings=dict(task=None)), "name no task"),             # was: KeyError 'task'
    (dict(settings=dict(task="juggling")), "juggling"),
    (dict(settings=dict(task_options=[1, 2])), "task_options"),   # was: TypeError
    (dict(settings=dict(task_options={"colour": 3})), "colour"),
    (dict(settings=dict(no_such_setting=1)), "no_such_setting"),
])
def test_eval_of_a_checkpoint_with_bad_metadata_is_one_line(tmp_path, capsys, checkpoint_parts, change, words):
    path = make_checkpoint(tmp_path, checkpoint_parts, **change)
    err = one_line_error(capsys, "eval", path, "--sequences", "1")
    assert path in err and words in err, err


def test_a_bad_rng_state_is_refused_when_the_checkpoint_is_read(tmp_path, checkpoint_parts):
    """train --resume restores rng_state after reading the checkpoint: reading refuses a bad one."""
    good = make_checkpoint(tmp_path, checkpoint_parts, name="good.npz")
    assert load_checkpoint(good).meta["step"] == 10
    bad = make_checkpoint(tmp_path, checkpoint_parts, name="bad.npz",
                          rng_state={"bit_generator": "PCG64", "state": "nonsense"})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    assert bad in str(err.value) and "rng_state" in str(err.value)


def test_text_arrays_are_named_not_a_float_conversion_error(tmp_path, capsys, ref_trace):
    bad = dict(ref_trace, **{"fwd/logits": ref_trace["fwd/logits"].astype(str)})
    ref, bad_path = write_trace(tmp_path, "ref.npz", ref_trace), write_trace(tmp_path, "text.npz", bad)
    for argv in (["compare", bad_path, ref], ["compare", ref, bad_path]):
        err = one_line_error(capsys, *argv)
        assert "text.npz" in err and "fwd/logits" in err and "text" in err and "convert" not in err
    np.savez(tmp_path / "in.npz", x=ref_trace["input/x"].astype(str))
    err = one_line_error(capsys, "trace", "--inputs", tmp_path / "in.npz", "--out", tmp_path / "t.npz")
    assert "--inputs" in err and "in.npz" in err and "array x" in err and "convert" not in err


# ---------------------------------------------------------------------------------------------------
# 3. --set on a checkpoint
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["trace", "gradcheck"])
def test_an_unknown_set_field_on_a_checkpoint_is_one_line(tmp_path, capsys, checkpoint_parts, command):
    path = make_checkpoint(tmp_path, checkpoint_parts)
    err = one_line_error(capsys, command, "--checkpoint", path, "--set", "foo=1", "--out", tmp_path / "t.npz") \
        if command == "trace" else one_line_error(capsys, command, "--checkpoint", path, "--set", "foo=1")
    assert "--set" in err and "foo" in err


# ---------------------------------------------------------------------------------------------------
# 4. compare: JSON, infinities, tolerances
# ---------------------------------------------------------------------------------------------------

def strict_json(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def with_logits(trace, values):
    return dict(trace, **{"fwd/logits": values})


def test_compare_json_is_strict_with_infinite_errors(tmp_path, capsys, ref_trace):
    logits = ref_trace["fwd/logits"].copy()
    logits[1, 3, 0] = np.inf
    a, b = write_trace(tmp_path, "ref.npz", ref_trace), write_trace(tmp_path, "inf.npz", with_logits(ref_trace, logits))
    status, out, _ = run_cli(capsys, "compare", a, b, "--json", "--failures-only")
    report = strict_json(out)
    assert status == 1 and [r["name"] for r in report["arrays"]] == ["fwd/logits"]
    row = report["arrays"][0]
    assert row["max_abs"] is None and row["max_rel"] is None and row["bad"] == 1
    assert row["per_step"][3]["max_abs"] is None and row["per_step"][0]["max_abs"] == 0.0


def test_equal_infinities_agree_and_nothing_else_does(ref_trace):
    logits = ref_trace["fwd/logits"].copy()
    logits[0, 0, 0], logits[1, 2, 1] = np.inf, -np.inf
    inf = with_logits(ref_trace, logits)
    assert compare_traces(inf, inf).agrees                                 # was: DIFFER
    flipped = logits.copy()
    flipped[0, 0, 0] = -np.inf
    row = {r.name: r for r in compare_traces(inf, with_logits(ref_trace, flipped)).rows}["fwd/logits"]
    assert row.bad == 1 and row.first_index == (0, 0, 0)
    # an infinite reference entry does not admit a finite one through rtol * |inf|
    for ref, other in ((inf, ref_trace), (ref_trace, inf)):
        row = {r.name: r for r in compare_traces(ref, other).rows}["fwd/logits"]
        assert row.bad == 2 and row.max_abs == np.inf and row.max_rel == np.inf
    nan = logits.copy()
    nan[1, 0, 2] = np.nan                                                  # NaN at the same place agrees
    assert compare_traces(with_logits(ref_trace, nan), with_logits(ref_trace, nan)).agrees
    assert not compare_traces(with_logits(ref_trace, nan), inf).agrees


@pytest.mark.parametrize("option, value", [("--rtol", "nan"), ("--rtol", "inf"), ("--atol", "-1"),
                                           ("--atol", "nan"), ("--rtol", "-1e-9")])
def test_compare_tolerances_must_be_finite_and_not_negative(tmp_path, capsys, ref_trace, option, value):
    a = write_trace(tmp_path, "ref.npz", ref_trace)
    err = one_line_error(capsys, "compare", a, a, f"{option}={value}")
    assert f"{option}: got {float(value)!r}" in err and "finite number >= 0" in err
    status, out, _ = run_cli(capsys, "compare", a, a, f"{option}={value}", "--json")
    assert status == 2 and option in strict_json(out)["error"]
    with pytest.raises(ValueError, match=option.lstrip("-")):
        compare_traces(ref_trace, ref_trace, **{option.lstrip("-"): float(value)})


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_gradcheck_rtol_must_be_finite_and_not_negative(capsys, value):
    err = one_line_error(capsys, "gradcheck", "--preset", "tiny-ff", f"--rtol={value}")
    assert "--rtol" in err and "finite number >= 0" in err


# ---------------------------------------------------------------------------------------------------
# 5. complex and float16 arrays in either trace
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, words", [(np.complex128, "complex128 (complex numbers)"), (np.float16, "float16")])
@pytest.mark.parametrize("side", ["reference", "other"])
def test_complex_and_float16_arrays_are_refused_by_name_in_either_trace(tmp_path, capsys, ref_trace, dtype,
                                                                        words, side):
    odd = write_trace(tmp_path, "odd.npz", with_logits(ref_trace, ref_trace["fwd/logits"].astype(dtype)))
    good = write_trace(tmp_path, "ref.npz", ref_trace)
    argv = ["compare", odd, good] if side == "reference" else ["compare", good, odd]
    err = one_line_error(capsys, *argv)
    assert "odd.npz" in err and "fwd/logits" in err and words in err and "float32" not in err.split(words)[0]


# ---------------------------------------------------------------------------------------------------
# 6. trace inputs and sizes
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, spoil, words", [
    ("x", lambda a: np.where(a > 1.0, np.nan, a), "NaN or infinite"),
    ("x", lambda a: np.where(a > 1.0, -np.inf, a), "NaN or infinite"),
    ("y", lambda a: 2 * a, "outside [0, 1]"),
    ("y", lambda a: np.where(a > 0.5, np.nan, a), "NaN or infinite"),
    ("mask", lambda a: a - 0.5, "outside [0, 1]"),
])
@pytest.mark.parametrize("command", ["trace", "gradcheck"])
def test_bad_input_values_are_refused_naming_the_array(tmp_path, capsys, ref_trace, name, spoil, words, command):
    arrays = {k: ref_trace[f"input/{k}"] for k in ("x", "y", "mask")}
    arrays[name] = spoil(arrays[name])
    np.savez(tmp_path / "in.npz", **arrays)
    argv = [command, "--inputs", tmp_path / "in.npz"] + (["--out", tmp_path / "t.npz"] if command == "trace" else [])
    err = one_line_error(capsys, *argv)
    assert f"in.npz: array {name} " in err and words in err, err
    assert not (tmp_path / "t.npz").exists()


def test_make_trace_refuses_bad_inputs_too(ref_trace):
    config = preset_config("tiny-ff")
    x, y = ref_trace["input/x"], ref_trace["input/y"]
    params, buffers = random_params(config, 0), init_buffers(config, 0)
    with pytest.raises(ValueError, match="^y: holds"):
        make_trace(config, params, x, y + 1.0, None, buffers)
    with pytest.raises(ValueError, match="^x: has dtype complex128"):
        make_trace(config, params, x + 1j, y, None, buffers)


@pytest.mark.parametrize("argv, words", [
    (["--steps", "0"], "--steps: got 0; must be at least 1"),           # was: silently T=5
    (["--batch", "0"], "--batch: got 0; must be at least 1"),           # was: silently B=2
    (["--batch", "-2"], "--batch: got -2"),
    (["--out", ""], "--out: empty"),                                    # was: the default trace.npz
    (["--steps", str(10 ** 12)], "would need about"),                   # was: MemoryError
    (["--batch", str(10 ** 12)], "would need about"),
])
def test_bad_sizes_and_out_are_refused(tmp_path, capsys, argv, words, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, "trace", *argv)
    assert words in err, err
    assert os.listdir(tmp_path) == []


def test_sizes_that_are_not_used_are_refused(tmp_path, capsys, ref_trace, checkpoint_parts):
    np.savez(tmp_path / "in.npz", x=ref_trace["input/x"])
    err = one_line_error(capsys, "trace", "--inputs", tmp_path / "in.npz", "--batch", "3", "--out", tmp_path / "t.npz")
    assert "--inputs" in err and "--batch" in err
    path = make_checkpoint(tmp_path, checkpoint_parts)
    err = one_line_error(capsys, "trace", "--checkpoint", path, "--steps", "3", "--out", tmp_path / "t.npz")
    assert "--steps" in err
    err = one_line_error(capsys, "gradcheck", "--checkpoint", path, "--batch", str(10 ** 12))
    assert "--batch" in err and "at least" in err


def test_the_memory_estimate_is_within_a_small_factor_of_the_real_peak():
    from ntm_ref.limits import run_bytes as trace_bytes
    config = preset_config("tiny-ff", {"memory_slots": 32, "memory_width": 8, "controller_size": 20})
    params, buffers = random_params(config, 0), init_buffers(config, 0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 20, config.input_size)), (rng.random((3, 20, config.output_size)) > 0.5) * 1.0
    tracemalloc.start()
    try:
        make_trace(config, params, x, y, None, buffers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.5 < trace_bytes(config, 3, 20) / peak < 3.0
    assert trace_bytes(config, 3, 40) > 1.9 * trace_bytes(config, 3, 20) - 3 * 150 * 128


# ---------------------------------------------------------------------------------------------------
# 7. no temporary file left, no file touched on error
# ---------------------------------------------------------------------------------------------------

def test_trace_out_a_folder_leaves_nothing(tmp_path, capsys):
    folder = tmp_path / "traces"
    folder.mkdir()
    err = one_line_error(capsys, "trace", "--out", folder, "--force")
    assert "is a folder" in err
    assert sorted(os.listdir(tmp_path)) == ["traces"] and os.listdir(folder) == []
    err = one_line_error(capsys, "trace", "--out", tmp_path / "missing" / "t.npz")
    assert "no such folder" in err and sorted(os.listdir(tmp_path)) == ["traces"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError])
def test_a_failed_write_leaves_no_temporary_file_and_the_old_trace(tmp_path, monkeypatch, ref_trace, interrupt):
    path = tmp_path / "t.npz"
    path.write_bytes(b"the old trace")
    written = []

    def failing_savez(file, **arrays):
        f = open(file, "wb") if isinstance(file, str) else file       # as numpy would: start writing
        f.write(b"partial")
        f.flush()
        written.append(getattr(f, "name", file))
        raise interrupt("stopped while writing")
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(interrupt):
        save_trace(str(path), ref_trace, overwrite=True)
    assert os.listdir(tmp_path) == ["t.npz"] and path.read_bytes() == b"the old trace"
    assert str(os.getpid()) in os.path.basename(written[0])               # the temporary file is this process's


def test_trace_errors_touch_no_existing_file(tmp_path, capsys, ref_trace):
    out = tmp_path / "t.npz"
    out.write_bytes(b"keep me")
    arrays = {"x": ref_trace["input/x"], "y": 3 * ref_trace["input/y"]}
    np.savez(tmp_path / "in.npz", **arrays)
    one_line_error(capsys, "trace", "--inputs", tmp_path / "in.npz", "--out", out, "--force")
    assert out.read_bytes() == b"keep me" and sorted(os.listdir(tmp_path)) == ["in.npz", "t.npz"]
    status, _, err = run_cli(capsys, "trace", "--out", out, "--force")        # and a good run replaces it
    assert status == 0, err
    assert load_trace(str(out))["input/x"].shape == (2, 5, 4) and sorted(os.listdir(tmp_path)) == ["in.npz", "t.npz"]


def test_load_trace_messages(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        load_trace(str(tmp_path / "nope.npz"))
    truncated = tmp_path / "cut.npz"
    np.savez(truncated, a=np.zeros(1000))
    truncated.write_bytes(truncated.read_bytes()[:3000])
    with pytest.raises(TraceError, match="cut.npz: not a readable .npz trace: .*truncated or corrupted"):
        load_trace(str(truncated))
