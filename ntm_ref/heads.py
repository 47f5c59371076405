"""Heads: split the controller's raw head outputs into each head's parameters and activate them.

Dimension legend: B batch, H heads of one kind, M word width, S = 2 * shift_range + 1, P raw size per head.

A read head's raw vector (P = M + S + 3) is laid out as
    [ key k (M) | beta (1) | g (1) | shift s (S) | gamma (1) ]
a write head's (P = 3M + S + 3) has, after those, [ erase e (M) | add a (M) ].
Each part goes through the activation that the config names (key_activation, beta_activation, ...), so
    k in any range, beta > 0, g in (0, 1), s on the simplex, gamma >= 1, e in (0, 1), a in any range
with the defaults (paper section 3.3 gives the ranges; the maps are Collier's, see ntm_ref.config).
"""
from functools import lru_cache
from typing import NamedTuple, Optional

import numpy as np

from ntm_ref.activations import ACTIVATIONS

READ_FIELDS = ("key", "beta", "g", "s", "gamma")
WRITE_FIELDS = READ_FIELDS + ("erase", "add")
SCALAR_FIELDS = ("beta", "g", "gamma")   # one number per head: returned as (B, H), not (B, H, 1)


class HeadParams(NamedTuple):
    """Activated parameters of H heads of one kind (erase and add are None for read heads)."""
    key: np.ndarray                    # (B, H, M)
    beta: np.ndarray                   # (B, H)
    g: np.ndarray                      # (B, H)
    s: np.ndarray                      # (B, H, S)
    gamma: np.ndarray                  # (B, H)
    erase: Optional[np.ndarray] = None  # (B, H, M)
    add: Optional[np.ndarray] = None    # (B, H, M)


class HeadsCache(NamedTuple):
    layout: tuple      # ((field, start, stop, activation name), ...)
    act_caches: tuple  # one activation cache per field


@lru_cache(maxsize=64)
def head_layout(config, kind):
    """[(field, start, stop, activation), ...] of one head's raw vector, for kind "read" or "write".
    Cached: the config is frozen (hashable), and the model asks for the layout at every time step."""
    M, S = config.memory_width, config.shift_width
    widths = {"key": M, "beta": 1, "g": 1, "s": S, "gamma": 1, "erase": M, "add": M}
    acts = {"key": config.key_activation, "beta": config.beta_activation, "g": config.gate_activation,
            "s": config.shift_activation, "gamma": config.gamma_activation,
            "erase": config.erase_activation, "add": config.add_activation}
    layout, start = [], 0
    for field in (READ_FIELDS if kind == "read" else WRITE_FIELDS):
        layout.append((field, start, start + widths[field], acts[field]))
        start += widths[field]
    return tuple(layout)


def heads_forward(raw, layout):
    """raw (B, H, P) -> (HeadParams, cache): split along the last axis and activate each part."""
    values, caches = {}, []
    for field, start, stop, act in layout:
        y, cache = ACTIVATIONS[act][0](raw[:, :, start:stop])
        values[field] = y[:, :, 0] if field in SCALAR_FIELDS else y
        caches.append(cache)
    return HeadParams(**values), HeadsCache(layout, tuple(caches))


def heads_backward(dparams, cache):
    """dparams: HeadParams of gradients (same shapes as the forward's) -> draw (B, H, P)."""
    first = dparams.key
    P = cache.layout[-1][2]
    draw = np.zeros(first.shape[:2] + (P,), dtype=first.dtype)
    for (field, start, stop, act), act_cache in zip(cache.layout, cache.act_caches):
        d = getattr(dparams, field)
        if field in SCALAR_FIELDS:
            d = d[:, :, None]
        draw[:, :, start:stop] = ACTIVATIONS[act][1](d, act_cache)
    return draw
