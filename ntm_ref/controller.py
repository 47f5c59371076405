"""Controllers: the network that reads the input (and the previous reads) and drives the heads.

Dimension legend: B batch, D the layer's input width, C the layer's width (controller size).

One time step of one layer is a pure pair (time is handled only in ntm_ref.model):

    feedforward   h = act(x W + b)   (x W + b: ntm_ref.linear)                                     act in tanh | relu | sigmoid
    lstm          [i f o g] = [x h_prev] W + b;  i, f, o = sigmoid, g = tanh
                  c = f * c_prev + i * g;  h = o * tanh(c)             W (D + C, 4C), b (4C,)

Several layers stack: layer l's input is layer l-1's output h; the controller's output is the last h.
"""
from typing import NamedTuple, Tuple

import numpy as np

from ntm_ref.activations import ACTIVATIONS, sigmoid_forward, tanh_forward
from ntm_ref.linear import LinearCache, linear_backward, linear_forward


# ---------------------------------------------------------------------------------------------------
# feedforward layer
# ---------------------------------------------------------------------------------------------------

class FeedforwardCache(NamedTuple):
    linear: LinearCache
    act: tuple                 # the activation's cache
    act_name: str


def feedforward_forward(x, W, b, activation="tanh"):
    """h = act(x W + b).  x (B, D), W (D, C), b (C,) -> (h (B, C), cache)."""
    a, lin = linear_forward(x, W, b)
    h, act_cache = ACTIVATIONS[activation][0](a)
    return h, FeedforwardCache(lin, act_cache, activation)


def feedforward_backward(dh, cache):
    """dh (B, C) -> (dx (B, D), dW (D, C), db (C,))."""
    da = ACTIVATIONS[cache.act_name][1](dh, cache.act)
    return linear_backward(da, cache.linear)


# ---------------------------------------------------------------------------------------------------
# LSTM layer (Hochreiter & Schmidhuber 1997, with a forget gate; no peepholes)
# ---------------------------------------------------------------------------------------------------

class LSTMCache(NamedTuple):
    linear: LinearCache        # over [x, h_prev]
    i: np.ndarray              # (B, C) input gate
    f: np.ndarray              # (B, C) forget gate
    o: np.ndarray              # (B, C) output gate
    g: np.ndarray              # (B, C) candidate
    c_prev: np.ndarray         # (B, C)
    tanh_c: np.ndarray         # (B, C)
    input_width: int           # D


def lstm_forward(x, h_prev, c_prev, W, b):
    """One LSTM step.  x (B, D), h_prev (B, C), c_prev (B, C), W (D + C, 4C), b (4C,)
    -> ((h (B, C), c (B, C)), cache).

    Gate order in W's columns: input i, forget f, output o, candidate g.
    """
    C = h_prev.shape[1]
    z, lin = linear_forward(np.concatenate([x, h_prev], axis=1), W, b)
    i, _ = sigmoid_forward(z[:, 0 * C:1 * C])
    f, _ = sigmoid_forward(z[:, 1 * C:2 * C])
    o, _ = sigmoid_forward(z[:, 2 * C:3 * C])
    g, _ = tanh_forward(z[:, 3 * C:4 * C])
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return (h, c), LSTMCache(lin, i, f, o, g, c_prev, tanh_c, x.shape[1])


def lstm_backward(dh, dc, cache):
    """Gradients of one LSTM step, given dL/dh and dL/dc from above and from the next step.

    dh (B, C), dc (B, C) -> (dx (B, D), dh_prev (B, C), dc_prev (B, C), dW (D + C, 4C), db (4C,)).
        dc_total = dc + dh o (1 - tanh(c)^2);  do = dh tanh(c);  di = dc_total g;  dg = dc_total i;
        df = dc_total c_prev;  dc_prev = dc_total f;  then through the gate nonlinearities to dz.
    """
    i, f, o, g, c_prev, tanh_c = cache.i, cache.f, cache.o, cache.g, cache.c_prev, cache.tanh_c
    dc_total = dc + dh * o * (1.0 - tanh_c ** 2)
    dz = np.concatenate([
        dc_total * g * i * (1.0 - i),          # input gate, through its sigmoid
        dc_total * c_prev * f * (1.0 - f),     # forget gate
        dh * tanh_c * o * (1.0 - o),           # output gate
        dc_total * i * (1.0 - g ** 2),         # candidate, through its tanh
    ], axis=1)
    dxh, dW, db = linear_backward(dz, cache.linear)
    D = cache.input_width
    return dxh[:, :D], dxh[:, D:], dc_total * f, dW, db


# ---------------------------------------------------------------------------------------------------
# a stack of layers: the whole controller for one time step
# ---------------------------------------------------------------------------------------------------

class ControllerState(NamedTuple):
    """Recurrent state of the controller: one (B, C_l) array per layer in h and in c; empty for feedforward."""
    h: Tuple[np.ndarray, ...]
    c: Tuple[np.ndarray, ...]


class ControllerCache(NamedTuple):
    kind: str
    layers: tuple              # one layer cache per layer


def controller_forward(params, kind, n_layers, x, state, activation="tanh"):
    """One step of a stack of layers.  x (B, D) -> (out (B, C_last), new ControllerState, cache).

    params holds "ctrl.<l>.W" and "ctrl.<l>.b" for every layer l.
    """
    caches, hs, cs = [], [], []
    inp = x
    for l in range(n_layers):
        W, b = params[f"ctrl.{l}.W"], params[f"ctrl.{l}.b"]
        if kind == "lstm":
            (inp, c), cache = lstm_forward(inp, state.h[l], state.c[l], W, b)
            hs.append(inp)
            cs.append(c)
        else:
            inp, cache = feedforward_forward(inp, W, b, activation)
        caches.append(cache)
    return inp, ControllerState(tuple(hs), tuple(cs)), ControllerCache(kind, tuple(caches))


def controller_backward(dout, dstate, cache, grads):
    """Backward of controller_forward.  dout (B, C_last), dstate: gradient w.r.t. the new state (for LSTM).

    Adds the weight gradients into ``grads`` ("ctrl.<l>.W", "ctrl.<l>.b") and returns
    (dx (B, D), dstate_prev ControllerState).
    """
    n_layers = len(cache.layers)
    dh_prev, dc_prev = [None] * n_layers, [None] * n_layers
    d = dout
    for l in reversed(range(n_layers)):
        if cache.kind == "lstm":
            d, dh_prev[l], dc_prev[l], dW, db = lstm_backward(d + dstate.h[l], dstate.c[l], cache.layers[l])
        else:
            d, dW, db = feedforward_backward(d, cache.layers[l])
        grads[f"ctrl.{l}.W"] += dW
        grads[f"ctrl.{l}.b"] += db
    if cache.kind == "lstm":
        return d, ControllerState(tuple(dh_prev), tuple(dc_prev))
    return d, ControllerState((), ())
