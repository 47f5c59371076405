"""Finite-difference derivatives with Richardson extrapolation, an error estimate and a verdict.

Everything here works on a scalar function of one real offset,

    phi(t) = f(x + t v)        v a coordinate vector (one entry) or a unit direction (a probe),

and estimates phi'(0). ``phi(t)`` returns ``(value, actual_t)``: the offset actually applied after
rounding x + t to the input's dtype, so every difference quotient divides by the true distance.

Stage values G_k have an O(h_k^2) leading error at steps h_k = h / 2^k:

    central   G_k = (phi(h_k) - phi(-h_k)) / (2 h_k)
    one-sided G_k = 2 F(h_{k+1}) - F(h_k),   F(h) = (phi(+-h) - phi(0)) / (+-h)   (one Richardson step)

and one more Richardson step removes it:  R_k = (4 G_{k+1} - G_k) / 3,  error estimate |R_k - G_{k+1}|.
"""
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

# Base step h = eps^(1/5) * max(s, |x|), s = min(1, rms of the input). The Richardson estimate has
# truncation error O(h^4) and round-off error O(eps / h); the two balance near h ~ eps^(1/5): 7.4e-4 in
# float64, 4.1e-2 in float32 (for numbers of size 1; in units of s for an input of smaller size).
STEP_EXPONENT = 1.0 / 5.0

# One Richardson step needs two stage values (G_0 at h, G_1 at h/2).
BASE_LEVELS = 2

# An entry that fails at h is re-estimated down a ladder h, h/2, ..., h/64 (7 stage values): far enough
# that a smooth function's error shrinks 16^5 ~ 1e6 times, short enough that round-off stays < 64x.
LADDER_LEVELS = 7

# An entry that passes only with a truncation error above 1e-4 of it (the function varies on a scale
# below the steps) goes on down to h/2048 (12 stage values) before its block may be called inconclusive.
DEEP_LEVELS = 12

# Never step more than half-way to a bound, so no evaluation lands on (or past) it.
ROOM_FRACTION = 0.5

# Central steps are shrunk to fit between two bounds, but not below h/32: round-off grows as 1/step, and
# below that a one-sided step away from the bound (about 6x the central round-off) is the better choice.
MIN_CENTRAL_FRACTION = 1.0 / 32.0

# Round-off of R in units of (evaluation noise / h). Central: R = (4 D(h/2) - D(h)) / 3 weighs the four
# values by 4/(3h), 4/(3h), 1/(6h), 1/(6h); their root sum of squares is 1.9. One-sided:
# R = (8 F(h/4) - 6 F(h/2) + F(h)) / 3 gives sqrt(32^2 + 12^2 + 1) / 3 = 11.4.
NOISE_GAIN = {"central": 2.0, "forward": 12.0, "backward": 12.0}

# Evaluation noise is taken as eps * scale; a sum of n rounded products is off by a few eps * scale,
# and the floor must hold for every entry of a block (a ~3-sigma bound): hence 10.
ROUNDOFF_SAFETY = 10.0

# The error estimates (|R - G(h/2)| at the first step, |R_k - R_{k-1}| down the ladder) both exceed R's
# own error where R converges; each is also one sample of the noise, and 2x covers an unlucky sample.
ESTIMATE_MULTIPLE = 2.0

# Only the smallest steps show how the ladder converges: at the largest ones the expansion in h may
# not hold yet (a function varying on a scale ~h). Convergence is judged on the deepest 4 stage values.
CONVERGENCE_WINDOW = 4

# Stage differences of a smooth function shrink 4x per halving (O(h^2)); we accept 2x or more.
CONVERGENCE_RATIO = 2.0

# Gap between the right and left slopes, (F+ - F-): shrinks 2x per halving where phi is smooth
# (f'' h), stays put at a kink (the jump), grows 2x for noise. Below 1.5x means "not smooth here".
KINK_RATIO = 1.5

# A one-sided slope counts as settled when its change shrank (or sat at round-off) over this many
# successive halvings at the smallest steps (Ladder.one_sided).
STEADY_HALVINGS = 3

SCHEMES = ("central", "forward", "backward")


def base_step(x, eps, scale=1.0):
    """The unshrunk step for an entry of value x (or a block of rms x): eps^(1/5) * max(scale, |x|), with
    scale the input's own size (input_scale): 1 for inputs of ordinary size, smaller for small inputs,
    so the step is never far above the size of the numbers it perturbs."""
    return eps ** STEP_EXPONENT * max(scale, abs(float(x)))


def input_scale(x):
    """min(1, rms of x) (1 for an all-zero x): the floor of an input's steps (base_step)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if np.size(x) else 0.0
    return min(1.0, rms) if rms > 0 else 1.0


def choose_scheme(h, room_minus, room_plus):
    """Pick (scheme, step) so that every evaluation stays inside the input's domain.

    room_minus / room_plus: distance from x to the lower / upper bound along the direction (inf if
    unbounded). Central with step h when there is room; central with a shrunk step when that costs at
    most MIN_CENTRAL_FRACTION; otherwise one-sided towards the roomier side. Step 0.0 means no room.
    """
    central = min(h, ROOM_FRACTION * room_minus, ROOM_FRACTION * room_plus)
    if central >= MIN_CENTRAL_FRACTION * h:
        return "central", central
    if room_plus >= room_minus:
        return "forward", min(h, ROOM_FRACTION * room_plus)
    return "backward", min(h, ROOM_FRACTION * room_minus)


@dataclass(frozen=True)
class Noise:
    """Round-off model of the checked scalar: evaluation noise about eps * scale.

    eps: machine epsilon of the lowest precision involved; scale: |f| + sum|out * dout| (an op) or
    |loss| (a whole model), the size of the terms whose rounding makes the noise.
    """

    eps: float
    scale: float

    def floor(self, scheme, step):
        """Round-off bound of a Richardson estimate whose largest step is `step`."""
        return ROUNDOFF_SAFETY * NOISE_GAIN[scheme] * self.eps * self.scale / step


@dataclass(frozen=True)
class Level:
    """One Richardson estimate R_k of the ladder and how far it can be trusted."""

    value: float        # R_k
    estimate: float     # its error estimate (see Ladder.level and Ladder.levels)
    floor: float        # round-off bound at this step
    step: float         # h_k, the largest step used

    @property
    def uncertainty(self):
        """Absolute tolerance earned by the measured noise: a multiple of the estimate plus round-off."""
        return ESTIMATE_MULTIPLE * self.estimate + self.floor


class Ladder:
    """Stage values G_0, G_1, ... of phi'(0) at steps h, h/2, ...; evaluations are cached."""

    def __init__(self, phi: Callable[[float], Tuple[float, float]], f0, step, scheme, noise):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}")
        self.phi, self.f0, self.step, self.scheme, self.noise = phi, f0, step, scheme, noise
        self.stages = []
        self._points = {}

    def step_at(self, k):
        """h_k = h / 2^k."""
        return self.step / 2.0 ** k

    def extend(self, levels):
        """Compute stage values up to G_{levels-1}."""
        while len(self.stages) < levels:
            self.stages.append(self._stage(len(self.stages)))
        return self

    def level(self, k):
        """R_k = (4 G_{k+1} - G_k) / 3 with the error estimate |R_k - G_{k+1}| and its round-off floor."""
        value = self._richardson(k)
        return self._level(k, value, abs(value - self.stages[k + 1]))

    def levels(self):
        """Every R_k the stages allow, with the ladder's sharper error estimate.

        Where R converges, R_k - R_{k-1} is about R_{k-1}'s error and many times R_k's own (15x for the
        central O(h^4), 7x for the one-sided O(h^3)), so |R_k - R_{k-1}| is a safe estimate for R_k
        that, unlike |R_k - G_{k+1}| (an O(h^2) error), does not hide a 1e-4 mistake when the first
        step was too large. It is taken at least as large as |R_k - R_{k+1}|, so two levels that agree
        by accident, before R converges, do not pass.
        """
        values = [self._richardson(k) for k in range(len(self.stages) - 1)]
        result = []
        for k, value in enumerate(values):
            coarser = abs(value - values[k - 1]) if k > 0 else abs(value - self.stages[k + 1])
            finer = abs(value - values[k + 1]) if k + 1 < len(values) else 0.0
            result.append(self._level(k, value, max(coarser, finer)))
        return result

    def _richardson(self, k):
        return (4.0 * self.stages[k + 1] - self.stages[k]) / 3.0

    def _level(self, k, value, estimate):
        step = self.step_at(k)
        return Level(value, estimate, self.noise.floor(self.scheme, step), step)

    def best(self):
        """The level with the smallest uncertainty: the best-converged estimate."""
        return min(self.levels(), key=lambda lv: lv.uncertainty)

    def finite(self):
        """True when every evaluation so far returned a finite value."""
        return all(np.isfinite(value) for value, _ in self._points.values())

    def converges(self):
        """Do the stage differences shrink about 4x per halving at the smallest steps?

        Pairs where either difference is already at the noise floor are not judged: there the ladder
        has converged as far as the arithmetic allows.
        """
        diffs = np.abs(np.diff(self.stages))
        first = max(0, len(self.stages) - CONVERGENCE_WINDOW)
        for k in range(first, len(diffs) - 1):
            if diffs[k] <= self.noise.floor(self.scheme, self.step_at(k + 1)):
                continue
            if diffs[k + 1] <= self.noise.floor(self.scheme, self.step_at(k + 2)):
                continue
            if diffs[k] < CONVERGENCE_RATIO * diffs[k + 1]:
                return False
        return True

    def kink(self):
        """Central ladders only: do the right and left slopes keep disagreeing as the step shrinks?

        At a kink (|x| at 0) the central difference can converge perfectly (to 0) while neither side
        agrees with it; the slope gap F+ - F- exposes that. Judged on the two smallest steps.
        """
        if self.scheme != "central" or len(self.stages) < 2:
            return False
        deepest = len(self.stages) - 1
        gaps = [abs(self._slope(+1, k) - self._slope(-1, k)) for k in (deepest - 1, deepest)]
        if gaps[1] <= self.noise.floor(self.scheme, self.step_at(deepest)):
            return False
        return gaps[0] < KINK_RATIO * gaps[1]

    def one_sided(self, sign):
        """The slope on one side at the smallest step, F(h_min), with an absolute tolerance and whether
        it settles.  -> (slope, tolerance, steady).

        tolerance: the slope's change over the last halving (the O(h) truncation of a one-sided
        quotient; large where the steps still cross a kink near x) plus the one-sided round-off floor.
        steady: over each of the last STEADY_HALVINGS halvings the change is at the round-off floor or
        shrank at least KINK_RATIO times, as a smooth side's does (2x: O(h)); noise makes it grow instead
        (2x: O(1/h)), so noise seldom looks steady twice running."""
        deepest = len(self.stages) - 1
        first = max(0, deepest - STEADY_HALVINGS - 1)
        slopes = [self._slope(sign, k) for k in range(first, deepest + 1)]
        changes = np.abs(np.diff(slopes))
        floors = [self.noise.floor("forward", self.step_at(k)) for k in range(first + 1, deepest + 1)]
        if len(changes) < STEADY_HALVINGS + 1:
            return slopes[-1], abs(slopes[-1]) + floors[-1] if floors else abs(slopes[-1]), False
        steady = all(changes[i] <= floors[i] or KINK_RATIO * changes[i] <= changes[i - 1]
                     for i in range(len(changes) - STEADY_HALVINGS, len(changes)))
        return slopes[-1], float(changes[-1]) + floors[-1], bool(steady)

    # -- evaluations ---------------------------------------------------------------------------

    def _point(self, sign, k):
        key = (sign, k)
        if key not in self._points:
            self._points[key] = self.phi(sign * self.step_at(k))
        return self._points[key]

    def _slope(self, sign, k):
        """One-sided difference quotient F at step h_k on the side `sign`."""
        value, offset = self._point(sign, k)
        return (value - self.f0) / offset if offset != 0.0 else np.nan

    def _stage(self, k):
        if self.scheme == "central":
            (v_plus, t_plus), (v_minus, t_minus) = self._point(+1, k), self._point(-1, k)
            width = t_plus - t_minus
            return (v_plus - v_minus) / width if width != 0.0 else np.nan
        sign = +1 if self.scheme == "forward" else -1
        return 2.0 * self._slope(sign, k + 1) - self._slope(sign, k)
