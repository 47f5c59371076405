"""Memory limits: how much a model, a batch or a trace would need, checked before anything is allocated.

A size typed by mistake (``--batch-size 100000000``, ``--set memory_slots=10000000000``) should be one line
saying how much memory it would take, not a MemoryError traceback after minutes of swapping. The estimates
here are deliberately rough (within a small factor of what the reference engine keeps for the backward
pass); they only need to tell "fits easily" from "cannot possibly fit".

Dimension legend: B batch, T time steps, N memory slots, M word width, R read heads, W write heads,
C controller size (summed over layers).
"""
from ntm_ref.npzio import available_bytes, format_bytes

BYTES = 8            # float64
# Refuse when an estimate exceeds this fraction of the memory available now: the rest is the operating
# system's, the interpreter's and the other arrays' (the estimates are rough, so leave room).
USABLE_FRACTION = 0.8


class ResourceError(ValueError):
    """An estimate exceeds the memory available; the message is one line with both numbers."""


def check_fits(needed, what, available=None):
    """Raise ResourceError (one line, naming ``what``) when ``needed`` bytes exceed the usable memory."""
    available = available_bytes() if available is None else available
    if available is not None and needed > USABLE_FRACTION * available:
        raise ResourceError(f"{what} would need about {format_bytes(needed)} of memory; this machine has "
                            f"{format_bytes(available)} available")


def array_bytes(shapes):
    """Bytes of float64 arrays of the given shapes (a dict name -> shape, or an iterable of shapes)."""
    total = 0
    for shape in (shapes.values() if isinstance(shapes, dict) else shapes):
        n = 1
        for d in shape:
            n *= int(d)
        total += n
    return BYTES * total


def model_bytes(config):
    """Parameters and fixed buffers of an NTM config (or the LSTM baseline's controller), with room for
    their gradients and the optimiser's state (x4)."""
    from ntm_ref.model import array_shapes
    params, buffers = array_shapes(config)
    return 4 * array_bytes(params) + array_bytes(buffers)


def run_bytes(config, batch, steps, dtype="float64"):
    """Bytes a forward and backward pass (or a trace) over B = batch sequences of T = steps time steps
    needs, within a small factor of the measured peak (1.1-1.6x of tracemalloc's on four configurations):
    per sequence and step the memory before, after and kept by each write head ((3 + 2 W) N M), each
    head's weightings and addressing intermediates, the controller's activations, the head parameters,
    reads, inputs and outputs, each kept for the backward pass (and again stacked in a trace); per step the
    arrays' own overhead; and the parameters with their gradients (3x)."""
    import numpy as np
    from ntm_ref.model import array_shapes
    itemsize = np.dtype(dtype).itemsize
    c = config
    N, M, R, W = c.memory_slots, c.memory_width, c.read_heads, c.write_heads
    C = sum(c.controller_sizes) * (4 if c.controller == "lstm" else 1)
    per_step = ((3 + 2 * W) * N * M + 14 * (R + W) * N + 12 * C + 3 * (R * c.read_head_size + W * c.write_head_size)
                + 3 * R * M + 3 * c.input_size + 3 * c.output_size)
    params, buffers = array_shapes(config)
    n_params = array_bytes(list(params.values()) + list(buffers.values())) // BYTES
    return batch * steps * per_step * itemsize + steps * 150 * 128 + 3 * n_params * itemsize
