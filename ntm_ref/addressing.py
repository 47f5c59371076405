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
    key_norm: np.ndarray    # (B, H)    the key's norm as used in the formula (a below)
    mem_norm: np.ndarray    # (B, N)    each row's norm as used in the formula (c below)
    key_slope: np.ndarray   # (B, H)    d a / d k = key_slope * k
    mem_slope: np.ndarray   # (B, N)    d c / d M(i) = mem_slope * M(i)
    denom: np.ndarray       # (B, H, N) a c (+ eps in the "denominator" mode)
    K: np.ndarray           # (B, H, N) the similarities


def _norm(u, eps, mode):
    """The norm |u| over the last axis as each epsilon mode uses it, and its slope f with d norm / du = f u.

    smooth_norm: sqrt(|u|^2 + eps), slope 1 / norm;  clamp_norms: max(|u|, eps), slope 1 / |u| where
    |u| > eps else 0;  denominator: |u|, slope 1 / |u| where |u| > 0 else 0 (the subgradient 0 at u = 0,
    as PyTorch's norm gradient; TensorFlow's tf.norm gives NaN there).  u (..., M) -> (norm (...), slope (...)).
    """
    sq = np.einsum("...m,...m->...", u, u)
    if mode in ("smooth_norm", "smooth_norm_denominator"):
        norm = np.sqrt(sq + eps)
        return norm, 1.0 / norm
    plain = np.sqrt(sq)
    floor = eps if mode == "clamp_norms" else 0.0
    active = plain > floor
    slope = np.where(active, 1.0 / np.where(active, plain, 1.0), 0.0).astype(u.dtype)
    return (np.maximum(plain, eps) if mode == "clamp_norms" else plain), slope


def cosine_similarity_forward(memory, key, eps=COSINE_EPS, mode="smooth_norm"):
    """Eq 6: K(k, M(i)) = k . M(i) / (||k|| ||M(i)||), with the epsilon placed as ``mode`` says:

        smooth_norm (default)    ||u|| = sqrt(|u|^2 + eps)                the DNC's norms
        denominator              k . M(i) / (|k| |M(i)| + eps)            Collier's TensorFlow NTM
        clamp_norms              ||u|| = max(|u|, eps)                    torch.nn.functional.cosine_similarity
        smooth_norm_denominator  k . M(i) / (||k|| ||M(i)|| + eps), smooth norms      DeepMind's DNC

    memory (B, N, M), key (B, H, M) -> K (B, H, N), each entry in [-1, 1].
    """
    key_norm, key_slope = _norm(key, eps, mode)
    mem_norm, mem_slope = _norm(memory, eps, mode)
    dot = key @ memory.transpose(0, 2, 1)                            # 'bhm,bnm->bhn' as a batched matmul
    denom = key_norm[:, :, None] * mem_norm[:, None, :]
    if mode in ("denominator", "smooth_norm_denominator"):
        denom = denom + eps
    K = dot / denom
    return K, CosineCache(memory, key, key_norm, mem_norm, key_slope, mem_slope, denom, K)


def cosine_similarity_backward(dK, cache):
    """Gradients of eq 6.  dK (B, H, N) -> (dmemory (B, N, M), dkey (B, H, M)).

    K = dot / D with dot = k . M(i), D = a c (+ eps), a = ||k||, c = ||M(i)||, d a / dk = f_k k and
    d c / dM(i) = f_M M(i) (f the slope of the chosen norm: 1 / a for the smooth norm):
        dK/dk    = M(i) / D - K c f_k k / D
        dK/dM(i) = k / D    - K a f_M M(i) / D
    (For the smooth norm, c f_k / D = 1 / a^2: the familiar M(i) / (a c) - K k / a^2.)
    """
    memory, key, a, c, f_k, f_m, D, K = cache
    ddot = dK / D                                                     # (B, H, N)
    dK_K_D = dK * K / D                                               # (B, H, N)
    dkey = ddot @ memory - (np.einsum("bhn,bn->bh", dK_K_D, c) * f_k)[:, :, None] * key   # 'bhn,bnm->bhm'
    dmemory = (np.einsum("bhn,bhm->bnm", ddot, key)
               - (np.einsum("bhn,bh->bn", dK_K_D, a) * f_m)[:, :, None] * memory)
    return dmemory, dkey


# ----------------------------------------------------------------------------------------------------
# eqs 5-6: content addressing
# ----------------------------------------------------------------------------------------------------

class ContentCache(NamedTuple):
    cosine: CosineCache      # eq 6's cache
    softmax: ActivationCache # the softmax's cache (x = beta K, y = w_c)
    beta: np.ndarray         # (B, H)


def content_forward(memory, key, beta, eps=COSINE_EPS, mode="smooth_norm"):
    """Eq 5: w_c(i) = exp(beta K(k, M(i))) / sum_j exp(beta K(k, M(j))); eps, mode: eq 6's epsilon.

    memory (B, N, M), key (B, H, M), beta (B, H) key strength >= 0 -> w_c (B, H, N) on the simplex.
    """
    K, cos_cache = cosine_similarity_forward(memory, key, eps, mode)
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
    s: np.ndarray            # (B, H, S)     the kernel as applied by eq 8 (reversed for "correlation")
    shifted: np.ndarray      # (B, H, S, N)  shifted[..., k, i] = w((i - d_k) mod N), d_k = k - shift_range
    back_index: np.ndarray   # (S, N)        (j + d_k) mod N: where slot j's mass goes under shift d_k
    correlation: bool        # the kernel was reversed


def shift_offsets(S):
    """The shift d_k = k - shift_range of each kernel entry k = 0 .. S-1 (S odd).  -> (S,) int array."""
    if S % 2 != 1:
        raise ValueError(f"shift kernel width S must be odd (S = 2 * shift_range + 1), got S = {S}")
    shift_range = (S - 1) // 2
    return np.arange(S) - shift_range


def shift_forward(w, s, convention="convolution"):
    """Eq 8 (circular convolution): w~(i) = sum_j w(j) s((i - j) mod N) = sum_k s[k] w((i - d_k) mod N).

    s[..., k] is the weight of a shift by d_k = k - shift_range slots; a shift by +1 moves mass from
    slot i to slot i + 1 (so a one-hot kernel at d = +1 equals np.roll(w, +1, axis=-1)). Any N >= 1
    works; with N < S several kernel entries land on the same shift modulo N and their weights add.

    convention="correlation" applies the kernel reversed, w~(i) = sum_k s[k] w((i + d_k) mod N), which is
    what a cross-correlation such as PyTorch's conv1d computes: there the +1 entry moves mass i + 1 -> i.

    w (B, H, N), s (B, H, S) with S = 2 * shift_range + 1 -> w~ (B, H, N).
    """
    correlation = convention == "correlation"
    if convention not in ("convolution", "correlation"):
        raise ValueError(f"convention: got {convention!r}; allowed: 'convolution', 'correlation'")
    if correlation:
        s = s[..., ::-1]
    N, S = w.shape[-1], s.shape[-1]
    d = shift_offsets(S)
    slots = np.arange(N)
    fwd_index = (slots[None, :] - d[:, None]) % N                    # (S, N): source slot of i under d_k
    back_index = (slots[None, :] + d[:, None]) % N                   # (S, N): target slot of j under d_k
    shifted = w[:, :, fwd_index]                                      # (B, H, S, N)
    out = np.einsum("bhs,bhsn->bhn", s, shifted)
    return out, ShiftCache(s, shifted, back_index, correlation)


def shift_backward(dout, cache):
    """Gradients of eq 8.  dout (B, H, N) -> (dw (B, H, N), ds (B, H, S)).

    dw(j) = sum_k s[k] dout((j + d_k) mod N)      (slot j fed slot j + d_k with weight s[k])
    ds[k] = sum_i dout(i) w((i - d_k) mod N)      (reversed again for "correlation")
    """
    ds = np.einsum("bhn,bhsn->bhs", dout, cache.shifted)
    dw = np.einsum("bhs,bhsn->bhn", cache.s, dout[:, :, cache.back_index])
    return dw, (ds[..., ::-1] if cache.correlation else ds)


# ----------------------------------------------------------------------------------------------------
# eq 9: sharpening
# ----------------------------------------------------------------------------------------------------

class SharpenCache(NamedTuple):
    w: np.ndarray            # (B, H, N)  w~, the input
    log_w: np.ndarray        # (B, H, N)  log(w~ + eps) ("base"); log w~, 0 where w~ = 0 ("denominator")
    gamma: np.ndarray        # (B, H)
    out: np.ndarray          # (B, H, N)  the sharpened weighting
    eps: float
    total: np.ndarray        # (B, H)     sum_j w~(j)^gamma + eps ("denominator"); None for "base"


def sharpen_forward(w, gamma, eps=SHARPEN_EPS, mode="base"):
    """Eq 9: w(i) = w~(i)^gamma / sum_j w~(j)^gamma, with the epsilon placed as ``mode`` says:

        base (default)   (w~(i) + eps)^gamma / sum_j (w~(j) + eps)^gamma, computed as
                         softmax_i(gamma log(w~(i) + eps)): the sum can never underflow to zero
        denominator      w~(i)^gamma / (sum_j w~(j)^gamma + eps)               (pytorch-ntm, eps 1e-16)

    w (B, H, N) non-negative with positive sum, gamma (B, H) >= 1 -> w (B, H, N). "base" always sums to 1;
    "denominator" sums to less than 1 when sum_j w~(j)^gamma is not large against eps.
    """
    if mode == "base":
        log_w = np.log(w + eps)
        out, _ = softmax_forward(gamma[:, :, None] * log_w)
        return out, SharpenCache(w, log_w, gamma, out, eps, None)
    if mode != "denominator":
        raise ValueError(f"mode: got {mode!r}; allowed: 'base', 'denominator'")
    positive = w > 0
    log_w = np.where(positive, np.log(np.where(positive, w, 1.0)), 0.0).astype(w.dtype)
    powered = np.where(positive, np.exp(gamma[:, :, None] * log_w), 0.0).astype(w.dtype)   # w~^gamma, 0^gamma = 0
    total = powered.sum(axis=-1) + eps
    out = powered / total[:, :, None]
    return out, SharpenCache(w, log_w, gamma, out, eps, total)


def sharpen_backward(dout, cache):
    """Gradients of eq 9.  dout (B, H, N) -> (dw (B, H, N), dgamma (B, H)).

    base: with z(i) = gamma log(w~(i) + eps) and w = softmax(z):  dz(i) = w(i) (dout(i) - sum_j dout(j) w(j)),
        dgamma = sum_i dz(i) log(w~(i) + eps),    dw~(i) = dz(i) gamma / (w~(i) + eps).
    dz(i) carries the factor w(i) ~ (w~(i) + eps)^gamma, so the division leaves (w~(i) + eps)^(gamma - 1),
    finite for gamma >= 1 even where w~(i) = 0.
    denominator: with p(i) = w~(i)^gamma, Z = sum_j p(j) + eps, w = p / Z:  dp(i) = (dout(i) - sum_j dout(j) w(j)) / Z,
        dgamma = sum_i dp(i) p(i) log w~(i)  (0 where w~(i) = 0, the limit),  dw~(i) = dp(i) gamma p(i) / w~(i)
        = dp(i) gamma w~(i)^(gamma - 1)  (0 at w~(i) = 0 for gamma > 1; for gamma = 1 there the one-sided 1).
    """
    w, log_w, gamma, out, eps, total = cache
    centred = dout - np.einsum("bhn,bhn->bh", dout, out)[:, :, None]
    g = gamma[:, :, None]
    if total is None:
        dz = out * centred
        return dz * g / (w + eps), np.einsum("bhn,bhn->bh", dz, log_w)
    dp = centred / total[:, :, None]
    powered = out * total[:, :, None]                                # p(i)
    dgamma = np.einsum("bhn,bhn->bh", dp * powered, log_w)
    positive = w > 0
    slope = np.where(positive, np.exp((g - 1.0) * log_w), np.where(g == 1.0, 1.0, 0.0)).astype(w.dtype)
    return dp * g * slope, dgamma


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


class Conventions(NamedTuple):
    """Where implementations of eqs 6, 8 and 9 differ (NTMConfig fields of the same names; docs/conventions.md)."""
    shift_convention: str = "convolution"
    cosine_epsilon_mode: str = "smooth_norm"
    cosine_epsilon: float = COSINE_EPS
    sharpen_epsilon_mode: str = "base"
    sharpen_epsilon: float = SHARPEN_EPS

    @classmethod
    def of(cls, config):
        """The conventions of an NTMConfig."""
        return cls(*(getattr(config, name) for name in cls._fields))


PAPER = Conventions()


def address_forward(memory, w_prev, key, beta, g, s, gamma, conventions: Conventions = PAPER):
    """Eqs 5-9: content -> interpolate -> shift -> sharpen, for H heads at once.

    memory (B, N, M), w_prev (B, H, N) previous weightings, key (B, H, M), beta (B, H) >= 0,
    g (B, H) in [0, 1], s (B, H, S) on the simplex, gamma (B, H) >= 1  ->  w (B, H, N) on the simplex.
    The cache keeps the weighting after every stage (w_content, w_gated, w_shifted, w).
    """
    cv = conventions
    w_content, c_content = content_forward(memory, key, beta, cv.cosine_epsilon, cv.cosine_epsilon_mode)
    w_gated, c_interp = interpolate_forward(w_content, w_prev, g)
    w_shifted, c_shift = shift_forward(w_gated, s, cv.shift_convention)
    w, c_sharpen = sharpen_forward(w_shifted, gamma, cv.sharpen_epsilon, cv.sharpen_epsilon_mode)
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
