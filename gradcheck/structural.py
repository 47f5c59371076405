"""Structural checks of a forward/backward pair, each returning a named CheckResult.

They catch what finite differences alone explain badly: wrong shapes or dtypes, a wrong number of
gradients, mutated inputs, gradients that pile up over calls (+= into a cached buffer), a backward
that ignores or is not linear in its upstream gradient, and non-finite values.
"""
import numpy as np

from gradcheck.report import CheckResult

# Linearity is tested as backward(A d1 + B d2) == A backward(d1) + B backward(d2). A + B != 1, so a
# backward that ignores dout fails; both are powers-of-two fractions, so the scaling itself is exact.
LINEARITY_COEFFS = (0.75, -1.25)

# Allowed linearity defect, relative to the block's largest |A g1| + |B g2|: round-off of a linear map
# is a few eps times the terms summed (< 1e-12 in float64); 1e-9 leaves room for long sums and still
# sees any real nonlinearity, which is O(1). In lower precision it is at least 1000 eps (float32: 1e-4).
LINEARITY_RTOL = 1e-9
LINEARITY_EPS_MULTIPLE = 1000.0


def as_outputs(out):
    """(list of output arrays, whether forward returned a tuple). A float (a loss) is a 0-d float64 array."""
    def array(o):
        return np.asarray(o, dtype=np.float64) if isinstance(o, (float, np.floating)) and not isinstance(o, bool) else o
    if isinstance(out, (tuple, list)):
        return [array(o) for o in out], True
    return [array(out)], False


def as_upstream(douts, is_tuple):
    """dout in the form backward expects: one array, or a tuple matching the outputs."""
    return tuple(douts) if is_tuple else douts[0]


def check_forward_result(result):
    """Forward must return a pair (out, cache)."""
    if isinstance(result, tuple) and len(result) == 2:
        return CheckResult("forward returns (out, cache)", True, "a pair")
    kind = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
    return CheckResult("forward returns (out, cache)", False, f"forward must return (out, cache), got {kind}")


def check_outputs(outs, dtypes):
    """Every output is a finite floating array of one of `dtypes`."""
    problems, shapes = [], []
    for k, o in enumerate(outs):
        label = f"out[{k}]" if len(outs) > 1 else "out"
        if not isinstance(o, np.ndarray):
            problems.append(f"{label} is a {type(o).__name__}, not a numpy array")
            continue
        shapes.append(f"{label} {o.shape} {o.dtype}")
        if o.dtype not in dtypes:
            problems.append(f"{label} has dtype {o.dtype}, expected {' or '.join(map(str, dtypes))}")
        elif not np.all(np.isfinite(o)):
            problems.append(f"{label} has {np.size(o) - np.count_nonzero(np.isfinite(o))} non-finite entries")
    return CheckResult("output", not problems, "; ".join(problems) or ", ".join(shapes) + ", finite")


def normalize_gradients(raw, n_inputs):
    """(list of gradients or None, CheckResult): one array for one input, a tuple for several."""
    name = "gradient count"
    if n_inputs == 1:
        if isinstance(raw, np.ndarray):
            return [raw], CheckResult(name, True, "1 gradient for 1 input")
        if isinstance(raw, (tuple, list)) and len(raw) == 1:
            return list(raw), CheckResult(name, False, "one input: backward must return a single array, "
                                                       f"not a {type(raw).__name__} of 1")
        return None, CheckResult(name, False, f"one input: backward returned a {type(raw).__name__}, "
                                              "expected a single array")
    if isinstance(raw, (tuple, list)) and len(raw) == n_inputs:
        return list(raw), CheckResult(name, True, f"{n_inputs} gradients for {n_inputs} inputs")
    got = f"{len(raw)} gradients" if isinstance(raw, (tuple, list)) else f"a {type(raw).__name__}"
    return None, CheckResult(name, False, f"backward returned {got} for {n_inputs} inputs")


def check_gradient_shapes(grads, inputs, names):
    """Each gradient has exactly its input's shape and dtype."""
    problems = []
    for g, x, n in zip(grads, inputs, names):
        if not isinstance(g, np.ndarray):
            problems.append(f"d{n} is a {type(g).__name__}, not a numpy array")
        elif g.shape != x.shape or g.dtype != x.dtype:
            problems.append(f"d{n} is {g.shape} {g.dtype}, its input is {x.shape} {x.dtype}")
    return CheckResult("gradient shapes and dtypes", not problems, "; ".join(problems) or "all match")


def usable(g, x):
    """A gradient that can be compared entry by entry with its input's finite differences."""
    return isinstance(g, np.ndarray) and g.shape == x.shape


def check_finite(grads, names):
    """Every gradient entry is finite."""
    bad = [f"d{n} has {g.size - np.count_nonzero(np.isfinite(g))} non-finite entries"
           for g, n in zip(grads, names) if isinstance(g, np.ndarray) and not np.all(np.isfinite(g))]
    return CheckResult("gradients finite", not bad, "; ".join(bad) or "all finite")


def changed(arrays, originals, names, by):
    """Phrases for every array that differs (bitwise) from its original."""
    return [f"{n} changed by {by} ({_count_diff(a, o)} entries)"
            for a, o, n in zip(arrays, originals, names) if not _identical(a, o)]


def check_deterministic(first, second, names):
    """A second backward call with the same dout and cache gives bitwise-identical gradients."""
    diffs = [f"d{n}: max |first - second| {np.max(np.abs(a - b)):.3g}"
             for a, b, n in zip(first, second, names)
             if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
             and not _identical(a, b)]
    return CheckResult("backward deterministic", not diffs,
                       "second call differs (state kept between calls, e.g. += into a cached buffer?): "
                       + "; ".join(diffs) if diffs else "second call bitwise identical")


def check_linear(mixed, first, second, names, floors, eps):
    """backward(A d1 + B d2) == A backward(d1) + B backward(d2), to LINEARITY_RTOL x scale + floor.

    floors: per input, the round-off floor of the finite-difference check. A backward may compute a
    small gradient as a difference of large terms (a saturated softmax), so its round-off is not
    bounded by the gradient's own size; below the floor the numeric check cannot tell anyway.
    """
    a, b = LINEARITY_COEFFS
    rtol = max(LINEARITY_RTOL, LINEARITY_EPS_MULTIPLE * eps)
    bad = []
    for m, g1, g2, n, floor in zip(mixed, first, second, names, floors):
        scale = np.max(np.abs(a * g1) + np.abs(b * g2), initial=0.0)
        defect = np.max(np.abs(m - (a * g1 + b * g2)), initial=0.0)
        if not defect <= rtol * scale + floor:
            bad.append(f"d{n}: defect {defect:.3g} vs scale {scale:.3g}")
    message = (f"backward({a} d1 + {b} d2) != {a} backward(d1) + {b} backward(d2): " + "; ".join(bad)
               if bad else f"defect <= {rtol:g} x scale + round-off floor")
    return CheckResult("backward linear in dout", not bad, message)


def check_zero(zero_grads, names):
    """A zero upstream gradient gives exactly zero gradients."""
    bad = [f"d{n} has {np.count_nonzero(g)} non-zero entries (max |.| {np.max(np.abs(g)):.3g})"
           for g, n in zip(zero_grads, names) if np.any(g != 0)]
    return CheckResult("zero dout gives zero gradient", not bad, "; ".join(bad) or "exactly zero")


def _identical(a, b):
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True))


def _count_diff(a, b):
    if not isinstance(a, np.ndarray) or a.shape != b.shape:
        return "shape or type"
    return int(np.count_nonzero(~((a == b) | (np.isnan(a) & np.isnan(b)))))
