"""Traces: every number the reference NTM computes on one input, in one .npz, for other implementations to
check theirs against (docs/trace-format.md is the schema; docs/validate.md the walk-through).

A trace holds the config, every parameter, the inputs, the initial state, for every time step each value
the step computes (controller output, raw and activated head parameters, the weighting after each
addressing stage, the reads, the memory after the write, the logits), then the loss and the gradient of
every parameter and of the inputs. Every entry is a plain array: read it with ``allow_pickle=False``.

Dimension legend: B batch, T time steps, I input width, O output width, N memory slots, M word width,
R read heads, W write heads, S shift-kernel width, C controller output width, C_l width of controller
layer l, P_r / P_w raw parameters per read / write head.

    make_trace(config, params, x, y, mask, buffers, dtype)   -> dict name -> array (the reference run)
    save_trace(path, trace) / load_trace(path)                -> .npz on disk; TraceError on a bad file
    forward_order(trace)                                      -> names in the order they are computed
    check_inputs(x, y, mask)                                  -> ValueError naming a non-finite or out-of-range array
"""
import json
import os

import numpy as np

from ntm_ref.config import NTMConfig
from ntm_ref.heads import HeadParams
from ntm_ref.loss import bce_bits_backward, bce_bits_forward, normalise_mask
from ntm_ref.model import backward_pass, check_arrays, forward_pass, init_buffers, init_params, \
    initial_state, initial_state_backward, trace_from_caches
from ntm_ref.npzio import NpzError, read_npz

FORMAT = "ntm_ref.trace"
SCHEMA_VERSION = 1
DTYPES = ("float64", "float32")

# What each forward array is: the operation (and the paper's equation) that computes it. Used by
# ntm-ref compare to name the operation where two traces first part, and by docs/trace-format.md.
OPERATIONS = {
    "ctrl.h": "controller layer (LSTM hidden state)",
    "ctrl.c": "controller layer (LSTM cell state)",
    "controller_output": "controller",
    "raw": "linear map controller -> head parameters (then clipping)",
    "key": "key activation", "beta": "key-strength activation", "g": "gate activation",
    "s": "shift-kernel activation (softmax)", "gamma": "sharpening activation",
    "erase": "erase activation", "add": "add activation",
    "w_content": "content addressing, eqs 5-6 (cosine similarity and its epsilon; or the memory it "
                 "addresses: step_order)",
    "w_gated": "interpolation, eq 7",
    "w_shifted": "circular shift, eq 8 (convolution vs correlation)",
    "w": "sharpening, eq 9 (and its epsilon)",
    "reads": "read, eq 2",
    "memory": "write, eqs 3-4 (erase, then add)",
    "logits": "output layer (then clipping)",
}
HEAD_STAGES = ("w_content", "w_gated", "w_shifted", "w")


class TraceError(Exception):
    """A trace file cannot be used; the message is one line naming the file and the problem."""


# ---------------------------------------------------------------------------------------------------
# making a trace
# ---------------------------------------------------------------------------------------------------

def make_trace(config: NTMConfig, params, x, y=None, mask=None, buffers=None, dtype="float64"):
    """Run the reference engine on exactly these numbers and return the trace (dict name -> array).

    params: dict name -> array as init_params makes (model.check_arrays says what is wrong otherwise);
    x (B, T, I); y (B, T, O) targets in [0, 1] or None (then no loss and no gradients); mask None,
    (B, T) or (B, T, O); buffers: the fixed initial memory for memory_init "random"; dtype "float64"
    or "float32" (every array, the computation included, in that precision).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype: got {dtype!r}; allowed: {', '.join(DTYPES)}")
    check_arrays(config, params, buffers)     # a missing array is an error, never a silent default
    check_inputs(x, y, mask)                  # finite, real, targets and mask in [0, 1]
    ft = np.dtype(dtype)
    params = {k: np.array(v, dtype=ft) for k, v in params.items()}
    buffers = {k: np.array(v, dtype=ft) for k, v in (buffers or {}).items()}
    x = np.asarray(x, dtype=ft)
    if x.ndim != 3 or x.shape[2] != config.input_size or x.shape[1] < 1 or x.shape[0] < 1:
        raise ValueError(f"x: got shape {x.shape}; must be (B, T, input_size={config.input_size}), B, T >= 1")
    B, T, _ = x.shape
    shape_o = (B, T, config.output_size)
    trace = {"format": np.array(FORMAT), "schema_version": np.array(SCHEMA_VERSION, dtype=np.int64),
             "config": np.array(config.to_json()), "dtype": np.array(dtype),
             "producer": np.array("ntm_ref (NumPy reference engine)")}
    trace.update({f"param/{k}": v for k, v in params.items()})
    trace.update({f"buffer/{k}": v for k, v in buffers.items()})
    trace["input/x"] = x
    if y is not None:
        y = np.asarray(y, dtype=ft)
        if y.shape != shape_o:
            raise ValueError(f"y: got shape {y.shape}; must be (B, T, output_size) = {shape_o}")
        trace["input/y"] = y
        trace["input/mask"] = normalise_mask(mask, shape_o, dtype=ft).copy()
    elif mask is not None:
        raise ValueError("mask: given without targets y")

    state0 = initial_state(params, config, buffers, B)
    trace["init/memory"], trace["init/reads"] = state0.memory, state0.reads
    trace["init/w_read"], trace["init/w_write"] = state0.w_read, state0.w_write
    for l, (h, c) in enumerate(zip(state0.controller.h, state0.controller.c)):
        trace[f"init/ctrl.h.{l}"], trace[f"init/ctrl.c.{l}"] = h, c

    logits, caches = forward_pass(params, config, x, state0)
    trace.update(_forward_arrays(caches, logits))
    if y is not None:
        loss, loss_cache = bce_bits_forward(logits, trace["input/y"], trace["input/mask"])
        grads, dx, dstate0 = backward_pass(params, config, bce_bits_backward(loss_cache), caches)
        initial_state_backward(dstate0, params, config, grads)
        trace["loss"] = np.array(loss, dtype=ft)
        trace.update({f"grad/{k}": grads[k] for k in params})
        trace["grad/input/x"] = dx
    wrong = sorted(k for k, v in trace.items() if v.dtype.kind == "f" and v.dtype != ft)
    assert not wrong, f"arrays not in {dtype}: {wrong}"      # a precision leak in the model code
    return trace


def real_array_problem(a, finite=False, low=None, high=None):
    """What makes ``a`` unusable as real numbers (None when nothing): a dtype that is not bool, integer,
    float32 or float64 (strings, complex, float16 and the like are refused, never converted), or with
    finite=True a NaN or infinity, or a value outside [low, high]. -> one phrase, e.g.
    'holds 2 NaN or infinite value(s), the first at index (0, 3, 1)'."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and a.dtype not in (np.float32, np.float64)):
        kind = {"c": "complex numbers", "U": "text", "S": "bytes", "O": "Python objects"}.get(a.dtype.kind)
        what = f" ({kind})" if kind else ""
        return f"has dtype {a.dtype}{what}; must be real numbers (bool, integer, float32 or float64)"
    if finite:
        bad = ~np.isfinite(a) if a.dtype.kind == "f" else np.zeros(a.shape, dtype=bool)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            return f"holds {int(bad.sum())} NaN or infinite value(s), the first at index {first}"
    if low is not None and a.size:
        out = (a < low) | (a > high)
        if out.any():
            first = tuple(int(i) for i in np.argwhere(out)[0])
            return (f"holds {int(out.sum())} value(s) outside [{low:g}, {high:g}], the first {a[first].item()!r} "
                    f"at index {first}")
    return None


def input_problem(x, y=None, mask=None):
    """The first unusable input as (name, phrase), or None: x (B, T, I) must be finite real numbers,
    targets y (B, T, O) and mask ((B, T) or (B, T, O)) real numbers in [0, 1] (None: absent)."""
    for name, a, limits in (("x", x, {}), ("y", y, dict(low=0.0, high=1.0)), ("mask", mask, dict(low=0.0, high=1.0))):
        problem = None if a is None else real_array_problem(a, finite=True, **limits)
        if problem:
            if "outside" in problem:
                problem += {"y": " (targets are probabilities)", "mask": " (a mask weighs each output by 0 to 1)"}[name]
            return name, problem
    return None


def check_inputs(x, y=None, mask=None):
    """ValueError naming the array ('y: holds 2 value(s) outside [0, 1], ...') when input_problem finds one."""
    problem = input_problem(x, y, mask)
    if problem:
        raise ValueError(f"{problem[0]}: {problem[1]}")


def _forward_arrays(caches, logits):
    """Every step's values stacked over time (axis 1), the 'fwd/' arrays of the schema: the model's own
    trace_from_caches, plus the LSTM state of every layer."""
    out = {}
    for l in range(len(caches[0].state.controller.h)):
        out[f"fwd/ctrl.h.{l}"] = np.stack([c.state.controller.h[l] for c in caches], axis=1)
        out[f"fwd/ctrl.c.{l}"] = np.stack([c.state.controller.c[l] for c in caches], axis=1)
    out.update({f"fwd/{k}": v for k, v in trace_from_caches(caches, logits).items()})
    return out


def forward_order(config: NTMConfig):
    """The 'fwd/' names of one step in the order the step computes them (for the config's step order)."""
    names = []
    if config.controller == "lstm":
        for l in range(len(config.controller_sizes)):
            names += [f"fwd/ctrl.h.{l}", f"fwd/ctrl.c.{l}"]
    names.append("fwd/controller_output")
    for kind, fields in (("read", HeadParams._fields[:5]), ("write", HeadParams._fields)):
        names += [f"fwd/{kind}.raw"] + [f"fwd/{kind}.{f}" for f in fields]
    read = [f"fwd/read.{s}" for s in HEAD_STAGES] + ["fwd/reads"]
    write = [f"fwd/write.{s}" for s in HEAD_STAGES] + ["fwd/memory"]
    names += read + write if config.step_order == "read_first" else write + read
    names.append("fwd/logits")
    return names


ACTIVATION_FIELDS = {"key": "key_activation", "beta": "beta_activation", "g": "gate_activation",
                     "s": "shift_activation", "gamma": "gamma_activation", "erase": "erase_activation",
                     "add": "add_activation"}


def operation_of(name, config=None):
    """The operation that computes a trace array, for messages: 'fwd/read.w_shifted' -> 'circular shift, eq 8'.
    With the trace's config, an activated head parameter names its activation: 'key activation (relu)'."""
    leaf = name.split("/")[-1]
    leaf = leaf.split(".", 1)[1] if leaf.startswith(("read.", "write.")) else leaf
    leaf = leaf.rsplit(".", 1)[0] if leaf.startswith("ctrl.") else leaf
    if name.startswith("grad/"):
        return "backward pass (gradient)"
    if name.startswith("init/"):
        return "initial state"
    if config is not None and name.startswith("fwd/") and leaf in ACTIVATION_FIELDS:
        return f"{OPERATIONS[leaf].replace(' (softmax)', '')} ({getattr(config, ACTIVATION_FIELDS[leaf])})"
    return OPERATIONS.get(leaf, "")


def randomise_biases(params, seed):
    """Move parameters (a dict, changed in place) to a generic point: biases, and LSTM initial states, drawn
    N(0, 0.5) from seed + 100 instead of their zero starting values, so no value sits on a symmetry or kink
    and a wiring mistake anywhere shows in the numbers.  -> params."""
    rng = np.random.default_rng(seed + 100)
    for key, value in params.items():
        if key.endswith((".b", ".h0", ".c0")):
            value[:] = rng.normal(0.0, 0.5, size=value.shape)
    return params


def random_params(config, seed):
    """init_params(config, seed) at a generic point (randomise_biases)."""
    return randomise_biases(init_params(config, seed), seed)


# ---------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------

def check_trace_path(path, overwrite=False):
    """Where a trace may be written: a file path (not empty, not a folder) in a folder that exists, new
    unless overwrite.  FileExistsError or ValueError (one line naming the path) otherwise."""
    if not path:
        raise ValueError("the trace's path is empty")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder; give a file path such as {os.path.join(path, 'trace.npz')}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path}: exists; choose another path or pass --force")
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        raise ValueError(f"{path}: no such folder {folder}")


def save_trace(path, trace, overwrite=False):
    """Write a trace to ``path`` (.npz, uncompressed) via a temporary file beside it and a rename.

    FileExistsError when path exists (and not overwrite); ValueError for an empty path, a folder, or a
    folder that does not exist. The temporary file is this process's own (its name holds the process id)
    and is removed on any failure, Ctrl-C included: an error leaves no file behind and path untouched.
    """
    check_trace_path(path, overwrite)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:            # a file object: numpy.savez adds no '.npz' to its name
            np.savez(f, **trace)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_trace(path):
    """Read a trace (ours or another implementation's) and check it is one: -> dict name -> array.

    Raises TraceError (one line naming the file) for a missing or unreadable file, a file that is not an
    .npz, needs pickle, declares arrays too large for the memory (npzio.read_npz: checked before any array
    is read), is not a trace, or has another schema version.
    """
    try:
        arrays = read_npz(path, "")
    except NpzError as err:
        if err.problem == "no such file":
            raise TraceError(f"{path}: no such file") from None
        raise TraceError(f"{path}: not a readable .npz trace: {err.problem}") from None
    if "format" not in arrays or arrays["format"].shape != () or str(arrays["format"]) != FORMAT:
        raise TraceError(f"{path}: not an ntm_ref trace (entry 'format' must be {FORMAT!r}; "
                         f"see docs/trace-format.md)")
    if "schema_version" not in arrays or arrays["schema_version"].shape != () \
            or arrays["schema_version"].dtype.kind not in "iu":
        raise TraceError(f"{path}: entry 'schema_version' missing or not an integer scalar")
    version = int(arrays["schema_version"])
    if version != SCHEMA_VERSION:
        raise TraceError(f"{path}: schema version {version}; this ntm_ref reads version {SCHEMA_VERSION}")
    return arrays


def trace_config(arrays, path="trace"):
    """The NTMConfig stored in a trace (TraceError when absent or invalid)."""
    if "config" not in arrays:
        raise TraceError(f"{path}: no 'config' entry")
    try:
        return NTMConfig.from_dict(json.loads(str(arrays["config"])))
    except (ValueError, TypeError) as err:
        raise TraceError(f"{path}: bad config: {err}") from None


def params_of(arrays, prefix="param/"):
    """The arrays under a prefix ('param/', 'buffer/', 'grad/'), without it."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------------------------------
# named presets (the golden traces in tests/golden are these, with seed 0)
# ---------------------------------------------------------------------------------------------------

TINY_SIZES = dict(input_size=4, output_size=3, memory_slots=8, memory_width=5)
PRESETS = {
    # several heads of each kind on a feedforward controller of two layers
    "tiny-ff": dict(config=dict(TINY_SIZES, controller_size=(6, 5), read_heads=2, write_heads=2),
                    batch=2, steps=5),
    # a two-layer LSTM controller, two read heads, one write head, writing before reading
    "tiny-lstm": dict(config=dict(TINY_SIZES, controller="lstm", controller_size=(5, 4), read_heads=2,
                                  write_heads=1, step_order="write_first"), batch=2, steps=5),
    # the paper's copy configuration (FF controller 100, memory 128 x 20, one head of each kind), its
    # initial parameters, on one copy sequence of 3 vectors (7 steps)
    "copy": dict(config=dict(input_size=9, output_size=8, controller_size=100), task="copy", length=3),
}


def preset_config(name, overrides=None):
    """The NTMConfig of a preset, with field overrides (ValueError naming a bad preset or field)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(map(repr, PRESETS))}")
    return NTMConfig.from_dict({**PRESETS[name]["config"], **(overrides or {})})


def preset_inputs(name, config, seed=0):
    """The inputs of a preset: x (B, T, I), binary targets y (B, T, O), mask (B, T) with sequences of
    different lengths (tiny presets), or one copy-task sequence (copy).  Drawn from ``seed``."""
    preset = PRESETS[name]
    rng = np.random.default_rng(seed + 200)
    if preset.get("task") == "copy":
        from tasks import make_task
        return make_task("copy").batch(rng, 1, min_length=preset["length"], max_length=preset["length"])
    B, T = preset["batch"], preset["steps"]
    x = rng.normal(size=(B, T, config.input_size))
    y = (rng.random((B, T, config.output_size)) > 0.5).astype(np.float64)
    mask = np.ones((B, T))
    for b in range(1, B):
        mask[b, T - b:] = 0.0                    # sequence b is b steps shorter
    return x, y, mask


def preset_trace(name, seed=0, overrides=None, dtype="float64"):
    """The trace of a preset: tiny presets at a generic point (random_params), copy at its initial
    parameters (init_params), both drawn from ``seed``."""
    config = preset_config(name, overrides)
    params = init_params(config, seed) if PRESETS[name].get("task") else random_params(config, seed)
    x, y, mask = preset_inputs(name, config, seed)
    return make_trace(config, params, x, y, mask, init_buffers(config, seed), dtype)
