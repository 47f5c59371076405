"""Compare two traces array by array and step by step (``ntm-ref compare REFERENCE OTHER``).

An entry agrees when |other - ref| <= atol + rtol * |ref| (numpy.isclose's rule), or when both are equal
(so +inf agrees with +inf, never with -inf or a number) or both NaN (a NaN never agrees with a number).
Tolerances must be finite and >= 0. Every compared array of either trace must be bool, integer, float32
or float64: complex, float16, text and the like are refused by name, never converted. For every array the report gives the largest absolute and relative error and the first time step
and index where the tolerance is broken; rows come in the order the reference computes them (parameters,
inputs, initial state, then one step's values in the step's own order, then the loss and the gradients),
and the first divergence is the earliest (step, operation) that breaks it: the operation to look at first.

Default tolerances by dtype (the lower precision of the two traces decides):
    float64   rtol 1e-10, atol 1e-12   the agreement an independent float64 implementation reaches (the
                                       PyTorch mirror in tests/ agrees to 3.6e-15 abs: scripts/mirror_agreement.py)
    float32   rtol 1e-3,  atol 1e-6    measured: the reference in float32 against itself in float64 (the
                                       golden presets, the copy configuration at T = 41 with both
                                       controllers, pytorch-ntm's conventions; 3 seeds each): the worst
                                       normwise error was 5.3e-5 (rtol: 20x that) and the largest atol
                                       needed at rtol 1e-3 was 1.7e-7 (atol: 6x that).
                                       `python scripts/float32_drift.py`; docs/trace-format.md
"""
import fnmatch
import json
from typing import List, NamedTuple, Optional

import numpy as np

from ntm_ref.trace import TraceError, forward_order, operation_of, real_array_problem, trace_config

TOLERANCES = {"float64": (1e-10, 1e-12), "float32": (1e-3, 1e-6)}
META = ("format", "schema_version", "config", "dtype", "producer")


class ArrayResult(NamedTuple):
    name: str
    shape: tuple
    max_abs: float                # max |other - ref|
    max_rel: float                # max |other - ref| / (|ref| + atol)
    bad: int                      # entries outside the tolerance
    first_step: Optional[int]     # first time step with an entry outside (arrays with a time axis)
    first_index: Optional[tuple]  # full index of the first such entry (in step, then C order)
    operation: str
    per_step: Optional[tuple] = None   # arrays with a time axis: ((max abs, max rel, bad), ...) per step

    @property
    def agrees(self):
        return self.bad == 0


class Comparison(NamedTuple):
    rows: List[ArrayResult]
    rtol: float
    atol: float
    dtype: str
    notes: List[str]

    @property
    def agrees(self):
        return all(r.agrees for r in self.rows)

    @property
    def first_divergence(self) -> Optional[ArrayResult]:
        """The earliest row that breaks the tolerance: rows are in computation order within a step, and
        a time-stepped array that first breaks at step t comes after every array that breaks before t.
        Gradients carry no steps: when only they differ, this is the first differing parameter's gradient
        in parameter order, and the table's other grad/ rows say which blocks are wrong."""
        bad = [(i, r) for i, r in enumerate(self.rows) if not r.agrees]
        if not bad:
            return None

        def key(item):
            i, r = item
            stage = 0 if r.name.split("/")[0] in ("param", "buffer", "input", "init") else \
                1 if r.name.startswith("fwd/") else 2
            step = r.first_step if (stage == 1 and r.first_step is not None) else 0
            return stage, step, i
        return min(bad, key=key)[1]


def tolerance_problem(value):
    """Why a tolerance is unusable (None when it is fine): it must be a finite number >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"got {value!r}; must be a number"
    if not np.isfinite(value) or value < 0:
        return f"got {value!r}; must be a finite number >= 0"
    return None


def _dtype_of(arrays, names):
    """The precision of a trace's compared arrays: float32 if any of them is float32 (only float32 and
    float64 reach here: compare_traces refuses other floats)."""
    floats = [arrays[k].dtype for k in names if k in arrays and arrays[k].dtype.kind == "f"]
    return "float32" if any(d.itemsize <= 4 for d in floats) else "float64"


def ordered_names(ref):
    """The reference's compared arrays in computation order."""
    config = trace_config(ref)
    names = [k for k in ref if k not in META]
    rank = {}
    groups = ["param/", "buffer/", "input/", "init/"]
    for k in names:
        if k.startswith(tuple(groups)):
            rank[k] = (groups.index(k.split("/")[0] + "/"), 0)
    for i, k in enumerate(forward_order(config)):
        rank[k] = (4, i)
    rank["loss"] = (5, 0)
    order = {k: i for i, k in enumerate(names)}
    return sorted(names, key=lambda k: rank.get(k, (6 if k.startswith("grad/") else 7, order[k])) + (order[k],))


def _compare_array(name, r, o, rtol, atol, config=None):
    """One row of the table: errors of o against r (same shape; real dtypes).  -> ArrayResult.
    Equal entries (+-inf included) and NaN against NaN agree with zero error; an infinite error has an
    infinite relative error; a NaN on one side only makes the maxima NaN."""
    r64, o64 = r.astype(np.float64), o.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        same = (o64 == r64) | (np.isnan(r64) & np.isnan(o64))
        diff = np.where(same, 0.0, np.abs(o64 - r64))             # inf - inf is NaN: same-sign infs are 'same'
        # an infinity agrees only with the same infinity: rtol * |inf| would admit any number
        ok = same | (np.isfinite(r64) & np.isfinite(o64) & (diff <= atol + rtol * np.abs(r64)))
        rel = np.where(diff == 0, 0.0, diff / (np.abs(r64) + atol))
        rel = np.where(np.isinf(diff), np.inf, rel)               # inf / inf would be NaN
    nan = bool(np.isnan(diff).any())          # a NaN on one side only: reported as nan, never agrees
    max_abs = float("nan") if nan else (float(diff.max()) if diff.size else 0.0)
    max_rel = float("nan") if nan else (float(rel.max()) if diff.size else 0.0)
    bad = int((~ok).sum())
    first_step = first_index = per_step = None
    timed = (name.startswith("fwd/") or name in ("input/x", "input/y", "input/mask", "grad/input/x")) and r.ndim >= 2
    if timed:
        axes = tuple(a for a in range(r.ndim) if a != 1)
        per_step = tuple((float(d), float(q), int(b)) for d, q, b in
                         zip(diff.max(axis=axes), rel.max(axis=axes), (~ok).sum(axis=axes)))
    if bad:
        if timed:
            moved = np.moveaxis(~ok, 1, 0)                    # time first, then batch, then the rest
            flat = int(np.argmax(moved.reshape(-1)))
            idx = np.unravel_index(flat, moved.shape)
            first_step = int(idx[0])
            first_index = (int(idx[1]), int(idx[0])) + tuple(int(i) for i in idx[2:])
        else:
            first_index = tuple(int(i) for i in np.unravel_index(int(np.argmax(~ok)), ok.shape))
    return ArrayResult(name, tuple(r.shape), max_abs, max_rel, bad, first_step, first_index, operation_of(name, config),
                       per_step)


def compare_traces(ref, other, rtol=None, atol=None, skip=(), ref_name="REFERENCE", other_name="OTHER",
                   only=()):
    """Compare trace dicts (load_trace gives them).  -> Comparison.

    skip: glob patterns of arrays not to compare (for example 'fwd/*.raw' when the other implementation
    lays out its raw head parameters differently); only: glob patterns of the arrays to compare, none
    other (for example 'fwd/logits' and 'fwd/*.w' from a model whose internals you cannot reach). Raises TraceError when the traces cannot be compared:
    an array of the reference missing from the other (and not skipped), a shape that differs, or a
    non-numeric array.
    """
    for option, value in (("rtol", rtol), ("atol", atol)):
        problem = tolerance_problem(value)
        if problem:
            raise ValueError(f"{option}: {problem}")
    notes = []
    all_names = ordered_names(ref)
    names = [n for n in all_names if not any(fnmatch.fnmatchcase(n, p) for p in skip)]
    if only:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in only)]
    for option, patterns in (("--skip", skip), ("--only", only)):
        unused = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in all_names)]
        if unused:
            notes.append(f"{option} pattern(s) matching no array of the reference: {', '.join(unused)}")
    if not names:
        chosen = " ".join([f"--skip {p}" for p in skip] + [f"--only {p}" for p in only])
        raise TraceError(f"nothing to compare: {chosen} leaves none of the reference's {len(all_names)} arrays")
    missing = [n for n in names if n not in other]
    if missing:
        raise TraceError(f"{other_name}: missing {len(missing)} array(s) the reference has: {', '.join(missing)} "
                         f"(use --skip PATTERN for arrays you do not produce, or --only PATTERN for those you do)")
    bad_ref = [f"{n} {real_array_problem(ref[n])}" for n in names if real_array_problem(ref[n])]
    if bad_ref:
        raise TraceError(f"{ref_name}: {len(bad_ref)} array(s) unusable: {'; '.join(bad_ref)}")
    problems = []
    for n in names:
        r, o = ref[n], other[n]
        if real_array_problem(o):
            problems.append(f"{n} {real_array_problem(o)}")
        elif r.shape != o.shape:
            hint = ""
            if sorted(r.shape) == sorted(o.shape) and r.ndim >= 2:
                hint = (" (transposed? weights are (in, out))" if n.startswith(("param/", "grad/")) and r.ndim == 2
                        else " (axes in another order? time is axis 1, after the batch)")
            problems.append(f"{n} has shape {o.shape}, the reference {r.shape}{hint}")
    if problems:
        raise TraceError(f"{other_name}: {len(problems)} array(s) unusable: {'; '.join(problems)}")
    dtype = "float32" if "float32" in (_dtype_of(ref, names), _dtype_of(other, names)) else "float64"
    for arrays, name in ((ref, ref_name), (other, other_name)):
        actual = _dtype_of(arrays, names)
        if "dtype" in arrays and str(arrays["dtype"]) != actual:
            notes.append(f"{name}: its 'dtype' entry says {str(arrays['dtype'])} but its arrays are {actual}; "
                         f"the tolerance follows the arrays")
    integer = [n for n in names if other[n].dtype.kind in "iub" and ref[n].dtype.kind == "f"]
    if integer:
        notes.append(f"{len(integer)} array(s) of {other_name} are integers where the reference has floats: "
                     f"{', '.join(integer[:5])}")
    d_rtol, d_atol = TOLERANCES[dtype]
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    extra = sorted(k for k in other if k not in ref and k not in META)
    if extra:
        notes.append(f"{len(extra)} array(s) only in {other_name}, not compared: {', '.join(extra[:5])}"
                     + (" ..." if len(extra) > 5 else ""))
    skipped = [n for n in all_names if n not in names]
    if skipped and only:
        notes.append(f"{len(names)} of the reference's {len(all_names)} arrays compared (--only"
                     f"{' and --skip' if skip else ''})")
    elif skipped:
        notes.append(f"{len(skipped)} array(s) skipped by --skip: {', '.join(skipped)}")
    if "config" in other:
        try:
            a, b = json.loads(str(ref["config"])), json.loads(str(other["config"]))
            differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if differing:
                notes.append(f"the configs differ in: {', '.join(differing)}")
        except (ValueError, TypeError):
            notes.append(f"{other_name}: its 'config' entry is not JSON; not checked")
    config = trace_config(ref, ref_name)
    rows = [_compare_array(n, ref[n], other[n], rtol, atol, config) for n in names]
    return Comparison(rows, rtol, atol, dtype, notes)


def format_table(cmp: Comparison, only_failures=False):
    """The human-readable report: a header, one row per array, the first divergence."""
    lines = [f"tolerance: |other - ref| <= {cmp.atol:g} + {cmp.rtol:g} * |ref|   ({cmp.dtype} defaults"
             f"{'' if (cmp.rtol, cmp.atol) == TOLERANCES[cmp.dtype] else ', overridden'})"]
    lines += [f"note: {n}" for n in cmp.notes]
    if only_failures:
        lines.append(f"(--failures-only: {sum(r.agrees for r in cmp.rows)} agreeing arrays not listed)")
    head = f"{'array':34s} {'shape':18s} {'max abs err':>11s} {'max rel err':>11s} {'bad':>7s}  first bad (step; index)"
    lines += [head, "-" * len(head)]
    for r in cmp.rows:
        if only_failures and r.agrees:
            continue
        where = "-" if r.agrees else ((f"step {r.first_step}; " if r.first_step is not None else "")
                                       + str(list(r.first_index)))
        lines.append(f"{r.name:34s} {str(r.shape):18s} {r.max_abs:11.2e} {r.max_rel:11.2e} {r.bad:7d}  {where}")
    first = cmp.first_divergence
    n_bad = sum(not r.agrees for r in cmp.rows)
    if first is None:
        lines.append(f"AGREE: all {len(cmp.rows)} arrays within tolerance")
    else:
        at = f" at step {first.first_step}" if first.first_step is not None else ""
        op = f" — {first.operation}" if first.operation else ""
        lines.append(f"DIFFER: {n_bad} of {len(cmp.rows)} arrays outside tolerance; first divergence{at}: "
                     f"{first.name} index {list(first.first_index)}{op}")
    return "\n".join(lines)


def format_by_step(cmp: Comparison, patterns):
    """For arrays with a time axis whose names match the glob patterns: the error at every step (how an
    error grows along the sequence, e.g. float32 drift)."""
    lines = []
    for r in cmp.rows:
        if r.per_step is None or not any(fnmatch.fnmatchcase(r.name, p) for p in patterns):
            continue
        lines += ["", f"{r.name} {r.shape}, by step:", f"  {'step':>5s} {'max abs err':>11s} {'max rel err':>11s} {'bad':>6s}"]
        lines += [f"  {t:5d} {a:11.2e} {q:11.2e} {b:6d}" for t, (a, q, b) in enumerate(r.per_step)]
    if not lines:
        lines = ["", f"--by-step {' '.join(patterns)}: no compared array with a time axis matches"]
    return "\n".join(lines)


def _number(v):
    """A float for JSON: None (null) for NaN (an entry NaN on one side only) and +-inf (an entry infinite on
    one side only), which JSON cannot hold."""
    return v if np.isfinite(v) else None


def to_json(cmp: Comparison, only_failures=False):
    """The comparison as strict JSON (non-finite numbers as null; docs/validate.md)."""
    first = cmp.first_divergence
    rows = [r for r in cmp.rows if not (only_failures and r.agrees)]
    return json.dumps({
        "agree": cmp.agrees, "rtol": cmp.rtol, "atol": cmp.atol, "dtype": cmp.dtype, "notes": cmp.notes,
        "first_divergence": None if first is None else {
            "array": first.name, "step": first.first_step, "index": list(first.first_index),
            "operation": first.operation},
        "arrays": [{"name": r.name, "shape": list(r.shape), "max_abs": _number(r.max_abs), "max_rel": _number(r.max_rel),
                    "bad": r.bad, "first_step": r.first_step,
                    "first_index": None if r.first_index is None else list(r.first_index),
                    "operation": r.operation, "agree": r.agrees,
                    "per_step": None if r.per_step is None else [
                        {"max_abs": _number(a), "max_rel": _number(q), "bad": b} for a, q, b in r.per_step]}
                   for r in rows],
        "compared": len(cmp.rows),
    }, indent=1, allow_nan=False)
