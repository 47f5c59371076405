"""ntm-ref sweep and ntm-ref report (ntm_ref/sweep.py, ntm_ref/report.py, docs/sweep.md).

Grid parsing, validation and the report need no Dask and always run; the sweeps themselves run on a
dask.distributed LocalCluster of 2 worker processes and are skipped without dask. Every run is tiny
(memory 8 x 20, controller 8, copy sequences of 1-3 vectors, 4 validation sequences). The Ctrl-C test
(a subprocess and two local clusters, ~20 s) runs only with NTM_REF_SLOW=1 or HYPOTHESIS_PROFILE=thorough.
"""
import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ntm_ref import cli


def needs_dask():
    """Skip without dask, unless NTM_REF_REQUIRE_DASK is set (CI: .ci/run), where a missing dask fails."""
    if os.environ.get("NTM_REF_REQUIRE_DASK"):
        importlib.import_module("dask.distributed")
    else:
        pytest.importorskip("dask.distributed")
from ntm_ref.report import load_results, make_report, quartiles
from ntm_ref.sweep import (DONE_FILE, LOG_FILE, SweepError, finish_reason, is_finished, parse_field_values,
                           parse_seeds, plan_from_args, read_done, run_point, write_plan)
from ntm_ref.train import LOCK_NAME, TrainSettings, train

TINY = ["--eval-every", "2", "--checkpoint-every", "2", "--val-size", "4",
        "--set", "memory_slots=8", "controller_size=8", "--task-option", "max_length=3"]
TINY_FIELDS = dict(eval_every=2, checkpoint_every=2, val_size=4,
                   config_overrides=dict(memory_slots=8, controller_size=8), task_options=dict(max_length=3))
SLOW = os.environ.get("NTM_REF_SLOW") == "1" or os.environ.get("HYPOTHESIS_PROFILE") == "thorough"


def sweep_argv(out, *extra):
    return ["sweep", "--task", "copy", "--out", str(out), *TINY, *extra]


def plan(argv):
    return plan_from_args(cli.build_parser().parse_args(argv))


def metric_steps(folder):
    with open(os.path.join(folder, "metrics.csv"), newline="") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f)]


def metric_column(folder, name):
    with open(os.path.join(folder, "metrics.csv"), newline="") as f:
        return [float(r[name]) for r in csv.DictReader(f)]


def log_lines(folder, prefix="sweep: "):
    with open(os.path.join(folder, LOG_FILE)) as f:
        return [line for line in f.read().splitlines() if line.startswith(prefix)]


# ------------------------------------------------------------------------------ the grid (no Dask)

def test_seeds_and_field_values_parse():
    assert parse_seeds(["0-3"]) == [0, 1, 2, 3]
    assert parse_seeds(["0-2,7", "9", "1"]) == [0, 1, 2, 7, 9]
    assert parse_field_values([["controller_size=50", "100"], ["memory_slots=8", "shift_range=2"],
                               ["controller_size=[100,100]"]], "--set") == \
        {"controller_size": [50, 100, (100, 100)], "memory_slots": [8], "shift_range": [2]}
    for bad in (["3-1"], ["a"], ["-1"], ["1-"]):
        with pytest.raises(SweepError, match="--seeds"):
            parse_seeds(bad)
    with pytest.raises(SweepError, match="--set: got '8'"):
        parse_field_values([["8"]], "--set")


def test_grid_expands_every_combination_with_readable_names(tmp_path):
    out = tmp_path / "S"
    points = plan(sweep_argv(out, "--model", "ntm-ff", "lstm", "--seeds", "0-1,5", "--lr", "1e-4", "3e-4",
                             "--steps", "6", "--set", "shift_range=1", "2", "--early-stop"))
    assert len(points) == 2 * 3 * 2 * 2
    names = [p.name for p in points]
    assert len(set(names)) == len(names)
    assert "copy-lstm-lr0.0003-shift_range2-seed5" in names
    assert "copy-ntm-ff-lr0.0001-shift_range1-seed0" in names
    p = points[names.index("copy-lstm-lr0.0003-shift_range2-seed5")]
    assert (p.settings.model, p.settings.lr, p.settings.seed, p.settings.steps) == ("lstm", 3e-4, 5, 6)
    assert p.settings.early_stop and p.settings.config_overrides == dict(memory_slots=8, controller_size=8,
                                                                          shift_range=2)
    assert p.settings.task_options == {"max_length": 3}
    assert not out.exists()             # planning writes nothing
    # values that do not vary stay out of the name; the task and the model are always in it
    assert [p.name for p in plan(sweep_argv(out, "--seeds", "3", "--lr", "1e-4"))] == ["copy-ntm-ff-seed3"]


@pytest.mark.parametrize("extra, blamed", [
    (["--batch-size", "1", "0"], "--batch-size 0"),
    (["--lr", "1e-4", "-1"], "--lr -1.0"),
    (["--set", "memory_slots=0"], "--set memory_slots=0"),
    (["--set", "no_such_field=1"], "--set no_such_field=1"),
    (["--task-option", "max_length=0"], "--task-option max_length=0"),
    (["--checkpoint-every", "3"], "--checkpoint-every 3"),
    (["--seeds", "5-2"], "--seeds"),
])
def test_a_bad_grid_value_is_one_line_and_nothing_is_written(tmp_path, capsys, extra, blamed):
    out = tmp_path / "S"
    assert cli.main(sweep_argv(out, "--steps", "6", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntm-ref sweep: error: ") and blamed in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_point_folder_holding_another_run_is_refused_before_anything_starts(tmp_path, capsys):
    out = tmp_path / "S"
    (point,) = plan(sweep_argv(out, "--steps", "4"))
    train(TrainSettings(**{**TINY_FIELDS, "steps": 2, "lr": 3e-4}), str(out / point.name), log=lambda line: None)
    before = sorted(os.listdir(out))
    assert cli.main(sweep_argv(out, "--steps", "4")) == 2
    err = capsys.readouterr().err
    assert "other settings (lr)" in err and err.count("\n") == 1, err
    assert sorted(os.listdir(out)) == before     # no sweep.json, nothing started


def test_without_dask_the_sweep_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)     # import distributed -> ImportError
    out = tmp_path / "S"
    assert cli.main(sweep_argv(out, "--steps", "6")) == 2
    err = capsys.readouterr().err
    assert 'pip install ".[sweep]"' in err and err.count("\n") == 1
    assert not out.exists()


def test_finished_means_steps_time_or_convergence_under_the_current_budget():
    s = TrainSettings(**TINY_FIELDS, steps=6, max_minutes=1.0)
    row = dict(step=6, seconds=1.0, val_bit_errors=3.0)
    assert finish_reason(row, s) == "steps"
    assert finish_reason(dict(row, step=4), s) is None
    assert finish_reason(dict(row, step=4, seconds=60.0), s) == "time"
    early = TrainSettings(**TINY_FIELDS, steps=6, early_stop=True, stop_threshold=5.0)
    assert finish_reason(dict(row, step=2), early) == "converged"
    done = {"reason": "steps", "row": row}
    assert is_finished(done, s) and not is_finished(done, TrainSettings(**TINY_FIELDS, steps=8))
    assert is_finished({"reason": "diverged", "row": {}}, s) and not is_finished(None, s)


# --------------------------------------------------------------------------------- report (no Dask)

def test_report_of_a_partial_sweep_counts_unfinished_points_and_summarises_the_rest(tmp_path, capsys):
    """stop threshold 1000 converges at the first evaluation, 0 never; one point stops early (as if
    interrupted): the report's numbers are the quartiles of the finished points' own metrics."""
    out = tmp_path / "S"
    points = plan(sweep_argv(out, "--steps", "6", "--stop-threshold", "1000", "0", "--seeds", "0-2", "--early-stop"))
    assert [p.settings.stop_threshold for p in points] == [1000.0] * 3 + [0.0] * 3
    write_plan(str(out), points, ["test"])
    unfinished = points[-1]
    for p in points[:-1]:
        result = run_point(str(out / p.name), json.loads(p.settings.to_json()))
        assert result["status"] == "done"
    train(TrainSettings(**{**json.loads(unfinished.settings.to_json()), "steps": 2}), str(out / unfinished.name),
          log=lambda line: None)
    assert read_done(str(out / points[0].name))["reason"] == "converged"
    assert read_done(str(out / points[3].name))["reason"] == "steps"

    text = make_report(str(out))
    printed = capsys.readouterr().out
    assert "5 of 6 points finished; 1 unfinished" in printed
    rows = {line.split("|")[3].strip(): [c.strip() for c in line.split("|")[4:-1]]
            for line in text.split("## Points")[0].splitlines() if line.startswith("| copy")}
    assert set(rows) == {"1000.0", "0.0"}
    assert rows["1000.0"][:2] == ["3", "3/3 (100%)"]
    assert rows["0.0"][:4] == ["2 (+1 unfinished)", "0/2 (0%)", "-", "-"]
    finals = [metric_column(str(out / p.name), "val_bit_errors")[-1] for p in points[:3]]
    q1, med, q3 = quartiles(finals)
    assert rows["1000.0"][5] == f"{med:.3f} ({q1:.3f}-{q3:.3f})"
    conv = [metric_column(str(out / p.name), "sequences")[0] for p in points[:3]]
    assert rows["1000.0"][2].startswith(f"{np.median(conv):,.0f}")
    assert os.path.exists(out / "report.md")
    assert "unfinished" in (out / "report.md").read_text()
    if _has_matplotlib():
        assert os.path.getsize(out / "learning_curves.png") > 1000
    assert sum(r.finished for r in load_results(str(out))) == 5
    # the best finished seed of each cell on the generalisation sets
    text = make_report(str(out), generalisation=True, n=2)
    assert text.count("### copy, ntm-ff, stop_threshold=") == 2 and text.count("length_120") == 2


def test_report_gives_n_grams_their_bayes_optimal_cost_and_plots_cost_against_it(tmp_path):
    """An N-grams cell: the table has the Bayes-optimal cost of the run's own validation sequences (computed
    here by the task's estimator, tasks.ngrams eq. 10), the curves plot validation cost, with the optimal
    cost as a line; a copy-only sweep has no such column."""
    from ntm_ref.report import learning_curves_figure, summary_table
    from tasks.ngrams import NGrams, bayes_optimal_cost_bits_per_sequence
    out = tmp_path / "S"
    argv = ["sweep", "--task", "ngrams", "--out", str(out), "--steps", "4", "--eval-every", "2",
            "--checkpoint-every", "2", "--val-size", "5", "--set", "memory_slots=8", "controller_size=8",
            "--task-option", "length=20", "--seeds", "0-1"]
    points = plan(argv)
    write_plan(str(out), points, ["test"])
    for p in points:
        assert run_point(str(out / p.name), json.loads(p.settings.to_json()))["status"] == "done"
    optimal = bayes_optimal_cost_bits_per_sequence(*NGrams(length=20).validation_set(5))
    table, cells = summary_table(load_results(str(out)))
    header, _, row = table.splitlines()
    assert header.split("|")[-2].strip() == "Bayes-optimal val cost"
    assert row.split("|")[-2].strip() == f"{optimal:.3f}"
    costs = [metric_column(str(out / p.name), "val_cost_bits") for p in points]
    assert not np.isclose(optimal, np.median(costs))        # the column is not the model's own cost
    if _has_matplotlib():
        (ax,) = learning_curves_figure(cells).axes
        assert ax.get_ylabel() == "validation cost (bits per sequence)"
        curve, line = ax.get_lines()
        np.testing.assert_allclose(curve.get_ydata(), np.median(costs, axis=0))
        assert list(line.get_ydata()) == [optimal, optimal]
    copy_out = tmp_path / "C"
    (copy_point,) = plan(sweep_argv(copy_out, "--steps", "2"))
    write_plan(str(copy_out), [copy_point], ["test"])
    run_point(str(copy_out / copy_point.name), json.loads(copy_point.settings.to_json()))
    assert "Bayes-optimal" not in summary_table(load_results(str(copy_out)))[0]


def _has_matplotlib():
    return importlib.util.find_spec("matplotlib") is not None


def test_report_of_a_folder_that_is_no_sweep_is_one_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a sweep folder" in err and err.count("\n") == 1


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _finished_sweep(out, *extra):
    """A tiny sweep of copy, run in this process (run_point, no Dask).  -> its points."""
    points = plan(sweep_argv(out, "--steps", "2", *extra))
    write_plan(str(out), points, ["test"])
    for p in points:
        assert run_point(str(out / p.name), json.loads(p.settings.to_json()))["status"] == "done"
    return points


def test_report_draws_the_generalisation_and_best_seed_figures_only_with_generalisation(tmp_path, capsys):
    """The best seed of each cell: generalisation.png over the cells, and per cell its sequence figure
    and (an NTM's only: the LSTM has no memory) its memory figure, each linked from report.md."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "S"
    _finished_sweep(out, "--model", "ntm-ff", "lstm")
    figures = ["generalisation.png", "best-copy-ntm-ff-memory.png", "best-copy-ntm-ff-sequence.png",
               "best-copy-lstm-sequence.png"]
    make_report(str(out))
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["learning_curves.png"]
    assert not any(f in (out / "report.md").read_text() for f in figures)

    make_report(str(out), generalisation=True, n=2)
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == sorted(figures + ["learning_curves.png"])
    assert not any(f.startswith(".") for f in os.listdir(out))     # no temporary file left behind
    report = (out / "report.md").read_text()
    for name in figures:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and data.endswith(b"IEND\xaeB`\x82") and len(data) > 1000, name
        assert re.search(rf"!\[[^]]+\]\({re.escape(name)}\)", report), name
    assert "wrote " + str(out / "generalisation.png") in capsys.readouterr().out


def test_without_matplotlib_the_report_says_so_once_and_draws_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # find_spec -> None, import -> ImportError
    out = tmp_path / "S"
    _finished_sweep(out)
    text = make_report(str(out), generalisation=True, n=2)
    printed = capsys.readouterr().out
    assert printed.count("matplotlib is not installed") == 1 and "![" not in text and "length_120" in text
    assert not [f for f in os.listdir(out) if f.endswith(".png")]


@pytest.mark.parametrize("task, options", [("copy", {"max_length": 3}), ("ngrams", {"length": 12})])
def test_eval_text_is_its_rows_in_the_table_format_of_before(tmp_path, task, options):
    """evaluate_checkpoint is format_evaluation of evaluation_rows: the same numbers, in the same format
    as before the split (N-grams with the Bayes-optimal column)."""
    from ntm_ref.evaluate import evaluate_checkpoint, evaluation_rows
    from tasks import make_task
    settings = TrainSettings(**{**TINY_FIELDS, "task": task, "task_options": options, "steps": 2})
    train(settings, str(tmp_path / "run"), log=lambda line: None)
    path = str(tmp_path / "run" / "checkpoint.npz")
    title, rows = evaluation_rows(path, n=3, seed=5)
    assert [r.name for r in rows] == ["validation"] + list(make_task(task, **options).generalisation_sets())
    assert [r.sequences for r in rows] == [4] + [3] * (len(rows) - 1)
    assert all((r.bayes_cost is not None) == (task == "ngrams") for r in rows)
    header = f"{'set':<22} {'sequences':>9} {'steps':>6} {'cost (bits/seq)':>16} {'bit errors/seq':>15}"
    header += f" {'Bayes-optimal cost':>19}" if task == "ngrams" else ""
    lines = [f"{path}: ntm-ff on {task}, step 2, 2 sequences", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.name:<22} {r.sequences:>9} {r.steps:>6} {r.cost:>16.3f} {r.bit_errors:>15.3f}"
                     + (f" {r.bayes_cost:>19.3f}" if task == "ngrams" else ""))
    assert title == lines[0]
    assert evaluate_checkpoint(path, n=3, seed=5) == "\n".join(lines)


def test_a_diverged_point_is_finished_and_not_converged(tmp_path, capsys, monkeypatch):
    """A non-finite loss stops a point for good: done.json says 'diverged' (with its last metrics row, if
    any), a rerun skips it, and the report counts it as a finished seed that did not converge. An absurd
    learning rate only saturates the tiny model here (its gradients vanish, its loss stays finite), so a
    NaN in the training input makes the loss non-finite: from training batch 3 on for seed 0 (after its
    step-2 evaluation), from the first for seed 1 (no metrics row at all); seed 2 trains normally."""
    from tasks.copy_task import Copy
    batch, poison = Copy.batch, {"from": None, "calls": 0}

    def poisoned(self, rng, batch_size, **lengths):
        x, y, mask = batch(self, rng, batch_size, **lengths)
        if batch_size == 1:      # a training batch (the validation set has 4, train's memory probe 64)
            poison["calls"] += 1
            if poison["from"] is not None and poison["calls"] >= poison["from"]:
                x[0, 0, 0] = np.nan
        return x, y, mask

    monkeypatch.setattr(Copy, "batch", poisoned)
    out = tmp_path / "S"
    points = plan(sweep_argv(out, "--steps", "6", "--seeds", "0-2"))
    write_plan(str(out), points, ["test"])
    for p, poison_from in zip(points, (3, 1, None)):
        poison.update({"from": poison_from, "calls": 0})
        settings = json.loads(p.settings.to_json())
        result = run_point(str(out / p.name), settings)
        assert result["status"] == "done" and result["reason"] == ("diverged" if poison_from else "steps")
        assert run_point(str(out / p.name), settings)["status"] == "finished"     # a rerun skips it
    done = [read_done(str(out / p.name)) for p in points]
    assert done[0]["reason"] == "diverged" and done[0]["row"]["step"] == 2 and "not finite" in done[0]["message"]
    assert done[1]["reason"] == "diverged" and done[1]["row"] == {}
    assert all(is_finished(d, p.settings) for d, p in zip(done, points))

    text = make_report(str(out))
    assert "3 of 3 points finished" in capsys.readouterr().out
    (cell,) = [[c.strip() for c in line.split("|")[3:-1]] for line in text.split("## Points")[0].splitlines()
               if line.startswith("| copy")]
    assert cell[:2] == ["3", "0/3 (0%)"]             # every seed finished, none converged
    status = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in text.split("## Points")[1].splitlines()
              if line.startswith("| copy")}
    assert status == {points[0].name: "diverged", points[1].name: "diverged", points[2].name: "steps"}


# ------------------------------------------------------------------------------------- with Dask

@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 single-threaded worker processes (an 'existing cluster')."""
    needs_dask()
    import logging
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    yield cluster.scheduler_address
    cluster.close()


def test_a_2x2_sweep_completes_is_reported_and_a_rerun_skips_it(tmp_path, capsys):
    needs_dask()
    out = tmp_path / "S"
    argv = sweep_argv(out, "--model", "ntm-ff", "lstm", "--seeds", "0-1", "--steps", "6", "--workers", "2")
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "done 4/4" in printed and "all 4 points finished" in printed
    names = sorted(json.loads((out / "sweep.json").read_text())["points"])
    assert names == ["copy-lstm-seed0", "copy-lstm-seed1", "copy-ntm-ff-seed0", "copy-ntm-ff-seed1"]
    for name in names:
        done = read_done(str(out / name))
        assert done["reason"] == "steps" and done["row"]["step"] == 6
        assert done["worker"]["OPENBLAS_NUM_THREADS"] == os.environ.get("OPENBLAS_NUM_THREADS", "1") == "1"
        assert done["worker"]["pid"] != os.getpid()        # ran in a worker process
        # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_ (65536): the point undid it (3x speed)
        assert done["worker"]["keeps_freed_memory"] == (done["worker"]["MALLOC_TRIM_THRESHOLD_"] is not None)
        assert metric_steps(str(out / name)) == [2, 4, 6]
    assert cli.main(["report", str(out)]) == 0
    report = capsys.readouterr().out
    assert "4 of 4 points finished" in report
    assert len([line for line in report.splitlines() if re.match(r"\| copy +\| (ntm-ff|lstm) +\| 2 +\|", line)]) == 2

    stamps = {n: os.stat(out / n / "checkpoint.npz").st_mtime_ns for n in names}
    started = time.perf_counter()
    assert cli.main(argv) == 0             # finished points are skipped: no cluster, nothing rewritten
    assert "4 finished before (skipped), 0 to run" in capsys.readouterr().out
    assert time.perf_counter() - started < 5
    assert {n: os.stat(out / n / "checkpoint.npz").st_mtime_ns for n in names} == stamps


def test_a_rerun_resumes_interrupted_points_from_their_checkpoints(tmp_path, capsys, scheduler):
    out = tmp_path / "S"
    argv = sweep_argv(out, "--seeds", "0-1", "--steps", "6", "--scheduler", scheduler)
    points = plan(argv)
    # seed 0 stopped at its step-4 checkpoint; seed 1 before its first checkpoint (settings.json only)
    train(TrainSettings(**{**json.loads(points[0].settings.to_json()), "steps": 4}), str(out / points[0].name),
          log=lambda line: None)
    os.makedirs(out / points[1].name)
    (out / points[1].name / "settings.json").write_text(points[1].settings.to_json() + "\n")
    assert cli.main(argv) == 0
    assert log_lines(str(out / points[0].name))[-1].startswith("sweep: resuming from checkpoint step 4 ")
    assert log_lines(str(out / points[1].name))[-1].startswith("sweep: starting over from step 0")
    for p in points:
        assert metric_steps(str(out / p.name)) == [2, 4, 6]
        assert read_done(str(out / p.name))["reason"] == "steps"
    # bit for bit what an uninterrupted run gives
    train(points[0].settings, str(tmp_path / "whole"), log=lambda line: None)
    assert metric_column(str(out / points[0].name), "val_cost_bits") == metric_column(str(tmp_path / "whole"),
                                                                                      "val_cost_bits")


def test_a_worker_killed_mid_run_costs_only_the_steps_since_the_checkpoint(tmp_path, capsys, scheduler):
    """SIGKILL the worker process training the point once it has a checkpoint: Dask reruns the task on
    another worker, which resumes from that checkpoint; the run ends as an uninterrupted one would."""
    out = tmp_path / "S"
    steps = 100
    argv = ["sweep", "--task", "copy", "--out", str(out), "--steps", str(steps), "--eval-every", "5",
            "--checkpoint-every", "5", "--val-size", "4", "--set", "memory_slots=8", "controller_size=8",
            "--task-option", "max_length=3", "--scheduler", scheduler]
    (point,) = plan(argv)
    folder = out / point.name
    killed = {}

    def kill_when_checkpointed():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (folder / "checkpoint.npz").exists():
            time.sleep(0.01)
        pid = int((folder / LOCK_NAME).read_text().strip())
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        killed["pid"] = pid

    watcher = threading.Thread(target=kill_when_checkpointed, daemon=True)
    watcher.start()
    assert cli.main(argv) == 0
    watcher.join(timeout=5)
    assert "pid" in killed
    lines = log_lines(str(folder))
    assert len(lines) == 2 and lines[0].startswith("sweep: starting on")
    assert f"pid {killed['pid']}" in lines[0]
    resumed_from = int(re.match(r"sweep: resuming from checkpoint step (\d+) ", lines[1]).group(1))
    assert 5 <= resumed_from < steps
    assert metric_steps(str(folder)) == list(range(5, steps + 1, 5))    # no step lost, none twice
    done = read_done(str(folder))
    assert done["reason"] == "steps" and done["row"]["step"] == steps and done["worker"]["pid"] != killed["pid"]
    train(point.settings, str(tmp_path / "whole"), log=lambda line: None)
    assert metric_column(str(folder), "val_cost_bits") == metric_column(str(tmp_path / "whole"), "val_cost_bits")


@pytest.mark.skipif(not SLOW, reason="~20 s: runs with NTM_REF_SLOW=1 or HYPOTHESIS_PROFILE=thorough")
@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_ctrl_c_stops_the_points_at_a_checkpoint_closes_the_cluster_and_a_rerun_resumes(tmp_path, how):
    """Ctrl-C in a terminal (SIGINT to the whole process group) and `kill PID` (SIGTERM to the sweep process
    alone, as a batch system's time limit) both stop the points at a checkpoint and leave no process."""
    needs_dask()
    out = tmp_path / "S"
    command = [sys.executable, "-m", "ntm_ref.cli"]

    def argv(steps):
        return command + sweep_argv(out, "--seeds", "0-1", "--steps", str(steps), "--workers", "2")

    proc = subprocess.Popen(argv(100_000), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    folders = [out / f"copy-ntm-ff-seed{s}" for s in (0, 1)]
    deadline = time.monotonic() + 60
    while not all((f / "checkpoint.npz").exists() for f in folders) and time.monotonic() < deadline:
        time.sleep(0.05)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)      # as a Ctrl-C in a terminal: the whole process group
    else:
        proc.send_signal(signal.SIGTERM)        # as `kill PID`: the sweep process only
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == (130 if how == "ctrl-c" else 143), stderr
    assert "ntm-ref sweep: interrupted" in stderr and "stopped; saved" in stdout
    assert ("Ctrl-C: stopping" if how == "ctrl-c" else "SIGTERM: stopping") in stdout
    for _ in range(100):                      # the cluster's processes are gone too
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the sweep outlived it")
    saved = {}
    for f in folders:
        assert not (f / DONE_FILE).exists()
        saved[f] = metric_steps(str(f))[-1]
        assert f"saved step {saved[f]}" in "\n".join(log_lines(str(f), "Ctrl-C"))
    done = subprocess.run(argv(max(saved.values()) + 2), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for f in folders:
        assert log_lines(str(f))[-1].startswith(f"sweep: resuming from checkpoint step {saved[f]} ")


def test_report_cells_are_in_numeric_order():
    """Batch sizes 1, 4, 16, 32 come in that order, not as text (1, 16, 32, 4)."""
    from types import SimpleNamespace
    from ntm_ref.report import group_cells
    results = [SimpleNamespace(settings=TrainSettings(batch_size=b, seed=s)) for b in (16, 4, 32, 1) for s in (0, 1)]
    order = [json.loads(key)["batch_size"] for key in group_cells(results)]
    assert order == [1, 4, 16, 32]


FAULTS_SCRIPT = """
import sys
import numpy as np
from ntm_ref.sweep import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def minor_faults():
    return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])
a = np.ones(2**18)                          # 2 MB, as the engines' per-step arrays of a larger model
del a
before = minor_faults()
for _ in range(50):
    a = np.ones(2**18)
    del a
print(minor_faults() - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/stat") or not sys.platform.startswith("linux"),
                    reason="glibc and /proc (Linux)")
def test_a_worker_started_with_dasks_malloc_trim_threshold_keeps_freed_memory():
    """Under MALLOC_TRIM_THRESHOLD_=65536 (Dask's nanny environment) every 2 MB array is a fresh mmap: 512
    page faults each; after keep_freed_memory (run_point calls it) the freed heap is reused: next to none."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    faults = {how: int(subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, how], env=env, check=True,
                                      capture_output=True, text=True).stdout)
              for how in ("plain", "keep")}
    assert faults["plain"] > 50 * 400, faults
    assert faults["keep"] < 50 * 10, faults


def test_learning_curves_hold_a_converged_seed_and_end_a_seed_that_ran_out_of_time():
    """curve_bands: past its last row a converged seed keeps its value, a seed stopped by its time limit has
    none (it would otherwise draw as a stalled run), and the curve ends where fewer than half the seeds
    have a value."""
    from ntm_ref.report import PointResult, curve_bands
    settings = TrainSettings(task="copy", early_stop=True)

    def point(name, seqs, errors, reason):
        rows = [{"sequences": s, "val_bit_errors": e} for s, e in zip(seqs, errors)]
        return PointResult(name, settings, rows, {"reason": reason}, True)

    points = [point("a", [100, 200], [5.0, 0.05], "converged"),
              point("b", [100, 200, 300, 400], [9.0, 8.0, 7.0, 6.0], "time"),
              point("c", [100, 200, 300], [7.0, 4.0, 3.0], "time")]
    x, median, low, high = curve_bands(points)
    np.testing.assert_array_equal(x, [100, 200, 300, 400])
    np.testing.assert_array_equal(median, [7.0, 4.0, 3.0, 3.025])  # at 400: a (held, 0.05) and b (6); c has ended
    np.testing.assert_array_equal(low, [5.0, 0.05, 0.05, 0.05])
    np.testing.assert_array_equal(high, [9.0, 8.0, 7.0, 6.0])
    points[0] = point("a", [100, 200], [5.0, 0.05], "time")        # a ran out of time instead
    x, median, _, _ = curve_bands(points)
    np.testing.assert_array_equal(x, [100, 200, 300])               # at 400 only b: under half the seeds
    np.testing.assert_array_equal(median, [7.0, 4.0, 5.0])
