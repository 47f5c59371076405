"""Hypothesis strategies for the NTM's input domains. Needs hypothesis (imported only with this module).

Dimension legend: B batch, H heads, N memory slots, M word width, S = 2 * shift_range + 1 shift-kernel
width. Every strategy returns float64 numpy arrays of exactly the shape in its docstring.

Constrained values are unconstrained reals mapped into their domain (softmax onto the simplex, softplus
for beta > 0, 1 + softplus for gamma >= 1, sigmoid into (0, 1)), never filtered, so every draw is valid
and shrinking stays inside the domain. The reals are drawn as one list of distinct grid values per
array (see GRID_BITS): hypothesis.extra.numpy.arrays fills unset cells with one repeated value, and
such ties break sharpening and cosine-similarity checks.
"""
import numpy as np
from hypothesis import note, target
from hypothesis import strategies as st
from scipy.special import expit, softmax

# Unconstrained reals are drawn in [-4, 4]: wide enough for peaked softmaxes (weights down to ~e^-8
# of the largest) and gates near 0 and 1 (0.018 .. 0.982), narrow enough that nothing under- or
# overflows and finite differences stay well conditioned.
REAL_BOUND = 4.0

# The reals are multiples of REAL_BOUND * 2^-20 (~4e-6). Distinct floats can still tie after mapping
# (0.0 and 1e-300 give the same softmax weight); distinct grid points stay distinct through softmax,
# sigmoid and softplus, whose slopes here are >= 0.018, far above float64 resolution.
GRID_BITS = 20

# Chance that one memory row (or key) is exactly zero when zero rows are asked for: rare enough that
# most memories keep content, common enough that Hypothesis meets zero rows in a few examples.
ZERO_ROW_CHOICES = (False, False, False, True)

# Chance that one weighting entry is exactly zero when exact zeros are asked for.
ZERO_ENTRY_CHOICES = (False, True)

DEFAULT_MAX_BETA = 10.0
DEFAULT_MAX_GAMMA = 10.0


@st.composite
def shapes(draw, max_B=3, max_H=3, max_N=8, max_M=5, max_shift_range=2):
    """dict(B, H, N, M, S, shift_range) with S = 2 * shift_range + 1 <= N (and shift_range >= 1
    whenever max_N >= 3)."""
    largest_range = min(max_shift_range, (max_N - 1) // 2)
    if largest_range < 0 or min(max_B, max_H, max_N, max_M) < 1:
        raise ValueError("every maximum must be >= 1 and max_shift_range >= 0")
    shift_range = draw(st.integers(min(1, largest_range), largest_range))
    S = 2 * shift_range + 1
    return dict(B=draw(st.integers(1, max_B)), H=draw(st.integers(1, max_H)), N=draw(st.integers(S, max_N)),
                M=draw(st.integers(1, max_M)), S=S, shift_range=shift_range)


def reals(shape, bound=REAL_BOUND):
    """Distinct unconstrained reals in [-bound, bound] on a grid of spacing bound * 2^-GRID_BITS,
    float64 array of `shape`."""
    size = int(np.prod(shape, dtype=np.int64))
    steps = 2 ** GRID_BITS
    return st.lists(st.integers(-steps, steps), min_size=size, max_size=size, unique=True).map(
        lambda ints: (np.array(ints, dtype=np.float64) * (bound / steps)).reshape(shape))


@st.composite
def memories(draw, B, N, M, zero_rows=True):
    """Memory (B, N, M) of reals; with zero_rows some rows M(i) may be exactly zero."""
    memory = draw(reals((B, N, M)))
    if zero_rows:
        memory[draw(_mask((B, N), ZERO_ROW_CHOICES))] = 0.0
    return memory


@st.composite
def keys(draw, B, H, M, zero=False):
    """Keys k (B, H, M) of reals; with zero some keys may be exactly zero."""
    key = draw(reals((B, H, M)))
    if zero:
        key[draw(_mask((B, H), ZERO_ROW_CHOICES))] = 0.0
    return key


def key_strengths(B, H, max_beta=DEFAULT_MAX_BETA):
    """Key strengths beta (B, H) = softplus(r): beta > 0, at most max_beta."""
    top = _softplus_inverse(max_beta)
    return reals((B, H)).map(lambda r: _softplus(_squeeze(r, top)))


def gates(B, H):
    """Interpolation gates g (B, H) = sigmoid(r), in (0, 1)."""
    return reals((B, H)).map(expit)


def shift_kernels(B, H, S):
    """Shift kernels s (B, H, S) = softmax(r) over S: on the simplex."""
    return reals((B, H, S)).map(lambda r: softmax(r, axis=-1))


@st.composite
def weightings(draw, B, H, N, exact_zeros=False):
    """Weightings w (B, H, N) on the simplex. With exact_zeros (and N >= 2) every row has at least one
    entry exactly 0 and never all: the entry of the largest logit is always kept."""
    logits = draw(reals((B, H, N)))
    w = softmax(logits, axis=-1)
    if not exact_zeros or N < 2:
        return w
    zero = draw(_mask((B, H, N), ZERO_ENTRY_CHOICES))
    np.put_along_axis(zero, np.argmax(logits, axis=-1)[..., None], False, axis=-1)
    none_zero = ~np.any(zero, axis=-1, keepdims=True)
    smallest = np.argmin(logits, axis=-1)[..., None]
    np.put_along_axis(zero, smallest, np.take_along_axis(zero, smallest, axis=-1) | none_zero, axis=-1)
    w = np.where(zero, 0.0, w)
    return w / np.sum(w, axis=-1, keepdims=True)


def sharpening_exponents(B, H, max_gamma=DEFAULT_MAX_GAMMA):
    """Sharpening exponents gamma (B, H) = 1 + softplus(r): gamma >= 1, at most max_gamma."""
    top = _softplus_inverse(max_gamma - 1.0)
    return reals((B, H)).map(lambda r: 1.0 + _softplus(_squeeze(r, top)))


def erase_vectors(B, H, M):
    """Erase vectors e (B, H, M) = sigmoid(r), in (0, 1)."""
    return reals((B, H, M)).map(expit)


def add_vectors(B, H, M):
    """Add vectors a (B, H, M): any reals."""
    return reals((B, H, M))


def observe(report, label="gradcheck worst err/allowed"):
    """Inside a @given test: note() the report, and target() its worst error / allowed error so that
    Hypothesis steers towards inputs where a gradient comes closest to failing. Returns the report."""
    note(str(report))
    worst = max((b.worst_ratio for b in report.blocks), default=0.0)
    target(float(min(worst, np.finfo(np.float64).max)), label=label)
    return report


# -- helpers ---------------------------------------------------------------------------------------

def _mask(shape, choices):
    size = int(np.prod(shape, dtype=np.int64))
    return st.lists(st.sampled_from(choices), min_size=size, max_size=size).map(
        lambda values: np.array(values, dtype=bool).reshape(shape))


def _squeeze(r, top):
    """Map [-REAL_BOUND, REAL_BOUND] onto [-REAL_BOUND, min(top, REAL_BOUND)], linearly (no clipping, so
    distinct reals stay distinct)."""
    top = min(top, REAL_BOUND)
    if not top > -REAL_BOUND:
        raise ValueError("the maximum is below what the strategy can produce")
    return -REAL_BOUND + (r + REAL_BOUND) * (top + REAL_BOUND) / (2.0 * REAL_BOUND)


def _softplus(r):
    return np.logaddexp(0.0, r)


def _softplus_inverse(y):
    """r with softplus(r) = y, for y > 0: log(expm1(y)), written stably."""
    if not y > 0:
        raise ValueError(f"the maximum must exceed the domain's lower bound, got softplus target {y}")
    return float(y + np.log(-np.expm1(-y)))
