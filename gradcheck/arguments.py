"""Validation of what callers pass in: arrays and their dtypes, names, bounds; and the reproduce line."""
import numpy as np

FLOAT64 = np.dtype(np.float64)
FLOAT32 = np.dtype(np.float32)

# In lower precision the analytic gradient itself carries relative round-off of many eps (float32:
# ~1e-7 per operation), so rtol is raised to at least this many eps of the lowest precision involved.
# For float64 the floor (2e-14) never binds.
RTOL_EPS_MULTIPLE = 100.0


def validated_arrays(arrays, labels, allow_float32):
    """Check dtypes: float64, or float32 when allowed. Raises TypeError otherwise."""
    allowed = (FLOAT64, FLOAT32) if allow_float32 else (FLOAT64,)
    for x, label in zip(arrays, labels):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{label} must be a numpy array, got {type(x).__name__}")
        if x.dtype not in allowed:
            hint = (" (pass allow_float32=True to check float32 with tolerances scaled for it)"
                    if x.dtype == FLOAT32 else "")
            raise TypeError(f"{label} has dtype {x.dtype}; gradcheck works in float64{hint}")
    return list(arrays)


def input_names(names, count):
    """Given names, or "x0", "x1", ...; they must be unique and as many as the inputs."""
    names = [f"x{i}" for i in range(count)] if names is None else [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"{len(names)} names for {count} inputs")
    if len(set(names)) != count:
        raise ValueError(f"names must be unique, got {names}")
    return names


def normalized_bounds(bounds, names):
    """dict name -> (lo, hi) for every name (None = unbounded); keys may be names or indices."""
    result = {n: (None, None) for n in names}
    for key, pair in (bounds or {}).items():
        name = _bound_name(key, names)
        lo, hi = pair
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"bounds for {name}: lo {lo} > hi {hi}")
        result[name] = (lo, hi)
    return result


def require_inside(arrays, names, bounds):
    """Raise ValueError when a checked point already lies outside its declared domain."""
    for x, n in zip(arrays, names):
        lo, hi = bounds[n]
        outside = np.zeros(x.shape, bool)
        if lo is not None:
            outside |= x < lo
        if hi is not None:
            outside |= x > hi
        if np.any(outside):
            raise ValueError(f"{n} has {np.count_nonzero(outside)} entries outside its bounds [{lo}, {hi}]")


def effective_rtol(rtol, eps):
    """rtol, raised for low precision (see RTOL_EPS_MULTIPLE)."""
    return max(float(rtol), RTOL_EPS_MULTIPLE * eps)


def function_name(fn):
    """A readable name for the reproduce line: the qualified name, or the plain name for a function defined
    inside another (whose qualified name, 'f.<locals>.g', is not Python that runs)."""
    qualname = getattr(fn, "__qualname__", None)
    if qualname and "<locals>" in qualname:
        return getattr(fn, "__name__", qualname)
    return qualname or repr(fn)


def call_text(function, positional, keywords):
    """'function(a, b, k=v, ...)', leaving out keywords whose value is None or False."""
    parts = list(positional) + [f"{k}={v!r}" for k, v in keywords.items() if v is not None and v is not False]
    return f"{function}({', '.join(parts)})"


def _bound_name(key, names):
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not 0 <= key < len(names):
            raise ValueError(f"bounds index {key} out of range for {len(names)} inputs")
        return names[key]
    if key not in names:
        raise ValueError(f"bounds key {key!r} is not one of {names}")
    return key
