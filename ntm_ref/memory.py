"""Reading and writing the memory matrix (paper section 3.1-3.2, eqs 2-4).

Dimension legend: B batch, H heads (of one kind, all in one call), N memory slots, M word width.

    read  (eq 2):    r_h = sum_i w_h(i) M(i)                                   for every read head h
    write (eqs 3-4): M' = M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T          all write heads at once

``<op>_forward(...) -> (out, cache)``; ``<op>_backward(dout, cache)`` returns the gradient of every input
in argument order. Pure functions: no input is mutated, nothing is kept between calls.
"""
from typing import NamedTuple

import numpy as np


# ----------------------------------------------------------------------------------------------------
# eq 2: read
# ----------------------------------------------------------------------------------------------------

class ReadCache(NamedTuple):
    memory: np.ndarray   # (B, N, M)
    w: np.ndarray        # (B, H, N)


def read_forward(memory, w):
    """Eq 2: r_h = sum_i w_h(i) M(i)  (r = w M for each head).

    memory (B, N, M), w (B, H, N) -> r (B, H, M).
    """
    r = w @ memory                                  # 'bhn,bnm->bhm' as a batched matmul
    return r, ReadCache(memory, w)


def read_backward(dr, cache):
    """Gradients of eq 2.  dr (B, H, M) -> (dmemory (B, N, M), dw (B, H, N)).

    dM(i) = sum_h w_h(i) dr_h   (every head's read adds into the same memory gradient);
    dw_h(i) = dr_h . M(i).
    """
    dmemory = np.einsum("bhn,bhm->bnm", cache.w, dr)
    dw = dr @ cache.memory.transpose(0, 2, 1)       # 'bhm,bnm->bhn'
    return dmemory, dw


# ----------------------------------------------------------------------------------------------------
# eqs 3-4: write (erase with every head, then add with every head)
# ----------------------------------------------------------------------------------------------------

class WriteCache(NamedTuple):
    memory: np.ndarray        # (B, N, M)     memory before the write
    w: np.ndarray             # (B, H, N)
    erase: np.ndarray         # (B, H, M)
    add: np.ndarray           # (B, H, M)
    keep_others: np.ndarray   # (B, H, N, M)  prod over the OTHER heads h' != h of (1 - w_h' e_h'^T)
    keep: np.ndarray          # (B, N, M)     prod over all heads of (1 - w_h e_h^T)


def _products_of_others(factors):
    """For factors F (B, H, N, M) return P (B, H, N, M) with P_h = prod_{h' != h} F_h' (for H = 1 the
    empty product 1, as a (B, 1, 1, 1) array that broadcasts like one).

    Built from prefix and suffix products, never by dividing the full product by F_h, so it stays exact
    when a factor is exactly zero (a slot fully erased: w_h(i) = 1 and e_h(m) = 1).
    """
    if factors.shape[1] == 1:
        return np.ones((factors.shape[0], 1, 1, 1), dtype=factors.dtype)   # one head: the empty product, broadcast
    ones = np.ones_like(factors[:, :1])
    before = np.concatenate([ones, np.cumprod(factors, axis=1)[:, :-1]], axis=1)           # prod_{h' < h}
    after = np.concatenate([np.cumprod(factors[:, ::-1], axis=1)[:, ::-1][:, 1:], ones], axis=1)  # h' > h
    return before * after


def write_forward(memory, w, erase, add):
    """Eqs 3-4 for H write heads: M'(i) = M(i) * prod_h (1 - w_h(i) e_h) + sum_h w_h(i) a_h.

    All heads erase first, then all add, so the order of the heads does not matter (paper section 3.2).
    memory (B, N, M), w (B, H, N), erase (B, H, M) in [0, 1], add (B, H, M) -> memory (B, N, M).
    """
    factors = 1.0 - w[:, :, :, None] * erase[:, :, None, :]           # (B, H, N, M)
    keep_others = _products_of_others(factors)
    keep = factors.prod(axis=1)                                       # (B, N, M) = prod over all heads
    new_memory = memory * keep + np.einsum("bhn,bhm->bnm", w, add)
    return new_memory, WriteCache(memory, w, erase, add, keep_others, keep)


def write_backward(dout, cache):
    """Gradients of eqs 3-4.  dout (B, N, M) -> (dmemory (B, N, M), dw (B, H, N), derase (B, H, M), dadd (B, H, M)).

    Slot i, word entry m. With F_h(i, m) = 1 - w_h(i) e_h(m) and P_h = prod_{h' != h} F_h' (no division, so exact at F_h = 0):
        dM(i, m)     = dout(i, m) prod_h F_h(i, m)
        dF_h(i, m)   = dout(i, m) M(i, m) P_h(i, m)
        dw_h(i)      = - sum_m dF_h(i, m) e_h(m) + sum_m dout(i, m) a_h(m)
        de_h(m)      = - sum_i dF_h(i, m) w_h(i)
        da_h(m)      =   sum_i dout(i, m) w_h(i)
    """
    memory, w, erase, add, keep_others, keep = cache
    dmemory = dout * keep
    dfactors = (dout * memory)[:, None] * keep_others                 # (B, H, N, M)
    dw = ((dout[:, None] @ add[..., None]) - dfactors @ erase[..., None])[..., 0]   # sums over M (m)
    derase = -np.einsum("bhnm,bhn->bhm", dfactors, w)
    dadd = np.einsum("bnm,bhn->bhm", dout, w)
    return dmemory, dw, derase, dadd
