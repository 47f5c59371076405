"""The Neural Turing Machine: one time step, the loop over time, and backprop through time.

Dimension legend: B batch, T time steps, I input width, O output width, N memory slots, M word width,
R read heads, W write heads, S shift-kernel width, C controller output width, P raw parameters per head.

One time step t (``step_forward``), with the defaults (read before write, as Collier and pytorch-ntm):

    1. controller     h_t = controller([x_t, r_{t-1}], state_{t-1})                       (B, C)
    2. heads          raw = clip(h_t W_head + b_head);  k, beta, g, s, gamma (, e, a) = activations(raw)
    3. read heads     w^r_t = address(M_{t-1}, w^r_{t-1}, k, beta, g, s, gamma)   eqs 5-9  (B, R, N)
                      r_t   = read(M_{t-1}, w^r_t)                                  eq 2     (B, R, M)
    4. write heads    w^w_t = address(M_{t-1}, w^w_{t-1}, ...)                      eqs 5-9  (B, W, N)
                      M_t   = write(M_{t-1}, w^w_t, e, a)                           eqs 3-4  (B, N, M)
    5. output         z_t = clip([h_t, r_t] W_out + b_out);  y_t = sigmoid(z_t)                (B, O)

With ``step_order="write_first"`` step 4 comes before step 3 and the read heads address and read M_t.
Every operation is a forward/backward pair from ntm_ref.addressing, ntm_ref.memory, ntm_ref.heads and
ntm_ref.controller; only this module knows about time. ``backward_pass`` is one explicit reverse loop over
the stored step caches, carrying the gradients of the memory, the previous weightings, the previous reads
and the controller state (an NTMState of gradients).
"""
from functools import lru_cache
from typing import List, NamedTuple

import numpy as np

from ntm_ref.addressing import AddressCache, Conventions, address_backward, address_forward
from ntm_ref.config import NTMConfig
from ntm_ref.controller import ControllerCache, controller_backward, controller_forward
from ntm_ref.heads import HeadParams, HeadsCache, head_layout, heads_backward, heads_forward
from ntm_ref.linear import ClipCache, LinearCache, clip_backward, clip_forward, linear_backward, linear_forward
from ntm_ref.loss import bce_bits_backward, bce_bits_forward, normalise_mask
from ntm_ref.memory import ReadCache, WriteCache, read_backward, read_forward, write_backward, write_forward
from ntm_ref.state import (LSTM_FORGET_BIAS, NTMState, RunResult, initial_state, initial_state_backward,
                           zero_state_like)
from ntm_ref.engines import fast, parallel   # the engines NTM.run may choose; they import nothing from here


class StepCache(NamedTuple):
    """One step's caches (for the backward) and its internal values (for traces and plots)."""
    controller: ControllerCache
    controller_output: np.ndarray  # (B, C)
    read_linear: LinearCache
    read_clip: ClipCache
    read_raw: np.ndarray           # (B, R, P) after clipping, before activation
    read_heads: HeadsCache
    read_params: HeadParams        # activated
    write_linear: LinearCache
    write_clip: ClipCache
    write_raw: np.ndarray          # (B, W, P)
    write_heads: HeadsCache
    write_params: HeadParams
    read_address: AddressCache     # keeps the weighting after every addressing stage
    write_address: AddressCache
    read: ReadCache
    write: WriteCache
    out_linear: LinearCache
    out_clip: ClipCache
    state: NTMState                # the state after this step


# ---------------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------------

# pytorch-ntm's LSTMController.reset_parameters: LSTM weights Uniform(+-5 / sqrt(inputs + cells)), biases 0;
# its learned initial state lstm_h_bias, lstm_c_bias = randn * 0.05.
PYTORCH_NTM_LSTM_SCALE = 5.0
PYTORCH_NTM_STATE0_STD = 0.05


def init_params(config: NTMConfig, seed=0):
    """All learned parameters as one flat dict name -> float64 array, drawn from ``seed``.

    Weights ~ Normal(0, 1 / fan_in) (Collier's 1/sqrt(fan_in) scale), biases 0 (LSTM forget gates
    LSTM_FORGET_BIAS); with controller_init "pytorch_ntm" the LSTM's weights, biases and initial state are
    drawn as pytorch-ntm draws them (NTMConfig.controller_init). Names:
        ctrl.<l>.W, ctrl.<l>.b            controller layer l ((D_l, C_l), or (D_l + C_l, 4 C_l) for LSTM)
        ctrl.<l>.h0, ctrl.<l>.c0          learned initial LSTM state (C_l,)  [lstm, learn_initial_controller_state]
        read.W, read.b / write.W, write.b controller output -> raw head parameters (C, R P_r) / (C, W P_w)
        out.W, out.b                      [h, r_1..r_R] -> output logits (C + R M, O)
        memory0                           initial memory (N, M)  [memory_init "learned" or "learned_constant"]
        read0                             initial reads, r0 = tanh(read0) (R, M)      [learn_initial_reads]
        w0.read, w0.write                 initial weightings = softmax(w0.*) (R, N), (W, N)  [learn_initial_weights]
    """
    rng = np.random.default_rng(seed)
    c = config
    N, M, R, Wh = c.memory_slots, c.memory_width, c.read_heads, c.write_heads
    p = {}

    def weight(name, fan_in, fan_out):
        p[name] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, fan_out))

    width = c.input_size + R * M
    for l, size in enumerate(c.controller_sizes):
        if c.controller == "lstm" and c.controller_init == "pytorch_ntm":
            bound = PYTORCH_NTM_LSTM_SCALE / np.sqrt(c.input_size + R * M + size)   # its layers all use layer 0's D
            p[f"ctrl.{l}.W"] = rng.uniform(-bound, bound, size=(width + size, 4 * size))
            p[f"ctrl.{l}.b"] = np.zeros(4 * size)
            if c.learn_initial_controller_state:
                p[f"ctrl.{l}.h0"] = rng.normal(0.0, PYTORCH_NTM_STATE0_STD, size=size)
                p[f"ctrl.{l}.c0"] = rng.normal(0.0, PYTORCH_NTM_STATE0_STD, size=size)
        elif c.controller == "lstm":
            weight(f"ctrl.{l}.W", width + size, 4 * size)
            p[f"ctrl.{l}.b"] = np.zeros(4 * size)
            p[f"ctrl.{l}.b"][size:2 * size] = LSTM_FORGET_BIAS
            if c.learn_initial_controller_state:
                p[f"ctrl.{l}.h0"] = np.zeros(size)
                p[f"ctrl.{l}.c0"] = np.zeros(size)
        else:
            weight(f"ctrl.{l}.W", width, size)
            p[f"ctrl.{l}.b"] = np.zeros(size)
        width = size
    C = width
    weight("read.W", C, R * c.read_head_size)
    p["read.b"] = np.zeros(R * c.read_head_size)
    weight("write.W", C, Wh * c.write_head_size)
    p["write.b"] = np.zeros(Wh * c.write_head_size)
    weight("out.W", C + R * M, c.output_size)
    p["out.b"] = np.zeros(c.output_size)
    if c.memory_init == "learned":
        p["memory0"] = _random_memory(rng, N, M)
    elif c.memory_init == "learned_constant":
        p["memory0"] = np.full((N, M), float(c.memory_init_value))
    if c.learn_initial_reads:
        p["read0"] = rng.normal(0.0, 1.0, size=(R, M))          # tanh of a learned vector, as Collier (who draws it Glorot-uniform)
    if c.learn_initial_weights:
        p["w0.read"] = rng.normal(0.0, 1.0, size=(R, N))        # softmax of a learned vector, as Collier (Glorot-uniform there)
        p["w0.write"] = rng.normal(0.0, 1.0, size=(Wh, N))
    return p


def _random_memory(rng, N, M):
    """Uniform(-1/sqrt(N + M), 1/sqrt(N + M)), pytorch-ntm's random memory.  -> (N, M)."""
    bound = 1.0 / np.sqrt(N + M)
    return rng.uniform(-bound, bound, size=(N, M))


READ0_STD = 0.01   # pytorch-ntm's fixed initial reads: torch.randn(1, M) * 0.01 per read head


def init_buffers(config: NTMConfig, seed=0):
    """Fixed, unlearned arrays: the random initial memory of memory_init "random" (drawn from seed + 1),
    the random initial reads of fixed_initial_reads "random" (drawn from seed + 2).

        memory0     (N, M)   Uniform(-1/sqrt(N + M), 1/sqrt(N + M))     [memory_init "random"]
        read0       (R, M)   Normal(0, READ0_STD^2)                     [fixed_initial_reads "random"]
    """
    c = config
    buffers = {}
    if c.memory_init == "random":
        buffers["memory0"] = _random_memory(np.random.default_rng(seed + 1), c.memory_slots, c.memory_width)
    if not c.learn_initial_reads and c.fixed_initial_reads == "random":
        buffers["read0"] = np.random.default_rng(seed + 2).normal(0.0, READ0_STD, size=(c.read_heads, c.memory_width))
    return buffers


# ---------------------------------------------------------------------------------------------------
# arrays given by a user: every name and shape checked against the config
# ---------------------------------------------------------------------------------------------------

def array_shapes(config: NTMConfig):
    """The parameters and buffers a config needs, without drawing them.  -> (params, buffers): each a dict
    name -> shape, the names and order of init_params / init_buffers."""
    c = config
    N, M, R, Wh = c.memory_slots, c.memory_width, c.read_heads, c.write_heads
    params, width = {}, c.input_size + R * M
    for l, size in enumerate(c.controller_sizes):
        lstm = c.controller == "lstm"
        params[f"ctrl.{l}.W"] = (width + size, 4 * size) if lstm else (width, size)
        params[f"ctrl.{l}.b"] = (4 * size,) if lstm else (size,)
        if lstm and c.learn_initial_controller_state:
            params[f"ctrl.{l}.h0"] = params[f"ctrl.{l}.c0"] = (size,)
        width = size
    params.update({"read.W": (width, R * c.read_head_size), "read.b": (R * c.read_head_size,),
                   "write.W": (width, Wh * c.write_head_size), "write.b": (Wh * c.write_head_size,),
                   "out.W": (width + R * M, c.output_size), "out.b": (c.output_size,)})
    buffers = {}
    if c.memory_init in ("learned", "learned_constant"):
        params["memory0"] = (N, M)
    elif c.memory_init == "random":
        buffers["memory0"] = (N, M)
    if c.learn_initial_reads:
        params["read0"] = (R, M)
    elif c.fixed_initial_reads == "random":
        buffers["read0"] = (R, M)
    if c.learn_initial_weights:
        params["w0.read"], params["w0.write"] = (R, N), (Wh, N)
    return params, buffers


def _why_not_needed(name, config):
    """Why a config has no array ``name`` (for an unknown name), or None when the name means nothing."""
    c = config
    if name == "memory0":
        return (f"memory0 needs memory_init 'learned' or 'learned_constant' (a parameter) or 'random' "
                f"(buffer/memory0); this config has memory_init={c.memory_init!r}")
    if name == "read0":
        return ("read0 needs learn_initial_reads=True (a parameter, r0 = tanh(read0)) or learn_initial_reads="
                "False with fixed_initial_reads='random' (buffer/read0, r0 = read0)")
    if name in ("w0.read", "w0.write"):
        return f"{name} needs learn_initial_weights=True"
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "ctrl" and parts[1].isdigit():
        layers = len(c.controller_sizes)
        if int(parts[1]) >= layers:
            return f"{name}: the config has {layers} controller layer(s), ctrl.0 to ctrl.{layers - 1}"
        if parts[2] in ("h0", "c0"):
            return f"{name} needs controller='lstm' and learn_initial_controller_state=True"
    return None


def check_arrays(config: NTMConfig, params, buffers=None):
    """Check a user's parameters and buffers against what the config needs (array_shapes): every missing,
    unknown, misplaced, misshapen or non-finite array, in one ValueError. Nothing is filled in."""
    want_p, want_b = array_shapes(config)
    buffers = {} if buffers is None else buffers
    problems = []
    for given, want, other, given_other, kind, other_kind in (
            (params, want_p, want_b, buffers, "parameter", "buffer"),
            (buffers, want_b, want_p, params, "buffer", "parameter")):
        for name in given:
            if name in want:
                continue
            if name in other:
                where = "buffers, buffer/" if other_kind == "buffer" else "params, param/"
                problems.append(f"{name} is a {other_kind} with this config, not a {kind}: give it in "
                                f"{where}{name} in a file")
            else:
                why = _why_not_needed(name, config)
                problems.append(f"unknown {kind} {name}" + (f" ({why})" if why else ""))
        missing = [name for name in want if name not in given and name not in given_other]
        if missing:
            problems.append(f"missing {kind}{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        for name, shape in want.items():
            if name not in given:
                continue
            value = given[name]
            dtype = getattr(value, "dtype", np.asarray(value).dtype)
            if dtype.kind not in "fiu" or dtype == bool:
                problems.append(f"{kind} {name}: {dtype} values; must be real numbers")
            elif np.shape(value) != shape:
                problems.append(f"{kind} {name}: shape {np.shape(value)}; the config needs {shape}")
            elif not np.all(np.isfinite(value)):
                problems.append(f"{kind} {name}: contains NaN or Inf")
    if problems:
        raise ValueError(f"arrays do not match the config: {'; '.join(problems)} (docs/trace-format.md lists "
                         f"every name and shape)")


# ---------------------------------------------------------------------------------------------------
# one time step
# ---------------------------------------------------------------------------------------------------

def _heads_from_controller(h, params, kind, layout, n_heads, clip_value):
    """Controller output h (B, C) -> raw (B, H, P) (clipped) and activated HeadParams for H heads."""
    raw, lin = linear_forward(h, params[f"{kind}.W"], params[f"{kind}.b"])
    raw, clip = clip_forward(raw, clip_value)
    raw = raw.reshape(h.shape[0], n_heads, -1)
    head_params, heads_cache = heads_forward(raw, layout)
    return raw, head_params, lin, clip, heads_cache


@lru_cache(maxsize=64)
def _conventions(config):
    """The addressing conventions of a config. Cached: asked at every time step; the config is frozen."""
    return Conventions.of(config)


def _address(memory, w_prev, p: HeadParams, config):
    """Eqs 5-9 for the heads of p. The memory enters only eq 6, so cosine_input_offset is added here (its
    gradient is the identity: the backward needs no change)."""
    key, offset = p.key, config.cosine_input_offset
    if offset:
        memory, key = memory + offset, key + offset
    return address_forward(memory, w_prev, key, p.beta, p.g, p.s, p.gamma, _conventions(config))


def step_forward(params, config, x_t, state):
    """One NTM step.  x_t (B, I), state NTMState -> (logits (B, O), new NTMState, StepCache)."""
    c = config
    B = x_t.shape[0]
    # 1. controller, fed the input and the previous step's reads
    ctrl_in = np.concatenate([x_t, state.reads.reshape(B, -1)], axis=1)
    h, ctrl_state, ctrl_cache = controller_forward(params, c.controller, len(c.controller_sizes), ctrl_in,
                                                   state.controller, c.controller_activation)
    # 2. heads: a linear map of h, split per head and activated
    r_raw, rp, r_lin, r_clip, r_heads = _heads_from_controller(h, params, "read", head_layout(c, "read"),
                                                               c.read_heads, c.clip_value)
    w_raw, wp, w_lin, w_clip, w_heads = _heads_from_controller(h, params, "write", head_layout(c, "write"),
                                                               c.write_heads, c.clip_value)
    # 3-4. address, read and write
    if c.step_order == "read_first":
        w_read, r_addr = _address(state.memory, state.w_read, rp, c)
        reads, read_cache = read_forward(state.memory, w_read)
        w_write, w_addr = _address(state.memory, state.w_write, wp, c)
        memory, write_cache = write_forward(state.memory, w_write, wp.erase, wp.add)
    else:
        w_write, w_addr = _address(state.memory, state.w_write, wp, c)
        memory, write_cache = write_forward(state.memory, w_write, wp.erase, wp.add)
        w_read, r_addr = _address(memory, state.w_read, rp, c)
        reads, read_cache = read_forward(memory, w_read)
    # 5. output logits from the controller output and this step's reads
    logits, out_lin = linear_forward(np.concatenate([h, reads.reshape(B, -1)], axis=1),
                                     params["out.W"], params["out.b"])
    logits, out_clip = clip_forward(logits, c.clip_value)
    new_state = NTMState(memory, reads, w_read, w_write, ctrl_state)
    cache = StepCache(controller=ctrl_cache, controller_output=h,
                      read_linear=r_lin, read_clip=r_clip, read_raw=r_raw, read_heads=r_heads, read_params=rp,
                      write_linear=w_lin, write_clip=w_clip, write_raw=w_raw, write_heads=w_heads,
                      write_params=wp, read_address=r_addr, write_address=w_addr, read=read_cache,
                      write=write_cache, out_linear=out_lin, out_clip=out_clip, state=new_state)
    return logits, new_state, cache


def _heads_backward(dp: HeadParams, kind, lin, clip, heads_cache, grads):
    """Back from the activated head parameters to the controller output: -> dh (B, C)."""
    draw = heads_backward(dp, heads_cache)
    draw = clip_backward(draw.reshape(draw.shape[0], -1), clip)
    dh, dW, db = linear_backward(draw, lin)
    grads[f"{kind}.W"] += dW
    grads[f"{kind}.b"] += db
    return dh


def step_backward(dlogits, dnext: NTMState, cache: StepCache, config, grads):
    """Backward of one step.  dlogits (B, O), dnext = dLoss/d(new state) -> (dx_t (B, I), dLoss/d(state) NTMState).

    Adds every weight gradient of this step into ``grads``.
    """
    c = config
    B, C = cache.controller_output.shape
    # 5. output layer: z = clip([h, r] W_out + b_out)
    dcat, dW, db = linear_backward(clip_backward(dlogits, cache.out_clip), cache.out_linear)
    grads["out.W"] += dW
    grads["out.b"] += db
    dh = dcat[:, :C]
    dreads = dcat[:, C:].reshape(cache.read.w.shape[0], c.read_heads, -1) + dnext.reads
    # 3-4. read and write, in the reverse of the order they ran
    if c.step_order == "read_first":
        dmemory, dw_write, derase, dadd = write_backward(dnext.memory, cache.write)
        dmem_w, dw_write_prev, *dwp = address_backward(dw_write + dnext.w_write, cache.write_address)
        dmem_r, dw_read = read_backward(dreads, cache.read)
        dmem_a, dw_read_prev, *drp = address_backward(dw_read + dnext.w_read, cache.read_address)
        dmemory = dmemory + dmem_w + dmem_r + dmem_a
    else:
        dmem_r, dw_read = read_backward(dreads, cache.read)
        dmem_a, dw_read_prev, *drp = address_backward(dw_read + dnext.w_read, cache.read_address)
        dmemory, dw_write, derase, dadd = write_backward(dnext.memory + dmem_r + dmem_a, cache.write)
        dmem_w, dw_write_prev, *dwp = address_backward(dw_write + dnext.w_write, cache.write_address)
        dmemory = dmemory + dmem_w
    # 2. heads
    dh = dh + _heads_backward(HeadParams(*drp), "read", cache.read_linear, cache.read_clip,
                              cache.read_heads, grads)
    dh = dh + _heads_backward(HeadParams(*dwp, derase, dadd), "write", cache.write_linear, cache.write_clip,
                              cache.write_heads, grads)
    # 1. controller
    dctrl_in, dctrl_state = controller_backward(dh, dnext.controller, cache.controller, grads)
    I = c.input_size
    dx_t = dctrl_in[:, :I]
    dreads_prev = dctrl_in[:, I:].reshape(B, c.read_heads, -1)
    return dx_t, NTMState(dmemory, dreads_prev, dw_read_prev, dw_write_prev, dctrl_state)


# ---------------------------------------------------------------------------------------------------
# the loop over time, and backprop through time
# ---------------------------------------------------------------------------------------------------

def forward_pass(params, config, x, state0):
    """Run T steps.  x (B, T, I), state0 NTMState -> (logits (B, T, O), [StepCache] * T)."""
    B, T, _ = x.shape
    logits = np.empty((B, T, config.output_size), dtype=np.result_type(x, params["out.W"]))
    caches: List[StepCache] = []
    state = state0
    for t in range(T):
        logits[:, t], state, cache = step_forward(params, config, x[:, t], state)
        caches.append(cache)
    return logits, caches


def backward_pass(params, config, dlogits, caches):
    """Backprop through time.  dlogits (B, T, O) -> (grads dict like params, dx (B, T, I), dstate0 NTMState).

    One reverse loop over the stored caches, carrying dLoss/d(state) backwards. ``grads`` is zeroed here
    and only here; every step adds into it. dstate0 is the gradient w.r.t. the initial state (not yet
    passed into the learned initial-state parameters: see initial_state_backward).
    """
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    B, T, _ = dlogits.shape
    dx = np.empty((B, T, config.input_size), dtype=dlogits.dtype)
    dstate = zero_state_like(caches[-1].state)
    for t in reversed(range(T)):
        dx[:, t], dstate = step_backward(dlogits[:, t], dstate, caches[t], config, grads)
    return grads, dx, dstate


# ---------------------------------------------------------------------------------------------------
# the model object: parameters + config, and the calls users make
# ---------------------------------------------------------------------------------------------------

ENGINES = ("fast", "reference", "parallel")


class NTM:
    """A Neural Turing Machine: ``config`` (NTMConfig), ``params`` (flat dict), ``buffers`` (fixed arrays).

    The same seed gives bit-identical parameters. ``engine`` chooses how ``run`` computes: "reference"
    (the default: this module, step by step, keeping every step's caches, so that what you read here and
    in the operations is what runs), "fast" (ntm_ref.engines.fast: the same numbers about 1.6x sooner,
    tested against the reference to 1e-10 relative; no caches; training uses it) or "parallel"
    (ntm_ref.engines.parallel: the fast engine on parts of the batch in worker processes). ``trace``
    always uses the reference, and so does ``run`` for the epsilon modes the fast engine does not have
    (cosine_epsilon_mode other than "smooth_norm", sharpen_epsilon_mode other than "base").
    """

    def __init__(self, config: NTMConfig, seed=0, engine="reference"):
        self._set_up(config, engine)
        self.seed = seed
        self.params = init_params(config, seed)
        self.buffers = init_buffers(config, seed)

    def _set_up(self, config, engine):
        if not isinstance(config, NTMConfig):
            raise ValueError(f"config: got {type(config).__name__}; must be an NTMConfig")
        if engine not in ENGINES:
            raise ValueError(f"engine: got {engine!r}; allowed: {', '.join(map(repr, ENGINES))}")
        self.engine = engine
        self.config = config

    @classmethod
    def from_arrays(cls, config: NTMConfig, params, buffers=None, engine="reference"):
        """An NTM with exactly these arrays: params (dict name -> array, the names of init_params) and
        buffers (the fixed arrays of init_buffers: memory0 for memory_init "random", read0 for
        fixed_initial_reads "random"). Every name and shape is checked (check_arrays): anything missing,
        unknown, misplaced or misshapen is one ValueError listing it all; nothing is drawn at random.
        The arrays are copied as float64."""
        model = cls.__new__(cls)
        model._set_up(config, engine)
        check_arrays(config, params, buffers)
        model.seed = None
        model.params = {name: np.array(params[name], dtype=np.float64) for name in array_shapes(config)[0]}
        model.buffers = {name: np.array(buffers[name], dtype=np.float64) for name in array_shapes(config)[1]}
        return model

    def initial_state(self, batch_size):
        """The learned (or constant) state every sequence starts from, for a batch.  -> NTMState."""
        return initial_state(self.params, self.config, self.buffers, batch_size)

    def _check_inputs(self, x, y=None):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[2] != self.config.input_size or x.shape[1] < 1:
            raise ValueError(f"x: got shape {x.shape}; must be (B, T, input_size={self.config.input_size}) "
                             f"with T >= 1")
        if y is not None:
            y = np.asarray(y, dtype=np.float64)
            expected = x.shape[:2] + (self.config.output_size,)
            if y.shape != expected:
                raise ValueError(f"y: got shape {y.shape}; must be (B, T, output_size) = {expected}")
        return x, y

    def run(self, x, y=None, mask=None, state=None, engine=None):
        """Forward over the whole sequence, and the loss and every gradient when targets y are given.

        x (B, T, I); y (B, T, O) targets in [0, 1]; mask None, (B, T) or (B, T, O) of 0/1; state: an
        explicit initial NTMState (default: the model's own initial state, whose learned parts then get
        gradients; with an explicit state its gradient is returned as dstate0 instead); engine: "fast" or
        "reference" (default: the model's). Only the reference engine returns the step caches.
        """
        x, y = self._check_inputs(x, y)
        engine = self.engine if engine is None else engine
        if engine in ("fast", "parallel") and not fast.supports(self.config):
            engine = "reference"   # the non-default epsilon modes exist only in the reference
        if engine == "fast":
            return fast.run(self.params, self.config, self.buffers, x, y, mask, state)
        if engine == "parallel":
            return parallel.run(self.params, self.config, self.buffers, x, y, mask, state)
        if engine != "reference":
            raise ValueError(f"engine: got {engine!r}; allowed: {', '.join(map(repr, ENGINES))}")
        explicit = state is not None
        state0 = state if explicit else self.initial_state(x.shape[0])
        logits, caches = forward_pass(self.params, self.config, x, state0)
        probs = 1.0 / (1.0 + np.exp(-logits))
        if y is None:
            return RunResult(logits, probs, None, None, None, None, caches)
        loss, loss_cache = bce_bits_forward(logits, y, normalise_mask(mask, logits.shape))
        grads, dx, dstate0 = backward_pass(self.params, self.config, bce_bits_backward(loss_cache), caches)
        if not explicit:
            initial_state_backward(dstate0, self.params, self.config, grads)
        return RunResult(logits, probs, loss, grads, dx, dstate0, caches)

    def forward(self, x):
        """Output probabilities.  x (B, T, I) -> y (B, T, O)."""
        return self.run(x).probs

    def loss(self, x, y, mask=None, state=None, engine=None):
        """Cost in bits per sequence (batch mean), forward only: the same number as run(x, y, mask).loss
        without the backward pass (what a finite-difference check evaluates, thousands of times)."""
        x, y = self._check_inputs(x, y)
        logits = self.run(x, state=state, engine=engine).logits
        return bce_bits_forward(logits, y, normalise_mask(mask, logits.shape))[0]

    def loss_and_grads(self, x, y, mask=None):
        """Cost in bits per sequence (batch mean) and its gradient w.r.t. every parameter (same keys)."""
        result = self.run(x, y, mask)
        return result.loss, result.grads

    def trace(self, x, state=None):
        """Every step's internal values, stacked over time: dict name -> array (B, T, ...). See trace_from_caches."""
        x, _ = self._check_inputs(x)
        result = self.run(x, state=state, engine="reference")
        return trace_from_caches(result.caches, result.logits)


def trace_from_caches(caches: List[StepCache], logits):
    """Stack the internal values of every step into arrays with time as axis 1.

    controller_output (B, T, C); read.raw (B, T, R, P_r) and write.raw (B, T, W, P_w) after clipping;
    read.<p> / write.<p> for p in key, beta, g, s, gamma (and erase, add): the activated head parameters;
    read.w_content, read.w_gated, read.w_shifted, read.w (B, T, R, N) and the same for write: the weighting
    after every addressing stage; reads (B, T, R, M); memory (B, T, N, M) after the step's write;
    logits (B, T, O).
    """
    out = {"controller_output": np.stack([c.controller_output for c in caches], axis=1)}
    for kind in ("read", "write"):
        out[f"{kind}.raw"] = np.stack([getattr(c, f"{kind}_raw") for c in caches], axis=1)
        for field in HeadParams._fields:
            values = [getattr(getattr(c, f"{kind}_params"), field) for c in caches]
            if values[0] is not None:
                out[f"{kind}.{field}"] = np.stack(values, axis=1)
        for stage in ("w_content", "w_gated", "w_shifted", "w"):
            out[f"{kind}.{stage}"] = np.stack([getattr(getattr(c, f"{kind}_address"), stage) for c in caches],
                                              axis=1)
    out["reads"] = np.stack([c.state.reads for c in caches], axis=1)
    out["memory"] = np.stack([c.state.memory for c in caches], axis=1)
    out["logits"] = logits
    return out
