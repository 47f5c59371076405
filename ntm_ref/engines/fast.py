"""The fast engine: for speed, not for reading. The same loss, gradients, dx and dstate0 as the reference
engine (ntm_ref.model), about 1.6x sooner (docs/model.md, "Speed"); tests/test_fast.py checks it against
the reference on every configuration field to rtol 1e-10.

To learn how an NTM computes, read ntm_ref/model.py and the operations it calls; this module computes the
same function with the work regrouped, and each fused block maps to reference functions as follows:

    fused block (here)                       reference functions it fuses                       equations
    ---------------------------------------  -------------------------------------------------  ---------
    _act_forward / _act_backward,            activations.ACTIVATIONS (in place, one call per     3.3
      _softmax_last                            field for all heads)
    _fused_controller_forward / _backward    controller.controller_forward / _backward, with     -
                                               the x_t W_x part of linear.linear_forward hoisted
                                               out of the time loop
    _fused_heads_forward / _backward         model._heads_from_controller / _heads_backward:     3.3
                                               linear.linear_forward + clip_forward +
                                               heads.heads_forward for all R + W heads at once
                                               (columns permuted by a Packing: one slice per field)
    _memory_norm                             the norms |M(i)| of addressing.cosine_similarity,   6
                                               shared by every head addressing the same memory
    _fused_address_forward / _backward       addressing.address_forward / _backward (content,    5-9, 2
                                               interpolate, shift, sharpen) for all heads at once;
                                               the backward fuses the memory-gradient products of
                                               memory.read_backward and content_backward
    _write_factors, _times_others,           memory.write_forward / _backward (erase with all    3-4
      _fused_write_forward / _backward         heads, then add; products of the other heads'
                                               factors by prefix/suffix, never division)
    _forward / _backward                     model.forward_pass / backward_pass (step_forward /  -
                                               step_backward in both step orders), with the output
                                               layer (linear + clip) of all T steps as one product
    run                                      NTM.run on the reference engine: state.initial_state, -
                                               the passes, loss.bce_bits_forward / _backward,
                                               state.initial_state_backward

Dimension legend: B batch, T time steps, I input width, O output width, N memory slots, M word width,
R read heads, W write heads, H = R + W all heads, S = 2 * shift_range + 1 shift-kernel width,
C controller output width (C_l of layer l, D_l its input width), P all raw head parameters (R P_r + W P_w).

What makes it fast (measured on the 2-core machines, see benchmarks/throughput.py):
  * work hoisted out of the time loop: the input projection x W_x of all steps is one product before the
    loop; the output layer of all steps ([h_t, r_t] W_out) is one product after it, and so is its backward;
    every weight gradient is one product over all T B rows after the backward loop (per-step activations
    and pre-activation gradients are stacked in (T, B, ...) buffers);
  * all heads' raw parameters come from one product h W_heads, whose columns are permuted once so that
    each kind of parameter (all keys, all betas, ...) is one contiguous slice: one activation call per
    field for all heads, and in read_first one addressing call for all H = R + W heads (they all address
    M_{t-1}), which shares the memory norms;
  * per-sequence buffers allocated once (memory history (T + 1, B, N, M), weightings, ...), no np.roll,
    cumprod or 4-D einsum in the step; the memory-gradient products of reading and addressing fused in
    one batched matmul;
  * optionally (threads=2), the batch split in two halves run in two Python threads; measured slower
    than one thread on these machines, so off by default (see N_THREADS).

Public API: ``supports(config)`` and ``run(params, config, buffers, x, y=None, mask=None, state=None)``
returning an ntm_ref.state.RunResult with ``caches=None``.
"""
import concurrent.futures
import os
import threading
from typing import List, NamedTuple, Optional

import numpy as np
from scipy.special import expit

from ntm_ref.activations import ACTIVATIONS, backward_from_values
from ntm_ref.config import NTMConfig
from ntm_ref.controller import ControllerState
from ntm_ref.heads import WRITE_FIELDS, head_layout
from ntm_ref.loss import bce_bits_backward, bce_bits_forward, normalise_mask
from ntm_ref.state import NTMState, RunResult, initial_state, initial_state_backward

# The batch can be split over two Python threads (threads=2, or FAST_NTM_THREADS=2 in the environment),
# from THREAD_MIN_BATCH sequences on. Off by default: measured on a quiet 2-core machine (benchmarks/
# throughput.py, 2026-11-25) two threads were slower than one (batch 16: 249 vs 442 sequences/s;
# batch 64: 549 vs 685): the per-step NumPy calls are small and the threads wait on the GIL.
THREAD_MIN_BATCH = 16
N_THREADS = max(1, min(2, int(os.environ.get("FAST_NTM_THREADS", "1"))))


def supports(config) -> bool:
    """True for NTMConfigs with the default epsilon modes (cosine "smooth_norm", sharpening "base", any
    epsilon values) and no cosine_input_offset: both controllers with any layers, any numbers of read and
    write heads, both step orders, both shift conventions, every activation, every memory init, clipping
    on or off. The others run on the reference engine (NTM.run chooses it)."""
    return (isinstance(config, NTMConfig) and config.cosine_epsilon_mode == "smooth_norm"
            and config.sharpen_epsilon_mode == "base" and config.cosine_input_offset == 0.0)


# ---------------------------------------------------------------------------------------------------
# activations: the table of ntm_ref.activations, one call per field for all heads
# ---------------------------------------------------------------------------------------------------

# The common maps are written in place into the tape, without temporaries: calling the table for them
# made the copy configuration 11% slower at batch 1 and 16 (median of 7 interleaved runs, 2026-11-30);
# every other name goes through ntm_ref.activations' table. The agreement tests (tests/test_fast.py) run
# every activation of every field against the reference.

def _act_forward(name, x, out):
    """out = act(x) for any activation of ntm_ref.activations.ACTIVATIONS.  x, out: same shape."""
    if name == "tanh":
        np.tanh(x, out=out)
    elif name == "sigmoid":
        expit(x, out=out)
    elif name == "identity":
        out[...] = x
    elif name in ("softplus", "oneplus"):
        np.logaddexp(0.0, x, out=out)
        if name == "oneplus":
            out += 1.0
    elif name == "softmax":
        _softmax_last(x, out)
    else:
        out[...] = ACTIVATIONS[name][0](x)[0]


def _act_backward(name, dy, x, y, out):
    """out = dL/dx from the activation's input x and output y (activations.backward_from_values)."""
    if name == "tanh":
        np.multiply(dy, 1.0 - y ** 2, out=out)
    elif name == "sigmoid":
        np.multiply(dy * y, 1.0 - y, out=out)
    elif name == "identity":
        out[...] = dy
    elif name in ("softplus", "oneplus"):
        np.multiply(dy, expit(x), out=out)
    elif name == "softmax":
        np.multiply(y, dy - np.einsum("...s,...s->...", dy, y)[..., None], out=out)
    else:
        out[...] = backward_from_values(name, dy, x, y)


def _softmax_last(x, out):
    """out = softmax of x along its last axis (ntm_ref.activations.softmax_forward).  x, out (..., K)."""
    np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


# ---------------------------------------------------------------------------------------------------
# the permuted head packing: one product for all heads, one slice per field
# ---------------------------------------------------------------------------------------------------

class Packing(NamedTuple):
    """Where each head parameter lives in the permuted raw vector (B, P) of all heads.

    perm[j] is the column of concat([read.W, write.W], axis=1) that permuted column j comes from; the
    permuted vector is [keys of all H heads (H M) | beta (H) | g (H) | shifts (H S) | gamma (H) |
    erase (W M) | add (W M)], heads in the order read 0..R-1, write 0..W-1.
    """
    perm: np.ndarray          # (P,)
    fields: dict              # field -> slice of the permuted vector
    acts: dict                # field -> activation name


def make_packing(config) -> Packing:
    """The permutation and field slices for config (computed once per call, no time or batch)."""
    c = config
    R, Wh = c.read_heads, c.write_heads
    Pr, Pw = c.read_head_size, c.write_head_size
    kinds = (("read", R, Pr, 0), ("write", Wh, Pw, R * Pr))
    spans = {kind: {f: (a, b, act) for f, a, b, act in head_layout(c, kind)} for kind, *_ in kinds}
    cols, fields, acts, at = [], {}, {}, 0
    for field in WRITE_FIELDS:
        start = at
        for kind, n_heads, P, base in kinds:
            if field not in spans[kind]:
                continue
            a, b, act = spans[kind][field]
            idx = base + np.arange(n_heads)[:, None] * P + np.arange(a, b)[None, :]
            cols.append(idx.ravel())
            at += idx.size
            acts[field] = act
        fields[field] = slice(start, at)
    return Packing(np.concatenate(cols), fields, acts)


class Weights(NamedTuple):
    """The parameters rearranged for the engine (views or small copies of params)."""
    ctrl_W: List[np.ndarray]  # per layer (D_l [+ C_l], C_l or 4 C_l)
    ctrl_b: List[np.ndarray]
    heads_W: np.ndarray       # (C, P) permuted columns of [read.W, write.W]
    heads_b: np.ndarray       # (P,)
    out_W: np.ndarray         # (C + R M, O)
    out_b: np.ndarray         # (O,)


def _weights(params, config, packing) -> Weights:
    L = len(config.controller_sizes)
    W = np.concatenate([params["read.W"], params["write.W"]], axis=1)[:, packing.perm]
    b = np.concatenate([params["read.b"], params["write.b"]])[packing.perm]
    return Weights([params[f"ctrl.{l}.W"] for l in range(L)], [params[f"ctrl.{l}.b"] for l in range(L)],
                   np.ascontiguousarray(W), b, params["out.W"], params["out.b"])


# ---------------------------------------------------------------------------------------------------
# the tape: every per-step value the backward needs, in buffers allocated once per sequence
# ---------------------------------------------------------------------------------------------------

class Tape(NamedTuple):
    """Forward values of a batch of sequences, time first.  Index t = step t (t + 1 for "after step t")."""
    U: List[np.ndarray]       # per layer (T, B, D_l [+ C_l]): the layer's input [x | r_{t-1}] or [h_{l-1}]
                              # (+ h_prev for LSTM); layer 0's x part is filled before the loop
    A: List[np.ndarray]       # per layer (T, B, C_l) feedforward outputs, or (T, B, 4 C_l) LSTM gates i f o g
    cell: List[np.ndarray]    # per LSTM layer (T + 1, B, C_l) cell states c_t; [] for feedforward
    tanh_c: List[np.ndarray]  # per LSTM layer (T, B, C_l)
    raw: np.ndarray           # (T, B, P) raw head parameters after clipping (permuted packing)
    act: np.ndarray           # (T, B, P) activated head parameters
    mem: np.ndarray           # (T + 1, B, M, N) memory M_t, TRANSPOSED (slots last: broadcasts run along N)
    keep: np.ndarray          # (T, B, M, N) prod_h (1 - w_h e_h^T) of step t's write, transposed
    scratch: np.ndarray       # (B, M, N) a memory-sized work buffer
    mem_norm: np.ndarray      # (T + 1, B, N) sqrt(|M_t(i)|^2 + cosine_epsilon)
    w: np.ndarray             # (T + 1, B, H, N) weightings of all heads (read first), w[0] = initial
    key_norm: np.ndarray      # (T, B, H)
    K: np.ndarray             # (T, B, H, N) cosine similarities (eq 6)
    w_content: np.ndarray     # (T, B, H, N) eq 5
    w_gated_pad: np.ndarray   # (T, B, H, N + 2 sr) eq 7, circularly padded by sr = shift_range each side
    w_shift_eps: np.ndarray   # (T, B, H, N) eq 8 output + sharpen_epsilon
    log_w: np.ndarray         # (T, B, H, N) log(w~ + sharpen_epsilon)
    hr: np.ndarray            # (T, B, C + R M) [h_t, r_t]: the output layer's input
    logits: np.ndarray        # (T, B, O) after clipping
    # work space of the backward pass
    dZ: List[np.ndarray]      # like A: every layer's pre-activation gradients
    draw: np.ndarray          # (T, B, P) gradients of the raw head parameters
    dhr: np.ndarray           # (T, B, C + R M) the output layer's gradient w.r.t. [h_t, r_t]
    G: np.ndarray             # (2, B, M, N) dLoss/dM_t (transposed), double-buffered
    scratch2: np.ndarray      # (B, M, N) a second memory-sized work buffer
    heads_F: np.ndarray       # (B, W, M, N) the write factors F_h of one step (W > 1 only)
    heads_dF: np.ndarray      # (B, W, M, N) dF times the product of the other heads' factors (W > 1 only)


# Tapes are reused between calls (first-touch page faults of fresh 50 MB buffers cost more than the
# arithmetic): one per calling thread and batch part, reallocated when the config or batch size changes
# or T grows; a shorter T uses views of the first steps.
_TAPES = threading.local()
_TIME_FIELDS_PLUS_ONE = ("cell", "mem", "mem_norm", "w")


def _tape(config, B, T, part):
    """A Tape for config, batch B and T steps (reused; its contents are garbage until written)."""
    cache = _TAPES.__dict__.setdefault("tapes", {})
    entry = cache.get(part)
    if entry is None or entry[0] != config or entry[1] != B or entry[2] < T:
        entry = (config, B, T, _allocate(config, B, T))
        cache[part] = entry
    full, T_full = entry[3], entry[2]
    if T_full == T:
        return full
    views = {}
    for name, value in full._asdict().items():
        stop = T + 1 if name in _TIME_FIELDS_PLUS_ONE else T
        if name in ("scratch", "scratch2", "G", "heads_F", "heads_dF"):
            views[name] = value
        elif isinstance(value, list):
            views[name] = [a[:stop] for a in value]
        else:
            views[name] = value[:stop]
    return Tape(**views)


def _allocate(config, B, T):
    c = config
    N, M, R, Wh = c.memory_slots, c.memory_width, c.read_heads, c.write_heads
    H, sr = R + Wh, c.shift_range
    sizes = c.controller_sizes
    lstm = c.controller == "lstm"
    P = R * c.read_head_size + Wh * c.write_head_size
    U, A, cell, tanh_c = [], [], [], []
    width = c.input_size + R * M
    for C_l in sizes:
        U.append(np.empty((T, B, width + (C_l if lstm else 0))))
        A.append(np.empty((T, B, 4 * C_l if lstm else C_l)))
        if lstm:
            cell.append(np.empty((T + 1, B, C_l)))
            tanh_c.append(np.empty((T, B, C_l)))
        width = C_l
    C = sizes[-1]
    e = np.empty
    return Tape(U, A, cell, tanh_c, e((T, B, P)), e((T, B, P)), e((T + 1, B, M, N)), e((T, B, M, N)),
                e((B, M, N)), e((T + 1, B, N)),
                e((T + 1, B, H, N)), e((T, B, H)), e((T, B, H, N)), e((T, B, H, N)), e((T, B, H, N + 2 * sr)),
                e((T, B, H, N)), e((T, B, H, N)), e((T, B, C + R * M)), e((T, B, c.output_size)),
                [np.empty_like(a) for a in A], e((T, B, P)), e((T, B, C + R * M)), e((2, B, M, N)),
                e((B, M, N)), *(e((B, Wh, M, N)) if Wh > 1 else None for _ in range(2)))


def _memory_norm(memory, out, eps):
    """sqrt(|M(i)|^2 + eps) for every slot (eq 6's memory norm).  memory (B, M, N) -> out (B, N)."""
    np.einsum("bmn,bmn->bn", memory, memory, out=out)
    out += eps
    np.sqrt(out, out=out)


# ---------------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------------

def _fused_controller_forward(wts, config, tape, t, Z0):
    """Controller of step t for all layers (reference: controller_forward, feedforward_/lstm_forward).

    Layer 0's input projection x_t W_x + b was hoisted (Z0 (T, B, C_0 or 4 C_0)); here only the
    recurrent part [r_{t-1} (, h_prev)] W_rest is added.  -> h_t of the last layer (B, C).
    """
    c = config
    lstm = c.controller == "lstm"
    L = len(c.controller_sizes)
    I = c.input_size
    for l in range(L):
        U, A = tape.U[l], tape.A[l]
        Wl = wts.ctrl_W[l]
        if l == 0:
            z = Z0[t] + U[t, :, I:] @ Wl[I:]
        else:
            z = U[t] @ Wl + wts.ctrl_b[l]
        if not lstm:
            # feedforward: h = act(x W + b)
            _act_forward(c.controller_activation, z, A[t])
            h = A[t]
        else:
            # LSTM: [i f o g] = [x, h_prev] W + b; c = f c_prev + i g; h = o tanh(c)
            C_l = c.controller_sizes[l]
            gates = A[t]
            expit(z[:, :3 * C_l], out=gates[:, :3 * C_l])
            np.tanh(z[:, 3 * C_l:], out=gates[:, 3 * C_l:])
            i, f, o, g = (gates[:, k * C_l:(k + 1) * C_l] for k in range(4))
            cell = tape.cell[l]
            np.multiply(f, cell[t], out=cell[t + 1])
            cell[t + 1] += i * g
            np.tanh(cell[t + 1], out=tape.tanh_c[l][t])
            h = o * tape.tanh_c[l][t]
            if t + 1 < U.shape[0]:
                U[t + 1, :, -C_l:] = h          # h_prev of the next step
        if l + 1 < L:
            tape.U[l + 1][t, :, :h.shape[1]] = h
    return h


def _fused_heads_forward(wts, config, packing, tape, t, h):
    """raw = clip(h W_heads + b_heads), then every field's activation, for all H heads at once.

    Reference: model._heads_from_controller (linear_forward, clip_forward, heads_forward).
    """
    raw = tape.raw[t]
    np.matmul(h, wts.heads_W, out=raw)
    raw += wts.heads_b
    if config.clip_value is not None:
        np.clip(raw, -config.clip_value, config.clip_value, out=raw)
    act = tape.act[t]
    B, S = raw.shape[0], config.shift_width
    for field, sl in packing.fields.items():
        if field == "s":                      # a softmax along each head's S entries
            _act_forward(packing.acts[field], raw[:, sl].reshape(B, -1, S), act[:, sl].reshape(B, -1, S))
        else:
            _act_forward(packing.acts[field], raw[:, sl], act[:, sl])


def _head_fields(config, packing, act_t, heads):
    """Views of the activated parameters of the heads in ``heads`` (a slice of 0..H-1).

    -> key (B, h, M), beta (B, h), g (B, h), s (B, h, S), gamma (B, h) for h = len(heads).
    """
    B, M, S = act_t.shape[0], config.memory_width, config.shift_width
    f = packing.fields
    key = act_t[:, f["key"]].reshape(B, -1, M)[:, heads]
    s = act_t[:, f["s"]].reshape(B, -1, S)[:, heads]
    return key, act_t[:, f["beta"]][:, heads], act_t[:, f["g"]][:, heads], s, act_t[:, f["gamma"]][:, heads]


def _fused_address_forward(config, packing, tape, t, heads, memory, mem_norm):
    """Eqs 5-9 for the heads in ``heads`` on ``memory`` (B, M, N, transposed) with its norms (B, N).

    Fuses addressing.address_forward: cosine_similarity_forward, content_forward, interpolate_forward,
    shift_forward (as slices of a circularly padded weighting, no index gather), sharpen_forward.
    Reads w_{t-1} from tape.w[t] and writes w_t into tape.w[t + 1][:, heads].
    """
    sr, N = config.shift_range, config.memory_slots
    key, beta, g, s, gamma = _head_fields(config, packing, tape.act[t], heads)
    # eq 6: K = k . M(i) / (||k|| ||M(i)||)
    kn = tape.key_norm[t][:, heads]
    np.sqrt(np.einsum("bhm,bhm->bh", key, key) + config.cosine_epsilon, out=kn)
    dot = key @ memory                                                 # 'bhm,bmn->bhn'
    K = tape.K[t][:, heads]
    np.divide(dot, kn[:, :, None] * mem_norm[:, None, :], out=K)
    # eq 5: w_c = softmax(beta K)
    wc = tape.w_content[t][:, heads]
    _softmax_last(beta[:, :, None] * K, wc)
    # eq 7: w_g = g w_c + (1 - g) w_prev, stored circularly padded for eq 8
    gate = g[:, :, None]
    pad = tape.w_gated_pad[t][:, heads]
    wg = pad[:, :, sr:sr + N]
    np.add(gate * wc, (1.0 - gate) * tape.w[t][:, heads], out=wg)
    if sr:
        pad[:, :, :sr] = wg[:, :, N - sr:]
        pad[:, :, sr + N:] = wg[:, :, :sr]
    # eq 8: w~(i) = sum_k s[k] w_g((i - d_k) mod N), d_k = k - sr: window 2 sr - k of the padded w_g
    windows = np.lib.stride_tricks.sliding_window_view(pad, N, axis=2)        # (B, h, S, N), window p
    w_eps = tape.w_shift_eps[t][:, heads]
    # (a "correlation" applies the kernel reversed: then s itself is the kernel read backwards)
    s_rev = s if config.shift_convention == "correlation" else s[:, :, ::-1]
    np.matmul(s_rev[:, :, None, :], windows, out=w_eps[:, :, None, :])       # p = 2 sr - k
    w_eps += config.sharpen_epsilon
    # eq 9: w = softmax(gamma log(w~ + eps))
    log_w = tape.log_w[t][:, heads]
    np.log(w_eps, out=log_w)
    _softmax_last(gamma[:, :, None] * log_w, tape.w[t + 1][:, heads])


def _write_factors(w, erase, out):
    """F_h = 1 - e_h w_h^T (transposed) for every write head.  w (B, W, N), erase (B, W, M) -> out (B, W, M, N)."""
    np.multiply(erase[:, :, :, None], w[:, :, None, :], out=out)
    return np.subtract(1.0, out, out=out)


def _times_others(F, dF, out):
    """out[:, h] = dF * prod_{h' != h} F_h' for W >= 2 heads.  F (B, W, M, N), dF (B, M, N) -> out (B, W, M, N).

    memory._products_of_others times dF, by prefix and suffix products and never by division (exact when a
    factor is zero: a slot fully erased): a running product from the left, started at dF, then each head
    times the running product from its right.  3 W - 4 products of (B, M, N) arrays instead of W^2."""
    Wh = F.shape[1]
    out[:, 0] = dF
    for h in range(1, Wh):
        np.multiply(out[:, h - 1], F[:, h - 1], out=out[:, h])       # dF prod_{h' < h} F_h'
    right = F[:, Wh - 1].copy()                                       # prod_{h' > h} F_h'
    for h in range(Wh - 2, -1, -1):
        out[:, h] *= right
        if h:
            right *= F[:, h]
    return out


def _fused_write_forward(config, packing, tape, t, memory, out):
    """Eqs 3-4 for all write heads (memory.write_forward), transposed memory (B, M, N):
    out = M (prod_h F_h) + sum_h a_h w_h^T with F_h = 1 - e_h w_h^T; prod_h F_h is kept in tape.keep[t]."""
    R, M = config.read_heads, config.memory_width
    B = memory.shape[0]
    act = tape.act[t]
    erase = act[:, packing.fields["erase"]].reshape(B, -1, M)
    add = act[:, packing.fields["add"]].reshape(B, -1, M)
    w = tape.w[t + 1][:, R:]
    keep = tape.keep[t]
    if w.shape[1] == 1:
        np.multiply(erase[:, 0, :, None], w[:, 0, None, :], out=keep)       # e w^T as a broadcast
        np.subtract(1.0, keep, out=keep)
        np.multiply(memory, keep, out=out)
        np.multiply(add[:, 0, :, None], w[:, 0, None, :], out=tape.scratch)
        out += tape.scratch
    else:
        np.prod(_write_factors(w, erase, tape.heads_F), axis=1, out=keep)
        np.multiply(memory, keep, out=out)
        out += add.transpose(0, 2, 1) @ w                                     # 'bhm,bhn->bmn'


def _forward(wts, config, packing, x, state0, tape):
    """All T steps (model.forward_pass with step_forward).  x (B, T, I) -> tape, filled."""
    c = config
    B, T, I = x.shape
    R, M, H = c.read_heads, c.memory_width, c.read_heads + c.write_heads
    C = c.controller_sizes[-1]
    lstm = c.controller == "lstm"
    tape.U[0][:, :, :I] = x.transpose(1, 0, 2)
    # the initial state
    tape.mem[0] = state0.memory.transpose(0, 2, 1)
    tape.w[0][:, :R] = state0.w_read
    tape.w[0][:, R:] = state0.w_write
    tape.U[0][0, :, I:I + R * M] = state0.reads.reshape(B, -1)
    if lstm:
        for l, C_l in enumerate(c.controller_sizes):
            tape.U[l][0, :, -C_l:] = state0.controller.h[l]
            tape.cell[l][0] = state0.controller.c[l]
    _memory_norm(tape.mem[0], tape.mem_norm[0], c.cosine_epsilon)
    # hoisted: layer 0's input projection for every step at once
    Z0 = x.transpose(1, 0, 2) @ wts.ctrl_W[0][:I] + wts.ctrl_b[0]            # (T, B, C_0 or 4 C_0)
    all_heads, reads, writes = slice(0, H), slice(0, R), slice(R, H)
    for t in range(T):
        h = _fused_controller_forward(wts, c, tape, t, Z0)
        tape.hr[t, :, :C] = h
        _fused_heads_forward(wts, c, packing, tape, t, h)
        m_prev, m_next = tape.mem[t], tape.mem[t + 1]
        w_read = tape.w[t + 1][:, reads]
        if c.step_order == "read_first":
            # every head addresses M_{t-1}: one call for all H heads
            _fused_address_forward(c, packing, tape, t, all_heads, m_prev, tape.mem_norm[t])
            r = w_read @ m_prev.transpose(0, 2, 1)                            # eq 2: r = w M
            _fused_write_forward(c, packing, tape, t, m_prev, m_next)
            _memory_norm(m_next, tape.mem_norm[t + 1], c.cosine_epsilon)
        else:
            _fused_address_forward(c, packing, tape, t, writes, m_prev, tape.mem_norm[t])
            _fused_write_forward(c, packing, tape, t, m_prev, m_next)
            _memory_norm(m_next, tape.mem_norm[t + 1], c.cosine_epsilon)
            _fused_address_forward(c, packing, tape, t, reads, m_next, tape.mem_norm[t + 1])
            r = w_read @ m_next.transpose(0, 2, 1)                            # eq 2: r = w M
        r = r.reshape(B, R * M)
        tape.hr[t, :, C:] = r
        if t + 1 < T:
            tape.U[0][t + 1, :, I:I + R * M] = r
    # hoisted: the output layer of every step at once, z = clip([h, r] W_out + b_out)
    np.matmul(tape.hr, wts.out_W, out=tape.logits)
    np.add(tape.logits, wts.out_b, out=tape.logits)
    if c.clip_value is not None:
        np.clip(tape.logits, -c.clip_value, c.clip_value, out=tape.logits)
    return tape


# ---------------------------------------------------------------------------------------------------
# backward
# ---------------------------------------------------------------------------------------------------

def _clip_mask(values, limit):
    """1 where a clipped value was strictly inside (-limit, limit) (linear.clip_backward's mask)."""
    return np.abs(values) < limit


def _fused_address_backward(config, packing, tape, t, heads, dw, memory, mem_norm, dact):
    """Gradients of eqs 5-9 for the heads in ``heads`` (addressing.address_backward: sharpen_backward,
    shift_backward, interpolate_backward, content_backward, cosine_similarity_backward, fused).

    dw (B, h, N) = dLoss/dw_t. Writes dkey, dbeta, dg, ds, dgamma (w.r.t. the activated parameters) into
    dact (B, P, permuted packing).  -> (dw_prev (B, h, N), ddot (B, h, N), dmem_diag (B, N)): the memory
    gradient is k^T ddot - dmem_diag[:, None, :] * M (transposed), left to the caller to fuse with other products.
    """
    sr, N, M, S = config.shift_range, config.memory_slots, config.memory_width, config.shift_width
    B = dw.shape[0]
    key, beta, g, s, gamma = _head_fields(config, packing, tape.act[t], heads)
    w = tape.w[t + 1][:, heads]
    f = packing.fields
    dkey = dact[:, f["key"]].reshape(B, -1, M)[:, heads]
    ds_out = dact[:, f["s"]].reshape(B, -1, S)[:, heads]
    # eq 9 backward: dz = w (dw - sum_j dw_j w_j); dgamma = sum dz log w~; dw~ = dz gamma / (w~ + eps)
    dz = w * (dw - np.einsum("bhn,bhn->bh", dw, w)[:, :, None])
    dact[:, f["gamma"]][:, heads] = np.einsum("bhn,bhn->bh", dz, tape.log_w[t][:, heads])
    dws_pad = np.empty(dz.shape[:2] + (N + 2 * sr,))
    dws = dws_pad[:, :, sr:sr + N]
    np.multiply(dz, gamma[:, :, None], out=dws)
    dws /= tape.w_shift_eps[t][:, heads]
    # eq 8 backward: ds[k] = sum_i dw~(i) w_g((i - d_k) mod N);  dw_g(j) = sum_k s[k] dw~((j + d_k) mod N)
    windows_g = np.lib.stride_tricks.sliding_window_view(tape.w_gated_pad[t][:, heads], N, axis=2)
    correlation = config.shift_convention == "correlation"
    ds_window = (windows_g @ dws[:, :, :, None])[..., 0]                       # window p = 2 sr - k
    if correlation:                                                            # kernel entry k <-> p = k
        ds_out[:] = ds_window
    else:
        ds_out[:, :, ::-1] = ds_window
    if sr:
        dws_pad[:, :, :sr] = dws[:, :, N - sr:]
        dws_pad[:, :, sr + N:] = dws[:, :, :sr]
    windows_d = np.lib.stride_tricks.sliding_window_view(dws_pad, N, axis=2)   # window p = k
    dwg = ((s[:, :, ::-1] if correlation else s)[:, :, None, :] @ windows_d)[:, :, 0]
    # eq 7 backward: dg = sum dw_g (w_c - w_prev); dw_c = g dw_g; dw_prev = (1 - g) dw_g
    wc = tape.w_content[t][:, heads]
    gate = g[:, :, None]
    dact[:, f["g"]][:, heads] = np.einsum("bhn,bhn->bh", dwg, wc - tape.w[t][:, heads])
    dw_prev = (1.0 - gate) * dwg
    dwc = gate * dwg
    # eq 5 backward: dz = w_c (dw_c - sum dw_c w_c); dbeta = sum dz K; dK = beta dz
    K = tape.K[t][:, heads]
    dz = wc * (dwc - np.einsum("bhn,bhn->bh", dwc, wc)[:, :, None])
    dact[:, f["beta"]][:, heads] = np.einsum("bhn,bhn->bh", dz, K)
    dK = beta[:, :, None] * dz
    # eq 6 backward: dk = ddot M - (sum_i dK K / a^2) k;  dM(i) = sum_h ddot_h k_h - (sum_h dK K / c^2) M(i)
    kn = tape.key_norm[t][:, heads]
    ddot = dK / (kn[:, :, None] * mem_norm[:, None, :])
    dK_K = dK * K
    np.subtract(ddot @ memory.transpose(0, 2, 1), (dK_K.sum(axis=2) / kn ** 2)[:, :, None] * key, out=dkey)
    return dw_prev, ddot, dK_K.sum(axis=1) / mem_norm ** 2


def _fused_write_backward(config, packing, tape, t, dnext, memory, dact, out):
    """Gradients of eqs 3-4 (memory.write_backward), transposed memory.  dnext (B, M, N) = dLoss/dM_t,
    memory = M_{t-1} (B, M, N).

    Writes dLoss/dM_{t-1} = dM_t prod_h F_h into out (B, M, N), derase and dadd into dact (B, P).
    -> dw (B, W, N). With dF = dM_t * M_{t-1} and P_h = prod_{h' != h} F_h' (1 for one head):
        dw_h(i) = sum_j dM(j, i) a_h(j) - dF(j, i) P_h(j, i) e_h(j);  de_h = -(dF P_h) w_h;  da_h = dM w_h
    """
    R, M = config.read_heads, config.memory_width
    B = memory.shape[0]
    f = packing.fields
    act = tape.act[t]
    erase = act[:, f["erase"]].reshape(B, -1, M)
    add = act[:, f["add"]].reshape(B, -1, M)
    w = tape.w[t + 1][:, R:]
    np.multiply(dnext, tape.keep[t], out=out)
    dF = np.multiply(dnext, memory, out=tape.scratch)
    if w.shape[1] == 1:
        dw = add @ dnext - erase @ dF                                           # (B, 1, N)
        np.negative(dF @ w[:, 0, :, None], out=dact[:, f["erase"]][:, :, None])
    else:
        dF = _times_others(_write_factors(w, erase, tape.heads_F), dF, tape.heads_dF)   # (B, W, M, N)
        dw = add @ dnext - (erase[:, :, None, :] @ dF)[:, :, 0]
        np.negative((dF @ w[:, :, :, None])[..., 0], out=dact[:, f["erase"]].reshape(B, -1, M))
    np.matmul(w, dnext.transpose(0, 2, 1), out=dact[:, f["add"]].reshape(B, -1, M))
    return dw


def _fused_heads_backward(wts, config, packing, tape, t, dact, draw):
    """From the activated head parameters back to h_t (heads_backward, clip_backward, linear_backward).

    dact (B, P) -> draw (B, P) written in place (kept for the weight gradient after the loop); -> dh (B, C).
    """
    raw, act = tape.raw[t], tape.act[t]
    B, S = raw.shape[0], config.shift_width
    for field, sl in packing.fields.items():
        if field == "s":                      # a softmax along each head's S entries
            _act_backward(packing.acts[field], dact[:, sl].reshape(B, -1, S), raw[:, sl].reshape(B, -1, S),
                          act[:, sl].reshape(B, -1, S), draw[:, sl].reshape(B, -1, S))
        else:
            _act_backward(packing.acts[field], dact[:, sl], raw[:, sl], act[:, sl], draw[:, sl])
    if config.clip_value is not None:
        draw *= _clip_mask(raw, config.clip_value)
    return draw @ wts.heads_W.T


def _fused_controller_backward(wts, config, tape, t, dh, dctrl, dZ):
    """Backward of the controller at step t for all layers (controller_backward, feedforward_/lstm_backward).

    dh (B, C) from the heads and the output; dctrl: per LSTM layer [dh, dc] carried from step t + 1
    (updated in place to the gradients w.r.t. step t - 1's). Pre-activation gradients go to dZ[l][t].
    -> dLoss/d r_{t-1} (B, R M) (dx is computed after the loop from dZ[0]).
    """
    c = config
    lstm = c.controller == "lstm"
    I, RM = c.input_size, c.read_heads * c.memory_width
    for l in reversed(range(len(c.controller_sizes))):
        A, dz = tape.A[l], dZ[l][t]
        if not lstm:
            y = A[t]
            # the pre-activation is not kept: relu's mask is read off its output (y > 0 exactly where
            # x > 0); tanh and sigmoid need only y
            _act_backward(c.controller_activation, dh, y, y, dz)
        else:
            C_l = c.controller_sizes[l]
            dh = dh + dctrl[l][0]
            gates = A[t]
            i, f, o, g = (gates[:, k * C_l:(k + 1) * C_l] for k in range(4))
            tc = tape.tanh_c[l][t]
            dc = dctrl[l][1] + dh * o * (1.0 - tc ** 2)
            np.multiply(dc * g * i, 1.0 - i, out=dz[:, :C_l])
            np.multiply(dc * tape.cell[l][t] * f, 1.0 - f, out=dz[:, C_l:2 * C_l])
            np.multiply(dh * tc * o, 1.0 - o, out=dz[:, 2 * C_l:3 * C_l])
            np.multiply(dc * i, 1.0 - g ** 2, out=dz[:, 3 * C_l:])
            dctrl[l][1] = dc * f
        Wl = wts.ctrl_W[l]
        if l == 0:
            dU = dz @ Wl[I:].T                       # [d r_{t-1} (, d h_prev)]
            if lstm:
                dctrl[0][0] = dU[:, RM:]
            return dU[:, :RM]
        dU = dz @ Wl.T
        if lstm:
            dctrl[l][0] = dU[:, -c.controller_sizes[l]:]
            dh = dU[:, :-c.controller_sizes[l]]
        else:
            dh = dU


def _backward(wts, config, packing, tape, dlogits):
    """Backprop through time (model.backward_pass with step_backward).  dlogits (B, T, O) ->
    (grads dict without the initial-state part, dx (B, T, I), dstate0 NTMState)."""
    c = config
    T, B, P = tape.raw.shape
    N, M, R, Wh = c.memory_slots, c.memory_width, c.read_heads, c.write_heads
    H, I, RM = R + Wh, c.input_size, R * M
    C = c.controller_sizes[-1]
    lstm = c.controller == "lstm"
    # hoisted: the output layer of every step, z = clip([h, r] W_out + b_out)
    dZout = dlogits.transpose(1, 0, 2)                                       # (T, B, O)
    if c.clip_value is not None:
        dZout = dZout * _clip_mask(tape.logits, c.clip_value)
    dHR = np.matmul(dZout, wts.out_W.T, out=tape.dhr)                        # (T, B, C + R M)
    dZ, draw_all = tape.dZ, tape.draw
    dact = np.empty((B, P))
    # dLoss/dM_t lives in G[cur] (transposed memory); the step writes dLoss/dM_{t-1} into G[1 - cur]
    G = tape.G
    G[0] = 0.0
    cur = 0
    scratch = tape.scratch2
    dw = np.zeros((B, H, N))                      # dLoss/dw_t of all heads
    dr_next = np.zeros((B, RM))                   # dLoss/dr_t from step t + 1's controller
    dctrl = [[np.zeros((B, C_l)), np.zeros((B, C_l))] for C_l in c.controller_sizes] if lstm else []
    all_heads, reads, writes = slice(0, H), slice(0, R), slice(R, H)
    left = np.empty((B, H + R, N))                # [ddot of every head | w_read]: one product for dM
    right = np.empty((B, H + R, M))               # [keys | dr]
    for t in reversed(range(T)):
        m_prev, m_next = tape.mem[t], tape.mem[t + 1]
        dmem, dmem_prev = G[cur], G[1 - cur]
        dr = (dHR[t, :, C:] + dr_next).reshape(B, R, M)
        w_read = tape.w[t + 1][:, reads]
        key_all = tape.act[t][:, packing.fields["key"]].reshape(B, H, M)
        if c.step_order == "read_first":
            # write (eqs 3-4), then read (eq 2) and all heads' addressing (eqs 5-9), all on M_{t-1}
            dw_write = _fused_write_backward(c, packing, tape, t, dmem, m_prev, dact, dmem_prev)
            dw_total = dw.copy()
            dw_total[:, writes] += dw_write
            dw_total[:, reads] += dr @ m_prev                                  # eq 2: dw_h(i) = dr_h . M(i)
            dw_prev, ddot, diag = _fused_address_backward(c, packing, tape, t, all_heads, dw_total, m_prev,
                                                    tape.mem_norm[t], dact)
            left[:, :H], left[:, H:] = ddot, w_read
            right[:, :H], right[:, H:] = key_all, dr
            np.matmul(right.transpose(0, 2, 1), left, out=scratch)           # sum_h k_h ddot_h^T + dr_h w_h^T
            dmem_prev += scratch
            np.multiply(m_prev, diag[:, None, :], out=scratch)
            dmem_prev -= scratch
            dw = dw_prev
        else:
            # read heads on M_t first (they ran last), then the write and the write heads on M_{t-1}
            dw_r = dw[:, reads] + dr @ m_next
            dw_prev_r, ddot_r, diag_r = _fused_address_backward(c, packing, tape, t, reads, dw_r, m_next,
                                                          tape.mem_norm[t + 1], dact)
            left[:, :R], left[:, R:2 * R] = ddot_r, w_read
            right[:, :R], right[:, R:2 * R] = key_all[:, reads], dr
            np.matmul(right[:, :2 * R].transpose(0, 2, 1), left[:, :2 * R], out=scratch)
            dmem += scratch
            np.multiply(m_next, diag_r[:, None, :], out=scratch)
            dmem -= scratch
            dw_write = _fused_write_backward(c, packing, tape, t, dmem, m_prev, dact, dmem_prev)
            dw_prev_w, ddot_w, diag_w = _fused_address_backward(c, packing, tape, t, writes, dw[:, writes] + dw_write,
                                                          m_prev, tape.mem_norm[t], dact)
            np.matmul(key_all[:, writes].transpose(0, 2, 1), ddot_w, out=scratch)
            dmem_prev += scratch
            np.multiply(m_prev, diag_w[:, None, :], out=scratch)
            dmem_prev -= scratch
            dw = np.concatenate([dw_prev_r, dw_prev_w], axis=1)
        cur = 1 - cur
        dh = dHR[t, :, :C] + _fused_heads_backward(wts, c, packing, tape, t, dact, draw_all[t])
        dr_next = _fused_controller_backward(wts, c, tape, t, dh, dctrl, dZ)
    # hoisted: every weight gradient in one product over all T B rows
    grads = {}
    for l in range(len(c.controller_sizes)):
        U, D = tape.U[l], dZ[l]
        grads[f"ctrl.{l}.W"] = U.reshape(T * B, -1).T @ D.reshape(T * B, -1)
        grads[f"ctrl.{l}.b"] = D.sum(axis=(0, 1))
    dheads = tape.hr[:, :, :C].reshape(T * B, C).T @ draw_all.reshape(T * B, P)
    dheads_b = draw_all.sum(axis=(0, 1))
    dW = np.empty_like(dheads)
    dW[:, packing.perm] = dheads
    db = np.empty_like(dheads_b)
    db[packing.perm] = dheads_b
    RP = R * c.read_head_size
    grads["read.W"], grads["write.W"] = dW[:, :RP], dW[:, RP:]
    grads["read.b"], grads["write.b"] = db[:RP], db[RP:]
    grads["out.W"] = tape.hr.reshape(T * B, -1).T @ dZout.reshape(T * B, -1)
    grads["out.b"] = dZout.sum(axis=(0, 1))
    dx = (dZ[0] @ wts.ctrl_W[0][:I].T).transpose(1, 0, 2)                    # (B, T, I)
    if lstm:
        ctrl = ControllerState(tuple(d[0] for d in dctrl), tuple(d[1] for d in dctrl))
    else:
        ctrl = ControllerState((), ())
    dstate0 = NTMState(np.ascontiguousarray(G[cur].transpose(0, 2, 1)), dr_next.reshape(B, R, M),
                       np.ascontiguousarray(dw[:, reads]),
                       np.ascontiguousarray(dw[:, writes]), ctrl)
    return grads, dx, dstate0


# ---------------------------------------------------------------------------------------------------
# the public entry point
# ---------------------------------------------------------------------------------------------------

def _state_rows(state, rows):
    """The sequences ``rows`` (a slice) of an NTMState."""
    ctrl = ControllerState(tuple(a[rows] for a in state.controller.h), tuple(a[rows] for a in state.controller.c))
    return NTMState(state.memory[rows], state.reads[rows], state.w_read[rows], state.w_write[rows], ctrl)


def _concat_states(states):
    """Concatenate NTMStates along the batch axis."""
    cat = lambda arrays: np.concatenate(arrays, axis=0)          # noqa: E731
    n = len(states[0].controller.h)
    ctrl = ControllerState(tuple(cat([s.controller.h[l] for s in states]) for l in range(n)),
                           tuple(cat([s.controller.c[l] for s in states]) for l in range(n)))
    return NTMState(cat([s.memory for s in states]), cat([s.reads for s in states]),
                    cat([s.w_read for s in states]), cat([s.w_write for s in states]), ctrl)


_POOL: Optional[concurrent.futures.ThreadPoolExecutor] = None


def _map(fn, items):
    """fn over items, in two threads when there are two items (one pool for the process)."""
    global _POOL
    if len(items) == 1:
        return [fn(items[0])]
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=N_THREADS, thread_name_prefix="fast-ntm")
    return list(_POOL.map(fn, items))


def run(params, config, buffers, x, y=None, mask=None, state=None, threads=None):
    """Forward over the sequence and, given targets, the loss and every gradient: NTM.run, fast.

    x (B, T, I); y (B, T, O) or None; mask None, (B, T) or (B, T, O); state: an explicit initial NTMState
    (its gradient is returned as dstate0) or None (the model's own initial state, whose learned parts get
    gradients). threads: 1 or 2 Python threads over halves of the batch (default: N_THREADS from
    THREAD_MIN_BATCH sequences on, which is 1 unless FAST_NTM_THREADS=2). -> RunResult(logits, probs, loss, grads, dx, dstate0, caches=None).
    """
    if not supports(config):
        raise ValueError(f"fast.run does not support this config: {config!r}")
    x = np.asarray(x, dtype=np.float64)
    B, T, _ = x.shape
    explicit = state is not None
    state0 = state if explicit else initial_state(params, config, buffers, B)
    packing = make_packing(config)
    wts = _weights(params, config, packing)
    if threads is None:
        threads = N_THREADS if B >= THREAD_MIN_BATCH else 1
    cuts = np.linspace(0, B, min(threads, B) + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    tapes = [_tape(config, rows.stop - rows.start, T, i) for i, rows in enumerate(parts)]
    _map(lambda i: _forward(wts, config, packing, x[parts[i]], _state_rows(state0, parts[i]), tapes[i]),
         list(range(len(parts))))
    logits = np.concatenate([tp.logits.transpose(1, 0, 2) for tp in tapes], axis=0)
    probs = 1.0 / (1.0 + np.exp(-logits))
    if y is None:
        return RunResult(logits, probs, None, None, None, None, None)
    y = np.asarray(y, dtype=np.float64)
    loss, loss_cache = bce_bits_forward(logits, y, normalise_mask(mask, logits.shape))
    dlogits = bce_bits_backward(loss_cache)
    outs = _map(lambda i: _backward(wts, config, packing, tapes[i], dlogits[parts[i]]), list(range(len(parts))))
    grads = outs[0][0]
    for other in outs[1:]:
        for k in grads:
            grads[k] = grads[k] + other[0][k]
    for k in params:                               # learned initial-state blocks start at zero
        if k not in grads:
            grads[k] = np.zeros_like(params[k])
    dx = np.concatenate([o[1] for o in outs], axis=0)
    dstate0 = _concat_states([o[2] for o in outs])
    if not explicit:
        initial_state_backward(dstate0, params, config, grads)
    grads = {k: np.ascontiguousarray(grads[k]) for k in params}   # same keys and order as params
    return RunResult(logits, probs, loss, grads, dx, dstate0, None)
