"""Compare one block's analytic gradient with finite differences: entry by entry, or along probes.

A block is one array the checked scalar depends on (an op's input, a model's parameter block).
``evaluate(y)`` returns the scalar with the block replaced by ``y``; it must not keep or change ``y``.

Pass rule for one number (an entry, or a directional derivative grad . u):

    |a - n| <= atol_i + rtol * max(|a|, |n|),
    atol_i  = ESTIMATE_MULTIPLE * (Richardson error estimate) + round-off floor (+ the user's atol).
"""
import math
from dataclasses import replace

import numpy as np

from gradcheck.numeric import BASE_LEVELS, DEEP_LEVELS, ESTIMATE_MULTIPLE, LADDER_LEVELS, Ladder, base_step, choose_scheme, \
    input_scale
from gradcheck.report import FAILING, INCONCLUSIVE, KINK, NONFINITE, NOT_CHECKED, OK, SUBGRADIENT, SUBGRADIENT_STRICT, \
    VACUOUS, WRONG, WRONG_AT_KINK, BlockResult, CheckResult, EntryResult

INF = float("inf")

# A jump between the left and right slopes counts as a kink when the steadier side settles as a smooth
# side does (Ladder.one_sided) and the jump exceeds this many times that side's tolerance (its change
# over the last halving plus its round-off floor).
KINK_JUMP = 2.0

# A check must be able to see a mistake of this relative size at the block's largest gradient entry;
# where the truncation error of the finite differences allows more, the block is INCONCLUSIVE.
POWER_RTOL = 1e-4

# At most this many groups of tied kink entries per block are moved together (_kinks_together).
MAX_KINK_GROUPS = 10


def check_entries(name, x, analytic, evaluate, f0, *, indices, bounds, noise, rtol, atol, eps,
                  strict=False, step=None):
    """Finite-difference check of the flat entries `indices` of block x (of machine epsilon eps).
    step: the base step of every entry (default: base_step of the entry, floored at the input's scale)."""
    work = x.copy()
    results = []
    scale = input_scale(x)
    for j in indices:
        phi = _entry_phi(work, x, int(j), evaluate)
        room = _entry_room(float(x.flat[j]), bounds)
        label = str(tuple(int(i) for i in np.unravel_index(int(j), x.shape)))
        h = float(step) if step is not None else base_step(x.flat[j], eps, scale)
        results.append(judge(phi, f0, h, room, noise, float(analytic.flat[j]), rtol, atol, label, strict))
    kinks = [int(j) for j, r in zip(indices, results) if r.verdict in (SUBGRADIENT, SUBGRADIENT_STRICT)
             and r.exactly]
    groups = {}
    for j in kinks:                          # entries at the same value: a tie, or one kink of one map
        groups.setdefault(float(x.flat[j]), []).append(j)
    for group in [g for g in groups.values() if len(g) > 1][:MAX_KINK_GROUPS]:
        together = _kinks_together(x, analytic, evaluate, f0, group, bounds, noise, rtol, atol, eps, strict)
        if not together.ok:
            results.append(together)
    return summarize(name, x.shape, analytic, results, method="entries")


def _kinks_together(x, analytic, evaluate, f0, kinks, bounds, noise, rtol, atol, eps, strict):
    """Entries of equal value passed one by one as valid subgradients exactly at a kink (both slopes
    settled), moved together: along u = the sum of their unit vectors (normalised) the analytic grad . u
    must lie between the left and right slopes too. This sees what no single entry can: two tied max-pool
    inputs that both take the gradient (each is a valid subgradient alone, 1 + 1 together is not), where
    along u the function is smooth with slope 1. Only equal values move together: kinks of different
    kinds (clip at -1 and at +1) or a step away from x would fall at different offsets, and their
    slopes along u would mix. Only a smooth u is judged ("wrong gradient"): a u that crosses a kink
    itself passes, since a sum of valid subgradients need not lie between its slopes."""
    u = np.zeros(x.shape)
    u.flat[kinks] = 1.0 / np.sqrt(len(kinks))
    labels = [str(tuple(int(i) for i in np.unravel_index(j, x.shape))) for j in kinks]
    label = "together: " + " + ".join(labels[:4]) + (f" + {len(labels) - 4} more" if len(labels) > 4 else "")
    h = base_step(_rms(x.flat[kinks]), eps, input_scale(x))
    result = judge(_direction_phi(x, u, evaluate), f0, h, _direction_room(x, u, bounds), noise,
                   float(np.sum(analytic * u)), rtol, atol, label, strict)
    # only a smooth direction is judged: where u itself crosses a kink, kinks of different kinds at one
    # value (relu(x) and relu(-x) at 0) make the interval test meaningless for a sum of subgradients
    return result if result.verdict == WRONG else replace(result, verdict=OK)


def check_probes(name, x, analytic, evaluate, f0, *, directions, bounds, noise, rtol, atol, eps,
                 strict=False, step=None):
    """Directional-derivative check along unit `directions`, the step scaled to the block's rms."""
    h = float(step) if step is not None else base_step(_rms(x), eps, input_scale(x))
    results = []
    for k, u in enumerate(directions):
        phi = _direction_phi(x, u, evaluate)
        room = _direction_room(x, u, bounds)
        results.append(judge(phi, f0, h, room, noise, float(np.sum(analytic * u)), rtol, atol, f"probe {k}",
                             strict))
    return summarize(name, x.shape, analytic, results, method="probes")


def vacuity_check(blocks):
    """Fails when some block's analytic gradient is all zero while its numeric gradient is not."""
    vacuous = [b.name for b in blocks if b.verdict == VACUOUS]
    zero = [b.name for b in blocks if b.fraction_nonzero == 0.0 and b.ok and b.checked]
    if vacuous:
        return CheckResult("vacuity", False, f"analytic gradient all zero but numeric not: {', '.join(vacuous)}")
    return CheckResult("vacuity", True, "no block is vacuous" +
                       (f" ({', '.join(zero)}: gradient zero, and numerically zero too)" if zero else ""))


def probe_directions(rng, x, bounds, count):
    """`count` random Gaussian unit directions, turned to point inwards at entries on a bound."""
    h = base_step(_rms(x), np.finfo(np.float64).eps)
    directions = []
    for _ in range(count):
        u = rng.standard_normal(x.shape)
        u = _point_inwards(u, x, bounds, reach=h)
        norm = np.linalg.norm(u)
        directions.append(u / norm if norm > 0 else u)
    return directions


def judge(phi, f0, h, room, noise, analytic, rtol, atol, label, strict=False):
    """Estimate phi'(0) and compare it with `analytic`; walk the step ladder before failing."""
    scheme, step = choose_scheme(h, *room)
    if not step > 0:
        return EntryResult(label, analytic, math.nan, math.nan, 0.0, scheme, 0.0, 0.0, NOT_CHECKED)
    ladder = Ladder(phi, f0, step, scheme, noise).extend(BASE_LEVELS)
    if not ladder.finite():
        return _entry(label, analytic, ladder.level(0), scheme, rtol, atol, NONFINITE, force=True)
    first = _entry(label, analytic, ladder.level(0), scheme, rtol, atol, WRONG)
    if first.ok and _sharp(first, rtol):
        return first
    ladder.extend(LADDER_LEVELS)
    if not ladder.finite():
        return _entry(label, analytic, ladder.level(0), scheme, rtol, atol, NONFINITE, force=True)
    smooth = ladder.converges() and not ladder.kink()
    entry = _entry(label, analytic, ladder.best(), scheme, rtol, atol, WRONG if smooth else KINK)
    if entry.ok and _truncation_limited(entry):
        # the function varies on a scale below the ladder's steps (a cosine near a zero key varies on
        # sqrt(eps)): go on halving, to h / 2^(DEEP_LEVELS - 1), before the block may be inconclusive
        ladder.extend(DEEP_LEVELS)
        if ladder.finite():
            entry = _entry(label, analytic, ladder.best(), scheme, rtol, atol, WRONG if smooth else KINK)
    if entry.ok or smooth or scheme != "central":
        return entry
    return _at_kink(entry, ladder, rtol, atol, strict)


def _at_kink(entry, ladder, rtol, atol, strict):
    """An entry whose central ladder did not converge: compare the analytic value with the one-sided
    slopes at the smallest step.

    A kink shows as a jump between the two slopes larger than the tolerance of the steadier side (at x
    both sides are steady; within a step of x the side whose steps cross the kink still moves, the
    other does not). No such jump: noise, KINK ("kink or noise"). A jump, and the analytic value
    between the slopes (with their tolerances): a valid subgradient, SUBGRADIENT (failing only with
    strict). A jump, and the analytic value outside: WRONG_AT_KINK, a mistake wherever the kink is."""
    (left, tol_left, steady_left), (right, tol_right, steady_right) = ladder.one_sided(-1), ladder.one_sided(+1)
    a = entry.analytic
    steadier_tol, steadier = min((tol_left, steady_left), (tol_right, steady_right))
    if not (steadier and abs(right - left) > KINK_JUMP * steadier_tol + atol):
        return replace(entry, left=left, right=right)
    # the interval between the slopes, widened by the tolerance of each side that settled (a side whose
    # steps still cross the kink is a mixture of the two true slopes: its value itself bounds the range)
    slack = atol + rtol * max(abs(a), abs(left), abs(right))
    reach_left, reach_right = (tol_left if steady_left else 0.0), (tol_right if steady_right else 0.0)
    low = min(left - reach_left, right - reach_right) - slack
    high = max(left + reach_left, right + reach_right) + slack
    if low <= a <= high:
        verdict = SUBGRADIENT_STRICT if strict else SUBGRADIENT
    else:
        verdict = WRONG_AT_KINK
    return replace(entry, verdict=verdict, left=left, right=right, exactly=steady_left and steady_right)


def summarize(name, shape, analytic, results, method):
    """Fold per-entry (or per-probe) results into a BlockResult with a verdict and worst entries."""
    compared = [r for r in results if r.verdict != NOT_CHECKED]
    failing = sorted((r for r in compared if not r.ok), key=lambda r: -r.ratio)
    fraction = np.count_nonzero(analytic) / analytic.size if analytic.size else 1.0
    block = BlockResult(name=name, shape=tuple(shape), method=method, checked=len(compared),
                        fraction_nonzero=float(fraction), failures=failing)
    if method == "probes":
        block.probes = list(results)
    kinks = [r for r in compared if r.verdict == SUBGRADIENT]
    smooth = [r for r in compared if r.verdict != SUBGRADIENT]
    if smooth:
        block.max_abs_err = max(r.abs_err for r in smooth)
        block.max_rel_err = max((r.rel_err for r in smooth if _above_noise(r)), default=0.0)
        block.worst_ratio = max(r.ratio for r in smooth)
    block.verdict = _block_verdict(failing, fraction)
    block.summary = _block_summary(block, failing, method)
    no_power = _without_power(smooth) if block.verdict == OK else None
    if no_power is not None:
        block.verdict = INCONCLUSIVE
        block.summary = (f"inconclusive: the check has no power here: at the largest gradient entry "
                         f"{no_power.index} (|a| {max(abs(no_power.analytic), abs(no_power.numeric)):.3g}) the "
                         f"truncation error allowed is {ESTIMATE_MULTIPLE * no_power.err_est:.3g}, more than "
                         f"{POWER_RTOL:g} of it (a smaller step= may help)")
    notes = []
    if len(compared) < len(results):
        notes.append(f"{len(results) - len(compared)} entries not checked: no room between their bounds")
    if kinks:
        block.kinks = kinks
        notes.append(f"{len(kinks)} {'probes' if method == 'probes' else 'entries'} at a kink, each a valid "
                     f"subgradient (between its left and right slopes; strict=True fails them): "
                     + ", ".join(k.index for k in kinks[:5]) + (" ..." if len(kinks) > 5 else ""))
    block.note = "; ".join(notes)
    return block


# -- the scalar along one entry or one direction -------------------------------------------------

def _entry_phi(work, x, j, evaluate):
    """phi(t) = f(x + t e_j): perturb one entry of the work copy in place, restore it afterwards."""
    def phi(t):
        work.flat[j] = x.flat[j] + t
        actual = float(work.flat[j]) - float(x.flat[j])
        try:
            return evaluate(work), actual
        finally:
            work.flat[j] = x.flat[j]
    return phi


def _direction_phi(x, u, evaluate):
    """phi(t) = f(x + t u) for a unit direction u."""
    def phi(t):
        return evaluate((x + t * u).astype(x.dtype, copy=False)), t
    return phi


def _entry_room(value, bounds):
    """(room below, room above) for one entry inside [lo, hi]."""
    lo, hi = bounds
    return (INF if lo is None else value - lo), (INF if hi is None else hi - value)


def _direction_room(x, u, bounds):
    """How far one can move along -u and along +u before some entry of x leaves [lo, hi]."""
    lo, hi = bounds
    plus = minus = INF
    with np.errstate(divide="ignore", invalid="ignore"):
        if lo is not None:
            plus = min(plus, _min_ratio(x - lo, -u))     # entries with u < 0 approach lo going +u
            minus = min(minus, _min_ratio(x - lo, u))    # entries with u > 0 approach lo going -u
        if hi is not None:
            plus = min(plus, _min_ratio(hi - x, u))
            minus = min(minus, _min_ratio(hi - x, -u))
    return minus, plus


def _min_ratio(distance, speed):
    """Smallest distance / speed over entries moving towards their bound (speed > 0)."""
    moving = speed > 0
    return float(np.min(distance[moving] / speed[moving])) if np.any(moving) else INF


def _point_inwards(u, x, bounds, reach):
    """Flip the components of u that would carry an entry within `reach` of a bound across it."""
    lo, hi = bounds
    u = u.copy()
    if lo is not None:
        near = (x - lo) < reach
        u[near] = np.abs(u[near])
    if hi is not None:
        near = (hi - x) < reach
        u[near] = -np.abs(u[near])
    return u


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


# -- verdicts ----------------------------------------------------------------------------------------

def _entry(label, analytic, level, scheme, rtol, atol, if_failing, force=False):
    """EntryResult for `analytic` against one ladder level: OK under the pass rule, else `if_failing`
    (always `if_failing` when force)."""
    numeric = level.value
    abs_part = level.uncertainty + atol
    allowed = abs_part + rtol * max(abs(analytic), abs(numeric))
    passes = abs(analytic - numeric) <= allowed and not force
    verdict = OK if passes else if_failing
    return EntryResult(label, analytic, numeric, level.estimate, level.step, scheme, abs_part, allowed, verdict)


def _sharp(entry, rtol):
    """Is the truncation part of the allowed error within the rtol budget (or at round-off)?

    If not, a first-step pass could hide a mistake of the size rtol is meant to catch: the entry goes
    down the ladder, whose smaller steps give a sharper estimate, before it may pass.
    """
    truncation = ESTIMATE_MULTIPLE * entry.err_est
    round_off = entry.atol - truncation            # the floor (plus any user atol)
    return truncation <= max(rtol * max(abs(entry.analytic), abs(entry.numeric)), round_off)


def _truncation_limited(entry):
    """The truncation part of the allowed error is above POWER_RTOL of the value, while the round-off part
    is not (where round-off alone exceeds POWER_RTOL of the value, the arithmetic is the limit: a gradient
    entry near the noise of f, which no step resolves better)."""
    size = max(abs(entry.analytic), abs(entry.numeric))
    truncation = ESTIMATE_MULTIPLE * entry.err_est
    round_off = entry.atol - truncation
    return POWER_RTOL * size < truncation and round_off <= POWER_RTOL * size


def _without_power(results):
    """The entry with the largest gradient, when the truncation part of its allowed error (the Richardson
    error estimate, which a smaller step shrinks) is above POWER_RTOL of its size and above the round-off
    part: a mistake of POWER_RTOL relative could pass there unseen. None when the check has the power,
    or when round-off limits it (the arithmetic's limit: no step does better)."""
    seen = [r for r in results if r.verdict == OK]
    if not seen:
        return None
    top = max(seen, key=lambda r: max(abs(r.analytic), abs(r.numeric)))
    return top if _truncation_limited(top) else None


def _above_noise(r):
    return max(abs(r.analytic), abs(r.numeric)) > r.atol


def _block_verdict(failing, fraction_nonzero):
    if not failing:
        return OK
    if fraction_nonzero == 0.0:
        return VACUOUS
    for verdict in (WRONG, WRONG_AT_KINK, KINK, SUBGRADIENT_STRICT, NONFINITE):
        if any(r.verdict == verdict for r in failing):
            return verdict
    return failing[0].verdict


def _block_summary(block, failing, method):
    unit = "probes" if method == "probes" else "entries"
    if block.verdict == OK:
        return OK
    if block.verdict == VACUOUS:
        return (f"vacuous: the analytic gradient is all zero but the numeric one is not "
                f"({len(failing)} of {block.checked} {unit} disagree)")
    counts = [f"{v} at {n} of {block.checked} {unit}"
              for v in FAILING for n in [sum(r.verdict == v for r in failing)] if n]
    return "; ".join(counts)
