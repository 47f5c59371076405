"""``ntm-ref sweep``: a grid of ordinary training runs (tasks x models x seeds x option values) on Dask.

    ntm-ref sweep --task copy associative_recall --model ntm-ff lstm --seeds 0-4 --lr 1e-4 3e-4 \\
                  --set controller_size=100 --steps 2000 --early-stop --out S

Layout of a sweep folder S (docs/sweep.md):

    S/sweep.json            the grid: every point's name and its TrainSettings (points of earlier runs of
                            other grids into the same S are kept)
    S/<point>/              an ordinary run folder of ntm-ref train (settings.json, config.json,
                            metrics.csv, checkpoint.npz): ``ntm-ref train --resume S/<point>`` works on it
    S/<point>/train.log     the run's progress lines, every attempt (a killed worker's too, up to its death)
    S/<point>/done.json     written when the point has finished: why (steps, time, converged, diverged),
                            its last metrics row and where it ran

Every point's settings are built (so checked) before anything is written or started. Points run on a
dask.distributed LocalCluster of one single-threaded worker process per core, or on an existing cluster
(``--scheduler``). Rerunning the same command skips finished points and resumes the others from their
checkpoints; a worker lost mid-run is replaced and its point resumes on another worker from its last
checkpoint. Ctrl-C (or SIGTERM: ``kill``, a batch system's time limit) asks the running points to save a
checkpoint at their next progress line, then closes the cluster. Dask is imported only when a sweep runs
(the package itself needs numpy and scipy only).
"""
import contextlib
import dataclasses
import itertools
import json
import os
import re
import shutil
import socket
import time
import uuid

from ntm_ref.config import parse_value
from ntm_ref.train import Interrupted, TrainSettings, format_time, settings_differences, write_atomic

SWEEP_FILE = "sweep.json"
DONE_FILE = "done.json"
LOG_FILE = "train.log"
STOP_FILE = ".sweep-active"          # holds the id of the sweep now running; a point stops when it changes
SWEEP_LOCK = ".sweep.lock"           # one sweep command at a time per folder
# Train options a grid may vary (argparse dest == TrainSettings field), in the order of point names. A
# field is named only when it varies in the grid (or is in NAMED_ALWAYS), so a field added here (engine)
# leaves the names of grids that do not vary it as they were.
GRID_FIELDS = ("task", "model", "steps", "max_minutes", "batch_size", "optimizer", "lr", "clip", "clip_value",
               "eval_every", "checkpoint_every", "val_size", "stop_threshold", "engine")
NAMED_ALWAYS = ("task", "model")     # in every point's name, varying or not (as ntm-ref train's default --out)
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
RETRIES = 2             # retries of a point whose task raised (a lost worker is retried by Dask itself)
LOCK_WAIT_SECONDS = 120  # a point waits this long for a run folder still locked by a stopping process
PROGRESS_EVERY = 30.0   # seconds between progress lines while no point finishes
POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 60.0   # after Ctrl-C, how long running points get to save a checkpoint


class SweepError(ValueError):
    """A bad grid, sweep folder or cluster address: one line naming the option or file and the problem."""


@dataclasses.dataclass
class Point:
    """One grid point: a training run in S/<name>."""
    name: str
    settings: TrainSettings


# ------------------------------------------------------------------------------------------------ the grid

def parse_seeds(tokens):
    """['0-4', '7,9'] -> [0, 1, 2, 3, 4, 7, 9] (order kept, repeats dropped).  SweepError naming --seeds."""
    seeds = []
    for token in tokens:
        for part in str(token).split(","):
            match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
                raise SweepError(f"--seeds: got {part!r}; expected seeds >= 0 as N, A-B (A <= B) or a comma "
                                 f"list, e.g. --seeds 0-9 or --seeds 0,3,7")
            low = int(match.group(1))
            high = int(match.group(2)) if match.group(2) is not None else low
            seeds.extend(s for s in range(low, high + 1) if s not in seeds)
    if not seeds:
        raise SweepError("--seeds: no seed given")
    return seeds


def parse_field_values(groups, option):
    """--set / --task-option groups -> {field: [values]}: each group is FIELD=VALUE [VALUE ...] (more
    values of the same field), and a token with '=' starts another field; a field given twice gathers
    the values of both.  SweepError naming the option for a token that names no field."""
    fields = {}
    for group in groups or []:
        key = None
        for token in group:
            if "=" in token:
                key, text = token.split("=", 1)
                key = key.strip()
                if not key:
                    raise SweepError(f"{option}: got {token!r}; expected FIELD=VALUE")
            elif key is None:
                raise SweepError(f"{option}: got {token!r}; expected FIELD=VALUE [VALUE ...]")
            else:
                text = token
            values = fields.setdefault(key, [])
            value = parse_value(text)
            if value not in values:
                values.append(value)
    return fields


def format_value(value):
    """A grid value as text: 0.0003 -> '0.0003', (100, 100) -> '100x100', True -> 'true', None -> 'default'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "default"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    return str(value)


def _name_part(key, value):
    kind, field = key
    if kind == "train" and field in NAMED_ALWAYS:
        text = format_value(value)
    else:
        clash = kind != "train" and field in {f.name for f in dataclasses.fields(TrainSettings)}
        text = f"{kind}_{field}" if clash else field
        text += format_value(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def _axes(train_values, set_values, task_values):
    """The grid's axes in name order.  -> list of ((kind, field), [values]); kind train | set | task."""
    axes = [(("train", f), _unique(train_values[f])) for f in GRID_FIELDS if f in train_values]
    axes += [(("set", f), v) for f, v in set_values.items()]
    axes += [(("task", f), v) for f, v in task_values.items()]
    return axes


def _unique(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _option_of(key, value):
    kind, field = key
    if kind == "set":
        return f"--set {field}={format_value(value)}"
    if kind == "task":
        return f"--task-option {field}={format_value(value)}"
    return f"--{field.replace('_', '-')} {format_value(value)}"


def expand_grid(train_values, seeds, early_stop=False, set_values=None, task_values=None):
    """Every grid point, its TrainSettings built (so checked) here.  -> list of Point.

    train_values: {TrainSettings field: [values]} for the fields of GRID_FIELDS given; set_values /
    task_values: {field: [values]} of --set (NTMConfig) and --task-option. A bad value raises SweepError
    naming the option and the value (and the grid point, when only a combination is wrong)."""
    axes = _axes(train_values, set_values or {}, task_values or {})
    points, names = [], {}
    for combo in itertools.product(*(values for _, values in axes), seeds):
        chosen = dict(zip((key for key, _ in axes), combo[:-1]))
        seed = combo[-1]
        fields = {f: v for (kind, f), v in chosen.items() if kind == "train"}
        overrides = {f: v for (kind, f), v in chosen.items() if kind == "set"}
        options = {f: v for (kind, f), v in chosen.items() if kind == "task"}
        parts = [_name_part(k, v) for (k, values), v in zip(axes, combo[:-1])
                 if len(values) > 1 or (k[0] == "train" and k[1] in NAMED_ALWAYS)]
        defaults = TrainSettings()
        for field in NAMED_ALWAYS:           # the task and model name a point even when not given
            if ("train", field) not in chosen:
                parts.insert(NAMED_ALWAYS.index(field), getattr(defaults, field))
        name = "-".join(parts + [f"seed{seed}"])
        try:
            settings = TrainSettings(**fields, seed=seed, early_stop=early_stop, config_overrides=overrides,
                                     task_options=options)
        except (TypeError, ValueError) as err:
            raise SweepError(f"{_blame(err, chosen)} (grid point {name}): {err}") from None
        if name in names:
            raise SweepError(f"grid points {names[name]} and {combo} would share the folder {name}; give "
                             f"values that differ in writing")
        names[name] = combo
        points.append(Point(name, settings))
    return points


def _blame(err, chosen):
    """The option (with the point's value) a TrainSettings error is about, e.g. '--batch-size 0': the
    field the message starts with, else the --set / --task-option field it names first."""
    from ntm_ref.config import NTMConfig
    text = str(err)
    field = text.split(":", 1)[0].strip()
    for key, value in chosen.items():
        if key[1] == field:
            return _option_of(key, value)
    named = [(m.start(), key, value) for key, value in chosen.items() if key[0] in ("set", "task")
             for m in [re.search(rf"\b{re.escape(key[1])}\b", text)] if m]
    if named:                    # the first named: 'unknown NTMConfig field(s): x; known: a, b, ...'
        return _option_of(*min(named, key=lambda n: n[0])[1:])
    if field in NTMConfig.field_names():
        return f"--set {field}"
    return f"--{field.replace('_', '-')}" if field in GRID_FIELDS else "the grid"


def plan_from_args(args):
    """The grid of an ``ntm-ref sweep`` command line (argparse namespace).  -> list of Point."""
    train_values = {f: getattr(args, f) for f in GRID_FIELDS if getattr(args, f, None) is not None}
    return expand_grid(train_values, parse_seeds(args.seeds or ["0"]), early_stop=bool(args.early_stop),
                       set_values=parse_field_values(args.set, "--set"),
                       task_values=parse_field_values(args.task_option, "--task-option"))


# ------------------------------------------------------------------------------------ the sweep folder

def settings_dict(settings):
    """TrainSettings as the JSON object it is saved as (tuples as lists)."""
    return json.loads(settings.to_json())


def read_json(path, what):
    """A JSON object from path, or SweepError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SweepError(f"{path}: unreadable {what} ({getattr(err, 'strerror', None) or err})") from None
    if not isinstance(value, dict):
        raise SweepError(f"{path}: not a {what} (not a JSON object)")
    return value


def load_sweep(sweep_dir):
    """The points of S/sweep.json.  -> {name: settings dict}.  SweepError for a folder that is no sweep."""
    path = os.path.join(sweep_dir, SWEEP_FILE)
    if not os.path.isdir(sweep_dir):
        problem = "not a folder" if os.path.exists(sweep_dir) else "no such sweep folder"
        raise SweepError(f"{sweep_dir}: {problem}")
    if not os.path.exists(path):
        raise SweepError(f"{sweep_dir}: not a sweep folder (no {SWEEP_FILE}; ntm-ref sweep --out makes one)")
    points = read_json(path, "sweep file").get("points")
    if not isinstance(points, dict) or not all(isinstance(v, dict) for v in points.values()):
        raise SweepError(f"{path}: not a sweep file of ntm-ref sweep (no 'points' object of settings)")
    return points


def check_folders(sweep_dir, points):
    """SweepError unless every point's folder is free or holds the same run (only steps and max_minutes
    may differ, as for ntm-ref train --resume). Nothing is written."""
    if os.path.exists(sweep_dir) and not os.path.isdir(sweep_dir):
        raise SweepError(f"--out {sweep_dir}: exists and is not a folder")
    for point in points:
        folder = os.path.join(sweep_dir, point.name)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise SweepError(f"{folder}: exists and is not a folder (in the way of grid point {point.name})")
        saved_path = os.path.join(folder, "settings.json")
        if os.path.exists(saved_path):
            differ = settings_differences(read_json(saved_path, "run settings file"), settings_dict(point.settings))
            if differ:
                raise SweepError(f"{saved_path}: this point was run with other settings ({', '.join(differ)}); "
                                 f"give another --out, or remove the folder {folder}")


def write_plan(sweep_dir, points, argv):
    """S/sweep.json with these points, merged with those of earlier runs into S (a point of the same name
    replaced).  -> the path."""
    path = os.path.join(sweep_dir, SWEEP_FILE)
    saved = read_json(path, "sweep file") if os.path.exists(path) else {}
    merged = dict(saved.get("points") or {})
    merged.update({p.name: settings_dict(p.settings) for p in points})
    runs = list(saved.get("runs") or []) + [{"argv": list(argv or []), "points": [p.name for p in points],
                                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}]
    os.makedirs(sweep_dir, exist_ok=True)
    write_atomic(path, json.dumps({"format": "ntm-ref sweep", "version": 1, "points": merged, "runs": runs},
                                   indent=1, sort_keys=True) + "\n")
    return path


# ------------------------------------------------------------------------------------- finished or not

ROW_KEYS = ("step", "sequences", "seconds", "val_cost_bits", "val_bit_errors")   # of metrics.csv, used here


def read_rows(path):
    """The rows of a metrics.csv as dicts of floats; rows that do not parse or lack a column of ROW_KEYS
    are left out.  -> list."""
    import csv
    try:
        with open(path, newline="", encoding="utf-8") as f:
            raw = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SweepError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
    rows = []
    for r in raw:
        try:
            row = {k: float(v) for k, v in r.items() if k is not None}
        except (TypeError, ValueError):
            continue                   # a row cut short by a killed process
        if all(k in row for k in ROW_KEYS):
            rows.append(row)
    return rows


def finish_reason(row, settings):
    """Why a run whose last metrics row is ``row`` has finished under ``settings``: 'converged' (early
    stop, validation bit errors below the threshold), 'steps', 'time'; None while it has not."""
    if not row:
        return None
    if settings.early_stop and row["val_bit_errors"] < settings.stop_threshold:
        return "converged"
    if row["step"] >= settings.steps:
        return "steps"
    if settings.max_minutes is not None and row["seconds"] >= 60 * settings.max_minutes:
        return "time"
    return None


def read_done(point_dir):
    """S/<point>/done.json as a dict, or None (none yet, or unreadable: the point then runs again)."""
    path = os.path.join(point_dir, DONE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            done = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return done if isinstance(done, dict) and isinstance(done.get("row"), dict) else None


def is_finished(done, settings):
    """Whether a point whose done.json says ``done`` is still finished under ``settings`` (a rerun with
    more --steps or --max-minutes continues a point that stopped at the old limit)."""
    if not done:
        return False
    if done.get("reason") == "diverged":
        return True
    try:
        return finish_reason(done["row"], settings) is not None
    except (KeyError, TypeError):
        return False


def write_done(point_dir, reason, row, **extra):
    """S/<point>/done.json (atomically): the reason, the last metrics row, when and where it ran."""
    done = {"reason": reason, "row": row, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "worker": {"host": socket.gethostname(), "pid": os.getpid(),
                       **{v: os.environ.get(v) for v in BLAS_VARS + ("MALLOC_TRIM_THRESHOLD_",)},
                       "keeps_freed_memory": _KEEPS_FREED_MEMORY}, **extra}
    write_atomic(os.path.join(point_dir, DONE_FILE), json.dumps(done, indent=1, sort_keys=True) + "\n")
    return done


# ------------------------------------------------------------------------------ one point, in a worker

class _PointLog:
    """train()'s log for a point: every line appended to S/<point>/train.log; at a progress line, when
    the sweep that started the point has stopped (its stop file gone or changed), raises Interrupted so
    that train saves a checkpoint of that step and returns."""

    def __init__(self, point_dir, stop_file=None, run_id=None):
        self.path, self.stop_file, self.run_id, self.stopping = os.path.join(point_dir, LOG_FILE), stop_file, \
            run_id, False

    def __call__(self, line):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if line.startswith("step ") and not self.stopping and self.stop_file and not self.active():
            from ntm_ref.train import Interrupted
            self.stopping = True
            raise Interrupted(2)

    def active(self):
        try:
            with open(self.stop_file, encoding="utf-8") as f:
                return f.read().strip() == self.run_id
        except OSError:
            return False


def _wait_for_lock(point_dir, seconds=LOCK_WAIT_SECONDS):
    """Wait (up to ``seconds``) while another process holds the run folder's lock: e.g. a point of a
    stopped sweep still on its way to its next progress line. train() itself then takes the lock."""
    try:
        import fcntl
    except ImportError:
        return
    from ntm_ref.train import LOCK_NAME
    deadline = time.monotonic() + seconds
    fd = os.open(os.path.join(point_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except OSError:
                if time.monotonic() > deadline:
                    return          # train() then says who holds it
                time.sleep(1.0)
    finally:
        os.close(fd)


def _checkpoint_step(point_dir):
    """The step of S/<point>/checkpoint.npz, or None when there is none."""
    from ntm_ref.checkpoint import load_checkpoint
    path = os.path.join(point_dir, "checkpoint.npz")
    return int(load_checkpoint(path).meta["step"]) if os.path.exists(path) else None


# glibc's mallopt parameters (malloc.h) and the values a point runs with when its worker was started with
# MALLOC_TRIM_THRESHOLD_ in the environment (Dask's nannies set 65536, to give memory back to the system).
# That setting also turns off glibc's adaptive mmap threshold, so every array over 128 KB is a fresh
# mmap and every free gives its pages back: the engines' per-step arrays then cost a page fault per 4 KB,
# and training ran 3x slower (AR batch 16: 26-28 against 81-84 sequences/s, same machine, same minute).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 256 * 2**20       # trim the heap only when this much is free at its top
MMAP_FROM_BYTES = 32 * 2**20         # glibc's largest mmap threshold (64-bit): arrays below come from the heap


_KEEPS_FREED_MEMORY = False          # set once keep_freed_memory has called mallopt in this process


def keep_freed_memory():
    """Undo a worker environment's MALLOC_TRIM_THRESHOLD_ for this process (glibc only; elsewhere, or
    without the variable, nothing).  -> True if mallopt was called (now or before)."""
    global _KEEPS_FREED_MEMORY
    if _KEEPS_FREED_MEMORY or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return _KEEPS_FREED_MEMORY
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _KEEPS_FREED_MEMORY = (bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)) and
                           bool(mallopt(M_MMAP_THRESHOLD, MMAP_FROM_BYTES)))
    return _KEEPS_FREED_MEMORY


def run_point(point_dir, settings_json, stop_file=None, run_id=None):
    """Train one grid point in its folder (the task a Dask worker runs; also callable directly).

    Starts the run, or resumes it (from its checkpoint, or from step 0 when it stopped before its first),
    unless done.json says it has finished; on a normal end writes done.json. The sweep's stop file, when
    given, is checked at every progress line (see _PointLog).
    -> {'status': 'done' | 'finished' | 'stopped', 'reason', 'row', ...}."""
    from ntm_ref.train import Interrupted, TrainingStopped, train
    keep_freed_memory()
    settings = TrainSettings(**settings_json)
    done = read_done(point_dir)
    if is_finished(done, settings):
        return {"status": "finished", **done}
    log = _PointLog(point_dir, stop_file, run_id)
    if stop_file and not log.active():
        return {"status": "stopped", "step": None}
    os.makedirs(point_dir, exist_ok=True)
    _wait_for_lock(point_dir)
    step = _checkpoint_step(point_dir)
    rows = read_rows(os.path.join(point_dir, "metrics.csv"))
    last = next((r for r in reversed(rows) if r["step"] == step), None) if step is not None else None
    if finish_reason(last, settings):         # finished, but stopped before done.json was written
        return {"status": "done", **write_done(point_dir, finish_reason(last, settings), last)}
    resume = step is not None or os.path.exists(os.path.join(point_dir, "settings.json"))
    how = (f"resuming from checkpoint step {step}" if step is not None else
           "starting over from step 0 (no checkpoint yet)" if resume else "starting")
    log(f"sweep: {how} on {socket.gethostname()} pid {os.getpid()}")
    try:
        train(settings, point_dir, resume=resume, log=log)
    except Interrupted:
        return {"status": "stopped", "step": _checkpoint_step(point_dir)}
    except TrainingStopped as err:
        log(f"sweep: stopped: {err}")
        rows = read_rows(os.path.join(point_dir, "metrics.csv"))
        row = rows[-1] if rows else {}
        return {"status": "done", **write_done(point_dir, "diverged", row, message=str(err))}
    except Exception:                # the sweep reports it in one line; the traceback goes to train.log
        import traceback
        log(f"sweep: failed:\n{traceback.format_exc().rstrip()}")
        raise
    rows = read_rows(os.path.join(point_dir, "metrics.csv"))
    row = rows[-1] if rows else {}
    return {"status": "done", **write_done(point_dir, finish_reason(row, settings) or "stopped", row)}


# ----------------------------------------------------------------------------------- the whole sweep

def run_fraction(point_dir, settings):
    """How far a point's run has come, 0..1: its last metrics row's share of --steps, or of --max-minutes
    when that is nearer (1 once done.json says it has finished)."""
    if is_finished(read_done(point_dir), settings):
        return 1.0
    rows = read_rows(os.path.join(point_dir, "metrics.csv"))
    if not rows:
        return 0.0
    fraction = rows[-1]["step"] / settings.steps
    if settings.max_minutes is not None:
        fraction = max(fraction, rows[-1]["seconds"] / (60 * settings.max_minutes))
    return min(1.0, fraction)


class Progress:
    """Counts and the progress line: points done / running / left, and an ETA from the work this sweep
    has done so far: each point's share of its step (or time) limit, from its metrics.csv. With early
    stopping that is an upper bound (a converged point ends sooner), and the line says so."""

    def __init__(self, total, todo, sweep_dir, log, clock=time.monotonic):
        self.total, self.skipped, self.log, self.clock = total, total - len(todo), log, clock
        self.finished, self.failed, self.started = 0, [], clock()
        self.folders = {p.name: (os.path.join(sweep_dir, p.name), p.settings) for p in todo}
        self.at_start = {name: run_fraction(*f) for name, f in self.folders.items()}
        self.ended = set()
        self.bound = any(p.settings.early_stop for p in todo)

    def elapsed(self):
        return self.clock() - self.started

    def eta(self):
        """The time left, as text: the work left over the rate of this sweep's work so far."""
        now = {name: 1.0 if name in self.ended else run_fraction(*f) for name, f in self.folders.items()}
        done = sum(now[n] - self.at_start[n] for n in now)
        if done <= 0:
            return "ETA after the first evaluation"
        left = self.elapsed() * sum(1.0 - v for v in now.values()) / done
        return f"ETA {'at most ' if self.bound else ''}~{format_time(left)}"

    def line(self, running, left, event=""):
        done = self.skipped + self.finished + len(self.failed)
        failed = f" ({len(self.failed)} failed)" if self.failed else ""
        event = f"{event} | " if event else ""
        self.log(f"[{format_time(self.elapsed())}] {event}done {done}/{self.total}{failed}, running {running}, "
                 f"left {left} | {self.eta()}")


def _describe(name, result):
    row = result.get("row") or {}
    reason = result.get("reason")
    if not row:
        return f"{name}: {reason}"
    what = {"converged": "converged", "steps": "reached its steps", "time": "reached its time limit",
            "diverged": "diverged (non-finite loss)"}.get(reason, reason)
    return (f"{name}: {what} at step {int(row['step']):,}, {int(row['sequences']):,} sequences, "
            f"{format_time(row['seconds'])}, val err {row['val_bit_errors']:.3f}")


def _blas_env():
    """The BLAS thread limits of this process (the cli sets them to 1 before NumPy loads) for the
    LocalCluster's worker processes."""
    return {v: os.environ.get(v, "1") for v in BLAS_VARS}


def _ignore_ctrl_c_plugin():
    """A Dask worker plugin: the worker process ignores SIGINT, so a Ctrl-C in the terminal reaches only
    the sweep command, which stops the points in order (their processes share its process group)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreCtrlC(WorkerPlugin):
        name = "ntm-ref-ignore-ctrl-c"

        def setup(self, worker):
            import signal
            import threading
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreCtrlC()


def _local_worker_config(scheduler, points):
    """The Dask configuration a local cluster runs under (held while the points run: the nanny reads it
    again when it replaces a lost worker). With a point on engine "parallel", whose worker processes a daemonic
    process may not start (multiprocessing refuses), the cluster's worker processes are not daemonic;
    they still end with the cluster, and at once when the sweep process dies (Dask watches its parent)."""
    if scheduler or not any(p.settings.engine == "parallel" for p in points):
        return contextlib.nullcontext()
    import dask
    return dask.config.set({"distributed.worker.daemon": False})


def _connect(scheduler, workers):
    """(client, cluster or None, description): a Client of the cluster at ``scheduler``, or of a new
    LocalCluster of ``workers`` single-threaded worker processes."""
    import logging
    from distributed import Client, LocalCluster
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as err:
            raise SweepError(f"--scheduler {scheduler}: cannot connect ({err})") from None
        n = len(client.scheduler_info().get("workers", {}))
        return client, None, f"the cluster at {scheduler} ({n} workers now)"
    # dashboard ":0": a free port (None would still put the scheduler's HTTP server on 8787, or warn)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           env=_blas_env(), silence_logs=logging.CRITICAL)   # failures: one line each, at the end
    try:
        client = Client(cluster)
        client.register_plugin(_ignore_ctrl_c_plugin())
    except BaseException:
        cluster.close()
        raise
    plural = "es" if workers != 1 else ""
    return client, cluster, f"a local cluster of {workers} worker process{plural} (1 thread each)"


def _running(client, keys):
    """How many of ``keys`` are running now (per worker: its assigned tasks, at most its threads)."""
    try:
        processing, threads = client.processing(), client.nthreads()
    except Exception:         # a scheduler gone away: the futures say so
        return 0
    return sum(min(len([k for k in tasks if k in keys]), threads.get(w, 1)) for w, tasks in processing.items())


def _sweep_lock(sweep_dir):
    """The sweep folder's lock (one sweep command at a time; train.lock_folder): an open fd, or None
    without fcntl.  SweepError naming the other sweep's pid."""
    from ntm_ref.train import FolderBusy, lock_folder
    try:
        return lock_folder(os.path.join(sweep_dir, SWEEP_LOCK), f"pid {os.getpid()} on {socket.gethostname()}")
    except FolderBusy as busy:
        raise SweepError(f"{sweep_dir}: another ntm-ref sweep ({busy.holder}) is running on this folder") from None


def run_sweep(sweep_dir, points, scheduler=None, workers=None, argv=None, log=print):
    """Run every unfinished point (skip the finished) on Dask and print progress.  -> exit status: 0 when
    every point has finished, 1 when some failed (each listed). Ctrl-C: KeyboardInterrupt after a clean
    stop. Checks the arguments and the point folders (check_folders) before it writes anything."""
    if scheduler and workers:
        raise SweepError("--workers sizes the local cluster; with --scheduler the cluster has its own workers")
    if workers is not None and workers < 1:
        raise SweepError(f"--workers: got {workers}; must be at least 1")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SweepError('ntm-ref sweep needs dask.distributed: pip install ".[sweep]"') from None
    sweep_dir = os.path.abspath(sweep_dir)
    check_folders(sweep_dir, points)
    if not scheduler:        # the memory one run needs, on this machine (a cluster's workers check theirs)
        from ntm_ref.train import check_resources
        cells = {dataclasses.replace(p.settings, seed=0).to_json(): p.settings for p in points}
        for settings in cells.values():
            check_resources(settings)
    created = not os.path.exists(sweep_dir)
    os.makedirs(sweep_dir, exist_ok=True)
    lock = _sweep_lock(sweep_dir)
    client = cluster = None
    planned = False
    try:
        with _local_worker_config(scheduler, points):
            todo = [p for p in points if not is_finished(read_done(os.path.join(sweep_dir, p.name)), p.settings)]
            if todo:         # connected before sweep.json is written: a wrong --scheduler writes none
                client, cluster, where = _connect(scheduler, workers or os.cpu_count() or 1)
            write_plan(sweep_dir, points, argv)
            planned = True
            log(f"sweep {sweep_dir}: {len(points)} points, {len(points) - len(todo)} finished before (skipped), "
                f"{len(todo)} to run" + (f" on {where}" if todo else ""))
            failed = _run_points(client, sweep_dir, todo, len(points), log) if todo else []
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        if lock is not None:
            os.close(lock)
        if created and not planned:           # e.g. a --scheduler that does not answer: leave nothing
            shutil.rmtree(sweep_dir, ignore_errors=True)
    if failed:
        log(f"{len(failed)} of {len(todo)} points did not finish (rerun the same command to retry them; "
            f"their logs: {os.path.join(sweep_dir, '<point>', LOG_FILE)}):")
        for name, err in failed:
            log(f"  {name}: {err}")
        return 1
    log(f"all {len(points)} points finished; summary: ntm-ref report {sweep_dir}")
    return 0


def _run_points(client, sweep_dir, todo, total, log):
    """Submit the points, watch them, stop them on Ctrl-C.  -> [(name, error)] of the failed points."""
    run_id = uuid.uuid4().hex
    stop_file = os.path.join(sweep_dir, STOP_FILE)
    write_atomic(stop_file, run_id + "\n")
    try:
        progress = Progress(total, todo, sweep_dir, log)
        log(f"a progress line when a point ends and every {PROGRESS_EVERY:.0f} s")
        futures = {p.name: client.submit(run_point, os.path.join(sweep_dir, p.name), settings_dict(p.settings),
                                         stop_file, run_id, key=f"ntm-ref-sweep-{p.name}-{run_id[:8]}",
                                         pure=False, retries=RETRIES) for p in todo}
        try:
            with _terminate_as_interrupt():
                _watch(client, futures, progress)
        except KeyboardInterrupt as err:
            _stop(futures, stop_file, run_id, log, getattr(err, "signum", 2))
            raise
    finally:
        _remove_stop_file(stop_file, run_id)
    log(f"ran {len(todo)} points in {format_time(progress.elapsed())}")
    return progress.failed


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises Interrupted(15), so `kill PID` stops the sweep as Ctrl-C does (the running points save
    a checkpoint) instead of killing it with its cluster's processes left behind. Main thread only (elsewhere
    a handler cannot be set and SIGTERM keeps its meaning); a second SIGTERM while stopping kills at once."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)
    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _watch(client, futures, progress):
    """Wait for every future, printing a line when a point ends and every PROGRESS_EVERY seconds."""
    pending = dict(futures)
    last_line = progress.clock()
    while pending:
        time.sleep(POLL_SECONDS)
        ended = [(name, fut) for name, fut in pending.items() if fut.done()]
        for name, fut in ended:
            del pending[name]
        if ended or progress.clock() - last_line >= PROGRESS_EVERY:
            running = _running(client, {f.key for f in pending.values()})
            for i, (name, fut) in enumerate(ended):     # the ones still to be told count as running
                event = _outcome(name, fut, progress)
                progress.line(running + len(ended) - 1 - i, len(pending) - running, event)
            if not ended:
                progress.line(running, len(pending) - running)
            last_line = progress.clock()


def _outcome(name, fut, progress):
    """Count a finished future.  -> its progress event text."""
    progress.ended.add(name)
    try:
        result = fut.result()
    except Exception as err:          # the task raised (after its retries), or its workers kept dying
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        progress.failed.append((name, f"{type(err).__name__}: {message}"))
        return f"{name}: FAILED ({type(err).__name__}: {message})"
    if result.get("status") == "stopped":
        progress.failed.append((name, "stopped before it finished"))
        return f"{name}: stopped at step {result.get('step')}"
    progress.finished += 1
    return _describe(name, result)


def _stop(futures, stop_file, run_id, log, signum=2):
    """Ctrl-C or SIGTERM (signum): remove the stop file, so every running point saves a checkpoint at its next progress line
    and returns (and every queued point returns at once); wait up to STOP_GRACE_SECONDS for them."""
    _remove_stop_file(stop_file, run_id)
    name, again = ("Ctrl-C", "Ctrl-C again") if signum == 2 else ("SIGTERM", "another SIGTERM")
    log(f"{name}: stopping; the running points save a checkpoint at their next progress line (waiting up to "
        f"{STOP_GRACE_SECONDS:.0f} s; {again} to quit at once, losing the steps since their last checkpoint)")
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and not all(f.done() for f in futures.values()):
        time.sleep(POLL_SECONDS)
    saved = []
    for name, fut in futures.items():
        if fut.done() and fut.status == "finished" and fut.result().get("status") == "stopped":
            step = fut.result().get("step")
            if step is not None:
                saved.append(f"{name} at step {step:,}")
    log(f"stopped; saved {', '.join(saved) if saved else 'no running point'}; finished points keep their "
        f"results; rerun the same command to continue")


def _remove_stop_file(stop_file, run_id):
    """Remove the stop file if it is still this sweep's."""
    try:
        with open(stop_file, encoding="utf-8") as f:
            mine = f.read().strip() == run_id
        if mine:
            os.remove(stop_file)
    except OSError:
        pass
