"""Training: the paper's configuration per task and model, a loop that shows progress, metrics.csv,
checkpoints that resume bit for bit, early stopping, and a clean stop on NaN.

    settings = TrainSettings(task="copy", model="ntm-ff")      # defaults: PAPER below and docs/results.md
    train(settings, out_dir="runs/copy")
    train(resume_settings("runs/copy", steps=200_000), "runs/copy", resume=True)

One training step: draw a batch from the task with the run's own RNG, loss and gradients (bits per
sequence, batch mean), clip, one optimiser step. Everything the next step depends on (params, fixed
buffers, optimiser state, RNG state, step, and the settings themselves) is in the checkpoint, so a resumed
run continues exactly as if never stopped; resuming checks that the settings and model config agree with
the checkpoint's (only steps and max_minutes may change).
"""
import contextlib
import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ntm_ref.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ntm_ref.config import NTMConfig
from ntm_ref.lstm_baseline import LSTMBaseline
from ntm_ref.model import NTM
from ntm_ref.optim import clip_elementwise, clip_global_norm, make_optimizer

MODELS = ("ntm-ff", "ntm-lstm", "lstm")
TRAIN_ENGINES = ("fast", "parallel")   # NTM engines training may use (ntm_ref.model.NTM; docs/model.md "Engines")
# Settings added after runs were saved, with the value a run saved without them trained with: a resume
# (and a sweep rerun) compares saved settings as if they held these.
LATER_SETTINGS = {"engine": "fast"}

# The paper's Tables 1-3: (heads = read/write pairs, controller size, learning rate) per task and model;
# for the LSTM baseline (layers, learning rate).
PAPER = {
    "copy": {"ntm-ff": (1, 100, 1e-4), "ntm-lstm": (1, 100, 1e-4), "lstm": ((256,) * 3, 3e-5)},
    "repeat_copy": {"ntm-ff": (1, 100, 1e-4), "ntm-lstm": (1, 100, 1e-4), "lstm": ((512,) * 3, 3e-5)},
    "associative_recall": {"ntm-ff": (4, 256, 1e-4), "ntm-lstm": (1, 100, 1e-4), "lstm": ((256,) * 3, 1e-4)},
    "ngrams": {"ntm-ff": (1, 100, 3e-5), "ntm-lstm": (1, 100, 3e-5), "lstm": ((128,) * 3, 1e-4)},
    "priority_sort": {"ntm-ff": (8, 512, 3e-5), "ntm-lstm": (5, (100, 100), 3e-5), "lstm": ((128,) * 3, 3e-5)},
}


DEFAULT_CHECKPOINT_EVERY = 1000

# The batch size and optimiser a run uses unless given, measured with ntm-ref sweep (docs/results.md,
# "Training recipe"): the paper's Graves RMSProp at one sequence per step was the fastest reliable choice on
# copy (3 seeds x batch 1, 4, 16, 32 x Graves RMSProp, Adam); on associative recall (feedforward NTM) Adam
# at batch 16 got furthest in equal time of batch 16 and 32 x both optimisers (and batch 1, two seeds); on
# copy with the LSTM controller pytorch-ntm's RMSProp converged where Graves's crawled ("A recipe for the
# LSTM controller": 10 seeds of each); on associative recall with the LSTM controller none of Adam at batch
# 16, Graves RMSProp and pytorch-ntm's RMSProp at batch 1 converged a seed in 10 minutes, and Adam at batch
# 16 ended lowest on both pilot seeds, by little ("PyTorch's RMSProp on repeat copy and associative
# recall"). A (task, model) without a measured entry (repeat copy, N-grams, priority sort; the LSTM
# baseline) uses DEFAULT_RECIPE, the paper's.
DEFAULT_RECIPE = {"batch_size": 1, "optimizer": "graves_rmsprop"}
RECIPES = {("associative_recall", "ntm-ff"): {"batch_size": 16, "optimizer": "adam"},
           ("associative_recall", "ntm-lstm"): {"batch_size": 16, "optimizer": "adam"},
           ("copy", "ntm-lstm"): {"batch_size": 1, "optimizer": "rmsprop"}}
OPTIMIZERS = ("graves_rmsprop", "adam", "rmsprop")


def settings_differences(saved, now):
    """The settings (dicts of TrainSettings fields) a resume may not change but that differ, sorted; a run
    saved before a setting existed (LATER_SETTINGS) had its default."""
    saved = {**LATER_SETTINGS, **saved}
    return sorted(k for k in set(saved) | set(now) if k not in RESUMABLE and saved.get(k) != now.get(k))


def recipe(task, model):
    """The default batch size and optimiser of a task and model.  -> {'batch_size': int, 'optimizer': str}."""
    return {**DEFAULT_RECIPE, **RECIPES.get((task, model), {})}


@dataclass
class TrainSettings:
    """Everything that defines a training run (saved in every checkpoint and in DIR/settings.json)."""
    task: str = "copy"
    model: str = "ntm-ff"
    seed: int = 0
    steps: int = 100_000                   # optimiser steps at most
    max_minutes: Optional[float] = None    # wall-time limit of the whole run, across resumes (None: none)
    batch_size: Optional[int] = None       # None: the task's measured recipe (RECIPES, below)
    optimizer: Optional[str] = None        # None: the task's measured recipe (RECIPES, below)
    lr: Optional[float] = None             # None: the paper's for the task (graves_rmsprop), else DEFAULT_LR
    clip: str = "norm"                     # "norm" (global norm, DNC / Collier) | "elementwise" (the paper) | "none"
    clip_value: Optional[float] = None     # None: 50 for norm, 10 for elementwise
    eval_every: int = 200                  # steps between validation evaluations (and progress lines)
    checkpoint_every: Optional[int] = None  # steps between checkpoints (None: the first multiple of
                                           # eval_every from DEFAULT_CHECKPOINT_EVERY)
    val_size: Optional[int] = None         # None: the task's own (640, Collier's; 1000 for N-grams, the paper's)
    early_stop: bool = False               # stop once the validation bit errors fall below stop_threshold
    stop_threshold: float = 0.1            # bit errors per sequence (Collier's criterion)
    config_overrides: dict = field(default_factory=dict)   # any NTMConfig field
    task_options: dict = field(default_factory=dict)       # keyword arguments of the task, e.g. max_length
    engine: str = "fast"                   # NTM engine: "fast" (one process) | "parallel" (the fast engine
                                           # over 2 processes splitting each batch); the same numbers to round-off

    def __post_init__(self):
        from tasks import TASKS
        if self.task not in TASKS:
            raise ValueError(f"task: got {self.task!r}; allowed: {', '.join(map(repr, TASKS))}")
        if self.model not in MODELS:
            raise ValueError(f"model: got {self.model!r}; allowed: {', '.join(map(repr, MODELS))}")
        for name, value in recipe(self.task, self.model).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: got {self.optimizer!r}; allowed: {', '.join(map(repr, OPTIMIZERS))}")
        if self.checkpoint_every is None and isinstance(self.eval_every, int) and self.eval_every >= 1:
            self.checkpoint_every = self.eval_every * -(-DEFAULT_CHECKPOINT_EVERY // self.eval_every)
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "val_size", "seed"):
            value = getattr(self, name)
            if name == "val_size" and value is None:
                continue
            minimum = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}: got {value!r}; must be an int >= {minimum}")
        if self.checkpoint_every % self.eval_every:
            raise ValueError(f"checkpoint_every: got {self.checkpoint_every}; must be a multiple of eval_every "
                             f"({self.eval_every}), so a checkpoint falls where a metrics row does")
        if not isinstance(self.early_stop, bool):
            raise ValueError(f"early_stop: got {self.early_stop!r}; must be True or False")
        for name in ("config_overrides", "task_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name}: got {getattr(self, name)!r}; must be a dict")
        if self.engine not in TRAIN_ENGINES:
            raise ValueError(f"engine: got {self.engine!r}; allowed: {', '.join(map(repr, TRAIN_ENGINES))}")
        if self.model == "lstm" and self.engine != "fast":
            raise ValueError(f"engine: got {self.engine!r} with model 'lstm'; the LSTM baseline has one way to "
                             f"run, in one process (leave engine at 'fast')")
        if self.clip not in ("norm", "elementwise", "none"):
            raise ValueError(f"clip: got {self.clip!r}; allowed: 'norm', 'elementwise', 'none'")
        for name in ("lr", "clip_value", "max_minutes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name}: got {value!r}; must be a positive number")
        if isinstance(self.stop_threshold, bool) or not (isinstance(self.stop_threshold, (int, float))
                                                         and self.stop_threshold >= 0):
            raise ValueError(f"stop_threshold: got {self.stop_threshold!r}; must be a number >= 0")
        model_config(self)   # a bad task option or model field is caught here, naming the field

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


DEFAULT_LR = {"adam": 1e-3, "rmsprop": 1e-4, "graves_rmsprop": None}   # None: the paper's per-task lr


def learning_rate(settings):
    """The learning rate: --lr if given; the paper's table value for Graves RMSProp; else DEFAULT_LR."""
    if settings.lr is not None:
        return settings.lr
    if DEFAULT_LR.get(settings.optimizer) is None:
        return PAPER[settings.task][settings.model][-1]
    return DEFAULT_LR[settings.optimizer]


def make_run_task(settings):
    """The task with the run's options.  ValueError (naming the option) for a bad one."""
    from tasks import make_task
    try:
        return make_task(settings.task, **settings.task_options)
    except TypeError as err:
        raise ValueError(f"task_options: {err}") from None


def model_config(settings):
    """The paper's configuration for this task and model (Tables 1-3), with the overrides.  -> NTMConfig."""
    task = make_run_task(settings)
    paper = PAPER[settings.task][settings.model]
    fields = dict(input_size=task.input_size, output_size=task.output_size)
    if settings.model == "lstm":
        fields.update(controller="lstm", controller_size=paper[0])
    else:
        heads, ctrl, _ = paper
        fields.update(controller="feedforward" if settings.model == "ntm-ff" else "lstm", controller_size=ctrl,
                      read_heads=heads, write_heads=heads)
    config = NTMConfig.from_dict({**fields, **settings.config_overrides})
    for name in ("input_size", "output_size"):
        if getattr(config, name) != fields[name]:
            raise ValueError(f"config_overrides: {name}={getattr(config, name)}, but the {settings.task} task's "
                             f"sequences have {fields[name]} {'inputs' if name == 'input_size' else 'outputs'}; "
                             f"the task sets {name} (change the task's options instead)")
    return config


def build_model(settings):
    """The model of the paper's configuration for this task, with any config overrides.  -> (model, task)."""
    config = model_config(settings)
    model = LSTMBaseline(config, seed=settings.seed) if settings.model == "lstm" else NTM(config, seed=settings.seed,
                                                                                             engine=settings.engine)
    return model, make_run_task(settings)


META_KEYS = ("step", "sequences", "seconds", "rng_state", "settings", "model")
RESUMABLE = ("steps", "max_minutes")   # the only settings a resume may change


def _check_meta(path, meta):
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (no {', '.join(missing)} in its metadata)")


def resume_settings(out_dir, **changes):
    """The settings saved in out_dir's checkpoint (or, for a run that stopped before its first checkpoint,
    in out_dir/settings.json), with ``changes`` (only steps and max_minutes).  -> TrainSettings.
    Raises CheckpointError for an unusable run folder."""
    bad = sorted(set(changes) - set(RESUMABLE))
    if bad:
        raise ValueError(f"a resumed run keeps its settings; only {', '.join(RESUMABLE)} may change, not "
                         f"{', '.join(bad)}")
    path = os.path.join(out_dir, "checkpoint.npz")
    if not os.path.isdir(out_dir):
        raise CheckpointError(f"{out_dir}: no such run folder")
    if os.path.exists(path):
        try:
            meta = load_checkpoint(path).meta
            _check_meta(path, meta)
        except CheckpointError as err:
            raise CheckpointError(f"{err}{start_over_hint(out_dir)}") from None
        saved = meta["settings"]
    else:
        path = os.path.join(out_dir, "settings.json")
        if not os.path.exists(path):
            raise CheckpointError(f"{out_dir}: not a run folder (no checkpoint.npz, no settings.json)")
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: unreadable ({err}); remove the folder {out_dir} and start the run "
                                  f"again") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: the saved settings are not a JSON object")
    try:
        settings = TrainSettings(**saved)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its saved settings are not usable here: {err}") from None
    return dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})


class TrainingStopped(Exception):
    """Training hit a non-finite loss or gradient; the message says where and what was saved."""


EVAL_CHUNK = 128    # validation sequences run at once


def cost_and_bit_errors(model, x, y, mask, chunk=EVAL_CHUNK):
    """Cost (bits per sequence) and bit errors per sequence on a fixed set, in chunks.  -> (cost, errors).

    x (B, T, I), y (B, T, O), mask (B, T) or (B, T, O). The sequences run in chunks of similar length, each
    cut after its last scored step: a sequence's outputs up to step t depend only on its inputs up to t,
    and the steps after its last mask-1 step score nothing, so the numbers are those of running the whole
    padded set at once (to round-off), at a fraction of the cost when lengths vary (copy's validation set
    is padded to 41 steps and scores 21 on average).
    """
    from tasks.metrics import bit_errors_per_sequence, cost_bits_per_sequence
    scored = np.asarray(mask).reshape(mask.shape[0], mask.shape[1], -1).any(axis=2)    # (B, T)
    last = np.where(scored.any(axis=1), scored.shape[1] - np.argmax(scored[:, ::-1], axis=1), 1)   # (B,)
    order = np.argsort(last, kind="stable")
    cost, errors = 0.0, 0.0
    for start in range(0, x.shape[0], chunk):
        idx = order[start:start + chunk]
        steps = slice(0, int(last[idx].max()))
        logits = model.run(x[idx, steps]).logits
        yc, mc = y[idx, steps], mask[idx, steps]
        cost += cost_bits_per_sequence(logits, yc, mc, from_logits=True) * len(idx)
        errors += bit_errors_per_sequence(logits, yc, mc, from_logits=True) * len(idx)
    return float(cost / x.shape[0]), float(errors / x.shape[0])


METRIC_COLUMNS = ["step", "sequences", "seconds", "cost_bits", "bit_errors", "val_cost_bits",
                  "val_bit_errors", "grad_norm"]


def format_time(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 3600 else f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def _first_non_finite(loss, grads):
    if not math.isfinite(loss):
        return "the loss"
    for name, g in grads.items():
        if not np.all(np.isfinite(g)):
            return f"the gradient of {name}"
    return None


def check_resources(settings, model_config_=None):
    """Refuse (ResourceError, one line) a run whose model, training batch or validation set cannot fit in
    the memory this machine has, before anything is allocated or written."""
    from ntm_ref.limits import array_bytes, check_fits, format_bytes, model_bytes, run_bytes
    config = model_config_ or model_config(settings)
    task = make_run_task(settings)
    check_fits(model_bytes(config), f"the model ({settings.model}, memory_slots {config.memory_slots}, "
                                    f"controller {config.controller_size})")
    T = task.batch(np.random.default_rng(0), 64)[0].shape[1]   # a probe: about the longest training sequence
    check_fits(model_bytes(config) + run_bytes(config, settings.batch_size, T),
               f"a training batch of {settings.batch_size:,} sequences of up to ~{T} steps")
    n = settings.val_size or task.validation_size
    data = array_bytes([(n, T, task.input_size + task.output_size + 1)])
    check_fits(data + run_bytes(config, min(n, EVAL_CHUNK), T), f"the validation set of {n:,} sequences "
                                                                f"({format_bytes(data)} of data)")


FIRST_NOTE_SECONDS = 5.0   # a run whose first progress line is further away than this says its speed first
RUN_FILES = ("checkpoint.npz", "metrics.csv", "settings.json", "config.json")
LOCK_NAME = ".ntm-ref.lock"


def unfinished_message(out_dir):
    return (f"{out_dir}: an unfinished run with no checkpoint (it stopped before its first one): "
            f"ntm-ref train --resume {out_dir} starts it over, or remove the folder")


def write_atomic(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class FolderBusy(Exception):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file."""

    def __init__(self, holder):
        super().__init__(holder)
        self.holder = holder


def lock_folder(path, holder):
    """An advisory lock (fcntl.flock) on the file ``path``, which then holds the text ``holder``: an open
    fd, released when it is closed or the process ends however it ends (kill -9 included); None where
    fcntl does not exist (Windows: no lock). FolderBusy(the other holder's text) when already held."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderBusy(other) from None
    os.ftruncate(fd, 0)
    os.write(fd, holder.encode())
    return fd


class _RunLock:
    """One writer per run folder: lock_folder on DIR/.ntm-ref.lock, holding this process's pid."""

    def __init__(self, out_dir):
        self.out_dir, self.fd = out_dir, None

    def __enter__(self):
        try:
            self.fd = lock_folder(os.path.join(self.out_dir, LOCK_NAME), str(os.getpid()))
        except FolderBusy as busy:
            raise CheckpointError(f"{self.out_dir}: another ntm-ref train (pid {busy.holder}) is writing this "
                                  f"run folder; wait for it to end or stop it") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)      # closing releases the lock
        return False


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during training; ``signum`` says which."""

    def __init__(self, signum=2):
        super().__init__(signum)
        self.signum = signum


class _Interrupts:
    """SIGINT and SIGTERM raise Interrupted, except inside ``critical()`` blocks (the run's state being
    updated or saved), where they are held until the block ends. Only the main thread can own signal
    handlers; elsewhere (e.g. a worker thread) signals keep their usual meaning."""

    def __init__(self, log):
        self.log, self.depth, self.pending, self.saved = log, 0, None, {}

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        import signal
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False

    def _handler(self, signum, frame):
        if self.depth:
            self.pending = signum
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def critical(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending is not None:
                signum, self.pending = self.pending, None
                raise Interrupted(signum)


def _forget_interrupts_after_fork():
    """In a process forked while training's handlers are installed (engine "parallel": its worker
    processes), SIGINT is ignored and SIGTERM does what it does by default. The inherited handlers would
    raise Interrupted in the worker (a traceback when the pool is ended at exit, or on Ctrl-C in the
    terminal, which signals the whole process group); the training process owns Ctrl-C and its workers
    end with it."""
    import signal
    for sig, plain in ((signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, signal.SIG_DFL)):
        handler = signal.getsignal(sig)
        if getattr(handler, "__func__", None) is _Interrupts._handler:
            try:
                signal.signal(sig, plain)
            except (ValueError, OSError):     # not the main thread: nothing a signal could reach
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_interrupts_after_fork)


def _start_folder(settings, out_dir, config):
    """A new run's folder (locked): refuse one that holds a run, else write its first files."""
    _refuse_used_folder(out_dir)        # again, now that the folder is locked
    _write_fresh_files(settings, out_dir, config)


def _write_fresh_files(settings, out_dir, config):
    """settings.json first (it marks the folder as this run's), then config.json and the metrics header."""
    write_atomic(os.path.join(out_dir, "settings.json"), settings.to_json() + "\n")
    write_atomic(os.path.join(out_dir, "config.json"), config.to_json() + "\n")
    write_atomic(os.path.join(out_dir, "metrics.csv"), ",".join(METRIC_COLUMNS) + "\r\n")


def train(settings: TrainSettings, out_dir, resume=False, log=print):
    """Train until settings.steps, the time limit, or early stopping.  -> dict of the final metrics row.

    Writes out_dir/settings.json, out_dir/config.json, out_dir/metrics.csv and out_dir/checkpoint.npz.
    With resume=True, continues from out_dir/checkpoint.npz (CheckpointError if it is unusable), or starts
    over from step 0 when the run stopped before its first checkpoint.

    Everything is checked (settings, the model against the task, the memory needed) before any file is
    written. Ctrl-C or SIGTERM saves a checkpoint of the last finished step and raises Interrupted; only
    one process at a time may write a run folder.
    """
    from tasks.metrics import bit_errors_per_sequence
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise ValueError(f"out_dir: got {out_dir!r}; must be a folder name")
    out_dir = str(out_dir)
    config = model_config(settings)
    check_resources(settings, config)
    ckpt_path = os.path.join(out_dir, "checkpoint.npz")
    metrics_path = os.path.join(out_dir, "metrics.csv")
    if resume and not os.path.isdir(out_dir):
        raise CheckpointError(f"{out_dir}: no such run folder")
    if not resume and os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CheckpointError(f"{out_dir}: exists and is not a folder; choose another --out")
    if not resume:
        _refuse_used_folder(out_dir)          # before creating anything
    model, task = build_model(settings)
    optimizer = make_optimizer(settings.optimizer, lr=learning_rate(settings))
    rng = np.random.default_rng(settings.seed)
    step, sequences, seconds = 0, 0, 0.0
    window = []       # (cost, errors, grad_norm) of the steps since the last progress line
    eval_pending = False
    converged = False        # early stopping said stop: a resume has nothing left to do
    opt_state = optimizer.init_state(model.params)
    os.makedirs(out_dir, exist_ok=True)
    with _RunLock(out_dir), _Interrupts(log) as interrupts:
        with interrupts.critical():
            _remove_stale_temporaries(out_dir)
            if not resume:
                _start_folder(settings, out_dir, model.config)
            elif not os.path.exists(ckpt_path):
                log(f"{out_dir}: no checkpoint yet; starting the run over from step 0")
                _write_fresh_files(settings, out_dir, model.config)
            else:
                ckpt = _load_resume_checkpoint(ckpt_path, settings, model)
                model.params, model.buffers, opt_state = ckpt.params, ckpt.buffers, ckpt.opt_state
                try:
                    rng.bit_generator.state = ckpt.meta["rng_state"]
                except (TypeError, ValueError, KeyError) as err:
                    raise CheckpointError(f"{ckpt_path}: its saved random generator state is unusable "
                                          f"({err})") from None
                step, sequences, seconds = ckpt.meta["step"], ckpt.meta["sequences"], ckpt.meta["seconds"]
                window = [tuple(w) for w in ckpt.meta.get("window", [])]
                eval_pending = bool(ckpt.meta.get("eval_pending", False))
                converged = bool(ckpt.meta.get("converged", False)) and settings.early_stop
                _truncate_metrics(metrics_path, step)
        boundary = rng.bit_generator.state      # the generator as the next step will find it

        def checkpoint():
            meta = {"step": step, "sequences": sequences, "seconds": seconds, "rng_state": boundary,
                    "settings": json.loads(settings.to_json()), "model": settings.model,
                    "window": [list(map(float, w)) for w in window], "eval_pending": eval_pending,
                    "converged": converged}
            with interrupts.critical():
                save_checkpoint(ckpt_path, model.params, opt_state, model.config, meta, model.buffers)

        engine = "" if settings.engine == "fast" else f", {settings.engine} engine"
        log(f"training {settings.model} on {settings.task}: {sum(v.size for v in model.params.values()):,} "
            f"parameters, batch {settings.batch_size}, {settings.optimizer} lr {learning_rate(settings):g}, "
            f"seed {settings.seed}{engine} -> {out_dir}")
        started = time.perf_counter() - seconds
        row = {}
        try:
            n_val = settings.val_size or task.validation_size
            if step == 0:
                log(f"building the validation set ({n_val:,} sequences)...")
            x_val, y_val, m_val = task.validation_set(settings.val_size)
            limit = settings.clip_value or (50.0 if settings.clip == "norm" else 10.0)

            def validate():
                """Validation, a metrics row and a progress line.  -> True when early stopping says stop."""
                nonlocal window, eval_pending, row, seconds, converged
                val_cost, val_errors = cost_and_bit_errors(model, x_val, y_val, m_val)
                seconds = time.perf_counter() - started
                w = np.array(window, dtype=float).reshape(-1, 3)
                with interrupts.critical():
                    row = dict(step=step, sequences=sequences, seconds=round(seconds, 3),
                               cost_bits=w[:, 0].mean() if len(w) else float("nan"),
                               bit_errors=w[:, 1].mean() if len(w) else float("nan"),
                               val_cost_bits=val_cost, val_bit_errors=val_errors,
                               grad_norm=w[:, 2].mean() if len(w) else float("nan"))
                    window, eval_pending = [], False
                    with open(metrics_path, "a", newline="") as f:
                        csv.writer(f).writerow([row[c] for c in METRIC_COLUMNS])
                log(_progress_line(row, settings, seconds))
                if settings.early_stop and val_errors < settings.stop_threshold:
                    log(f"converged: validation bit errors {val_errors:.3f} < {settings.stop_threshold} per "
                        f"sequence after {sequences:,} sequences, {format_time(seconds)}")
                    converged = True
                    return True
                return False

            if converged:
                log(f"{out_dir}: the run converged at step {step:,} (early stopping); nothing to do")
                return _last_metrics_row(metrics_path)
            if eval_pending and validate():
                checkpoint()
                return row
            loop_started, start_sequences = time.perf_counter(), sequences
            first_row_at = loop_started + FIRST_NOTE_SECONDS if step < settings.eval_every else None
            while step < settings.steps:
                x, y, mask = task.batch(rng, settings.batch_size)
                with np.errstate(all="ignore"):      # a non-finite loss is reported below, in one line
                    result = model.run(x, y, mask)
                bad = _first_non_finite(result.loss, result.grads)
                if bad is not None:
                    replay = os.path.join(out_dir, f"nonfinite-step{step + 1}.npz")
                    np.savez(replay, x=x, y=y, mask=mask, **{f"param/{k}": v for k, v in model.params.items()})
                    last = (f"the last checkpoint is {ckpt_path}" if os.path.exists(ckpt_path) else
                            f"no checkpoint yet (ntm-ref train --resume {out_dir} starts the run over)")
                    raise TrainingStopped(f"step {step + 1}: {bad} is not finite; saved the batch and the last "
                                          f"finite parameters to {replay} (replay: model.run(x, y, mask) with "
                                          f"those params); {last}")
                grads = result.grads
                if settings.clip == "norm":
                    grads, norm = clip_global_norm(grads, limit)
                else:
                    norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
                    if settings.clip == "elementwise":
                        grads = clip_elementwise(grads, limit)
                new_params, new_opt_state = optimizer.step(model.params, grads, opt_state)
                seconds = time.perf_counter() - started
                out_of_time = settings.max_minutes is not None and seconds >= 60 * settings.max_minutes
                last = step + 1 >= settings.steps or out_of_time
                with interrupts.critical():           # the step's results, all or nothing
                    model.params, opt_state = new_params, new_opt_state
                    step += 1
                    sequences += x.shape[0]
                    window.append((float(result.loss), float(bit_errors_per_sequence(result.probs, y, mask)),
                                   float(norm)))
                    boundary = rng.bit_generator.state
                    eval_pending = step % settings.eval_every == 0 or last
                if first_row_at is not None and not row and time.perf_counter() > first_row_at:
                    first_row_at = None           # a slow start says how fast it goes, once
                    rate = (sequences - start_sequences) / max(time.perf_counter() - loop_started, 1e-9)
                    log(f"step {step:,}: {rate:.0f} seq/s; the first progress line comes at step "
                        f"{settings.eval_every:,}")
                if eval_pending and validate():
                    checkpoint()
                    return row
                if step % settings.checkpoint_every == 0 or last:
                    checkpoint()
                if out_of_time:
                    log(f"time limit of {settings.max_minutes:g} minutes reached at step {step}")
                    break
        except Interrupted as stop:
            seconds = time.perf_counter() - started
            checkpoint()
            name = "Ctrl-C" if stop.signum == 2 else _signal_name(stop.signum)
            log(f"{name}: saved step {step:,} to {ckpt_path}; continue with: ntm-ref train --resume {out_dir}")
            raise
    return row


def _remove_stale_temporaries(out_dir):
    """Temporary files of the run's atomic writes left by a process killed mid-write (kill -9, power
    loss). Called with the folder locked, so no live writer owns them."""
    for name in os.listdir(out_dir):
        if any(name.startswith(f + ".") for f in RUN_FILES) and name.endswith(".tmp"):
            os.remove(os.path.join(out_dir, name))


def _signal_name(signum):
    import signal
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _refuse_used_folder(out_dir):
    """A new run may not start in a folder holding another run's files (nothing is created or changed)."""
    if not os.path.isdir(out_dir):
        return
    existing = [n for n in RUN_FILES if os.path.exists(os.path.join(out_dir, n))]
    if "settings.json" in existing and "checkpoint.npz" not in existing:
        raise CheckpointError(unfinished_message(out_dir))
    if existing:
        raise CheckpointError(f"{os.path.join(out_dir, existing[0])}: a run is already saved in {out_dir}; "
                              f"resume it with --resume or choose another --out (nothing was changed)")


def start_over_hint(out_dir):
    """What to do with a run folder whose checkpoint cannot be used: the command that starts it over."""
    return (f" (to start the run over: rm {os.path.join(out_dir, 'checkpoint.npz')} && ntm-ref train "
            f"--resume {out_dir})")


def _load_resume_checkpoint(ckpt_path, settings, model):
    """The checkpoint a resume continues from, checked against the settings and the model."""
    try:
        ckpt = load_checkpoint(ckpt_path, expected_params=model.params)
        _check_meta(ckpt_path, ckpt.meta)
    except CheckpointError as err:
        raise CheckpointError(f"{err}{start_over_hint(os.path.dirname(ckpt_path))}") from None
    saved = ckpt.meta["settings"]
    now = json.loads(settings.to_json())
    if not isinstance(saved, dict):
        raise CheckpointError(f"{ckpt_path}: its saved settings are not a JSON object")
    differ = settings_differences(saved, now)
    if differ:
        raise CheckpointError(f"{ckpt_path}: the run was saved with other settings ({', '.join(differ)}); "
                              f"a resume may change only {', '.join(RESUMABLE)}")
    if ckpt.config != model.config.to_dict() and NTMConfig.from_dict(ckpt.config) != model.config:
        raise CheckpointError(f"{ckpt_path}: the saved model config differs from the one these settings make")
    for key in ("step", "sequences"):
        if isinstance(ckpt.meta[key], bool) or not isinstance(ckpt.meta[key], int) or ckpt.meta[key] < 0:
            raise CheckpointError(f"{ckpt_path}: its saved {key} is not a count ({ckpt.meta[key]!r})")
    return ckpt


def _progress_line(row, settings, seconds):
    rate = row["sequences"] / max(seconds, 1e-9)
    left = []
    if settings.steps:
        left.append((settings.steps - row["step"]) * settings.batch_size / max(rate, 1e-9))
    if settings.max_minutes is not None:
        left.append(60 * settings.max_minutes - seconds)
    eta = f"~{format_time(max(0.0, min(left)))} left" if left else ""
    if settings.early_stop:        # the step limit bounds the time; convergence usually comes much sooner
        eta = f"until converged, at most {eta}"
    eta = f", {eta}" if eta else ""
    return (f"step {row['step']:>7,} | seq {row['sequences']:>9,} | cost {row['cost_bits']:7.3f} "
            f"err {row['bit_errors']:7.3f} | val cost {row['val_cost_bits']:7.3f} err {row['val_bit_errors']:7.3f}"
            f" | {rate:6.0f} seq/s | {format_time(seconds)}{eta}")


def _last_metrics_row(path):
    """The last row of metrics.csv as a dict of numbers ({} when it has none)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items()} if rows else {}


def _truncate_metrics(path, step):
    """Keep the header and the rows up to ``step`` (rows logged after the checkpoint are redone)."""
    if not os.path.exists(path):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(METRIC_COLUMNS)
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    try:
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    except (ValueError, IndexError):
        raise CheckpointError(f"{path}: not a metrics file written by ntm-ref train") from None
    tmp = f"{path}.{os.getpid()}.tmp"                   # rewritten atomically, like the checkpoint
    try:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_model(path):
    """A model from a checkpoint file, with its parameters and fixed buffers.  -> (model, settings dict, meta).
    An NTM runs with the fast engine whatever engine the run trained with (eval, plot, trace --checkpoint:
    no worker processes; a training resume rebuilds its model through build_model, with the run's engine).
    Raises CheckpointError for an unusable file."""
    ckpt = load_checkpoint(path)
    _check_meta(path, ckpt.meta)
    try:
        config = NTMConfig.from_dict(ckpt.config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its model config is not usable: {err}") from None
    if ckpt.meta["model"] != "lstm":
        try:
            return (NTM.from_arrays(config, ckpt.params, ckpt.buffers, engine="fast"), ckpt.meta["settings"],
                    ckpt.meta)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from None
    model = LSTMBaseline(config)
    for name, value in model.params.items():
        if name not in ckpt.params or ckpt.params[name].shape != value.shape:
            raise CheckpointError(f"{path}: parameter {name} is missing or has the wrong shape")
    model.params = ckpt.params
    model.buffers = ckpt.buffers
    return model, ckpt.meta["settings"], ckpt.meta
