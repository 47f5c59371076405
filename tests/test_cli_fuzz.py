"""A fuzz test of the command line: random argv for every subcommand, from a grammar of valid and invalid
tokens and of good, damaged and wrong files.

Properties, for every argv:
  - the exit status is one the CLI documents (0, 1, 2; 3 for a training run stopped by a non-finite loss),
    and never a traceback (cli.main returns or argparse exits; no exception escapes);
  - stderr holds at most a few lines;
  - no file outside the example's own output folder changes (the shared files below are checked byte for
    byte and by their modification time);
  - a run folder a failed ``train`` leaves behind can be resumed (``--resume`` finds its settings).

Each example runs in the test's process (cli.main), with output in a fresh folder. ``train`` always gets a
wall-time limit of about a second at the end of its argv, so a valid random run stays short.
"""
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ntm_ref import cli
from ntm_ref.train import resume_settings

# fewer examples than a property of one op: each example is a whole command (the thorough profile raises
# it with every other property)
FUZZ = settings(max_examples=max(12, settings.default.max_examples // 2), deadline=None,
                suppress_health_check=list(HealthCheck))

INTS = ["-1", "0", "1", "2", "3", "1e9", "abc", "", "1000000000", "99999999999999", "nan"]
FLOATS = ["0", "-1", "1e-3", "0.5", "nan", "inf", "-inf", "1e308", "x", ""]
SETS = ["memory_slots=8", "memory_slots=0", "memory_slots=10000000000", "controller_size=[8,8]",
        "controller_size=-3", "foo=1", "input_size=3", "shift_convention=correlation", "shift_range=2",
        "memory_init=learned", "key_activation=nope", "memory_slots", "=", "gate_activation=sigmoid",
        "cosine_epsilon=nan", "read_heads=2"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good, damaged and wrong files, made once and shared by every example (and never to change)."""
    root = tmp_path_factory.mktemp("fuzz-files")
    run = str(root / "run")
    assert cli.main(["train", "--task", "copy", "--steps", "4", "--eval-every", "2", "--checkpoint-every", "2",
                     "--val-size", "4", "--set", "memory_slots=8", "--set", "controller_size=8",
                     "--out", run]) == 0
    assert cli.main(["trace", "--preset", "tiny-ff", "--out", str(root / "trace.npz")]) == 0
    ckpt = os.path.join(run, "checkpoint.npz")
    data = open(ckpt, "rb").read()
    (root / "truncated.npz").write_bytes(data[: len(data) // 2])
    (root / "text.txt").write_text("not an array\n")
    (root / "empty.npz").write_bytes(b"")
    np.savez(root / "inputs.npz", x=np.zeros((1, 3, 5)), y=np.full((1, 3, 4), 0.5))
    np.savez(root / "bad_inputs.npz", x=np.full((1, 3, 5), np.nan), y=np.full((1, 3, 4), 2.0))
    np.savez(root / "complex.npz", x=np.zeros((1, 3, 5), dtype=complex))
    (root / "config.json").write_text('{"input_size": 5, "output_size": 4, "memory_slots": 8}')
    (root / "bad_config.json").write_text('{"input_size": "five"')
    (root / "folder").mkdir()
    paths = {name: str(root / name) for name in
             ("trace.npz", "truncated.npz", "text.txt", "empty.npz", "inputs.npz", "bad_inputs.npz",
              "complex.npz", "config.json", "bad_config.json", "folder")}
    paths.update(run=run, checkpoint=ckpt, missing=str(root / "missing.npz"))
    return paths


def _snapshot(paths):
    """(bytes, mtime) of every file under the shared paths."""
    seen = {}
    for p in paths.values():
        for dirpath, _, names in os.walk(p) if os.path.isdir(p) else [(os.path.dirname(p), [], [os.path.basename(p)])]:
            for n in names:
                f = os.path.join(dirpath, n)
                if os.path.isfile(f):
                    seen[f] = (open(f, "rb").read(), os.stat(f).st_mtime_ns)
    return seen


def file_token(files):
    return st.sampled_from(["trace.npz", "truncated.npz", "text.txt", "empty.npz", "inputs.npz",
                            "bad_inputs.npz", "complex.npz", "config.json", "bad_config.json", "folder", "run",
                            "checkpoint", "missing"]).map(lambda k: files[k])


def options(draw, table):
    """Some of the options in ``table`` (option -> strategy of its value, or None for a flag), in any order."""
    names = draw(st.lists(st.sampled_from(sorted(table)), max_size=5, unique=True))
    argv = []
    for name in names:
        argv.append(name)
        if table[name] is not None:
            argv.append(draw(table[name]))
    return argv


def run_cli(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exit:                  # argparse: a usage error (2), or --help / --version (0)
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.err


def check(argv, code, err, out_dir, files, before, allowed=(0, 1, 2)):
    assert code in allowed, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    assert len(err.strip().splitlines()) <= 3, (argv, err)     # argparse's usage error is two lines
    assert _snapshot(files) == before, f"{argv} changed a file outside its --out"
    if argv[0] == "train" and code != 0 and os.path.isdir(out_dir) and "--resume" not in argv:
        resume_settings(out_dir)                # a run folder left by a failure can be resumed


# (not sweep: a valid random grid would start a Dask cluster per example; tests/test_sweep.py covers its
# bad grids, one line each)
@pytest.mark.parametrize("command", ["train", "trace", "compare", "eval", "gradcheck", "plot", "import", "demo",
                                     "report"])
def test_random_command_lines(files, capsys, command):
    before = _snapshot(files)
    f = file_token(files)
    i, x = st.sampled_from(INTS), st.sampled_from(FLOATS)
    tables = {
        "train": {"--task": st.sampled_from(["copy", "repeat_copy", "nope"]), "--steps": i, "--batch-size": i,
                  "--eval-every": i, "--checkpoint-every": i, "--val-size": i, "--lr": x, "--clip-value": x,
                  "--stop-threshold": x, "--seed": i, "--early-stop": None, "--set": st.sampled_from(SETS),
                  "--resume": f, "--optimizer": st.sampled_from(["adam", "sgd"]), "--model": st.sampled_from(
                      ["ntm-ff", "lstm"])},
        "trace": {"--preset": st.sampled_from(["tiny-ff", "tiny-lstm", "x"]), "--config": f, "--checkpoint": f,
                  "--params": f, "--inputs": f, "--batch": i, "--steps": i, "--seed": i,
                  "--set": st.sampled_from(SETS), "--dtype": st.sampled_from(["float32", "float16"]),
                  "--force": None},
        "compare": {"--rtol": x, "--atol": x, "--skip": st.sampled_from(["fwd/*", "[", ""]), "--json": None,
                    "--only": st.sampled_from(["fwd/logits", "nothing"]), "--failures-only": None,
                    "--by-step": st.sampled_from(["fwd/memory", "x"])},
        "eval": {"--task": st.sampled_from(["copy", "ngrams"]), "--sequences": i, "--seed": i},
        "gradcheck": {"--preset": st.sampled_from(["tiny-ff", "tiny-lstm"]), "--config": f, "--checkpoint": f,
                      "--params": f, "--inputs": f, "--rtol": x, "--mode": st.sampled_from(["probe", "full"]),
                      "--set": st.sampled_from(SETS), "--steps": st.sampled_from(["1", "2", "0", "-1"]),
                      "--batch": st.sampled_from(["1", "0", "x"])},
        "plot": {"--seed": i},
        "import": {"--revision": st.sampled_from(["3c64937", "zzz", ""]), "--force": None},
        "demo": {"--slots": i, "--width": i, "--seed": i, "--step": None},
        "report": {"--generalisation": None, "--sequences": i},
    }

    @FUZZ
    @given(data=st.data())
    def one(data):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, data.draw(st.sampled_from(["out", "out.npz", "a/b"])))
            argv = [command]
            if command in ("compare",):
                argv += [data.draw(f), data.draw(f)]
            elif command in ("eval", "plot", "report"):
                argv += [data.draw(f)]
            elif command == "import":
                argv += [data.draw(st.sampled_from(["pytorch-ntm", "other"])), data.draw(f)]
            argv += options(data.draw, tables[command])
            if command in ("trace", "train", "import", "plot"):
                argv += ["--out", out]
            if command == "train":
                if "--resume" in argv:                      # a resume may only be given --steps/--max-minutes
                    argv = ["train", "--resume", argv[argv.index("--resume") + 1]]
                    copy = os.path.join(tmp, "resumed")     # resume a copy: the shared run must not change
                    if os.path.isdir(argv[2]):
                        shutil.copytree(argv[2], copy)
                        argv[2] = copy
                    out = argv[2]
                argv += ["--max-minutes", "0.01"]
            if command == "gradcheck":
                argv += ["--mode", "probe"]                 # a full check of a random config can take long
            code, err = run_cli(argv, capsys)
            check(argv, code, err, out, files, before, allowed=(0, 1, 2, 3) if command == "train" else (0, 1, 2))

    one()
