"""Scores of a model's outputs on a task batch: cost in bits and bit errors, per sequence.

Dimension legend: B batch, T time steps, O output width.

    cost   = sum over masked (t, o) of CE(y, p) / ln 2,    CE(y, p) = -y ln p - (1 - y) ln(1 - p)
    errors = sum over masked (t, o) of [ (p > 1/2) != y ]

The paper reports "cost per sequence (bits)": the binary cross-entropy in base 2 summed over the output
bits and time steps of one sequence, averaged over sequences (section 4). Collier & Beel count a run as
converged when the mean bit errors per sequence on 640 validation sequences falls below 0.1.

outputs are probabilities by default, or logits with from_logits=True. From logits the cost is exact for
any finite logit, CE = y softplus(-z) + (1 - y) softplus(z), never taking log(0). From probabilities, p is
first clipped to [PROB_EPS, 1 - PROB_EPS], so a probability of exactly 0 or 1 on the wrong side costs
log2(1 / PROB_EPS) = 52 bits instead of infinity; pass logits for the exact value. (A probability near 1
has already lost precision before it gets here: 1 - p is only good to about 2^-53 absolute, so for logits
beyond about 15 the two routes differ by more than 1e-9 bits an output.)

A probability of exactly 1/2 (logit 0) counts as predicting 0 in the bit errors (pytorch-ntm's threshold,
`0 if x < 0.5 else 1`, counts it as 1); continuous outputs almost never hit it.

mask is (B, T) (broadcast over the outputs) or (B, T, O), of 0/1. Positions with mask 0 contribute nothing.
"""
import numpy as np

LN2 = np.log(2.0)
# Probabilities are clipped to [PROB_EPS, 1 - PROB_EPS] before the log. 2^-52 is float64's machine
# epsilon: 1 - 2^-52 is exactly representable, and it caps one output's cost at 52 bits.
PROB_EPS = 2.0 ** -52


def _check(outputs, y, mask, from_logits):
    """-> outputs, y as float64 (B, T, O) and mask as float64 (B, T, O); ValueError on bad input."""
    outputs = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if outputs.ndim != 3 or y.shape != outputs.shape:
        raise ValueError(f"outputs {outputs.shape} and y {y.shape} must both be (B, T, O)")
    if from_logits:
        if not np.all(np.isfinite(outputs)):
            raise ValueError("logits must be finite (no NaN or infinity)")
    elif not np.all((outputs >= 0.0) & (outputs <= 1.0)):  # NaN fails this too
        raise ValueError("probabilities must lie in [0, 1] (NaN not allowed); "
                         "pass from_logits=True for logits")
    if not np.all((y >= 0.0) & (y <= 1.0)):
        raise ValueError("targets y must lie in [0, 1]")
    mask = np.asarray(mask, dtype=np.float64)
    B, T, O = outputs.shape
    if mask.shape == (B, T):
        mask = mask[:, :, None]
    elif mask.shape != (B, T, O):
        raise ValueError(f"mask: got shape {mask.shape}; must be (B, T) = {(B, T)} or (B, T, O) = {(B, T, O)}")
    if not np.all((mask == 0.0) | (mask == 1.0)):
        raise ValueError("mask must contain only 0 and 1")
    return outputs, y, np.broadcast_to(mask, (B, T, O))


def _softplus(z):
    """log(1 + e^z), exact for large |z|."""
    return np.logaddexp(0.0, z)


def cost_bits_by_sequence(outputs, y, mask, *, from_logits=False):
    """Cross-entropy in bits of each sequence: outputs, y (B, T, O), mask (B, T) or (B, T, O) -> (B,)."""
    outputs, y, mask = _check(outputs, y, mask, from_logits)
    if from_logits:
        nats = y * _softplus(-outputs) + (1.0 - y) * _softplus(outputs)
    else:
        p = np.clip(outputs, PROB_EPS, 1.0 - PROB_EPS)
        nats = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return np.where(mask > 0, nats, 0.0).sum(axis=(1, 2)) / LN2


def cost_bits_per_sequence(outputs, y, mask, *, from_logits=False):
    """Cross-entropy in bits per sequence, averaged over the batch (the paper's cost) -> float."""
    return float(cost_bits_by_sequence(outputs, y, mask, from_logits=from_logits).mean())


def bit_errors_by_sequence(outputs, y, mask, *, from_logits=False):
    """Wrong bits of each sequence after thresholding at 1/2 (logit 0) -> (B,). Targets must be 0/1."""
    outputs, y, mask = _check(outputs, y, mask, from_logits)
    if not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError("bit errors need binary targets y (0 or 1)")
    predicted = outputs > (0.0 if from_logits else 0.5)
    return ((predicted != (y == 1.0)) & (mask > 0)).sum(axis=(1, 2)).astype(np.float64)


def bit_errors_per_sequence(outputs, y, mask, *, from_logits=False):
    """Wrong bits per sequence, averaged over the batch -> float."""
    return float(bit_errors_by_sequence(outputs, y, mask, from_logits=from_logits).mean())
