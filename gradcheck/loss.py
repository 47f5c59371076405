"""check_loss: check a whole model's gradients, given as a dict of parameter blocks.

loss_fn(params) -> float, with params a dict name -> float64 array; grads has the same keys. The
checker only ever perturbs its own copies of the arrays.

mode "full" checks every entry of every block. mode "probe" checks, per block, `probes` random
Gaussian unit directions u (drawn from checker_rng(seed), block by block): the directional
derivative of the loss along u, by the same Richardson scheme with the step scaled to the block's rms,
against grads[name] . u. A block whose probes fail is then checked entry by entry, to name the bad
entries.
"""
from collections.abc import Mapping

import numpy as np

from gradcheck.arguments import FLOAT64, call_text, function_name, normalized_bounds, require_inside, \
    validated_arrays
from gradcheck.blocks import check_entries, check_probes, probe_directions, vacuity_check
from gradcheck.numeric import Noise
from gradcheck.op import EvaluationError, checker_rng, pass_rule
from gradcheck.report import NOT_CHECKED, BlockResult, CheckResult, Report, abandon

MODES = ("full", "probe")


def check_loss(loss_fn, params, grads, *, mode="full", seed=0, rtol=1e-5, atol=None, bounds=None, probes=3,
               names=None, strict=False, step=None):
    """Check grads (a dict like params) against finite differences of loss_fn; return a Report.

    mode: "full" (every entry) or "probe" (`probes` random directions per block, falling back to every
        entry of a block whose probes fail).
    names: the blocks to check (default: every key of params, in order).
    bounds: {name: (lo, hi)}, either may be None: the block's domain, which steps never leave.
    rtol, atol: as in check_op: an entry (or probe) passes iff |a - n| <= atol_i + rtol * max(|a|, |n|),
        atol_i = 2 x Richardson error estimate + round-off floor (10 x gain x eps x |loss| / step),
        plus atol if given. rtol 1e-5 suits losses through time; a 1.0001 scaling (1e-4) still fails.
    strict: as in check_op: fail valid subgradients at kinks too. step: as in check_op.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "probe" and not (isinstance(probes, (int, np.integer)) and probes >= 1):
        raise ValueError(f"probes must be a positive integer, got {probes!r}")
    if not isinstance(params, Mapping) or not isinstance(grads, Mapping):
        raise TypeError("params and grads must be dicts name -> array")
    keys = list(params)
    validated_arrays([params[k] for k in keys], [f"params[{k!r}]" for k in keys], allow_float32=False)
    bounds = normalized_bounds(bounds, keys)
    require_inside([params[k] for k in keys], keys, bounds)
    report = _new_report(loss_fn, mode, seed, rtol, atol, bounds, names, probes, strict, step)
    names = _block_names(names, keys)
    pristine = {k: params[k].copy() for k in keys}
    report.arrays = {**{f"params/{k}": v.copy() for k, v in pristine.items()},
                     **{f"grads/{k}": np.array(g, copy=True) for k, g in grads.items() if isinstance(g, np.ndarray)}}

    report.checks += [_key_check(keys, grads), _shape_check(keys, params, grads), _finite_check(keys, grads)]
    loss0, call_checks = _call_checks(loss_fn, pristine)
    report.checks += call_checks
    if loss0 is None:
        return abandon(report, [(n, pristine[n].shape) for n in names], "loss_fn did not give a usable value")

    report.notes.append("a scalar loss has no upstream gradient: a backward that ignores or mishandles one "
                        "cannot show here (check each layer with check_op, which draws a random dout)")
    noise = Noise(eps=float(np.finfo(np.float64).eps), scale=abs(loss0))
    rng = checker_rng(seed)
    for name in names:
        report.blocks.append(_check_block(loss_fn, pristine, grads, name, loss0, mode, rng, bounds[name], noise,
                                          float(rtol), atol or 0.0, probes, strict, step))
    report.checks.append(vacuity_check(report.blocks))
    return report


def _check_block(loss_fn, pristine, grads, name, loss0, mode, rng, bounds, noise, rtol, atol, probes, strict,
                 step):
    x = pristine[name]
    g = grads.get(name)
    if not (isinstance(g, np.ndarray) and g.shape == x.shape):
        return BlockResult(name=name, shape=x.shape, method=mode, checked=0, fraction_nonzero=0.0,
                           verdict=NOT_CHECKED, summary="not checked: gradient missing or of the wrong shape")
    g = np.asarray(g, np.float64)
    evaluate = _evaluator(loss_fn, pristine, name)
    common = dict(bounds=bounds, noise=noise, rtol=rtol, atol=atol, eps=float(np.finfo(np.float64).eps),
                  strict=strict, step=step)
    entries = lambda: check_entries(name, x, g, evaluate, loss0, indices=np.arange(x.size), **common)
    if mode == "full":
        return entries()
    directions = probe_directions(rng, x, bounds, probes)
    probed = check_probes(name, x, g, evaluate, loss0, directions=directions, **common)
    if probed.ok:
        return probed
    return _fallback(probed, entries())


def _fallback(probed, full):
    """Merge a failing probe block with its per-entry check, which names the bad entries."""
    full.method = "probes, then entries"
    full.probes = probed.probes
    if not full.ok:
        full.note = f"probes: {probed.summary}; the per-entry check above names the entries"
        return full
    full.verdict = probed.verdict
    full.summary = f"{probed.summary}; every entry passes on its own"
    full.note = ("the probes disagree although each entry passes: small errors in many entries add up "
                 "along the probe direction, or the loss is noisy")
    return full


def _evaluator(loss_fn, pristine, name):
    """evaluate(y) = loss with block `name` replaced by y (the other blocks are the private copies)."""
    def evaluate(y):
        trial = dict(pristine)
        trial[name] = y
        try:
            return float(loss_fn(trial))
        except Exception as exc:
            raise EvaluationError(
                f"loss_fn raised {exc!r} with {name} perturbed for finite differences; if {name} has a "
                f"restricted domain, pass bounds={{{name!r}: (lo, hi)}}") from exc
    return evaluate


def _block_names(names, keys):
    if names is None:
        return keys
    names = list(names)
    unknown = [n for n in names if n not in keys]
    if unknown:
        raise ValueError(f"names {unknown} are not keys of params {keys}")
    return names


def _new_report(loss_fn, mode, seed, rtol, atol, bounds, names, probes, strict, step):
    declared = {n: b for n, b in bounds.items() if b != (None, None)} or None
    reproduce = call_text("check_loss", [function_name(loss_fn), "params", "grads"],
                          dict(mode=mode, seed=seed, rtol=rtol, atol=atol, bounds=declared,
                               probes=probes if mode == "probe" else None,
                               names=None if names is None else list(names), strict=strict or None,
                               step=step))
    return Report(function="check_loss", seed=seed, rtol=rtol, atol=atol, reproduce=reproduce,
                  rule=pass_rule(rtol, atol, "|loss|"))


def _key_check(keys, grads):
    missing = [k for k in keys if k not in grads]
    extra = [k for k in grads if k not in keys]
    problems = ([f"missing from grads: {missing}"] if missing else []) + \
        ([f"in grads but not in params: {extra}"] if extra else [])
    return CheckResult("gradient keys", not problems, "; ".join(problems) or "same keys as params")


def _shape_check(keys, params, grads):
    problems = []
    for k in keys:
        g = grads.get(k)
        if g is None:
            continue
        if not isinstance(g, np.ndarray):
            problems.append(f"grads[{k!r}] is a {type(g).__name__}, not a numpy array")
        elif g.shape != params[k].shape or g.dtype != FLOAT64:
            problems.append(f"grads[{k!r}] is {g.shape} {g.dtype}, params[{k!r}] is {params[k].shape} float64")
    return CheckResult("gradient shapes and dtypes", not problems, "; ".join(problems) or "all match")


def _finite_check(keys, grads):
    bad = [k for k in keys if isinstance(grads.get(k), np.ndarray) and not np.all(np.isfinite(grads[k]))]
    return CheckResult("gradients finite", not bad, f"non-finite entries in {bad}" if bad else "all finite")


def _call_checks(loss_fn, pristine):
    """(loss value or None, [loss value, params not mutated, loss deterministic] checks)."""
    given = {k: v.copy() for k, v in pristine.items()}
    value = loss_fn(given)
    if np.ndim(value) != 0 or not np.isreal(value) or not np.isfinite(value):
        return None, [CheckResult("loss value", False, f"loss_fn must return a finite real scalar, got {value!r}")]
    loss0 = float(value)
    mutated = [k for k in pristine if not (isinstance(given.get(k), np.ndarray)
                                           and np.array_equal(given[k], pristine[k]))]
    again = float(loss_fn({k: v.copy() for k, v in pristine.items()}))
    return loss0, [
        CheckResult("loss value", True, f"{loss0:.6g}"),
        CheckResult("params not mutated", not mutated,
                    f"loss_fn changed {mutated}" if mutated else "unchanged"),
        CheckResult("loss deterministic", again == loss0,
                    "second call identical" if again == loss0 else
                    f"second call gave {again!r} vs {loss0!r}; finite differences of a random loss mean nothing"),
    ]
