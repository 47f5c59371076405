"""The ``ntm-ref`` command line.

    ntm-ref demo                        one addressing step of two heads on a small memory, every stage printed
    ntm-ref train --task copy           train with the paper's configuration for the task (see docs/results.md)
    ntm-ref train --resume DIR          continue a run exactly where its last checkpoint left it
    ntm-ref eval DIR/checkpoint.npz     cost and bit errors on the validation set and the generalisation sets
    ntm-ref plot DIR                    PNG figures (needs matplotlib: pip install ".[plot]")
    ntm-ref trace --preset tiny-ff      every value the reference computes, as one .npz (docs/trace-format.md)
    ntm-ref compare REF.npz OTHER.npz   where two traces part, array by array and step by step (docs/validate.md)
    ntm-ref gradcheck --preset tiny-ff  the whole-model finite-difference check on a chosen configuration
    ntm-ref import pytorch-ntm FILE     another implementation's trained model as config.json + params.npz
    ntm-ref sweep --task copy --seeds 0-9 --out S   a grid of training runs on Dask (docs/sweep.md)
    ntm-ref report S                    seed statistics and learning curves of a sweep
    ntm-ref demo --step                 one whole time step forward and back, every value (docs/one-step.md)

Errors a user can cause (a bad option, a bad checkpoint or trace) print one line and exit with status 2;
``compare`` exits 1 when the traces differ and ``gradcheck`` when a gradient is wrong.
"""
import argparse
import json
import os
import sys

# One BLAS thread unless the user asked for more. The model's matrix products are small (e.g. 1 x 100 by
# 100 x 92 per step); OpenBLAS splitting them over both cores of a 2-core machine made training about 2x
# slower (measured 2026-11-25: the copy configuration at batch 1, 50 vs 88 sequences/s; at batch 64,
# 291 vs 583). Environment variables only take effect before NumPy loads, so this comes first.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

from ntm_ref import addressing, memory
from ntm_ref.activations import oneplus_forward, sigmoid_forward, softmax_forward, softplus_forward
from ntm_ref.config import parse_value


def _fmt(row):
    return " ".join(f"{v:6.3f}" for v in row)


def demo(args):
    """One addressing step (eqs 5-9) and a read (eq 2) for two heads on an N x M memory, printed stage by
    stage; with --step, a whole time step of a tiny NTM forward and back (docs/one-step.md)."""
    if args.step:
        from ntm_ref.walkthrough import text
        console(text(args.seed))
        return 0
    from ntm_ref.limits import check_fits
    N, M = args.slots, args.width
    if N < 4 or M < 1:
        raise UserError(f"--slots must be at least 4 and --width at least 1 (got {N} and {M})")
    check_fits(8 * 16 * N * M, f"--slots {N} --width {M}")    # the memory and a few copies of it per stage
    rng = np.random.default_rng(args.seed)
    mem = rng.normal(size=(1, N, M))
    # head 0 looks for the contents of slot 3 by content; head 1 moves one slot on from where it was
    key = np.stack([mem[0, 3] + 0.1 * rng.normal(size=M), rng.normal(size=M)])[None]   # (B=1, H=2, M)
    w_prev = np.zeros((1, 2, N))
    w_prev[0, :, 0] = 1.0
    beta, _ = softplus_forward(np.array([[5.0, 0.0]]))        # key strength > 0
    g, _ = sigmoid_forward(np.array([[6.0, -6.0]]))           # head 0 content, head 1 previous weighting
    s, _ = softmax_forward(np.array([[[0.0, 6.0, 0.0], [0.0, 0.0, 6.0]]]))   # shifts -1, 0, +1
    gamma, _ = oneplus_forward(np.array([[1.0, 3.0]]))        # sharpening >= 1

    w, cache = addressing.address_forward(mem, w_prev, key, beta, g, s, gamma)
    r, _ = memory.read_forward(mem, w)

    print(f"ntm_ref demo: one addressing step, memory N={N} slots x M={M}, 2 heads (seed {args.seed})")
    print(f"  head 0: key near slot 3, beta={beta[0, 0]:.2f}, g={g[0, 0]:.3f} (content), "
          f"shift 0, gamma={gamma[0, 0]:.2f}")
    print(f"  head 1: random key,     beta={beta[0, 1]:.2f}, g={g[0, 1]:.3f} (previous), "
          f"shift +1, gamma={gamma[0, 1]:.2f}")
    print("  slot:              " + " ".join(f"{i:6d}" for i in range(N)))
    stages = [("w_prev", w_prev), ("content  (eq 5)", cache.w_content), ("gated    (eq 7)", cache.w_gated),
              ("shifted  (eq 8)", cache.w_shifted), ("sharpened(eq 9)", cache.w)]
    for h in range(2):
        print(f"  head {h}")
        for name, arr in stages:
            print(f"    {name:15s} {_fmt(arr[0, h])}")
        print(f"    read (eq 2)     {_fmt(r[0, h])}   (argmax slot {int(w[0, h].argmax())})")
    return 0


def train_command(args):
    from ntm_ref.train import TrainSettings, resume_settings, train
    if args.resume:
        ignored = [f"--{k.replace('_', '-')}" for k in ("task", "model", "seed", "batch_size", "optimizer", "lr",
                                                         "clip", "clip_value", "eval_every", "checkpoint_every",
                                                         "val_size", "stop_threshold", "engine", "out", "set")
                   if getattr(args, k) is not None]
        if ignored or args.early_stop:
            raise UserError(f"--resume continues a run with its saved settings; only --steps and --max-minutes "
                            f"may be given with it, not {', '.join(ignored or ['--early-stop'])}")
        settings = resume_settings(args.resume, steps=args.steps, max_minutes=args.max_minutes)
        out = args.resume
    else:
        overrides = {}
        for item in args.set or []:
            if "=" not in item:
                raise UserError(f"--set: got {item!r}; expected FIELD=VALUE (an NTMConfig field)")
            key, value = item.split("=", 1)
            overrides[key] = parse_value(value)
        given = {k: getattr(args, k) for k in ("task", "model", "seed", "steps", "max_minutes", "batch_size",
                                                "optimizer", "lr", "clip", "clip_value", "eval_every",
                                                "checkpoint_every", "val_size", "stop_threshold", "engine")
                 if getattr(args, k) is not None}
        settings = TrainSettings(**given, early_stop=args.early_stop, config_overrides=overrides)
        if args.out is not None and not args.out.strip():
            raise UserError("--out: got an empty folder name")
        out = args.out or os.path.join("runs", f"{settings.task}-{settings.model}-seed{settings.seed}")
    train(settings, out, resume=bool(args.resume), log=console)
    console(f"done; checkpoint {os.path.join(out, 'checkpoint.npz')}, metrics {os.path.join(out, 'metrics.csv')}")
    return 0


def console(line):
    """Print a progress line; when stdout is a closed pipe (``ntm-ref train | head -1``), stop printing
    but keep working: a reader that went away must not stop a training run."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def eval_command(args):
    from ntm_ref.evaluate import evaluate_checkpoint
    print(evaluate_checkpoint(args.checkpoint, n=args.sequences, seed=args.seed, task=args.task))
    return 0


def plot_command(args):
    """PNG figures of a run folder (ntm_ref.plots): nothing is created or changed unless all can be made."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError('ntm-ref plot needs matplotlib: pip install ".[plot]"') from None
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: a file, not a folder (give a folder for the PNGs)")
    from ntm_ref.plots import make_plots
    for path in make_plots(args.run, out_dir=args.out, seed=args.seed):
        print(path)
    return 0


def _overrides(items):
    overrides = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set: got {item!r}; expected FIELD=VALUE (an NTMConfig field)")
        key, value = item.split("=", 1)
        overrides[key] = parse_value(value)
    return overrides


def _load_npz(path, what):
    """A user's .npz (parameters or inputs) as a dict; UserError naming the option and the file when it
    cannot be read (npzio.read_npz: not an .npz, pickled arrays, more bytes declared than memory allows)."""
    from ntm_ref.npzio import NpzError, read_npz
    try:
        return read_npz(path, what)
    except NpzError as err:
        raise UserError(str(err)) from None


def _checkpoint_model(args):
    """The trained NTM and its run settings from --checkpoint (loaded once).  -> (NTM, settings dict)."""
    if getattr(args, "_checkpoint", None) is None:
        from ntm_ref.evaluate import checked_settings
        from ntm_ref.train import load_model
        model, settings, meta = load_model(args.checkpoint)
        if meta.get("model") == "lstm":
            raise UserError(f"--checkpoint {args.checkpoint}: an LSTM baseline, not an NTM; traces are for NTMs")
        args._checkpoint = (model, checked_settings(args.checkpoint, settings))
    return args._checkpoint


def _chosen_config(args):
    """The NTMConfig of --preset, --config or --checkpoint, with --set overrides."""
    from ntm_ref.config import NTMConfig
    from ntm_ref.trace import preset_config
    overrides = _overrides(args.set)
    if args.config and args.checkpoint:
        raise UserError("give --config or --checkpoint, not both (a checkpoint holds its config)")
    if args.checkpoint:                      # from_dict: an unknown --set field is named, not a TypeError
        config = _checkpoint_model(args)[0].config
        try:
            return NTMConfig.from_dict({**config.to_dict(), **overrides})
        except (TypeError, ValueError) as err:
            raise UserError(f"--set: {err}") from None
    if args.config:
        if not os.path.isfile(args.config):
            raise UserError(f"--config {args.config}: no such file")
        try:
            with open(args.config, encoding="utf-8") as f:
                fields = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"--config {args.config}: not JSON ({err})") from None
        if not isinstance(fields, dict):
            raise UserError(f"--config {args.config}: must hold a JSON object of NTMConfig fields")
        try:
            return NTMConfig.from_dict({**fields, **overrides})
        except (TypeError, ValueError) as err:
            raise UserError(f"--config {args.config}{' with --set' if overrides else ''}: {err}") from None
    try:
        return preset_config(args.preset, overrides)
    except (TypeError, ValueError) as err:
        raise UserError(f"--set: {err}") from None


def _check_sizes(args):
    """--batch and --steps: at least 1 when given, and only where they are used (random inputs; --batch
    also with --checkpoint)."""
    for option in ("batch", "steps"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UserError(f"--{option}: got {value}; must be at least 1")
    if args.inputs and (args.batch is not None or args.steps is not None):
        raise UserError(f"--inputs {args.inputs} gives the inputs, their B and T too; leave out --batch and --steps")
    if args.checkpoint and args.steps is not None:
        raise UserError("--steps: with --checkpoint the sequences, and their length, come from the checkpoint's "
                        "task; leave --steps out (--batch chooses how many)")


def _check_memory(what, config, B, T, dtype, lower_bound=False):
    """UserError naming ``what`` when a run of B sequences of T steps would need more memory than is
    available (limits.run_bytes, a rough estimate; checked before anything of that size is allocated).
    lower_bound: T is the shortest possible length (the real one is not known yet)."""
    from ntm_ref.npzio import available_bytes, format_bytes
    from ntm_ref.limits import run_bytes
    need, have = run_bytes(config, B, T, dtype), available_bytes()
    if need > have:
        size = (f"B={B:,} sequences would need at least {format_bytes(need)} of memory (even of one step each)"
                if lower_bound else
                f"B={B:,} sequences of T={T:,} steps would need about {format_bytes(need)} of memory")
        raise UserError(f"{what}: {size}; {format_bytes(have)} is available")


def _input_shape_problem(config, x, y, mask):
    """(name, phrase) of the first input whose shape does not fit the config, or None: x (B, T, I) with
    B, T >= 1, y (B, T, O), mask (B, T) or (B, T, O)."""
    if x.ndim != 3 or x.shape[2] != config.input_size or min(x.shape[:2]) < 1:
        return "x", f"has shape {x.shape}; must be (B, T, input_size={config.input_size}) with B, T >= 1"
    B, T = x.shape[:2]
    if y is not None and y.shape != (B, T, config.output_size):
        return "y", f"has shape {y.shape}; x makes it (B, T, output_size) = {(B, T, config.output_size)}"
    if mask is not None and y is None:
        return "mask", "is given without targets y"
    if mask is not None and mask.shape not in ((B, T), (B, T, config.output_size)):
        return "mask", f"has shape {mask.shape}; must be (B, T) = {(B, T)} or (B, T, O) = {y.shape}"
    return None


def _chosen_inputs(args, config):
    """x (B, T, I), y (B, T, O) or None, mask from --inputs, the checkpoint's task, random ones of --batch x
    --steps, or the preset's. UserError for a bad size, a bad --inputs array, or a run too large for memory."""
    from ntm_ref.trace import input_problem, preset_inputs
    _check_sizes(args)
    dtype = getattr(args, "dtype", "float64")
    if args.inputs:
        data = _load_npz(args.inputs, "--inputs")
        if "x" not in data:
            raise UserError(f"--inputs {args.inputs}: needs an array 'x' (B, T, input_size); has "
                            f"{', '.join(sorted(data)) or 'nothing'}")
        x, y, mask = data["x"], data.get("y"), data.get("mask")
        problem = input_problem(x, y, mask) or _input_shape_problem(config, x, y, mask)
        if problem:
            raise UserError(f"--inputs {args.inputs}: array {problem[0]} {problem[1]}")
        _check_memory(f"--inputs {args.inputs}", config, x.shape[0], x.shape[1], dtype)
        return x, y, mask
    if args.checkpoint:                      # sequences of the task the checkpoint was trained on
        from ntm_ref.train import make_run_task
        B = args.batch or 1
        _check_memory("--batch", config, B, 1, dtype, lower_bound=True)    # before drawing B sequences
        x, y, mask = make_run_task(_checkpoint_model(args)[1]).batch(np.random.default_rng(args.seed + 200), B)
        _check_memory("--batch", config, B, x.shape[1], dtype)
        return x, y, mask
    if args.config or args.batch is not None or args.steps is not None:
        B, T = args.batch or 2, args.steps or 5
        _check_memory("--batch/--steps", config, B, T, dtype)
        rng = np.random.default_rng(args.seed + 200)
        x = rng.normal(size=(B, T, config.input_size))
        return x, (rng.random((B, T, config.output_size)) > 0.5).astype(np.float64), None
    return preset_inputs(args.preset, config, args.seed)


def _chosen_params(args, config):
    """Parameters and buffers from --params (names as docs/trace-format.md, with or without the 'param/'
    prefix; a trace works too), else the preset's (random_params / init_params of --seed)."""
    from ntm_ref.model import init_buffers, init_params
    from ntm_ref.trace import PRESETS, params_of, random_params
    from ntm_ref.compare import META as TRACE_META
    if args.params and args.checkpoint:
        raise UserError("give --params or --checkpoint, not both (a checkpoint holds its parameters)")
    if args.checkpoint:
        model = _checkpoint_model(args)[0]
        return model.params, model.buffers
    if args.params:
        from ntm_ref.model import check_arrays
        data = _load_npz(args.params, "--params")
        # parameters are the 'param/' entries (a trace) or the entries with no group prefix (your own file)
        params = params_of(data)
        params.update({k: v for k, v in data.items() if "/" not in k and k not in TRACE_META + ("loss",)})
        buffers = params_of(data, "buffer/")
        try:                       # every missing, misshapen, non-real or non-finite array, named
            check_arrays(config, params, buffers)
        except ValueError as err:
            raise UserError(f"--params {args.params}: {err}") from None
        return params, buffers     # what the file holds, nothing filled in
    if args.config is None and PRESETS[args.preset].get("task"):
        return init_params(config, args.seed), init_buffers(config, args.seed)
    return random_params(config, args.seed), init_buffers(config, args.seed)


def _check_out(path, force):
    """--out of trace, checked before any work (trace.check_trace_path)."""
    from ntm_ref.trace import check_trace_path
    if not path:
        raise UserError("--out: empty; give the trace's file path (default trace.npz)")
    try:
        check_trace_path(path, force)
    except (ValueError, FileExistsError) as err:
        raise UserError(f"--out {err}") from None


def trace_command(args):
    from ntm_ref.trace import make_trace, save_trace
    _check_out(args.out, args.force)
    config = _chosen_config(args)
    params, buffers = _chosen_params(args, config)
    x, y, mask = _chosen_inputs(args, config)
    trace = make_trace(config, params, x, y, mask, buffers, dtype=args.dtype)
    try:
        save_trace(args.out, trace, overwrite=args.force)
    except (FileExistsError, ValueError) as err:
        raise UserError(f"--out {err}") from None
    B, T, _ = trace["input/x"].shape
    n_arrays = sum(1 for k in trace if "/" in k or k == "loss")
    loss = f", loss {float(trace['loss']):.10g} bits/sequence" if "loss" in trace else " (no targets: no loss, no gradients)"
    print(f"wrote {args.out}: {n_arrays} arrays (and {len(trace) - n_arrays} identification entries), "
          f"{args.dtype}, B={B} T={T}{loss}")
    return 0


def compare_command(args):
    from ntm_ref.compare import compare_traces, format_by_step, format_table, to_json, tolerance_problem
    from ntm_ref.trace import TraceError, load_trace
    try:
        for option in ("rtol", "atol"):
            problem = tolerance_problem(getattr(args, option))
            if problem:
                raise ValueError(f"--{option}: {problem}")
        ref, other = load_trace(args.reference), load_trace(args.other)
        cmp = compare_traces(ref, other, rtol=args.rtol, atol=args.atol, skip=args.skip or (),
                             ref_name=args.reference, other_name=args.other, only=args.only or ())
    except (TraceError, ValueError) as err:
        if args.json:                      # machines get JSON on stdout too, with the same exit status
            print(json.dumps({"agree": None, "error": str(err)}))
        raise UserError(str(err)) from None
    print(to_json(cmp, only_failures=args.failures_only) if args.json
          else format_table(cmp, only_failures=args.failures_only))
    if args.by_step and not args.json:
        print(format_by_step(cmp, args.by_step))
    return 0 if cmp.agrees else 1


def gradcheck_command(args):
    from gradcheck import check_loss
    from ntm_ref.compare import tolerance_problem
    from ntm_ref.model import NTM
    if tolerance_problem(args.rtol):
        raise UserError(f"--rtol: {tolerance_problem(args.rtol)}")
    config = _chosen_config(args)
    params, buffers = _chosen_params(args, config)
    x, y, mask = _chosen_inputs(args, config)
    if y is None:
        raise UserError(f"--inputs {args.inputs}: needs targets 'y' (B, T, output_size) for a loss")
    model = NTM.from_arrays(config, params, buffers, engine="reference")
    x = np.array(x, dtype=np.float64)
    result = model.run(x, y, mask)

    def loss_fn(p):
        """The loss as a function of every parameter and of the inputs (the block "x")."""
        saved, model.params = model.params, {k: v for k, v in p.items() if k != "x"}
        try:
            return model.loss(p["x"], y, mask)
        finally:
            model.params = saved
    print(f"ntm-ref gradcheck: {config.controller} controller, R={config.read_heads} W={config.write_heads}, "
          f"N={config.memory_slots} M={config.memory_width}, B={x.shape[0]} T={x.shape[1]}, "
          f"{sum(v.size for v in model.params.values()):,} parameters and the inputs x, mode {args.mode}, "
          f"rtol {args.rtol:g}")
    report = check_loss(loss_fn, {**model.params, "x": x}, {**result.grads, "x": result.dx}, mode=args.mode,
                        rtol=args.rtol, seed=args.seed)
    print(report)
    return 0 if report.ok else 1


def import_command(args):
    """Another implementation's trained model -> DIR/config.json and DIR/params.npz (param/..., buffer/...)."""
    from ntm_ref.interop import find_revision, load_pytorch_ntm
    out = args.out
    if not out:
        raise UserError("--out: give a folder for config.json and params.npz")
    targets = [os.path.join(out, "config.json"), os.path.join(out, "params.npz")]
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out}: exists and is not a folder")
    existing = [p for p in targets if os.path.exists(p)]
    if existing and not args.force:
        raise UserError(f"--out {out}: already holds {', '.join(os.path.basename(p) for p in existing)}; "
                        f"--force replaces them")
    model = load_pytorch_ntm(args.file, revision=args.revision)
    rev = find_revision(args.revision)
    os.makedirs(out, exist_ok=True)
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    arrays.update({f"buffer/{k}": v for k, v in model.buffers.items()})
    tmp = os.path.join(out, ".params.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        with open(os.path.join(out, ".config.tmp.json"), "w", encoding="utf-8") as f:
            json.dump(model.config.to_dict(), f, indent=1, sort_keys=True)
        os.replace(tmp, targets[1])
        os.replace(os.path.join(out, ".config.tmp.json"), targets[0])
    finally:
        for leftover in (tmp, os.path.join(out, ".config.tmp.json")):
            if os.path.exists(leftover):
                os.remove(leftover)
    c = model.config
    n = sum(v.size for v in model.params.values())
    print(f"imported {args.file}: pytorch-ntm {rev.commit[:7]} ({rev.date}), LSTM {c.controller_size}, "
          f"N={c.memory_slots} M={c.memory_width}, inputs {c.input_size}, outputs {c.output_size}, "
          f"{n:,} parameters (the LSTM's two biases summed into one)")
    print(f"wrote {targets[0]} and {targets[1]}; next: ntm-ref trace --config {targets[0]} --params "
          f"{targets[1]} --inputs YOUR_INPUTS.npz --out ref.npz")
    return 0


def sweep_command(args):
    """A grid of training runs on Dask (ntm_ref.sweep, docs/sweep.md): every point checked before any
    file is written or any run starts."""
    from ntm_ref.sweep import plan_from_args, run_sweep
    if not args.out.strip():
        raise UserError("--out: got an empty folder name")
    points = plan_from_args(args)
    return run_sweep(args.out, points, scheduler=args.scheduler, workers=args.workers,
                     argv=sys.argv[1:], log=console)


def report_command(args):
    """Seed statistics per grid cell of a sweep folder, S/report.md and S/learning_curves.png
    (ntm_ref.report)."""
    from ntm_ref.report import make_report
    if args.sequences < 1:
        raise UserError(f"--sequences: got {args.sequences}; must be at least 1")
    make_report(args.sweep, generalisation=args.generalisation, n=args.sequences, log=console)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the full usage is one --help away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UserError(Exception):
    """A mistake on the command line or in a file the user named: printed as one line, exit status 2."""


def build_parser():
    import ntm_ref
    from ntm_ref.config import NTMConfig
    parser = _Parser(prog="ntm-ref", description="NumPy reference Neural Turing Machine")
    parser.add_argument("--version", action="version", version=f"ntm-ref {ntm_ref.__version__}")
    set_help = ("change an NTMConfig field (repeatable), e.g. --set memory_init=learned --set "
                "controller_size=[100,100]; fields: " + ", ".join(NTMConfig.field_names())
                + " (docs/conventions.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run one addressing step and print the weightings of every stage")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--slots", type=int, default=8, help="memory slots N (default 8, at least 4)")
    p.add_argument("--width", type=int, default=4, help="memory word width M (default 4)")
    p.add_argument("--step", action="store_true", help="instead: one whole time step of a tiny NTM, forward "
                                                        "and back, every value printed (docs/one-step.md)")
    p.set_defaults(func=demo)

    from ntm_ref.train import MODELS, OPTIMIZERS, RECIPES, TRAIN_ENGINES, TrainSettings
    from tasks import TASKS
    d = TrainSettings()
    measured = "; ".join(f"{task} with {model}: {r['batch_size']}, {r['optimizer']}"
                         for (task, model), r in RECIPES.items())
    p = sub.add_parser("train", help="train on one of the paper's tasks",
                       description="Train an NTM (or the LSTM baseline) on one of the paper's tasks. Defaults "
                                   "come from the paper's Tables 1-3; see docs/results.md.")
    p.add_argument("--task", choices=sorted(TASKS), help=f"task (default {d.task})")
    p.add_argument("--model", choices=MODELS, help=f"model (default {d.model})")
    p.add_argument("--seed", type=int, help=f"seed of the parameters and the training batches (default {d.seed})")
    p.add_argument("--steps", type=int, help=f"optimiser steps at most (default {d.steps:,})")
    p.add_argument("--max-minutes", type=float, help="wall-time limit of the whole run in minutes, counted "
                                                     "across resumes (default none)")
    p.add_argument("--batch-size", type=int, help=f"sequences per step (default {d.batch_size}, except the "
                                                  f"measured recipes of docs/results.md: {measured})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"(default {d.optimizer}, except the measured "
                                                           f"recipes: see --batch-size)")
    p.add_argument("--lr", type=float, help="learning rate (default: adam 1e-3, rmsprop 1e-4, graves_rmsprop the "
                                            "paper's value for the task)")
    p.add_argument("--clip", choices=["norm", "elementwise", "none"], help=f"gradient clipping (default {d.clip})")
    p.add_argument("--clip-value", type=float, help="clip limit (default 50 for norm, 10 for elementwise)")
    p.add_argument("--eval-every", type=int, help=f"steps between validation and progress lines (default {d.eval_every})")
    p.add_argument("--checkpoint-every", type=int, help=f"steps between checkpoints (default {d.checkpoint_every})")
    p.add_argument("--val-size", type=int, help="validation sequences (default: the task's, 640; 1000 for ngrams)")
    p.add_argument("--early-stop", action="store_true",
                   help="stop once validation bit errors per sequence fall below --stop-threshold")
    p.add_argument("--stop-threshold", type=float, help=f"(default {d.stop_threshold}, Collier's criterion)")
    p.add_argument("--engine", choices=TRAIN_ENGINES,
                   help="fast: one process; parallel: the fast engine over 2 processes splitting each batch, "
                        f"faster from batch 16 on (docs/model.md); NTM models only (default {d.engine})")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help=set_help)
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/TASK-MODEL-seedN)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (other options but --steps "
                                                   "and --max-minutes come from the saved run)")
    p.set_defaults(func=train_command)

    p = sub.add_parser("eval", help="evaluate a checkpoint on the validation and generalisation sets")
    p.add_argument("checkpoint", help="a checkpoint file (DIR/checkpoint.npz), a run folder, or a folder of "
                                      "ntm-ref import (config.json and params.npz; give --task)")
    p.add_argument("--task", choices=sorted(TASKS), help="the task of an imported model (a checkpoint knows "
                                                         "its own)")
    p.add_argument("--sequences", type=int, default=64, help="sequences per generalisation set (default 64)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the generalisation sets (default 1234)")
    p.set_defaults(func=eval_command)

    p = sub.add_parser("plot", help="PNG figures of a run (needs matplotlib)")
    p.add_argument("run", help="a run folder (with metrics.csv and checkpoint.npz)")
    p.add_argument("--out", help="where to write the PNGs (default: the run folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the example sequences (default 0)")
    p.set_defaults(func=plot_command)

    from ntm_ref.trace import DTYPES, PRESETS

    def model_choice(p, default_preset):
        p.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                       help=f"a named configuration with its inputs (default {default_preset}; "
                            f"docs/trace-format.md lists them)")
        p.add_argument("--config", metavar="FILE", help="an NTMConfig as JSON (a trace's config, or "
                                                        "config.json of a run) instead of a preset")
        p.add_argument("--checkpoint", metavar="FILE", help="a trained NTM (DIR/checkpoint.npz of ntm-ref "
                                                            "train): its config and parameters, and (unless "
                                                            "--inputs) --batch sequences of its task")
        p.add_argument("--set", action="append", metavar="FIELD=VALUE", help=set_help)
        p.add_argument("--seed", type=int, default=0, help="seed of the parameters and inputs (default 0)")
        p.add_argument("--params", metavar="FILE", help="parameters from an .npz (yours: names and shapes "
                                                        "in docs/trace-format.md; or a trace)")
        p.add_argument("--inputs", metavar="FILE", help="an .npz with x (B, T, I) and optionally y (B, T, O) "
                                                        "and mask (B, T) or (B, T, O): x finite, y and mask "
                                                        "in [0, 1]")
        p.add_argument("--batch", type=int, help="random inputs: sequences B, at least 1 (default 2; with "
                                                 "--checkpoint 1); not with --inputs")
        p.add_argument("--steps", type=int, help="random inputs: time steps T, at least 1 (default 5); not with "
                                                 "--inputs or --checkpoint")

    p = sub.add_parser("trace", help="write every value the reference computes on one input (.npz)",
                       description="Run the reference NTM on a preset or your own config, parameters and "
                                   "inputs, and write the trace (schema: docs/trace-format.md).")
    model_choice(p, "tiny-ff")
    p.add_argument("--dtype", choices=DTYPES, default="float64", help="precision of the whole run (default float64)")
    p.add_argument("--out", default="trace.npz", help="output file in an existing folder (default trace.npz)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=trace_command)

    p = sub.add_parser("import", help="another implementation's trained model as config.json and params.npz",
                       description="Read a trained model of another NTM implementation and write DIR/config.json "
                                   "and DIR/params.npz, which trace, gradcheck, eval and NTM.from_arrays take "
                                   "(docs/validate.md, 'I have a pytorch-ntm checkpoint'). Needs torch: "
                                   'pip install ".[torch]".')
    p.add_argument("implementation", choices=["pytorch-ntm"], help="whose model (loudinthecloud/pytorch-ntm)")
    p.add_argument("file", help="the model file, as torch.save(net.state_dict(), FILE) wrote it")
    p.add_argument("--revision", metavar="COMMIT",
                   help="the pytorch-ntm commit the model was trained with, at least 7 characters (the file "
                        "cannot tell): 0682553, d8fedf6, 64f1d58, 7ae872d, d7b3840 or 3c64937 (docs/conventions.md)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for config.json and params.npz")
    p.add_argument("--force", action="store_true", help="replace config.json and params.npz in DIR")
    p.set_defaults(func=import_command)

    p = sub.add_parser("compare", help="compare two traces; exit 0 agree, 1 differ, 2 unusable input",
                       description="Compare OTHER against REFERENCE array by array and step by step; the "
                                   "first divergence names the operation to look at (docs/validate.md).",
                       epilog="exit status: 0 every compared array agrees; 1 some differ; 2 the traces cannot "
                              "be compared (not a trace, another schema version, a missing array, a shape that "
                              "differs), with one line saying which.")
    p.add_argument("reference", help="the reference trace (ntm-ref trace)")
    p.add_argument("other", help="the trace to check")
    p.add_argument("--rtol", type=float, help="relative tolerance, finite and >= 0 (default by dtype: float64 "
                                              "1e-10, float32 1e-3)")
    p.add_argument("--atol", type=float, help="absolute tolerance, finite and >= 0 (default by dtype: float64 "
                                              "1e-12, float32 1e-6)")
    p.add_argument("--skip", action="append", metavar="PATTERN",
                   help="arrays not to compare, shell-style patterns matched against the whole name, where * "
                        "also matches '/' (e.g. 'fwd/*.raw'; 'grad/*' includes grad/input/x); repeatable")
    p.add_argument("--only", action="append", metavar="PATTERN",
                   help="compare only the arrays matching PATTERN (same patterns as --skip), e.g. 'fwd/logits' "
                        "and 'fwd/*.w' from a model whose other values you cannot reach; repeatable")
    p.add_argument("--failures-only", action="store_true", help="list only the arrays that differ")
    p.add_argument("--by-step", action="append", metavar="PATTERN",
                   help="also print the error at every time step of the arrays matching PATTERN (e.g. "
                        "'fwd/memory'): how an error or float32 drift grows along the sequence; repeatable")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=compare_command)

    p = sub.add_parser("gradcheck", help="finite-difference check of every gradient on a chosen configuration",
                       description="Check the reference's hand-written gradients (every parameter) against "
                                   "finite differences of the loss, on a preset or your own configuration.")
    model_choice(p, "tiny-ff")
    p.add_argument("--mode", choices=["full", "probe"], default="full",
                   help="full: every entry; probe: 3 random directions per parameter block (default full)")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance, finite and >= 0 (default 1e-6)")
    p.set_defaults(func=gradcheck_command)

    p = sub.add_parser("sweep", help="train a grid of runs (tasks x models x seeds x option values) on Dask",
                       description="Train every point of a grid (tasks x models x seeds x option values), each "
                                   "an ordinary ntm-ref train run in OUT/<point>, on a local Dask cluster (one "
                                   "single-threaded worker process per core) or on --scheduler. Every train "
                                   "option takes several values. Rerunning the command skips finished points "
                                   'and resumes the others. Needs dask: pip install ".[sweep]" (docs/sweep.md).')
    p.add_argument("--task", nargs="+", choices=sorted(TASKS), help=f"tasks (default {d.task})")
    p.add_argument("--model", nargs="+", choices=MODELS, help=f"models (default {d.model})")
    p.add_argument("--seeds", nargs="+", metavar="SEEDS", help="seeds: N, A-B or a comma list, e.g. 0-9 "
                                                               "(default 0)")
    for option, kind, what in (("steps", int, "optimiser steps at most"),
                               ("max-minutes", float, "wall-time limit per run in minutes"),
                               ("batch-size", int, "sequences per step"), ("lr", float, "learning rates"),
                               ("clip-value", float, "clip limits"),
                               ("eval-every", int, "steps between validations"),
                               ("checkpoint-every", int, "steps between checkpoints"),
                               ("val-size", int, "validation sequences"),
                               ("stop-threshold", float, "early-stop thresholds (bit errors per sequence)")):
        p.add_argument(f"--{option}", nargs="+", type=kind, metavar="V", help=f"{what} (as ntm-ref train)")
    p.add_argument("--optimizer", nargs="+", choices=OPTIMIZERS, help="optimisers")
    p.add_argument("--clip", nargs="+", choices=["norm", "elementwise", "none"], help="gradient clippings")
    p.add_argument("--engine", nargs="+", choices=TRAIN_ENGINES, help="NTM engines (as ntm-ref train)")
    p.add_argument("--early-stop", action="store_true", help="every run stops once validation bit errors per "
                                                             "sequence fall below --stop-threshold")
    p.add_argument("--set", action="append", nargs="+", metavar="FIELD=VALUE",
                   help="an NTMConfig field and its values, e.g. --set controller_size=50 100 (repeatable; "
                        "FIELD=VALUE tokens may follow each other in one --set)")
    p.add_argument("--task-option", action="append", nargs="+", metavar="NAME=VALUE",
                   help="a task option and its values, e.g. --task-option max_length=10 20 (repeatable)")
    p.add_argument("--out", metavar="DIR", required=True, help="the sweep folder (one run folder per point)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://HOST:8786 "
                                                          "(default: a local cluster)")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    p.set_defaults(func=sweep_command)

    p = sub.add_parser("report", help="seed statistics and learning curves per grid cell of a sweep",
                       description="Summarise a sweep folder per grid cell (every value but the seed): seeds "
                                   "converged, sequences and time to converge, final validation cost and bit "
                                   "errors (median and quartiles); printed and written to SWEEP/report.md, "
                                   "with SWEEP/learning_curves.png when matplotlib is installed.")
    p.add_argument("sweep", help="a sweep folder (ntm-ref sweep --out)")
    p.add_argument("--generalisation", action="store_true",
                   help="also evaluate the best seed of each cell on the generalisation sets (ntm-ref eval) "
                        "and draw SWEEP/generalisation.png and the best seeds' memory and sequence figures")
    p.add_argument("--sequences", type=int, default=64, help="sequences per generalisation set (default 64)")
    p.set_defaults(func=report_command)
    return parser


def main(argv=None):
    from ntm_ref.checkpoint import CheckpointError
    from ntm_ref.interop import InteropError
    from ntm_ref.trace import TraceError
    from ntm_ref.train import TrainingStopped
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:          # output piped into e.g. `head`, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UserError, CheckpointError, TraceError, InteropError, ValueError, OSError) as err:
        if os.environ.get("NTM_REF_DEBUG"):
            raise   # NTM_REF_DEBUG=1 shows the traceback
        print(f"ntm-ref {args.command}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"ntm-ref {args.command}: error: not enough memory for what was asked (a size too large?)",
              file=sys.stderr)
        return 2
    except TrainingStopped as err:
        print(f"ntm-ref {args.command}: stopped: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as err:
        # train says itself what it saved (ntm_ref.train.Interrupted); 128 + the signal, as a shell does
        print(f"ntm-ref {args.command}: interrupted", file=sys.stderr)
        return 128 + getattr(err, "signum", 2)


if __name__ == "__main__":
    sys.exit(main())
