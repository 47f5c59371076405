"""The paper's baseline: a stack of LSTM layers with a sigmoid output layer (section 4, 3 layers).

Dimension legend: B batch, T time steps, I input width, O output width, C layer width.

    h^1_t = LSTM_1(x_t, h^1_{t-1}),  h^l_t = LSTM_l([x_t, h^{l-1}_t], h^l_{t-1}),
    z_t = clip([h^1_t, ..., h^L_t] W_out + b_out)      (clip at +-config.clip_value, none if None)
with skip connections (Graves 2013, the default: they reproduce the paper's parameter counts); without
them layer l sees only h^{l-1}_t and the output only h^L_t.

It has the NTM's interface (run / forward / loss_and_grads / params), so tasks, training and the
gradient checks treat both models alike. It is configured by an NTMConfig whose ``controller_size`` gives
the layer sizes ((256, 256, 256) for the paper's copy baseline); the memory and head fields are ignored.
Built from the same LSTM step pair as the NTM's controller (ntm_ref.controller.lstm_forward/backward).
"""
from typing import List, NamedTuple

import numpy as np

from ntm_ref.config import NTMConfig
from ntm_ref.controller import ControllerState, lstm_backward, lstm_forward
from ntm_ref.linear import ClipCache, LinearCache, clip_backward, clip_forward, linear_backward, linear_forward
from ntm_ref.loss import bce_bits_backward, bce_bits_forward, normalise_mask
from ntm_ref.state import LSTM_FORGET_BIAS, RunResult


class BaselineStepCache(NamedTuple):
    layers: tuple              # one LSTMCache per layer
    out_linear: LinearCache
    out_clip: ClipCache


def init_baseline_params(config: NTMConfig, seed=0, skip_connections=True):
    """ctrl.<l>.W (D_l + C_l, 4 C_l), ctrl.<l>.b, ctrl.<l>.h0, ctrl.<l>.c0 (learned initial state), out.W, out.b.

    D_1 = I; D_l = I + C_{l-1} with skip connections, else C_{l-1}. out.W has rows for every layer's h
    with skip connections (sum_l C_l), else for the last layer's only.
    """
    rng = np.random.default_rng(seed)
    p = {}
    sizes = config.controller_sizes
    for l, size in enumerate(sizes):
        width = config.input_size if l == 0 else sizes[l - 1] + (config.input_size if skip_connections else 0)
        p[f"ctrl.{l}.W"] = rng.normal(0.0, 1.0 / np.sqrt(width + size), size=(width + size, 4 * size))
        p[f"ctrl.{l}.b"] = np.zeros(4 * size)
        p[f"ctrl.{l}.b"][size:2 * size] = LSTM_FORGET_BIAS
        p[f"ctrl.{l}.h0"] = np.zeros(size)
        p[f"ctrl.{l}.c0"] = np.zeros(size)
    out_width = sum(sizes) if skip_connections else sizes[-1]
    p["out.W"] = rng.normal(0.0, 1.0 / np.sqrt(out_width), size=(out_width, config.output_size))
    p["out.b"] = np.zeros(config.output_size)
    return p


class LSTMBaseline:
    """Stacked LSTM with sigmoid outputs: ``config`` (NTMConfig, controller_size = layer sizes), ``params``.

    ``skip_connections`` (default True, as Graves 2013's deep LSTMs): the input feeds every layer and every
    layer feeds the output. With it, count_params reproduces the paper's Table 3 counts (docs/param-counts.md).
    """

    def __init__(self, config: NTMConfig, seed=0, skip_connections=True):
        if not isinstance(config, NTMConfig):
            raise ValueError(f"config: got {type(config).__name__}; must be an NTMConfig")
        if not isinstance(skip_connections, bool):
            raise ValueError(f"skip_connections: got {skip_connections!r}; must be True or False")
        self.config = config.replace(controller="lstm")
        self.seed = seed
        self.skip_connections = skip_connections
        self.params = init_baseline_params(self.config, seed, skip_connections)
        self.buffers = {}

    @property
    def n_layers(self):
        return len(self.config.controller_sizes)

    def initial_state(self, batch_size):
        """ControllerState with the learned h0, c0 of every layer tiled over the batch."""
        L = self.n_layers
        return ControllerState(tuple(np.tile(self.params[f"ctrl.{l}.h0"], (batch_size, 1)) for l in range(L)),
                               tuple(np.tile(self.params[f"ctrl.{l}.c0"], (batch_size, 1)) for l in range(L)))

    def _step_forward(self, x_t, state):
        """One step of every layer.  x_t (B, I) -> (logits (B, O), new ControllerState, BaselineStepCache)."""
        hs, cs, caches = [], [], []
        below = None
        for l in range(self.n_layers):
            if l == 0:
                inp = x_t
            elif self.skip_connections:
                inp = np.concatenate([x_t, below], axis=1)
            else:
                inp = below
            (below, c), cache = lstm_forward(inp, state.h[l], state.c[l], self.params[f"ctrl.{l}.W"],
                                             self.params[f"ctrl.{l}.b"])
            hs.append(below)
            cs.append(c)
            caches.append(cache)
        top = np.concatenate(hs, axis=1) if self.skip_connections else below
        z, out_lin = linear_forward(top, self.params["out.W"], self.params["out.b"])
        logits, out_clip = clip_forward(z, self.config.clip_value)
        return logits, ControllerState(tuple(hs), tuple(cs)), BaselineStepCache(tuple(caches), out_lin, out_clip)

    def _step_backward(self, dlogits, dnext, cache, grads):
        """Backward of one step.  dlogits (B, O), dnext: dL/d(new state) -> (dx_t (B, I), dL/d(state))."""
        dtop, dW, db = linear_backward(clip_backward(dlogits, cache.out_clip), cache.out_linear)
        grads["out.W"] += dW
        grads["out.b"] += db
        sizes = self.config.controller_sizes
        I = self.config.input_size
        if self.skip_connections:
            offsets = np.cumsum((0,) + sizes)
            dh_out = [dtop[:, offsets[l]:offsets[l + 1]] for l in range(self.n_layers)]
        else:
            dh_out = [np.zeros_like(dnext.h[l]) for l in range(self.n_layers - 1)] + [dtop]
        dh_prev, dc_prev = [None] * self.n_layers, [None] * self.n_layers
        dx_t = np.zeros((dlogits.shape[0], I))
        dfrom_above = 0.0
        for l in reversed(range(self.n_layers)):
            dh = dh_out[l] + dnext.h[l] + dfrom_above
            dinp, dh_prev[l], dc_prev[l], dW, db = lstm_backward(dh, dnext.c[l], cache.layers[l])
            grads[f"ctrl.{l}.W"] += dW
            grads[f"ctrl.{l}.b"] += db
            if l == 0:
                dx_t += dinp
            elif self.skip_connections:
                dx_t += dinp[:, :I]
                dfrom_above = dinp[:, I:]
            else:
                dfrom_above = dinp
        return dx_t, ControllerState(tuple(dh_prev), tuple(dc_prev))

    def run(self, x, y=None, mask=None, state=None):
        """As NTM.run: x (B, T, I), optional targets y (B, T, O) and mask; explicit initial ControllerState."""
        x = np.asarray(x, dtype=np.float64)
        c = self.config
        if x.ndim != 3 or x.shape[2] != c.input_size or x.shape[1] < 1:
            raise ValueError(f"x: got shape {x.shape}; must be (B, T, input_size={c.input_size}) with T >= 1")
        B, T, _ = x.shape
        explicit = state is not None
        state = state if explicit else self.initial_state(B)
        logits = np.empty((B, T, c.output_size))
        caches: List[BaselineStepCache] = []
        for t in range(T):
            logits[:, t], state, cache = self._step_forward(x[:, t], state)
            caches.append(cache)
        probs = 1.0 / (1.0 + np.exp(-logits))
        if y is None:
            return RunResult(logits, probs, None, None, None, None, caches)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != logits.shape:
            raise ValueError(f"y: got shape {y.shape}; must be (B, T, output_size) = {logits.shape}")
        loss, loss_cache = bce_bits_forward(logits, y, normalise_mask(mask, logits.shape))
        dlogits = bce_bits_backward(loss_cache)

        # backprop through time: one reverse loop carrying dL/d(h, c) of every layer
        grads = {name: np.zeros_like(v) for name, v in self.params.items()}
        dx = np.empty_like(x)
        dstate = ControllerState(tuple(np.zeros_like(a) for a in state.h), tuple(np.zeros_like(a) for a in state.c))
        for t in reversed(range(T)):
            dx[:, t], dstate = self._step_backward(dlogits[:, t], dstate, caches[t], grads)
        if not explicit:
            for l in range(self.n_layers):
                grads[f"ctrl.{l}.h0"] += dstate.h[l].sum(axis=0)
                grads[f"ctrl.{l}.c0"] += dstate.c[l].sum(axis=0)
        return RunResult(logits, probs, loss, grads, dx, dstate, caches)

    def forward(self, x):
        """Output probabilities.  x (B, T, I) -> (B, T, O)."""
        return self.run(x).probs

    def loss_and_grads(self, x, y, mask=None):
        """Cost in bits per sequence (batch mean) and its gradient w.r.t. every parameter."""
        result = self.run(x, y, mask)
        return result.loss, result.grads
