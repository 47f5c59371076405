"""The model's linear maps and the clipping that follows them.

Dimension legend: B batch, D input width, C output width.

Three places map one vector linearly to another: the controller's layers (before their activation), the
controller output to the heads' raw parameters, and [controller output, reads] to the output logits.
The last two are then clipped to [-clip_value, clip_value] (Collier clips both at +-20; clip_value None:
no clipping). Both are pure forward/backward pairs like every operation.

    linear   y = x W + b                      x (B, D), W (D, C), b (C,) -> y (B, C)
    clip     y = min(max(x, -limit), limit)   any shape; the gradient is 0 where the value was clipped
"""
from typing import NamedTuple, Optional

import numpy as np


class LinearCache(NamedTuple):
    x: np.ndarray   # (B, D)
    W: np.ndarray   # (D, C)


def linear_forward(x, W, b):
    """y = x W + b.  x (B, D), W (D, C), b (C,) -> (y (B, C), cache)."""
    return x @ W + b, LinearCache(x, W)


def linear_backward(dy, cache):
    """dy (B, C) -> (dx (B, D), dW (D, C), db (C,)):  dx = dy W^T, dW = x^T dy, db = sum_b dy."""
    return dy @ cache.W.T, cache.x.T @ dy, dy.sum(axis=0)


class ClipCache(NamedTuple):
    inside: Optional[np.ndarray]   # boolean mask of entries strictly inside (-limit, limit); None = no clip


def clip_forward(x, limit):
    """y = clip(x, -limit, limit), or x itself when limit is None.  Any shape."""
    if limit is None:
        return x, ClipCache(None)
    return np.clip(x, -limit, limit), ClipCache(np.abs(x) < limit)


def clip_backward(dy, cache):
    """dL/dx = dL/dy inside the limits, 0 where the value was clipped."""
    return dy if cache.inside is None else dy * cache.inside
