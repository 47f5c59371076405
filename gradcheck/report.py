"""What a gradient check found, and how it prints: a verdict line, how to reproduce it, the structural
checks, a per-block summary table and the worst entries of each failing block."""
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

# Verdicts of one entry, one probe or one block.
OK = "ok"
WRONG = "wrong gradient"            # the finite-difference ladder converged to another value
KINK = "kink or noise"              # the ladder did not converge and the two sides show no jump: noise?
SUBGRADIENT = "kink: valid subgradient"          # a jump in the slope at (or within a step of) x, and the
                                                 # analytic value lies between the left and right slopes
SUBGRADIENT_STRICT = "kink: valid subgradient (strict)"   # the same, failing because strict=True
WRONG_AT_KINK = "wrong gradient at a kink"       # a jump in the slope, the analytic value outside both sides
NONFINITE = "non-finite f near x"   # f was inf/nan at a perturbed point (a domain to declare in bounds?)
VACUOUS = "vacuous"                 # the analytic gradient is all zero while the numeric one is not
NOT_CHECKED = "not checked"         # no room between the bounds, or the gradient's shape is wrong
INCONCLUSIVE = "inconclusive"       # a block whose largest entry's truncation error allowed is above 1e-4 of it

FAILING = (WRONG, WRONG_AT_KINK, KINK, SUBGRADIENT_STRICT, NONFINITE, VACUOUS, INCONCLUSIVE)

# How many failing entries per block the text shows, worst first.
WORST_SHOWN = 5


@dataclass(frozen=True)
class EntryResult:
    """One compared number: a gradient entry (index "(i, j)") or a probe direction ("probe k")."""

    index: str
    analytic: float
    numeric: float
    err_est: float      # the Richardson error estimate |R - D(h/2)|
    step: float         # the largest step of the estimate that was kept
    scheme: str         # "central", "forward" or "backward"
    atol: float         # the absolute part of the allowed error: the measured noise (+ the user's atol)
    allowed: float      # atol + rtol * max(|analytic|, |numeric|)
    verdict: str
    left: float = float("nan")    # at a kink: the one-sided slopes at the smallest step (else nan)
    right: float = float("nan")
    exactly: bool = False         # both slopes settled: the kink is at x itself, not a step away

    @property
    def abs_err(self):
        return abs(self.analytic - self.numeric)

    @property
    def rel_err(self):
        """|a - n| / max(|a|, |n|), 0 when both are 0."""
        top = max(abs(self.analytic), abs(self.numeric))
        return self.abs_err / top if top > 0 else 0.0

    @property
    def ratio(self):
        """Error over allowed error: the entry passes iff this is <= 1."""
        if self.abs_err == 0.0:
            return 0.0
        return self.abs_err / self.allowed if self.allowed > 0 else float("inf")

    @property
    def ok(self):
        return self.verdict not in FAILING


@dataclass
class BlockResult:
    """The result for one input of an op, or one parameter block of a model.

    max_rel_err is taken over entries whose magnitude exceeds their noise level (elsewhere the
    relative error of two round-off-sized numbers says nothing); worst_ratio is the largest
    error / allowed error, so a block passes iff worst_ratio <= 1.
    """

    name: str
    shape: Tuple[int, ...]
    method: str                   # "entries", "probes", or "probes, then entries"
    checked: int                  # entries (or probes) compared
    fraction_nonzero: float       # of the analytic gradient's entries
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    worst_ratio: float = 0.0
    verdict: str = OK
    summary: str = ""             # e.g. "wrong gradient at 3 of 20 entries"
    failures: List[EntryResult] = field(default_factory=list)   # worst first
    probes: List[EntryResult] = field(default_factory=list)
    kinks: List[EntryResult] = field(default_factory=list)      # entries passed as valid subgradients
    note: str = ""

    @property
    def ok(self):
        return self.verdict not in FAILING


@dataclass(frozen=True)
class Failure:
    """One thing a check found wrong, as data (Report.failures()): an entry, probe or group of entries of
    a block (index set), or a block or structural check as a whole (index None, message says why)."""

    where: str                     # the block (input, parameter) or the structural check
    index: Optional[str]           # "(i, j)", "probe k", "together: (0,) + (1,)"; None for a whole block/check
    verdict: str
    analytic: float = float("nan")
    numeric: float = float("nan")
    left: float = float("nan")     # at a kink: the one-sided slopes
    right: float = float("nan")
    error: float = float("nan")    # |analytic - numeric|
    allowed: float = float("nan")
    message: str = ""


@dataclass(frozen=True)
class CheckResult:
    """A named structural check (shapes, mutation, determinism, linearity, ...)."""

    name: str
    ok: bool
    message: str


@dataclass
class Report:
    """Everything one check_op / check_loss call found. ``str(report)`` is meant to be acted on."""

    function: str                         # "check_op" or "check_loss"
    seed: int
    rtol: float
    atol: Optional[float]
    reproduce: str                        # a line of Python that repeats the check
    rule: str                             # the pass rule and noise model, in words
    checks: List[CheckResult] = field(default_factory=list)
    blocks: List[BlockResult] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    # what report.save writes: name -> array ("input/<i>" for check_op, "params/<k>", "grads/<k>" for check_loss)
    arrays: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self):
        return all(c.ok for c in self.checks) and all(b.ok for b in self.blocks)

    def block(self, name):
        """The BlockResult called `name`."""
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    def check(self, name):
        """The CheckResult called `name`."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def save(self, path):
        """Write the checked point (inputs; or params and grads) to an .npz and point the reproduce line at
        it: `gradcheck.load_inputs(path)` gives them back. The seed in the line draws the same dout.
        -> the new reproduce line."""
        if not self.arrays:
            raise ValueError("nothing to save: the report holds no arrays (an input that is not an array?)")
        np.savez(path, **self.arrays)
        star = "*" if self.function == "check_loss" else ""
        loaded = f"{star}gradcheck.load_inputs({str(path)!r})"
        # the data argument: the original placeholder, or the load_inputs(...) of an earlier save
        pattern = (r", (params, grads|\*gradcheck\.load_inputs\([^)]*\))(?=[,)])" if star else
                   r", (inputs|gradcheck\.load_inputs\([^)]*\))(?=[,)])")
        self.reproduce = re.sub(pattern, lambda m: ", " + loaded, self.reproduce, count=1)
        return self.reproduce

    def failures(self) -> List[Failure]:
        """Every failing entry (or probe) of every block, every failing block that has none (not checked),
        and every failing structural check, as Failure records: filter them, count them, assert on them."""
        found = []
        for b in self.blocks:
            if b.ok:
                continue
            found += [Failure(b.name, e.index, e.verdict, e.analytic, e.numeric, e.left, e.right, e.abs_err,
                              e.allowed) for e in b.failures]
            if not b.failures:
                found.append(Failure(b.name, None, b.verdict, message=b.summary or b.verdict))
        return found + [Failure(c.name, None, "failed", message=c.message) for c in self.checks if not c.ok]

    def failure_summary(self):
        """Short phrases naming every failing block and check (the headline of str(report))."""
        found = [f"{b.name}: {b.summary or b.verdict}" for b in self.blocks if not b.ok]
        return found + [f"{c.name}: {c.message}" for c in self.checks if not c.ok]

    def __str__(self):
        return "\n".join(_render(self))


def abandon(report, shapes, why):
    """Finish a report whose numeric part cannot run: every block NOT_CHECKED, and a failing check."""
    for name, shape in shapes:
        report.blocks.append(BlockResult(name=name, shape=tuple(shape), method="-", checked=0,
                                         fraction_nonzero=0.0, verdict=NOT_CHECKED, summary=f"not checked: {why}"))
    report.checks.append(CheckResult("numeric check", False, f"not run: {why}"))
    return report


# -- text -------------------------------------------------------------------------------------------

def _render(report):
    lines = [_headline(report), f"reproduce: {report.reproduce}",
             f"seed {report.seed}; {report.rule}"]
    lines += [f"note: {n}" for n in report.notes]
    lines += ["", "structural checks:"]
    lines += _table(["", "check", "result"],
                    [["ok" if c.ok else "FAIL", c.name, c.message] for c in report.checks])
    lines += ["", "blocks:"]
    lines += _table(["block", "shape", "method", "checked", "nonzero", "max abs err", "max rel err",
                     "err/allowed", "verdict"], [_block_row(b) for b in report.blocks])
    for b in report.blocks:
        lines += _block_details(b)
    return lines


def _headline(report):
    if report.ok:
        probes = sum(b.checked for b in report.blocks if b.method == "probes")
        entries = sum(b.checked for b in report.blocks if b.method != "probes")
        compared = ", ".join(_count(n, unit) for n, unit in ((entries, "entry"), (probes, "probe")) if n)
        return (f"gradcheck PASSED ({report.function}): {_count(len(report.blocks), 'block')} "
                f"({compared or 'nothing'} compared), {_count(len(report.checks), 'structural check')} ok")
    return f"gradcheck FAILED ({report.function}): " + "; ".join(report.failure_summary())


def _count(n, unit):
    plural = "entries" if unit == "entry" else unit + "s"
    return f"{n} {unit if n == 1 else plural}"


def _block_row(b):
    return [b.name, str(b.shape), b.method, str(b.checked), f"{100 * b.fraction_nonzero:.0f}%",
            f"{b.max_abs_err:.2e}", f"{b.max_rel_err:.2e}", f"{b.worst_ratio:.3g}", b.summary or b.verdict]


def _block_details(b):
    lines = []
    if b.probes and not all(p.ok for p in b.probes):
        lines += ["", f"{b.name}: probes (random unit directions u; analytic = grad . u)"]
        lines += _table(_ENTRY_HEADER, [_entry_row(p) for p in b.probes])
    if b.failures:
        shown = b.failures[:WORST_SHOWN]
        lines += ["", f"{b.name}: worst entries ({len(shown)} of {len(b.failures)} failing)"]
        lines += _table(_ENTRY_HEADER, [_entry_row(e) for e in shown])
    if b.kinks:
        lines += ["", f"{b.name}: at kinks ({len(b.kinks[:WORST_SHOWN])} of {len(b.kinks)}, valid subgradients)"]
        lines += _table(_ENTRY_HEADER, [_entry_row(e) for e in b.kinks[:WORST_SHOWN]])
    if b.note:
        lines += [f"{b.name}: {b.note}"]
    return lines


_ENTRY_HEADER = ["index", "analytic", "numeric", "abs err", "rel err", "allowed", "err est", "step",
                 "scheme", "left slope", "right slope", "verdict"]


def _entry_row(e):
    sides = [f"{s:+.6e}" if s == s else "-" for s in (e.left, e.right)]
    return [e.index, f"{e.analytic:+.10e}", f"{e.numeric:+.10e}", f"{e.abs_err:.2e}", f"{e.rel_err:.2e}",
            f"{e.allowed:.2e}", f"{e.err_est:.2e}", f"{e.step:.2e}", e.scheme, *sides, e.verdict]


def _table(header, rows):
    """Left-aligned columns, two spaces apart, indented by two."""
    if not rows:
        return ["  (none)"]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return [fmt(header)] + [fmt(r) for r in rows]


def load_inputs(path):
    """What Report.save wrote: the list of inputs (check_op), or (params, grads) dicts (check_loss)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if any(k.startswith("input/") for k in arrays):
        return [arrays[f"input/{i}"] for i in range(len(arrays))]
    params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
    grads = {k[len("grads/"):]: v for k, v in arrays.items() if k.startswith("grads/")}
    return params, grads
