"""Activations that turn a head's raw outputs into its parameters.

The paper (Graves et al. 2014, section 3) gives only the ranges a head parameter must lie in
(beta > 0, g in (0, 1), s on the simplex, gamma >= 1, e in (0, 1)); implementations choose the maps.
These are the maps in common use (docs/conventions.md names who uses which; ELEMENTWISE, ACTIVATIONS below).

Every activation is elementwise on any shape (softmax: along the last axis), and comes as a pure pair
    <name>_forward(x) -> (y, cache)      <name>_backward(dy, cache) -> dx
with ``cache`` a NamedTuple. All but exp are written so that nothing overflows for |x| up to 1e3 and beyond:
sigmoid and softplus go through scipy.special.expit / numpy.logaddexp, softmax subtracts the row maximum.
"""
from typing import NamedTuple

import numpy as np
from scipy.special import expit


class ActivationCache(NamedTuple):
    """What an elementwise activation's backward needs: its input x and output y (same shape)."""
    x: np.ndarray
    y: np.ndarray


# --- sigmoid: y = 1 / (1 + exp(-x)), range (0, 1); used for the gate g and the erase vector e ---------

def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)).  x: any shape -> y: same shape, in [0, 1] ((0, 1) in exact arithmetic;
    float64 rounds to exactly 0 or 1 for |x| beyond about 37 and 745)."""
    y = expit(x)  # stable for large |x|: never computes exp of a large positive number
    return y, ActivationCache(x, y)


def sigmoid_backward(dy, cache):
    """dL/dx = dL/dy * y (1 - y)."""
    y = cache.y
    return dy * y * (1.0 - y)


# --- tanh: y = tanh(x), range (-1, 1); Collier's choice for the key k and the add vector a -------------

def tanh_forward(x):
    """y = tanh(x).  x: any shape -> y: same shape, in (-1, 1)."""
    y = np.tanh(x)
    return y, ActivationCache(x, y)


def tanh_backward(dy, cache):
    """dL/dx = dL/dy * (1 - y^2)."""
    return dy * (1.0 - cache.y ** 2)


# --- softplus: y = log(1 + exp(x)), range (0, inf); used for the key strength beta -----------------------

def softplus_forward(x):
    """y = log(1 + exp(x)), computed as logaddexp(0, x).  x: any shape -> y: same shape, >= 0
    (> 0 in exact arithmetic; float64 underflows to 0 for x below about -745)."""
    y = np.logaddexp(0.0, x)
    return y, ActivationCache(x, y)


def softplus_backward(dy, cache):
    """dL/dx = dL/dy * sigmoid(x)."""
    return dy * expit(cache.x)


# --- oneplus: y = 1 + softplus(x), range (1, inf); used for the sharpening exponent gamma ----------------

def oneplus_forward(x):
    """y = 1 + log(1 + exp(x)).  x: any shape -> y: same shape, >= 1 (exactly 1 for x below about -37)."""
    y = 1.0 + np.logaddexp(0.0, x)
    return y, ActivationCache(x, y)


def oneplus_backward(dy, cache):
    """dL/dx = dL/dy * sigmoid(x)  (the 1 has no gradient)."""
    return dy * expit(cache.x)


# --- softmax along the last axis: y_i = exp(x_i) / sum_j exp(x_j); used for the shift kernel s -----------

def softmax_forward(x):
    """y[..., i] = exp(x[..., i]) / sum_j exp(x[..., j]).  x: (..., K) -> y: (..., K), each row on the simplex.

    The row maximum is subtracted first, so no exp overflows.
    """
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    y = z / z.sum(axis=-1, keepdims=True)
    return y, ActivationCache(x, y)


def softmax_backward(dy, cache):
    """dL/dx_i = y_i (dL/dy_i - sum_j dL/dy_j y_j)   (the softmax Jacobian diag(y) - y y^T applied to dy)."""
    y = cache.y
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


# --- piecewise-linear maps used by ntm-lasagne (Theano); kinks where the pieces meet ---------------------
# Exactly at a kink the backward returns 0 (the slope of the flat piece): the gradient masks use strict
# inequalities. Finite differences are meaningless there, so the tests keep their points away from kinks.

def relu_forward(x):
    """y = max(x, 0).  x: any shape -> y: same shape, >= 0 (ntm-lasagne's beta)."""
    y = np.maximum(x, 0.0)
    return y, ActivationCache(x, y)


def relu_backward(dy, cache):
    """dL/dx = dL/dy where x > 0, else 0."""
    return dy * (cache.x > 0.0)


def one_plus_relu_forward(x):
    """y = 1 + max(x, 0).  x: any shape -> y: same shape, >= 1 (ntm-lasagne's gamma)."""
    y = 1.0 + np.maximum(x, 0.0)
    return y, ActivationCache(x, y)


def one_plus_relu_backward(dy, cache):
    """dL/dx = dL/dy where x > 0, else 0."""
    return dy * (cache.x > 0.0)


def hard_sigmoid_forward(x):
    """y = clip(0.2 x + 0.5, 0, 1) (Theano's hard_sigmoid).  x: any shape -> y: same shape, in [0, 1]."""
    y = np.clip(0.2 * x + 0.5, 0.0, 1.0)
    return y, ActivationCache(x, y)


def hard_sigmoid_backward(dy, cache):
    """dL/dx = 0.2 dL/dy where |x| < 2.5 (the linear piece), else 0."""
    return dy * (0.2 * (np.abs(cache.x) < 2.5))


def clip01_forward(x):
    """y = clip(x, 0, 1).  x: any shape -> y: same shape, in [0, 1] (ntm-lasagne's key and add)."""
    y = np.clip(x, 0.0, 1.0)
    return y, ActivationCache(x, y)


def clip01_backward(dy, cache):
    """dL/dx = dL/dy where 0 < x < 1, else 0."""
    return dy * ((cache.x > 0.0) & (cache.x < 1.0))


# "identity" is pytorch-ntm's choice for the key and add vectors (no squashing).
def identity_forward(x):
    """y = x (no activation).  x: any shape -> y: the same array values, a copy."""
    y = np.array(x, copy=True)
    return y, ActivationCache(x, y)


def identity_backward(dy, cache):
    """dL/dx = dL/dy."""
    return np.array(dy, copy=True)


# --- exp: y = exp(x), range (0, inf); fumin/ntm's key strength beta ---------------------------------------
# Unbounded: exp overflows to inf for x above about 709 (float64), as in the implementation it copies.
# With clip_value set (the default +-20) a raw head parameter never gets there.

def exp_forward(x):
    """y = exp(x).  x: any shape -> y: same shape, > 0 (inf for x above about 709)."""
    y = np.exp(x)
    return y, ActivationCache(x, y)


def exp_backward(dy, cache):
    """dL/dx = dL/dy * exp(x) = dL/dy * y."""
    return dy * cache.y


# --- PyTorch's softplus: F.softplus(x) with its defaults beta = 1, threshold = 20 --------------------------
# PyTorch returns x itself above the threshold (and a gradient of exactly 1 there), where log(1 + e^x)
# is x + e^-x: x + 2e-9 at x = 20. pytorch-ntm's beta, gamma (1 + F.softplus) and, in 2017-18, its
# shift logits go through it; "torch_softplus" / "torch_oneplus" reproduce it to the last digit.
TORCH_SOFTPLUS_THRESHOLD = 20.0


def torch_softplus_forward(x):
    """y = x where x > 20, else log(1 + exp(x)) (torch.nn.functional.softplus).  x: any shape -> y: same."""
    y = np.where(x > TORCH_SOFTPLUS_THRESHOLD, x, np.logaddexp(0.0, x))
    return y, ActivationCache(x, y)


def torch_softplus_backward(dy, cache):
    """dL/dx = dL/dy where x > 20, else dL/dy * sigmoid(x) (PyTorch's softplus backward)."""
    return dy * np.where(cache.x > TORCH_SOFTPLUS_THRESHOLD, 1.0, expit(cache.x))


def torch_oneplus_forward(x):
    """y = 1 + torch_softplus(x) (pytorch-ntm's gamma = 1 + F.softplus(gamma)).  x: any shape -> y: same, >= 1."""
    y = 1.0 + torch_softplus_forward(x)[0]
    return y, ActivationCache(x, y)


def torch_oneplus_backward(dy, cache):
    """dL/dx = torch_softplus's (the 1 has no gradient)."""
    return torch_softplus_backward(dy, cache)


# Every elementwise activation: name -> (forward, backward, (lowest value, highest value) of its range).
# The range decides which head parameters may use it (ntm_ref.config.HEAD_ACTIVATION_CHOICES): a key
# strength must be >= 0, a gate in [0, 1], a sharpening exponent >= 1. Who uses which: docs/conventions.md.
INF = float("inf")
ELEMENTWISE = {
    "identity": (identity_forward, identity_backward, (-INF, INF)),
    "relu": (relu_forward, relu_backward, (0.0, INF)),
    "one_plus_relu": (one_plus_relu_forward, one_plus_relu_backward, (1.0, INF)),
    "hard_sigmoid": (hard_sigmoid_forward, hard_sigmoid_backward, (0.0, 1.0)),
    "clip01": (clip01_forward, clip01_backward, (0.0, 1.0)),
    "sigmoid": (sigmoid_forward, sigmoid_backward, (0.0, 1.0)),
    "tanh": (tanh_forward, tanh_backward, (-1.0, 1.0)),
    "softplus": (softplus_forward, softplus_backward, (0.0, INF)),
    "oneplus": (oneplus_forward, oneplus_backward, (1.0, INF)),
    "exp": (exp_forward, exp_backward, (0.0, INF)),
    "torch_softplus": (torch_softplus_forward, torch_softplus_backward, (0.0, INF)),
    "torch_oneplus": (torch_oneplus_forward, torch_oneplus_backward, (1.0, INF)),
}


# --- the shift kernel: softmax of an elementwise activation --------------------------------------------
# The paper's s = softmax(z). pytorch-ntm's first revisions squash the logits first: softmax(relu(z))
# (0682553) and softmax(F.softplus(z)) (d8fedf6 to 7ae872d, until 2018-03-26): softmax_torch_softplus.
# "softmax_<name>" is softmax(<name>(z)).

class ComposedCache(NamedTuple):
    """Caches of softmax(inner(x)): the inner activation's and the softmax's."""
    inner: ActivationCache
    softmax: ActivationCache


def softmax_of(inner):
    """(forward, backward) of y = softmax(inner(x)) along the last axis, for an ELEMENTWISE name.
    x: (..., K) -> y: (..., K) on the simplex.  Backward: the softmax's, then the inner activation's."""
    inner_forward, inner_backward, _ = ELEMENTWISE[inner]

    def forward(x):
        u, inner_cache = inner_forward(x)
        y, softmax_cache = softmax_forward(u)
        return y, ComposedCache(inner_cache, softmax_cache)

    def backward(dy, cache):
        return inner_backward(softmax_backward(dy, cache.softmax), cache.inner)

    return forward, backward


SHIFT_ACTIVATIONS = ("softmax",) + tuple(f"softmax_{name}" for name in ELEMENTWISE if name != "identity")


# Name -> (forward, backward), for configs that choose a head parameter's activation by name: every
# elementwise activation, the plain softmax, and softmax_<name> for every elementwise <name>.
ACTIVATIONS = {name: (forward, backward) for name, (forward, backward, _) in ELEMENTWISE.items()}
ACTIVATIONS["softmax"] = (softmax_forward, softmax_backward)
ACTIVATIONS.update({f"softmax_{name}": softmax_of(name) for name in ELEMENTWISE if name != "identity"})


def backward_from_values(name, dy, x, y):
    """dL/dx of activation ``name`` from its input x and output y alone, for engines that keep only those
    (ntm_ref.engines.fast).  Elementwise maps and the plain softmax need nothing else; softmax_<inner> recomputes
    inner(x), the softmax's input."""
    if name.startswith("softmax_"):
        inner_forward = ELEMENTWISE[name[len("softmax_"):]][0]
        u, inner_cache = inner_forward(x)
        return ACTIVATIONS[name][1](dy, ComposedCache(inner_cache, ActivationCache(u, y)))
    return ACTIVATIONS[name][1](dy, ActivationCache(x, y))
