"""An independent PyTorch NTM: the mirror that checks ntm_ref's hand-written backward passes.

Written from the equations (Graves, Wayne & Danihelka 2014, arXiv:1410.5401),
docs/trace-format.md ("The computation, precisely") and the fields of ntm_ref/config.py, not from
ntm_ref's model code. The forward pass is plain PyTorch; every gradient comes from autograd
(loss.backward() with requires_grad on every parameter and on x). It reads a trace's config, parameters,
buffers and inputs, and writes its own trace in the same schema, for `ntm-ref compare`:

    python tests/torch_ntm.py REF.npz OUT.npz [--float32] [--force]

From Python:

    run_trace(ref_trace, dtype=torch.float64)            -> trace dict (same entry names as the reference)
    loss_and_grads(config, params, buffers, x, y, mask)  -> (loss, {name: grad}, dx), no trace (benchmarks)

Legend (the project's): B batch, T time steps, I input width, O output width, N memory slots, M word
width, R read heads, W write heads, H heads of one kind (R or W), S = 2 shift_range + 1 shift-kernel
width, C controller output width, C_l width of controller layer l, P raw parameters per head.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

PRODUCER = "tests/torch_ntm.py (PyTorch autograd)"
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------------------------------------------
# elementwise activations
# ---------------------------------------------------------------------------------------------------

def softplus(x):
    """log(1 + e^x) exactly, for every x (F.softplus turns linear above its threshold 20)."""
    return torch.logaddexp(x, torch.zeros_like(x))


def clip(x, lo, hi):
    """clip(x, lo, hi) whose gradient passes only strictly inside (lo, hi) and is 0 on and outside the
    bounds (torch.clamp would also pass it at x == lo and x == hi)."""
    return torch.where((x > lo) & (x < hi), x, x.detach().clamp(lo, hi))


def clip_value(x, v):
    """The clipping of raw head parameters and logits: clip(x, -v, v); v None = off."""
    return x if v is None else clip(x, -v, v)


HEAD_ACTIVATIONS = {
    "tanh": torch.tanh,
    "identity": lambda x: x,
    "clip01": lambda x: clip(x, 0.0, 1.0),
    "softplus": softplus,
    "relu": torch.relu,
    "oneplus": lambda x: 1.0 + softplus(x),
    "one_plus_relu": lambda x: 1.0 + torch.relu(x),
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": lambda x: clip(0.2 * x + 0.5, 0.0, 1.0),
    "softmax": lambda x: torch.softmax(x, dim=-1),
}
CONTROLLER_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


# ---------------------------------------------------------------------------------------------------
# controller
# ---------------------------------------------------------------------------------------------------

def feedforward_layer(inp, W, b, activation):
    """h = act(inp W + b).  inp (B, D_l), W (D_l, C_l), b (C_l,) -> h (B, C_l)."""
    return CONTROLLER_ACTIVATIONS[activation](inp @ W + b)


def lstm_layer(inp, h_prev, c_prev, W, b):
    """One LSTM step, gates in the order [i, f, o, g]: z = [inp, h_prev] W + b; c = f c_prev + i g;
    h = o tanh(c).  inp (B, D_l), h_prev and c_prev (B, C_l), W (D_l + C_l, 4 C_l), b (4 C_l,)
    -> h, c (B, C_l)."""
    z = torch.cat([inp, h_prev], dim=1) @ W + b
    zi, zf, zo, zg = torch.chunk(z, 4, dim=1)
    c = torch.sigmoid(zf) * c_prev + torch.sigmoid(zi) * torch.tanh(zg)
    h = torch.sigmoid(zo) * torch.tanh(c)
    return h, c


def controller(config, params, inp, ctrl_state):
    """All layers of the controller.  inp (B, D_0) = [x_t, r_{t-1} flattened]; ctrl_state: per layer
    (h, c) (B, C_l) for an LSTM, None for a feedforward one -> (output (B, C), new ctrl_state)."""
    new_state = []
    for l in range(len(config.controller_sizes)):
        W, b = params[f"ctrl.{l}.W"], params[f"ctrl.{l}.b"]
        if config.controller == "lstm":
            h, c = lstm_layer(inp, *ctrl_state[l], W, b)
            new_state.append((h, c))
        else:
            h = feedforward_layer(inp, W, b, config.controller_activation)
        inp = h
    return inp, (new_state if config.controller == "lstm" else None)


# ---------------------------------------------------------------------------------------------------
# head parameters
# ---------------------------------------------------------------------------------------------------

def head_params(config, h, W, b, kind):
    """raw = clip(h W + b) per head, split and activated.  h (B, C), W (C, H P), b (H P,) -> dict:
    raw (B, H, P), key (B, H, M), beta g gamma (B, H), s (B, H, S), and for write heads erase, add
    (B, H, M). Layout per head: [key M, beta 1, g 1, s S, gamma 1] (+ [erase M, add M])."""
    M, S = config.memory_width, config.shift_width
    P = config.read_head_size if kind == "read" else config.write_head_size
    raw = clip_value(h @ W + b, config.clip_value)
    raw = raw.reshape(h.shape[0], -1, P)
    act = lambda name, x: HEAD_ACTIVATIONS[getattr(config, f"{name}_activation")](x)   # noqa: E731
    out = {"raw": raw,
           "key": act("key", raw[..., :M]),
           "beta": act("beta", raw[..., M]),
           "g": act("gate", raw[..., M + 1]),
           "s": act("shift", raw[..., M + 2:M + 2 + S]),
           "gamma": act("gamma", raw[..., M + 2 + S])}
    if kind == "write":
        r = config.read_head_size
        out["erase"] = act("erase", raw[..., r:r + M])
        out["add"] = act("add", raw[..., r + M:r + 2 * M])
    return out


# ---------------------------------------------------------------------------------------------------
# addressing, eqs 5-9
# ---------------------------------------------------------------------------------------------------

def cosine_similarity(key, memory, mode, eps):
    """Eq 6, K(k, M(i)) with the configured epsilon.  key (B, H, M), memory (B, N, M) -> (B, H, N).

    smooth_norm: k.M(i) / (sqrt(|k|^2 + eps) sqrt(|M(i)|^2 + eps));  denominator: k.M(i) / (|k| |M(i)| +
    eps);  clamp_norms: k.M(i) / (max(|k|, eps) max(|M(i)|, eps));  smooth_norm_denominator:
    k.M(i) / (sqrt(|k|^2 + eps) sqrt(|M(i)|^2 + eps) + eps). torch.linalg.vector_norm has gradient 0 at a
    zero vector."""
    dot = torch.einsum("bhm,bnm->bhn", key, memory)
    if mode in ("smooth_norm", "smooth_norm_denominator"):
        nk = torch.sqrt((key * key).sum(-1) + eps)
        nm = torch.sqrt((memory * memory).sum(-1) + eps)
        extra = eps if mode == "smooth_norm_denominator" else 0.0
        return dot / (nk[:, :, None] * nm[:, None, :] + extra)
    nk = torch.linalg.vector_norm(key, dim=-1)
    nm = torch.linalg.vector_norm(memory, dim=-1)
    if mode == "denominator":
        return dot / (nk[:, :, None] * nm[:, None, :] + eps)
    if mode == "clamp_norms":
        return dot / (torch.clamp(nk, min=eps)[:, :, None] * torch.clamp(nm, min=eps)[:, None, :])
    raise ValueError(f"cosine_epsilon_mode {mode!r}")


def content_weighting(key, beta, memory, mode, eps):
    """Eq 5: w_c(i) = softmax_i(beta K(k, M(i))).  key (B, H, M), beta (B, H), memory (B, N, M)
    -> (B, H, N)."""
    return torch.softmax(beta[:, :, None] * cosine_similarity(key, memory, mode, eps), dim=-1)


def interpolate(w_content, g, w_prev):
    """Eq 7: w_g = g w_c + (1 - g) w_{t-1}.  w_content, w_prev (B, H, N), g (B, H) -> (B, H, N)."""
    g = g[:, :, None]
    return g * w_content + (1.0 - g) * w_prev


def circular_shift(w, s, convention):
    """Eq 8, kernel entry k = shift d_k = k - shift_range.  w (B, H, N), s (B, H, S) -> (B, H, N).

    convolution: w~(i) = sum_k s[k] w((i - d_k) mod N) (+1 moves mass from slot i to i + 1), which is
    torch.roll(w, d_k); correlation: w~(i) = sum_k s[k] w((i + d_k) mod N) = torch.roll(w, -d_k)."""
    S = s.shape[-1]
    sign = {"convolution": 1, "correlation": -1}[convention]
    out = torch.zeros_like(w)
    for k in range(S):
        d = k - (S - 1) // 2
        out = out + s[:, :, k:k + 1] * torch.roll(w, shifts=sign * d, dims=-1)
    return out


def sharpen(w, gamma, mode, eps):
    """Eq 9 with the configured epsilon.  w (B, H, N), gamma (B, H) -> (B, H, N).

    base: (w + eps)^gamma / sum_j (w(j) + eps)^gamma, as softmax(gamma log(w + eps));
    denominator: w^gamma / (sum_j w(j)^gamma + eps) (torch.pow gives 0^gamma = 0, d/dgamma of it 0)."""
    gamma = gamma[:, :, None]
    if mode == "base":
        return torch.softmax(gamma * torch.log(w + eps), dim=-1)
    if mode == "denominator":
        p = torch.pow(w, gamma)
        return p / (p.sum(-1, keepdim=True) + eps)
    raise ValueError(f"sharpen_epsilon_mode {mode!r}")


def address(config, hp, memory, w_prev):
    """One kind of head, eqs 5-9 in order.  hp: head_params' dict, memory (B, N, M), w_prev (B, H, N)
    -> dict w_content, w_gated, w_shifted, w, each (B, H, N)."""
    w_content = content_weighting(hp["key"], hp["beta"], memory, config.cosine_epsilon_mode,
                                  config.cosine_epsilon)
    w_gated = interpolate(w_content, hp["g"], w_prev)
    w_shifted = circular_shift(w_gated, hp["s"], config.shift_convention)
    w = sharpen(w_shifted, hp["gamma"], config.sharpen_epsilon_mode, config.sharpen_epsilon)
    return {"w_content": w_content, "w_gated": w_gated, "w_shifted": w_shifted, "w": w}


# ---------------------------------------------------------------------------------------------------
# memory, eqs 2-4
# ---------------------------------------------------------------------------------------------------

def read_memory(memory, w):
    """Eq 2: r = sum_i w(i) M(i).  memory (B, N, M), w (B, R, N) -> (B, R, M)."""
    return torch.einsum("brn,bnm->brm", w, memory)


def write_memory(memory, w, erase, add):
    """Eqs 3-4, all W heads at once: M_t = M_{t-1} * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T.
    memory (B, N, M), w (B, W, N), erase and add (B, W, M) -> (B, N, M)."""
    keep = torch.prod(1.0 - w[:, :, :, None] * erase[:, :, None, :], dim=1)
    return memory * keep + torch.einsum("bwn,bwm->bnm", w, add)


# ---------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------

def initial_state(config, params, buffers, B, dtype):
    """The state before step 0, the same for every sequence (broadcast over B) -> dict: memory
    (B, N, M), reads (B, R, M), w_read (B, R, N), w_write (B, W, N), ctrl: per LSTM layer (h, c)
    (B, C_l), or None. Learned values (memory0, read0, w0.*, h0, c0) are expanded over B, so autograd sums
    their gradients over the batch."""
    N, M, R, W = config.memory_slots, config.memory_width, config.read_heads, config.write_heads
    if config.memory_init == "constant":
        memory = torch.full((B, N, M), float(config.memory_init_value), dtype=dtype)
    elif config.memory_init in ("learned", "learned_constant"):     # a parameter either way
        memory = params["memory0"].expand(B, N, M)
    else:
        memory = buffers["memory0"].expand(B, N, M)
    if config.learn_initial_reads:
        reads = torch.tanh(params["read0"]).expand(B, R, M)
    else:
        reads = torch.zeros(B, R, M, dtype=dtype)

    def weights0(name, H):
        if config.learn_initial_weights:
            return torch.softmax(params[f"w0.{name}"], dim=-1).expand(B, H, N)
        w = torch.zeros(B, H, N, dtype=dtype)
        if getattr(config, "fixed_initial_weights", "one_hot") == "one_hot":
            w[:, :, 0] = 1.0
        return w

    ctrl = None
    if config.controller == "lstm":
        if getattr(config, "learn_initial_controller_state", True):
            ctrl = [(params[f"ctrl.{l}.h0"].expand(B, C), params[f"ctrl.{l}.c0"].expand(B, C))
                    for l, C in enumerate(config.controller_sizes)]
        else:
            ctrl = [(torch.zeros(B, C, dtype=dtype), torch.zeros(B, C, dtype=dtype))
                    for C in config.controller_sizes]
    return {"memory": memory, "reads": reads, "w_read": weights0("read", R), "w_write": weights0("write", W),
            "ctrl": ctrl}


def step(config, params, x_t, state, record=None):
    """One time step.  x_t (B, I), state as initial_state's -> (logits (B, O), new state). With record
    (a dict name -> list), appends every value the step computes under its trace name."""
    B = x_t.shape[0]
    inp = torch.cat([x_t, state["reads"].reshape(B, -1)], dim=1)
    h, ctrl = controller(config, params, inp, state["ctrl"])
    rp = head_params(config, h, params["read.W"], params["read.b"], "read")
    wp = head_params(config, h, params["write.W"], params["write.b"], "write")
    memory = state["memory"]
    if config.step_order == "read_first":
        ra = address(config, rp, memory, state["w_read"])
        reads = read_memory(memory, ra["w"])
        wa = address(config, wp, memory, state["w_write"])
        memory = write_memory(memory, wa["w"], wp["erase"], wp["add"])
    else:
        wa = address(config, wp, memory, state["w_write"])
        memory = write_memory(memory, wa["w"], wp["erase"], wp["add"])
        ra = address(config, rp, memory, state["w_read"])
        reads = read_memory(memory, ra["w"])
    logits = clip_value(torch.cat([h, reads.reshape(B, -1)], dim=1) @ params["out.W"] + params["out.b"],
                        config.clip_value)
    if record is not None:
        values = {}
        for l, (hl, cl) in enumerate(ctrl or []):
            values[f"ctrl.h.{l}"], values[f"ctrl.c.{l}"] = hl, cl
        values["controller_output"] = h
        for kind, hp, addr in (("read", rp, ra), ("write", wp, wa)):
            values.update({f"{kind}.{k}": v for k, v in {**hp, **addr}.items()})
        values.update(reads=reads, memory=memory, logits=logits)
        for k, v in values.items():
            record.setdefault(f"fwd/{k}", []).append(v)
    return logits, {"memory": memory, "reads": reads, "w_read": ra["w"], "w_write": wa["w"], "ctrl": ctrl}


def forward(config, params, buffers, x, record=None):
    """All T steps.  x (B, T, I) -> logits (B, T, O) (the initial state included in record as init/*)."""
    B, T, _ = x.shape
    state = initial_state(config, params, buffers, B, x.dtype)
    if record is not None:
        record.update({f"init/{k}": v for k, v in state.items() if k != "ctrl"})
        for l, (h, c) in enumerate(state["ctrl"] or []):
            record[f"init/ctrl.h.{l}"], record[f"init/ctrl.c.{l}"] = h, c
    logits = []
    for t in range(T):
        z, state = step(config, params, x[:, t], state, record)
        logits.append(z)
    return torch.stack(logits, dim=1)


def bits_loss(logits, y, mask):
    """Bits per sequence: sum over b, t, o of mask (softplus(z) - y z) / (B ln 2).
    logits, y (B, T, O); mask (B, T, O) or (B, T)."""
    if mask.dim() == 2:
        mask = mask[:, :, None]
    return (mask * (softplus(logits) - y * logits)).sum() / (logits.shape[0] * math.log(2.0))


def _tensors(arrays, dtype, requires_grad=False):
    return {k: torch.tensor(np.asarray(v), dtype=dtype, requires_grad=requires_grad) for k, v in arrays.items()}


def loss_and_grads(config, params, buffers, x, y, mask=None, dtype=torch.float64):
    """The loss and its gradients by autograd, without a trace (for benchmarks).  params, buffers:
    dicts name -> array (ntm_ref's names); x (B, T, I), y (B, T, O), mask (B, T) / (B, T, O) or None.
    -> (loss float, {name: grad ndarray}, dx (B, T, I) ndarray)."""
    p = _tensors(params, dtype, requires_grad=True)
    xt = torch.tensor(np.asarray(x), dtype=dtype, requires_grad=True)
    yt = torch.tensor(np.asarray(y), dtype=dtype)
    mt = torch.ones_like(yt) if mask is None else torch.tensor(np.asarray(mask), dtype=dtype)
    loss = bits_loss(forward(config, p, _tensors(buffers or {}, dtype), xt), yt, mt)
    loss.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).numpy() for k, v in p.items()}
    return float(loss.detach()), grads, xt.grad.numpy()


def run_trace(ref, dtype=torch.float64, config=None):
    """Run the mirror on a trace's config, parameters, buffers and inputs -> a trace dict in the same
    schema (ntm_ref.trace.save_trace writes it). config: an NTMConfig to use instead of the trace's
    (to make a deliberately different run)."""
    from ntm_ref.trace import FORMAT, SCHEMA_VERSION, params_of, trace_config
    if isinstance(dtype, str):
        dtype = TORCH_DTYPES[dtype]
    config = trace_config(ref) if config is None else config
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32}[dtype]
    params = _tensors(params_of(ref, "param/"), dtype, requires_grad=True)
    buffers = _tensors(params_of(ref, "buffer/"), dtype)
    x = torch.tensor(ref["input/x"], dtype=dtype, requires_grad=True)
    record = {}
    logits = forward(config, params, buffers, x, record)
    out = {"format": np.array(FORMAT), "schema_version": np.array(SCHEMA_VERSION, dtype=np.int64),
           "config": np.array(config.to_json()), "dtype": np.array(str(dtype).replace("torch.", "")),
           "producer": np.array(PRODUCER)}
    out.update({f"param/{k}": v.detach().numpy() for k, v in params.items()})
    out.update({f"buffer/{k}": v.numpy() for k, v in buffers.items()})
    out.update({k: ref[k].astype(np_dtype) for k in ("input/x", "input/y", "input/mask") if k in ref})
    for name, value in record.items():
        value = torch.stack(value, dim=1) if isinstance(value, list) else value
        out[name] = value.detach().numpy().copy()
    if "input/y" in ref:
        y = torch.tensor(ref["input/y"], dtype=dtype)
        mask = torch.tensor(ref["input/mask"], dtype=dtype)
        loss = bits_loss(logits, y, mask)
        loss.backward()
        out["loss"] = loss.detach().numpy().astype(np_dtype)
        for k, v in params.items():
            out[f"grad/{k}"] = (v.grad if v.grad is not None else torch.zeros_like(v)).numpy()
        out["grad/input/x"] = x.grad.numpy()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the PyTorch mirror on a reference trace's config, "
                                                 "parameters and inputs; write its own trace.")
    parser.add_argument("reference", help="a trace (ntm-ref trace)")
    parser.add_argument("out", help="where to write the mirror's trace (.npz)")
    parser.add_argument("--float32", action="store_true", help="run in float32 (default float64)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from ntm_ref.trace import load_trace, save_trace
    trace = run_trace(load_trace(args.reference), torch.float32 if args.float32 else torch.float64)
    save_trace(args.out, trace, overwrite=args.force)
    print(f"wrote {args.out} ({len(trace)} entries, {trace['dtype']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
