"""The paper's cost: sigmoid outputs, binary cross-entropy in bits per sequence (section 4).

Dimension legend: B batch, T time steps, O output width.

    cost = (1 / B) sum_b sum_t sum_o mask * CE(y, sigmoid(z)) / ln 2
    CE(y, p) = -y log p - (1 - y) log(1 - p) = softplus(z) - y z        (computed from the logits z)

Computing it from the logits never takes log(0), however saturated the output: implementations that
take log(sigmoid(z)) get an infinite or NaN cost once an output saturates, a known way NTM training breaks.
"""
import numpy as np
from scipy.special import expit

LN2 = float(np.log(2.0))   # a Python float: keeps float32 arrays float32 (NumPy 2 promotion rules)


def normalise_mask(mask, shape, dtype=np.float64):
    """mask None, (B, T) or (B, T, O) of 0/1 -> (B, T, O) of ``dtype``. Raises ValueError on a wrong shape."""
    B, T, O = shape
    if mask is None:
        return np.ones(shape, dtype=dtype)
    mask = np.asarray(mask, dtype=dtype)
    if mask.shape == (B, T):
        return np.broadcast_to(mask[:, :, None], shape)
    if mask.shape == (B, T, O):
        return mask
    raise ValueError(f"mask: got shape {mask.shape}; must be (B, T) = {(B, T)} or (B, T, O) = {(B, T, O)}")


def bce_bits_forward(logits, targets, mask):
    """Cost in bits per sequence, averaged over the batch.

    logits (B, T, O), targets (B, T, O) in [0, 1], mask (B, T, O) -> (cost (float), cache).
    """
    per_element = np.logaddexp(0.0, logits) - targets * logits
    cost = float((mask * per_element).sum() / (logits.shape[0] * LN2))
    return cost, (logits, targets, mask)


def bce_bits_backward(cache):
    """d cost / d logits = mask (sigmoid(z) - y) / (B ln 2).  -> (B, T, O)."""
    logits, targets, mask = cache
    return mask * (expit(logits) - targets) / (logits.shape[0] * LN2)
