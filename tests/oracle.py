"""A naive oracle: every NTM operation written as plain per-element Python loops, straight from the
paper's equations, sharing no code with ntm_ref. Slow on purpose; the tests compare ntm_ref against it.
"""
import math

import numpy as np


def cosine(memory, key, eps, mode="smooth_norm"):
    """Eq 6 with its epsilon placed as ``mode`` says (NTMConfig.cosine_epsilon_mode)."""
    B, N, M = memory.shape
    H = key.shape[1]
    K = np.zeros((B, H, N))
    for b in range(B):
        for h in range(H):
            kk = sum(key[b, h, m] ** 2 for m in range(M))
            for i in range(N):
                mm = sum(memory[b, i, m] ** 2 for m in range(M))
                dot = sum(key[b, h, m] * memory[b, i, m] for m in range(M))
                if mode == "smooth_norm":
                    K[b, h, i] = dot / (math.sqrt(kk + eps) * math.sqrt(mm + eps))
                elif mode == "denominator":
                    K[b, h, i] = dot / (math.sqrt(kk) * math.sqrt(mm) + eps)
                elif mode == "clamp_norms":
                    K[b, h, i] = dot / (max(math.sqrt(kk), eps) * max(math.sqrt(mm), eps))
                else:   # smooth_norm_denominator
                    K[b, h, i] = dot / (math.sqrt(kk + eps) * math.sqrt(mm + eps) + eps)
    return K


def softmax_row(z):
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


def content(memory, key, beta, eps):
    K = cosine(memory, key, eps)
    B, H, N = K.shape
    w = np.zeros((B, H, N))
    for b in range(B):
        for h in range(H):
            w[b, h] = softmax_row([beta[b, h] * K[b, h, i] for i in range(N)])
    return w


def interpolate(w_content, w_prev, g):
    B, H, N = w_content.shape
    out = np.zeros((B, H, N))
    for b in range(B):
        for h in range(H):
            for i in range(N):
                out[b, h, i] = g[b, h] * w_content[b, h, i] + (1 - g[b, h]) * w_prev[b, h, i]
    return out


def shift(w, s):
    """Eq 8 literally: w~(i) = sum_j w(j) s((i - j) mod N), s indexed by shift amount d = k - R."""
    B, H, N = w.shape
    S = s.shape[2]
    R = (S - 1) // 2
    out = np.zeros((B, H, N))
    for b in range(B):
        for h in range(H):
            for i in range(N):
                total = 0.0
                for j in range(N):
                    # every kernel entry whose shift d satisfies d = (i - j) mod N
                    for k in range(S):
                        if (k - R - (i - j)) % N == 0:
                            total += w[b, h, j] * s[b, h, k]
                out[b, h, i] = total
    return out


def sharpen(w, gamma):
    """Eq 9 literally: w^gamma / sum w^gamma (fine for the moderate gammas the oracle is used with)."""
    B, H, N = w.shape
    out = np.zeros((B, H, N))
    for b in range(B):
        for h in range(H):
            p = [w[b, h, i] ** gamma[b, h] for i in range(N)]
            total = sum(p)
            for i in range(N):
                out[b, h, i] = p[i] / total
    return out


def read(memory, w):
    B, N, M = memory.shape
    H = w.shape[1]
    r = np.zeros((B, H, M))
    for b in range(B):
        for h in range(H):
            for m in range(M):
                r[b, h, m] = sum(w[b, h, i] * memory[b, i, m] for i in range(N))
    return r


def write(memory, w, erase, add):
    """Erase with every head (eq 3), then add with every head (eq 4)."""
    B, N, M = memory.shape
    H = w.shape[1]
    out = memory.copy()
    for b in range(B):
        for h in range(H):
            for i in range(N):
                for m in range(M):
                    out[b, i, m] *= 1 - w[b, h, i] * erase[b, h, m]
        for h in range(H):
            for i in range(N):
                for m in range(M):
                    out[b, i, m] += w[b, h, i] * add[b, h, m]
    return out
