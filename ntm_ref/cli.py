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


def _fmt(row):
    return " ".join(f"{v:6.3f}" for v in row)


def demo(args):
    """One addressing step (eqs 5-9) and a read (eq 2) for two heads on an N x M memory, printed stage by stage."""
    rng = np.random.default_rng(args.seed)
    N, M = args.slots, args.width
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


def _parse_value(text):
    """A --set value: JSON when it parses (numbers, true/false, null, lists), else the plain string."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def train_command(args):
    from ntm_ref.train import TrainSettings, resume_settings, train
    if args.resume:
        ignored = [f"--{k.replace('_', '-')}" for k in ("task", "model", "seed", "batch_size", "optimizer", "lr",
                                                         "clip", "clip_value", "eval_every", "checkpoint_every",
                                                         "val_size", "stop_threshold", "out", "set")
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
            overrides[key] = _parse_value(value)
        given = {k: getattr(args, k) for k in ("task", "model", "seed", "steps", "max_minutes", "batch_size",
                                                "optimizer", "lr", "clip", "clip_value", "eval_every",
                                                "checkpoint_every", "val_size", "stop_threshold")
                 if getattr(args, k) is not None}
        settings = TrainSettings(**given, early_stop=args.early_stop, config_overrides=overrides)
        out = args.out or os.path.join("runs", f"{settings.task}-{settings.model}-seed{settings.seed}")
    train(settings, out, resume=bool(args.resume))
    print(f"done; checkpoint {os.path.join(out, 'checkpoint.npz')}, metrics {os.path.join(out, 'metrics.csv')}")
    return 0


def eval_command(args):
    from ntm_ref.evaluate import evaluate_checkpoint
    print(evaluate_checkpoint(args.checkpoint, n=args.sequences, seed=args.seed, task=args.task))
    return 0


def plot_command(args):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError('ntm-ref plot needs matplotlib: pip install ".[plot]"') from None
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
        overrides[key] = _parse_value(value)
    return overrides


def _load_npz(path, what):
    """A user's .npz (parameters or inputs) as a dict; UserError naming the file when it cannot be read."""
    import zipfile
    if not os.path.isfile(path):
        raise UserError(f"{what} {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as err:
        raise UserError(f"{what} {path}: not a readable .npz of plain arrays ({err})") from None


def _checkpoint_model(args):
    """The trained NTM and its run settings from --checkpoint (loaded once).  -> (NTM, settings dict)."""
    if getattr(args, "_checkpoint", None) is None:
        from ntm_ref.train import load_model
        model, settings, meta = load_model(args.checkpoint)
        if meta.get("model") == "lstm":
            raise UserError(f"--checkpoint {args.checkpoint}: an LSTM baseline, not an NTM; traces are for NTMs")
        args._checkpoint = (model, settings)
    return args._checkpoint


def _chosen_config(args):
    """The NTMConfig of --preset, --config or --checkpoint, with --set overrides."""
    from ntm_ref.config import NTMConfig
    from ntm_ref.trace import preset_config
    overrides = _overrides(args.set)
    if args.config and args.checkpoint:
        raise UserError("give --config or --checkpoint, not both (a checkpoint holds its config)")
    if args.checkpoint:
        return _checkpoint_model(args)[0].config.replace(**overrides)
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
        return NTMConfig.from_dict({**fields, **overrides})
    return preset_config(args.preset, overrides)


def _chosen_inputs(args, config):
    """x, y, mask from --inputs, the preset's inputs, or random ones of --batch x --steps."""
    from ntm_ref.trace import preset_inputs
    if args.inputs:
        data = _load_npz(args.inputs, "--inputs")
        if "x" not in data:
            raise UserError(f"--inputs {args.inputs}: needs an array 'x' (B, T, input_size); has "
                            f"{', '.join(sorted(data)) or 'nothing'}")
        return data["x"], data.get("y"), data.get("mask")
    if args.checkpoint:                      # sequences of the task the checkpoint was trained on
        from ntm_ref.train import TrainSettings, make_run_task
        settings = TrainSettings(**_checkpoint_model(args)[1])
        return make_run_task(settings).batch(np.random.default_rng(args.seed + 200), args.batch or 1)
    if args.config or args.batch or args.steps:
        rng = np.random.default_rng(args.seed + 200)
        B, T = args.batch or 2, args.steps or 5
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
        data = _load_npz(args.params, "--params")
        # parameters are the 'param/' entries (a trace) or the entries with no group prefix (your own file)
        params = params_of(data)
        params.update({k: v for k, v in data.items() if "/" not in k and k not in TRACE_META + ("loss",)})
        return params, params_of(data, "buffer/")     # what the file holds, nothing filled in
    if args.config is None and PRESETS[args.preset].get("task"):
        return init_params(config, args.seed), init_buffers(config, args.seed)
    return random_params(config, args.seed), init_buffers(config, args.seed)


def trace_command(args):
    from ntm_ref.trace import make_trace, save_trace
    config = _chosen_config(args)
    params, buffers = _chosen_params(args, config)
    x, y, mask = _chosen_inputs(args, config)
    trace = make_trace(config, params, x, y, mask, buffers, dtype=args.dtype)
    try:
        save_trace(args.out, trace, overwrite=args.force)
    except FileExistsError as err:
        raise UserError(str(err)) from None
    B, T, _ = trace["input/x"].shape
    n_arrays = sum(1 for k in trace if "/" in k or k == "loss")
    loss = f", loss {float(trace['loss']):.10g} bits/sequence" if "loss" in trace else " (no targets: no loss, no gradients)"
    print(f"wrote {args.out}: {n_arrays} arrays (and {len(trace) - n_arrays} identification entries), "
          f"{args.dtype}, B={B} T={T}{loss}")
    return 0


def compare_command(args):
    from ntm_ref.compare import compare_traces, format_by_step, format_table, to_json
    from ntm_ref.trace import TraceError, load_trace
    try:
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
    from ntm_ref.model import NTM
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


class UserError(Exception):
    """A mistake on the command line or in a file the user named: printed as one line, exit status 2."""


def build_parser():
    parser = argparse.ArgumentParser(prog="ntm-ref", description="NumPy reference Neural Turing Machine")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run one addressing step and print the weightings of every stage")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--slots", type=int, default=8, help="memory slots N (default 8, at least 4)")
    p.add_argument("--width", type=int, default=4, help="memory word width M (default 4)")
    p.set_defaults(func=demo)

    from ntm_ref.train import MODELS, TrainSettings
    from tasks import TASKS
    d = TrainSettings()
    p = sub.add_parser("train", help="train on one of the paper's tasks",
                       description="Train an NTM (or the LSTM baseline) on one of the paper's tasks. Defaults "
                                   "come from the paper's Tables 1-3; see docs/results.md.")
    p.add_argument("--task", choices=sorted(TASKS), help=f"task (default {d.task})")
    p.add_argument("--model", choices=MODELS, help=f"model (default {d.model})")
    p.add_argument("--seed", type=int, help=f"seed of the parameters and the training batches (default {d.seed})")
    p.add_argument("--steps", type=int, help=f"optimiser steps at most (default {d.steps:,})")
    p.add_argument("--max-minutes", type=float, help="wall-time limit of the whole run in minutes, counted "
                                                     "across resumes (default none)")
    p.add_argument("--batch-size", type=int, help=f"sequences per step (default {d.batch_size})")
    p.add_argument("--optimizer", choices=["adam", "rmsprop", "graves_rmsprop"], help=f"(default {d.optimizer})")
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
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="any NTMConfig field, e.g. --set memory_init=learned --set controller_size=[100,100]")
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
        p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                       help="change an NTMConfig field, e.g. --set shift_convention=correlation")
        p.add_argument("--seed", type=int, default=0, help="seed of the parameters and inputs (default 0)")
        p.add_argument("--params", metavar="FILE", help="parameters from an .npz (yours: names and shapes "
                                                        "in docs/trace-format.md; or a trace)")
        p.add_argument("--inputs", metavar="FILE", help="an .npz with x (B, T, I) and optionally y (B, T, O) "
                                                        "and mask (B, T) or (B, T, O)")
        p.add_argument("--batch", type=int, help="random inputs: sequences B (default 2; with --checkpoint 1)")
        p.add_argument("--steps", type=int, help="random inputs: time steps T (default 5)")

    p = sub.add_parser("trace", help="write every value the reference computes on one input (.npz)",
                       description="Run the reference NTM on a preset or your own config, parameters and "
                                   "inputs, and write the trace (schema: docs/trace-format.md).")
    model_choice(p, "tiny-ff")
    p.add_argument("--dtype", choices=DTYPES, default="float64", help="precision of the whole run (default float64)")
    p.add_argument("--out", default="trace.npz", help="output file (default trace.npz)")
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
    p.add_argument("--rtol", type=float, help="relative tolerance (default by dtype: float64 1e-10, float32 1e-3)")
    p.add_argument("--atol", type=float, help="absolute tolerance (default by dtype: float64 1e-12, float32 1e-6)")
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
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (default 1e-6)")
    p.set_defaults(func=gradcheck_command)
    return parser


def main(argv=None):
    from ntm_ref.checkpoint import CheckpointError
    from ntm_ref.interop import InteropError
    from ntm_ref.trace import TraceError
    from ntm_ref.train import TrainingStopped
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and (args.slots < 4 or args.width < 1):
        parser.error("--slots must be at least 4 and --width at least 1")
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
    except TrainingStopped as err:
        print(f"ntm-ref {args.command}: stopped: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        # only train has checkpoints to speak of
        done = "; the last checkpoint is intact" if args.command == "train" else ""
        print(f"ntm-ref {args.command}: interrupted{done}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
