"""check_op: check one forward/backward pair against finite differences, plus structural checks.

The checked scalar is f(inputs) = sum(out * dout) for a random Gaussian dout drawn from
checker_rng(seed) (never ones: weightings sum to 1, so a uniform dout hides errors).
Its gradient is backward(dout, cache). The same generator then draws the two upstream gradients of
the linearity check and, with max_entries, the entries to check.
"""
from dataclasses import dataclass
from typing import Any, List

import numpy as np

from gradcheck import structural as S
from gradcheck.arguments import FLOAT32, FLOAT64, call_text, effective_rtol, function_name, input_names, \
    normalized_bounds, require_inside, validated_arrays
from gradcheck.blocks import check_entries, vacuity_check
from gradcheck.numeric import ESTIMATE_MULTIPLE, NOISE_GAIN, ROUNDOFF_SAFETY, Noise, base_step
from gradcheck.report import NOT_CHECKED, BlockResult, CheckResult, Report, abandon


# The checker's random stream is keyed by (seed, CHECKER_STREAM), never by seed alone: a user who draws
# the inputs from np.random.default_rng(0) and checks with seed=0 must not get a dout equal to the input
# (for l2-normalise or softmax that made the gradient vanish to round-off, and any mistake invisible).
CHECKER_STREAM = 0x67726164   # "grad"


def checker_rng(seed):
    """The generator of dout, the linearity check's upstream gradients, sampled entries and probes."""
    return np.random.default_rng([int(seed), CHECKER_STREAM])


class EvaluationError(RuntimeError):
    """The function raised at a perturbed point (often: a restricted domain not declared in `bounds`)."""


@dataclass
class _Op:
    """The pair under test, its untouched inputs, and the forward result and upstream gradient at them."""

    forward: Any
    backward: Any
    pristine: List[np.ndarray]      # private copies of the inputs, never handed out
    names: List[str]
    rng: np.random.Generator
    outs: List[np.ndarray] = None   # forward's output(s) at the inputs
    is_tuple: bool = False          # forward returned a tuple of outputs
    cache: Any = None
    douts: List[np.ndarray] = None  # the random upstream gradient, float64
    f0: float = 0.0                 # f = sum(out * dout) at the inputs
    args: List[np.ndarray] = None   # the copies forward was given (and may keep in its cache)
    mutated: List[str] = None       # phrases for inputs changed by forward or backward

    def call_backward(self, douts):
        """backward's raw return for upstream gradients `douts`, handed over as fresh copies."""
        upstream = [np.array(d, dtype=o.dtype) for d, o in zip(douts, self.outs)]
        return self.backward(S.as_upstream(upstream, self.is_tuple), self.cache)


def check_op(forward, backward, inputs, *, seed=0, rtol=1e-6, atol=None, bounds=None, names=None,
             allow_float32=False, max_entries=None, strict=False, nondiff=None, step=None):
    """Check backward against central differences with Richardson extrapolation; return a Report.

    forward(*inputs) -> (out, cache); backward(dout, cache) -> the gradient of each input (a single
    array for one input, a tuple for several). out may be a tuple of arrays; dout is then a tuple.

    inputs: arrays in argument order (float64; float32 only with allow_float32=True, which scales the
        steps, noise floor and rtol for float32 and says so in the report). Never modified.
    names: names of the inputs for the report (default "x0", "x1", ...).
    bounds: {index or name: (lo, hi)}, either may be None: the input's domain. Steps never leave it:
        they shrink near a bound, and turn one-sided (with a one-sided Richardson formula) on it.
    rtol: relative tolerance. An entry passes iff |a - n| <= atol_i + rtol * max(|a|, |n|), where
        atol_i = 2 x the Richardson error estimate + the round-off floor of evaluating f
        (10 x gain x eps x (|f| + sum|out * dout|) / step); a given `atol` is added to atol_i.
    max_entries: check at most this many (seeded random) entries per input; None checks all.
    strict: fail entries at a kink even when the analytic value is a valid subgradient (between the left
        and right slopes); by default they pass, listed under the block. A value outside both slopes at
        a kink always fails ("wrong gradient at a kink").
    step: the base finite-difference step of every entry (default eps^(1/5) max(|x|, the input's scale),
        the scale min(1, rms of the input)); the ladder halves it down from there.
    nondiff: names or indices of inputs that are not differentiated (a mask, a flag, a float you do not
        want checked). Integer and bool arrays (indices, labels) and inputs that are not arrays are never
        differentiated. Such an input is passed to forward unchanged (a fresh copy each call) and its
        slot in backward's return is ignored (None is fine); the report lists it as "not differentiated".
    """
    if isinstance(inputs, np.ndarray):
        raise TypeError("inputs must be a sequence of arrays in argument order, e.g. [x], not one array")
    names = input_names(names, len(inputs))
    fixed = _fixed_inputs(inputs, names, nondiff)
    if fixed:
        return _check_with_fixed(forward, backward, list(inputs), names, fixed, seed=seed, rtol=rtol, atol=atol,
                                 bounds=bounds, allow_float32=allow_float32, max_entries=max_entries, strict=strict,
                                 step=step)
    inputs = validated_arrays(list(inputs), names, allow_float32)
    bounds = normalized_bounds(bounds, names)
    require_inside(inputs, names, bounds)
    report = _new_report(forward, backward, seed, rtol, atol, bounds, names, allow_float32, max_entries, strict,
                         step)
    report.arrays = {f"input/{i}": x.copy() for i, x in enumerate(inputs)}
    op = _Op(forward, backward, [x.copy() for x in inputs], names, checker_rng(seed))
    shapes = [(n, x.shape) for n, x in zip(names, op.pristine)]

    if not _run_forward(op, report, (FLOAT64, FLOAT32) if allow_float32 else (FLOAT64,)):
        return abandon(report, shapes, "forward's result is unusable")
    grads = _run_backward(op, report)
    if grads is None:
        return abandon(report, shapes, "backward returned the wrong number of gradients")
    noise = _noise(op, report, rtol)
    report.checks += _linearity_checks(op, noise)
    _one_cause(report)
    rtol = effective_rtol(rtol, noise.eps)
    for i, g in enumerate(grads):
        report.blocks.append(_check_input(op, i, g, bounds[op.names[i]], noise, rtol, atol or 0.0, max_entries,
                                          strict, step))
    report.checks.append(vacuity_check(report.blocks))
    return report


# -- inputs that are not differentiated ------------------------------------------------------------

def _fixed_inputs(inputs, names, nondiff):
    """Indices of the inputs not to differentiate: those named in nondiff, integer/bool arrays, non-arrays."""
    chosen = set()
    for key in nondiff or ():
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not 0 <= key < len(names):
                raise ValueError(f"nondiff index {key} out of range for {len(names)} inputs")
            chosen.add(int(key))
        elif key in names:
            chosen.add(names.index(key))
        else:
            raise ValueError(f"nondiff: {key!r} is not one of the inputs {names}")
    for i, x in enumerate(inputs):
        if not isinstance(x, np.ndarray) or x.dtype.kind in "biu":
            chosen.add(i)
    return sorted(chosen)


def _check_with_fixed(forward, backward, inputs, names, fixed, **options):
    """check_op on the differentiated inputs only: forward gets the fixed ones (fresh copies) in their
    places, backward's slots for them are dropped; the fixed inputs are listed, and must not be mutated."""
    free = [i for i in range(len(inputs)) if i not in fixed]
    if not free:
        raise ValueError(f"nothing to differentiate: every input ({', '.join(names)}) is not differentiated")
    kept = {i: (inputs[i].copy() if isinstance(inputs[i], np.ndarray) else inputs[i]) for i in fixed}
    given = {i: (inputs[i].copy() if isinstance(inputs[i], np.ndarray) else inputs[i]) for i in fixed}

    def fresh(i):
        return kept[i].copy() if isinstance(kept[i], np.ndarray) else kept[i]

    handed = []                          # every copy of a fixed input given to forward: checked afterwards

    def forward_free(*xs):
        args = list(xs)
        for i in fixed:
            args.insert(i, fresh(i))
            handed.append((i, args[i]))
        return forward(*args)

    def backward_free(dout, cache):
        raw = backward(dout, cache)
        if isinstance(raw, (tuple, list)) and len(raw) == len(inputs):
            picked = [raw[i] for i in free]
            return picked[0] if len(free) == 1 else tuple(picked)
        return raw                      # the count check names the problem
    forward_free.__qualname__ = function_name(forward)
    backward_free.__qualname__ = function_name(backward)
    bounds = given_bounds = options.pop("bounds", None)
    as_index = lambda k: int(k) if isinstance(k, (int, np.integer)) and not isinstance(k, bool) else None  # noqa: E731
    for k in (bounds or {}):
        if as_index(k) is not None and not 0 <= as_index(k) < len(inputs):
            raise ValueError(f"bounds index {k} out of range for {len(inputs)} inputs")
    bounds = {k: v for k, v in (bounds or {}).items()
              if not (k in [names[i] for i in fixed] or as_index(k) in fixed)}
    bounds = {(free.index(as_index(k)) if as_index(k) is not None else k): v for k, v in bounds.items()}
    report = check_op(forward_free, backward_free, [inputs[i] for i in free], names=[names[i] for i in free],
                      bounds=bounds or None, **options)
    default_names = names == [f"x{i}" for i in range(len(names))]
    report.reproduce = call_text("check_op", [function_name(forward), function_name(backward), "inputs"],
                                 dict(seed=options["seed"], rtol=options["rtol"], atol=options["atol"],
                                      bounds=given_bounds, names=None if default_names else names,
                                      allow_float32=options["allow_float32"], max_entries=options["max_entries"],
                                      strict=options["strict"], step=options["step"],
                                      nondiff=[names[i] for i in fixed]))
    report.arrays = ({f"input/{i}": np.array(x, copy=True) for i, x in enumerate(inputs)}
                     if all(isinstance(x, np.ndarray) for x in inputs) else {})
    for i in fixed:
        shape = np.shape(inputs[i])
        report.blocks.insert(i, BlockResult(name=names[i], shape=tuple(shape), method="-", checked=0,
                                            fraction_nonzero=0.0, verdict=NOT_CHECKED, summary="not differentiated"))
    mutated = sorted({names[i] for i, copy in handed if isinstance(copy, np.ndarray)
                      and not (copy.shape == given[i].shape and np.array_equal(copy, given[i], equal_nan=True))})
    report.checks.append(CheckResult("fixed inputs not mutated", not mutated,
                                     f"changed by forward or backward: {', '.join(mutated)}" if mutated else
                                     f"{', '.join(names[i] for i in fixed)} unchanged"))
    return report


# -- steps of check_op -----------------------------------------------------------------------------

def _new_report(forward, backward, seed, rtol, atol, bounds, names, allow_float32, max_entries, strict, step):
    declared = {n: b for n, b in bounds.items() if b != (None, None)} or None
    default_names = names == [f"x{i}" for i in range(len(names))]
    reproduce = call_text("check_op", [function_name(forward), function_name(backward), "inputs"],
                          dict(seed=seed, rtol=rtol, atol=atol, bounds=declared,
                               names=None if default_names else names, allow_float32=allow_float32,
                               max_entries=max_entries, strict=strict, step=step))
    return Report(function="check_op", seed=seed, rtol=rtol, atol=atol, reproduce=reproduce,
                  rule=pass_rule(rtol, atol, "|f| + sum|out * dout|"))


def pass_rule(rtol, atol, scale):
    """The pass rule in words, for the report."""
    central, one_sided = (ROUNDOFF_SAFETY * NOISE_GAIN[s] for s in ("central", "forward"))
    return (f"pass iff |a - n| <= atol_i + rtol * max(|a|, |n|), rtol {rtol:g}, atol_i = "
            f"{ESTIMATE_MULTIPLE:g} x error estimate + round-off floor ({central:g} central, {one_sided:g} "
            f"one-sided) x eps x ({scale}) / step" + (f" + atol {atol:g}" if atol else ""))


def _run_forward(op, report, dtypes):
    """Call forward on copies, check its result and that it leaves its inputs alone; draw dout."""
    args = [x.copy() for x in op.pristine]
    result = op.forward(*args)
    report.checks.append(S.check_forward_result(result))
    if not report.checks[-1].ok:
        return False
    out, op.cache = result
    op.outs, op.is_tuple = S.as_outputs(out)
    report.checks.append(S.check_outputs(op.outs, dtypes))
    if not report.checks[-1].ok:
        return False
    op.douts = [op.rng.standard_normal(o.shape) for o in op.outs]
    op.args, op.mutated = args, S.changed(args, op.pristine, op.names, "forward")
    return True


def _run_backward(op, report):
    """Call backward (twice, plus once to watch dout); structural checks; the gradients or None."""
    first, second = op.call_backward(op.douts), op.call_backward(op.douts)
    already = {phrase.split()[0] for phrase in op.mutated}
    later = [p for p in S.changed(op.args, op.pristine, op.names, "backward") if p.split()[0] not in already]
    mutated = op.mutated + later + _dout_mutation(op)
    report.checks += [CheckResult("inputs not mutated", not mutated, "; ".join(mutated) or "unchanged"),
                      _forward_determinism(op)]
    grads, count = S.normalize_gradients(first, len(op.pristine))
    report.checks.append(count)
    if grads is None:
        return None
    second, _ = S.normalize_gradients(second, len(op.pristine))
    report.checks += [S.check_gradient_shapes(grads, op.pristine, op.names), S.check_finite(grads, op.names),
                      S.check_deterministic(grads, second or [], op.names)]
    return grads


# Checks that call backward again: when backward changes an input it kept in its cache, later calls see
# other values, so these fail as a consequence, not a second cause.
_CONSEQUENCES = ("backward deterministic", "backward linear in dout", "zero dout gives zero gradient")


def _one_cause(report):
    """One cause per failure: a backward that changes an input it kept in its cache changes what its later
    calls see, so the checks that repeat backward are not judged. (A changed dout cannot cause that: each
    call gets a fresh copy; nor a forward that changes its inputs: each call gets fresh copies.)"""
    mutated = report.check("inputs not mutated")
    if mutated.ok or not any("changed by backward" in p and not p.startswith("dout")
                             for p in mutated.message.split("; ")):
        return
    report.checks = [c if c.ok or c.name not in _CONSEQUENCES else
                     CheckResult(c.name, True, "not judged: an input or dout is changed in place (see 'inputs "
                                               "not mutated'), so repeated calls see other values")
                     for c in report.checks]


def _dout_mutation(op):
    """One more backward call, to see whether it writes into the dout it was given."""
    given = [np.array(d, dtype=o.dtype) for d, o in zip(op.douts, op.outs)]
    op.backward(S.as_upstream(given, op.is_tuple), op.cache)
    kept = [np.array(d, dtype=o.dtype) for d, o in zip(op.douts, op.outs)]
    labels = [f"dout[{k}]" for k in range(len(op.douts))] if op.is_tuple else ["dout"]
    return S.changed(given, kept, labels, "backward")


def _forward_determinism(op):
    again, _ = S.as_outputs(op.forward(*[x.copy() for x in op.pristine])[0])
    same = len(again) == len(op.outs) and all(
        isinstance(a, np.ndarray) and a.shape == o.shape and np.array_equal(a, o, equal_nan=True)
        for a, o in zip(again, op.outs))
    return CheckResult("forward deterministic", same,
                       "second call bitwise identical" if same else
                       "a second forward call on the same inputs gave a different out; "
                       "finite differences of a random function mean nothing")


def _noise(op, report, rtol):
    """The round-off model of f at the inputs; notes it (and any low precision) in the report."""
    f0 = _project(op.outs, op.douts)
    eps = float(max(np.finfo(a.dtype).eps for a in op.pristine + op.outs))
    noise = Noise(eps=eps, scale=abs(f0) + _abs_projection(op.outs, op.douts))
    op.f0 = f0
    report.notes.append(f"round-off scale |f| + sum|out * dout| = {noise.scale:.4g}, eps {eps:.3g}")
    if eps > np.finfo(np.float64).eps:
        report.notes.append(f"low precision: steps, round-off floor and rtol scaled for eps {eps:.3g} "
                            f"(rtol used {effective_rtol(rtol, eps):.3g})")
    return noise


def _linearity_checks(op, noise):
    """Linearity in dout and zero-in-zero-out; reported as failed when gradients are unusable."""
    d1 = [op.rng.standard_normal(o.shape) for o in op.outs]
    d2 = [op.rng.standard_normal(o.shape) for o in op.outs]
    a, b = S.LINEARITY_COEFFS
    mixed = [a * u + b * v for u, v in zip(d1, d2)]
    n = len(op.pristine)
    parts = [S.normalize_gradients(op.call_backward(d), n)[0] for d in (mixed, d1, d2)]
    zero, _ = S.normalize_gradients(op.call_backward([np.zeros(o.shape) for o in op.outs]), n)
    if any(p is None or not all(S.usable(g, x) for g, x in zip(p, op.pristine)) for p in parts + [zero]):
        skipped = "not run: the gradients have the wrong count or shapes"
        return [CheckResult("backward linear in dout", False, skipped),
                CheckResult("zero dout gives zero gradient", False, skipped)]
    mixed_g, g1, g2 = ([np.asarray(g, np.float64) for g in p] for p in parts)
    floors = [noise.floor("central", base_step(np.max(np.abs(x), initial=0.0), np.finfo(x.dtype).eps))
              for x in op.pristine]
    return [S.check_linear(mixed_g, g1, g2, op.names, floors, noise.eps), S.check_zero(zero, op.names)]


def _check_input(op, i, g, bounds, noise, rtol, atol, max_entries, strict, step):
    """The finite-difference block of input i (NOT_CHECKED if its gradient has the wrong shape)."""
    x, name = op.pristine[i], op.names[i]
    if not S.usable(g, x):
        return BlockResult(name=name, shape=x.shape, method="entries", checked=0, fraction_nonzero=0.0,
                           verdict=NOT_CHECKED, summary="not checked: gradient has the wrong shape")
    indices = np.arange(x.size)
    if max_entries is not None and x.size > max_entries:
        indices = np.sort(op.rng.choice(x.size, size=max_entries, replace=False))
    block = check_entries(name, x, np.asarray(g, np.float64), _evaluator(op, i), op.f0, indices=indices,
                          bounds=bounds, noise=noise, rtol=rtol, atol=atol, eps=float(np.finfo(x.dtype).eps),
                          strict=strict, step=step)
    if len(indices) < x.size:
        block.note = "; ".join(filter(None, [block.note, f"{len(indices)} of {x.size} entries checked "
                                                          "(max_entries)"]))
    return block


def _evaluator(op, i):
    """evaluate(y) = f with input i replaced by y; every call gets fresh copies of every input."""
    name = op.names[i]

    def evaluate(y):
        args = [x.copy() for x in op.pristine]
        args[i] = y.copy()
        try:
            out, _ = op.forward(*args)
        except Exception as exc:
            raise EvaluationError(
                f"forward raised {exc!r} with {name} perturbed for finite differences; if {name} has a "
                f"restricted domain, pass bounds={{{name!r}: (lo, hi)}}") from exc
        return _project(S.as_outputs(out)[0], op.douts)
    return evaluate


def _project(outs, douts):
    """f = sum over outputs of sum(out * dout), in float64."""
    return float(sum(np.sum(np.asarray(o, np.float64) * d) for o, d in zip(outs, douts)))


def _abs_projection(outs, douts):
    """sum |out * dout|: the size of the terms whose rounding is f's noise."""
    return float(sum(np.sum(np.abs(np.asarray(o, np.float64) * d)) for o, d in zip(outs, douts)))
