"""Addressing: how a head turns its parameters into a weighting over memory (paper section 3.3, eqs 5-9).

Dimension legend (one for the whole project):
    B batch, H heads (of one kind, all addressed in one call), N memory slots, M word width,
    S = 2 * shift_range + 1 shift-kernel width.

One head's weighting goes through four stages, each a pure forward/backward pair below:

    content (eqs 5-6)  ->  interpolate (eq 7)  ->  shift (eq 8)  ->  sharpen (eq 9)

    w_c   = softmax_i(beta * K(k, M(i)))               content addressing by cosine similarity K
    w_g   = g w_c + (1 - g) w_prev                       gate between content and the previous weighting
    w~(i) = sum_j w_g(j) s((i - j) mod N)                circular convolution with the shift kernel s
    w(i)  = w~(i)^gamma / sum_j w~(j)^gamma              sharpening

``<op>_forward(...) -> (out, cache)``; ``<op>_backward(dout, cache)`` returns dLoss/d(input) for every
input, in argument order (a tuple when there are several). Nothing is mutated, nothing is kept between
calls, so a backward can be called any number of times with the same result.
"""
from typing import NamedTuple

import numpy as np

from ntm_ref.activations import ActivationCache, softmax_backward, softmax_forward

# Cosine similarity (eq 6) divides by the norms of the key and of each memory row. The paper adds no
# epsilon; a zero key or an all-zero memory row (memory starts near zero) would divide by zero, and the
# gradient of |u| is undefined at u = 0. Following DeepMind's DNC we replace every norm |u| by the smooth
# sqrt(|u|^2 + COSINE_EPS): finite and differentiable everywhere, and equal to |u| to within
# COSINE_EPS / (2 |u|^2) relative for rows of ordinary size (|u| ~ 1 -> 5e-7).
COSINE_EPS = 1e-6

# Sharpening (eq 9) raises weights to the power gamma. We compute it in log space,
# w = softmax(gamma * log w~), so the normaliser sum_j w~(j)^gamma can never underflow to zero. In the
# direct form it can be tiny: with gamma = 13 it is ~1e-12 for a weighting spread over ~8 slots and ~1e-26
# spread over 128, where an epsilon added to it (as some implementations do) makes the weighting stop
# summing to 1 (seen in training: sums of 0.845). log(0) would give -inf and the gradient w.r.t. gamma would
# contain 0 * log 0 = NaN, so we take log(w~ + SHARPEN_EPS). The shift of 1e-30 changes no weighting by
# more than N * 1e-30 in absolute terms (far below float64 round-off of O(1/N) weights) and keeps
# log >= -69.1, so forward and backward stay finite for exact zeros and gamma up to 1e3 and beyond.
# (The N * 1e-30 bound assumes w~ sums to 1, as a shifted weighting does.)
SHARPEN_EPS = 1e-30


# ----------------------------------------------------------------------------------------------------
# eq 6: cosine similarity
# ----------------------------------------------------------------------------------------------------

class CosineCache(NamedTuple):
    memory: np.ndarray      # (B, N, M)
    key: np.ndarray         # (B, H, M)
    key_norm: np.ndarray    # (B, H)    sqrt(|k|^2 + COSINE_EPS)
    mem_norm: np.ndarray    # (B, N)    sqrt(|M(i)|^2 + COSINE_EPS)
    K: np.ndarray           # (B, H, N) the similarities


def cosine_similarity_forward(memory, key):
    """Eq 6: K(k, M(i)) = k . M(i) / (||k|| ||M(i)||), with ||u|| = sqrt(|u|^2 + COSINE_EPS).

    memory (B, N, M), key (B, H, M) -> K (B, H, N), each entry in (-1, 1).
    """
    key_norm = np.sqrt(np.einsum("bhm,bhm->bh", key, key) + COSINE_EPS)
    mem_norm = np.sqrt(np.einsum("bnm,bnm->bn", memory, memory) + COSINE_EPS)
    dot = key @ memory.transpose(0, 2, 1)                            # 'bhm,bnm->bhn' as a batched matmul
    K = dot / (key_norm[:, :, None] * mem_norm[:, None, :])
    return K, CosineCache(memory, key, key_norm, mem_norm, K)


def cosine_similarity_backward(dK, cache):
    """Gradients of eq 6.  dK (B, H, N) -> (dmemory (B, N, M), dkey (B, H, M)).

    K = dot / (a c) with dot = k . M(i), a = ||k||, c = ||M(i)||, d||u||/du = u / ||u||:
        dK/dk    = M(i) / (a c) - K k / a^2
        dK/dM(i) = k / (a c)    - K M(i) / c^2
    """
    memory, key, a, c, K = cache
    ddot = dK / (a[:, :, None] * c[:, None, :])                      # (B, H, N)
    dK_K = dK * K                                                     # (B, H, N)
    dkey = ddot @ memory - (dK_K.sum(axis=2) / a ** 2)[:, :, None] * key   # 'bhn,bnm->bhm'
    dmemory = np.einsum("bhn,bhm->bnm", ddot, key) - (dK_K.sum(axis=1) / c ** 2)[:, :, None] * memory
    return dmemory, dkey


# ----------------------------------------------------------------------------------------------------
# eqs 5-6: content addressing
# ----------------------------------------------------------------------------------------------------

class ContentCache(NamedTuple):
    cosine: CosineCache      # eq 6's cache
    softmax: ActivationCache # the softmax's cache (x = beta K, y = w_c)
    beta: np.ndarray         # (B, H)


def content_forward(memory, key, beta):
    """Eq 5: w_c(i) = exp(beta K(k, M(i))) / sum_j exp(beta K(k, M(j))).

    memory (B, N, M), key (B, H, M), beta (B, H) key strength >= 0 -> w_c (B, H, N) on the simplex.
    """
    K, cos_cache = cosine_similarity_forward(memory, key)
    w, sm_cache = softmax_forward(beta[:, :, None] * K)
    return w, ContentCache(cos_cache, sm_cache, beta)


def content_backward(dw, cache):
    """Gradients of eq 5.  dw (B, H, N) -> (dmemory (B, N, M), dkey (B, H, M), dbeta (B, H)).

    With z = beta K: dz = softmax backward of dw; dbeta = sum_i dz(i) K(i); dK = beta dz.
    """
    dz = softmax_backward(dw, cache.softmax)                         # (B, H, N)
    dbeta = np.einsum("bhn,bhn->bh", dz, cache.cosine.K)
    dmemory, dkey = cosine_similarity_backward(cache.beta[:, :, None] * dz, cache.cosine)
    return dmemory, dkey, dbeta


# ----------------------------------------------------------------------------------------------------
# eq 7: interpolation
# ----------------------------------------------------------------------------------------------------

class InterpolateCache(NamedTuple):
    w_content: np.ndarray    # (B, H, N)
    w_prev: np.ndarray       # (B, H, N)
    g: np.ndarray            # (B, H)


def interpolate_forward(w_content, w_prev, g):
    """Eq 7: w_g = g w_c + (1 - g) w_prev.

    w_content (B, H, N), w_prev (B, H, N), g (B, H) gate in [0, 1] -> w_g (B, H, N).
    """
    gate = g[:, :, None]
    w = gate * w_content + (1.0 - gate) * w_prev
    return w, InterpolateCache(w_content, w_prev, g)


def interpolate_backward(dw, cache):
    """Gradients of eq 7.  dw (B, H, N) -> (dw_content, dw_prev (B, H, N), dg (B, H)).

    dw_c = g dw;  dw_prev = (1 - g) dw;  dg = sum_i dw(i) (w_c(i) - w_prev(i)).
    """
    gate = cache.g[:, :, None]
    dg = np.einsum("bhn,bhn->bh", dw, cache.w_content - cache.w_prev)
    return gate * dw, (1.0 - gate) * dw, dg


# ----------------------------------------------------------------------------------------------------
# eq 8: circular convolution with the shift kernel
# ----------------------------------------------------------------------------------------------------

class ShiftCache(NamedTuple):
    s: np.ndarray            # (B, H, S)
    shifted: np.ndarray      # (B, H, S, N)  shifted[..., k, i] = w((i - d_k) mod N), d_k = k - shift_range
    back_index: np.ndarray   # (S, N)        (j + d_k) mod N: where slot j's mass goes under shift d_k


def shift_offsets(S):
    """The shift d_k = k - shift_range of each kernel entry k = 0 .. S-1 (S odd).  -> (S,) int array."""
    if S % 2 != 1:
        raise ValueError(f"shift kernel width S must be odd (S = 2 * shift_range + 1), got S = {S}")
    shift_range = (S - 1) // 2
    return np.arange(S) - shift_range


def shift_forward(w, s):
    """Eq 8 (circular convolution): w~(i) = sum_j w(j) s((i - j) mod N) = sum_k s[k] w((i - d_k) mod N).

    s[..., k] is the weight of a shift by d_k = k - shift_range slots; a shift by +1 moves mass from
    slot i to slot i + 1 (so a one-hot kernel at d = +1 equals np.roll(w, +1, axis=-1)). Any N >= 1
    works; with N < S several kernel entries land on the same shift modulo N and their weights add.

    w (B, H, N), s (B, H, S) with S = 2 * shift_range + 1 -> w~ (B, H, N).
    """
    N, S = w.shape[-1], s.shape[-1]
    d = shift_offsets(S)
    slots = np.arange(N)
    fwd_index = (slots[None, :] - d[:, None]) % N                    # (S, N): source slot of i under d_k
    back_index = (slots[None, :] + d[:, None]) % N                   # (S, N): target slot of j under d_k
    shifted = w[:, :, fwd_index]                                      # (B, H, S, N)
    out = np.einsum("bhs,bhsn->bhn", s, shifted)
    return out, ShiftCache(s, shifted, back_index)


def shift_backward(dout, cache):
    """Gradients of eq 8.  dout (B, H, N) -> (dw (B, H, N), ds (B, H, S)).

    dw(j) = sum_k s[k] dout((j + d_k) mod N)      (slot j fed slot j + d_k with weight s[k])
    ds[k] = sum_i dout(i) w((i - d_k) mod N)
    """
    ds = np.einsum("bhn,bhsn->bhs", dout, cache.shifted)
    dw = np.einsum("bhs,bhsn->bhn", cache.s, dout[:, :, cache.back_index])
    return dw, ds


# ----------------------------------------------------------------------------------------------------
# eq 9: sharpening
# ----------------------------------------------------------------------------------------------------

class SharpenCache(NamedTuple):
    w_eps: np.ndarray        # (B, H, N)  w~ + SHARPEN_EPS
    log_w: np.ndarray        # (B, H, N)  log(w~ + SHARPEN_EPS)
    gamma: np.ndarray        # (B, H)
    out: np.ndarray          # (B, H, N)  the sharpened weighting


def sharpen_forward(w, gamma):
    """Eq 9: w(i) = w~(i)^gamma / sum_j w~(j)^gamma, computed as softmax_i(gamma log(w~(i) + SHARPEN_EPS)).

    w (B, H, N) non-negative with positive sum, gamma (B, H) >= 1 -> w (B, H, N) on the simplex.
    Exact zeros stay (numerically) zero; the log-space form never divides by a vanishing sum.
    """
    w_eps = w + SHARPEN_EPS
    log_w = np.log(w_eps)
    out, _ = softmax_forward(gamma[:, :, None] * log_w)
    return out, SharpenCache(w_eps, log_w, gamma, out)


def sharpen_backward(dout, cache):
    """Gradients of eq 9.  dout (B, H, N) -> (dw (B, H, N), dgamma (B, H)).

    With z(i) = gamma log(w~(i) + eps) and w = softmax(z):  dz(i) = w(i) (dout(i) - sum_j dout(j) w(j)),
        dgamma = sum_i dz(i) log(w~(i) + eps),    dw~(i) = dz(i) gamma / (w~(i) + eps).
    dz(i) carries the factor w(i) ~ (w~(i) + eps)^gamma, so the division leaves (w~(i) + eps)^(gamma - 1),
    finite for gamma >= 1 even where w~(i) = 0.
    """
    w_eps, log_w, gamma, out = cache
    dz = out * (dout - np.einsum("bhn,bhn->bh", dout, out)[:, :, None])
    dgamma = np.einsum("bhn,bhn->bh", dz, log_w)
    dw = dz * gamma[:, :, None] / w_eps
    return dw, dgamma


# ----------------------------------------------------------------------------------------------------
# eqs 5-9 composed: one addressing step for H heads
# ----------------------------------------------------------------------------------------------------

class AddressCache(NamedTuple):
    content: ContentCache
    interpolate: InterpolateCache
    shift: ShiftCache
    sharpen: SharpenCache
    w_content: np.ndarray      # (B, H, N) after eq 5
    w_gated: np.ndarray        # (B, H, N) after eq 7
    w_shifted: np.ndarray      # (B, H, N) after eq 8
    w: np.ndarray              # (B, H, N) after eq 9: the head's weighting


def address_forward(memory, w_prev, key, beta, g, s, gamma):
    """Eqs 5-9: content -> interpolate -> shift -> sharpen, for H heads at once.

    memory (B, N, M), w_prev (B, H, N) previous weightings, key (B, H, M), beta (B, H) >= 0,
    g (B, H) in [0, 1], s (B, H, S) on the simplex, gamma (B, H) >= 1  ->  w (B, H, N) on the simplex.
    The cache keeps the weighting after every stage (w_content, w_gated, w_shifted, w).
    """
    w_content, c_content = content_forward(memory, key, beta)
    w_gated, c_interp = interpolate_forward(w_content, w_prev, g)
    w_shifted, c_shift = shift_forward(w_gated, s)
    w, c_sharpen = sharpen_forward(w_shifted, gamma)
    return w, AddressCache(c_content, c_interp, c_shift, c_sharpen, w_content, w_gated, w_shifted, w)


def address_backward(dw, cache):
    """Gradients of eqs 5-9 in reverse order.  dw (B, H, N) ->
    (dmemory (B, N, M), dw_prev (B, H, N), dkey (B, H, M), dbeta (B, H), dg (B, H), ds (B, H, S), dgamma (B, H)).
    """
    dw_shifted, dgamma = sharpen_backward(dw, cache.sharpen)
    dw_gated, ds = shift_backward(dw_shifted, cache.shift)
    dw_content, dw_prev, dg = interpolate_backward(dw_gated, cache.interpolate)
    dmemory, dkey, dbeta = content_backward(dw_content, cache.content)
    return dmemory, dw_prev, dkey, dbeta, dg, ds, dgamma
