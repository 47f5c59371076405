"""What the engines share, below all of them: the state carried between time steps, the result of a run,
and the initial state every sequence starts from (with its backward).

Dimension legend: B batch, T time steps, I input width, O output width, N memory slots, M word width,
R read heads, W write heads, C controller output width.

ntm_ref.model (the reference engine, and the NTM class that chooses an engine), ntm_ref.engines.fast and
ntm_ref.engines.parallel all import these from here, so no engine imports the module that chooses it:
the model class -> an engine -> step functions -> the operations.
"""
from typing import List, NamedTuple, Optional

import numpy as np

from ntm_ref.activations import softmax_backward, softmax_forward, tanh_forward
from ntm_ref.controller import ControllerState

LSTM_FORGET_BIAS = 1.0  # forget gates start open (as TensorFlow's LSTMCell, used by Collier)


class NTMState(NamedTuple):
    """Everything carried from one step to the next (or its gradient, in backprop through time)."""
    memory: np.ndarray             # (B, N, M)
    reads: np.ndarray              # (B, R, M)  the read vectors r_{t}
    w_read: np.ndarray             # (B, R, N)  the read heads' weightings
    w_write: np.ndarray            # (B, W, N)  the write heads' weightings
    controller: ControllerState    # LSTM h and c per layer; empty for feedforward


class RunResult(NamedTuple):
    logits: np.ndarray                 # (B, T, O)
    probs: np.ndarray                  # (B, T, O) sigmoid of the logits
    loss: Optional[float]              # bits per sequence, batch mean (None without targets)
    grads: Optional[dict]              # like params (None without targets)
    dx: Optional[np.ndarray]           # (B, T, I) dLoss/dx
    dstate0: Optional[NTMState]        # dLoss/d(initial state)
    caches: Optional[List]            # the reference engine's StepCaches (None from fast and parallel)



# ---------------------------------------------------------------------------------------------------
# the initial state (every sequence starts from it; learned parts come from params)
# ---------------------------------------------------------------------------------------------------

def initial_state(params, config, buffers, batch_size):
    """The state before the first step, broadcast over the batch.  -> NTMState."""
    c, B = config, batch_size
    N, M, R, Wh = c.memory_slots, c.memory_width, c.read_heads, c.write_heads
    dtype = params["out.W"].dtype          # float64, or float32 for a float32 reference run (ntm_ref.trace)
    if c.memory_init == "constant":
        memory0 = np.full((N, M), c.memory_init_value, dtype=dtype)
    elif c.memory_init in ("learned", "learned_constant"):
        memory0 = params["memory0"]
    else:
        memory0 = buffers["memory0"]
    if c.learn_initial_reads:
        reads0 = tanh_forward(params["read0"])[0]
    elif c.fixed_initial_reads == "random":
        reads0 = buffers["read0"]
    else:
        reads0 = np.zeros((R, M), dtype)
    if c.learn_initial_weights:
        w_read0, w_write0 = softmax_forward(params["w0.read"])[0], softmax_forward(params["w0.write"])[0]
    else:
        w_read0, w_write0 = np.zeros((R, N), dtype), np.zeros((Wh, N), dtype)
        if c.fixed_initial_weights == "one_hot":
            w_read0[:, 0] = w_write0[:, 0] = 1.0
    if c.controller == "lstm" and c.learn_initial_controller_state:
        h0 = tuple(np.tile(params[f"ctrl.{l}.h0"], (B, 1)) for l in range(len(c.controller_sizes)))
        c0 = tuple(np.tile(params[f"ctrl.{l}.c0"], (B, 1)) for l in range(len(c.controller_sizes)))
        ctrl = ControllerState(h0, c0)
    elif c.controller == "lstm":
        zeros = tuple(np.zeros((B, size), dtype) for size in c.controller_sizes)
        ctrl = ControllerState(zeros, tuple(z.copy() for z in zeros))
    else:
        ctrl = ControllerState((), ())
    tile = lambda a: np.tile(a, (B,) + (1,) * a.ndim)   # noqa: E731  (a fresh (B, ...) copy)
    return NTMState(tile(memory0), tile(reads0), tile(w_read0), tile(w_write0), ctrl)


def initial_state_backward(dstate, params, config, grads):
    """Add the gradient of the initial state (summed over the batch) into the learned parameters behind it."""
    c = config
    if c.memory_init in ("learned", "learned_constant"):
        grads["memory0"] += dstate.memory.sum(axis=0)
    if c.learn_initial_reads:
        grads["read0"] += (1.0 - np.tanh(params["read0"]) ** 2) * dstate.reads.sum(axis=0)
    if c.learn_initial_weights:
        for kind, dw in (("read", dstate.w_read), ("write", dstate.w_write)):
            _, cache = softmax_forward(params[f"w0.{kind}"])
            grads[f"w0.{kind}"] += softmax_backward(dw.sum(axis=0), cache)
    if c.controller == "lstm" and c.learn_initial_controller_state:
        for l in range(len(c.controller_sizes)):
            grads[f"ctrl.{l}.h0"] += dstate.controller.h[l].sum(axis=0)
            grads[f"ctrl.{l}.c0"] += dstate.controller.c[l].sum(axis=0)


def zero_state_like(state: NTMState) -> NTMState:
    """An NTMState of zeros with the same shapes: the gradient flowing in after the last step."""
    ctrl = ControllerState(tuple(np.zeros_like(a) for a in state.controller.h),
                           tuple(np.zeros_like(a) for a in state.controller.c))
    return NTMState(np.zeros_like(state.memory), np.zeros_like(state.reads), np.zeros_like(state.w_read),
                    np.zeros_like(state.w_write), ctrl)
