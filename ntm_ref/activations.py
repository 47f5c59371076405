"""Activations that turn a head's raw outputs into its parameters.

The paper (Graves et al. 2014, section 3) gives only the ranges a head parameter must lie in
(beta > 0, g in (0, 1), s on the simplex, gamma >= 1, e in (0, 1)); implementations choose the maps.
These are the maps in common use (see docs and notes/paper.md, "Activations of head parameters").

Every activation is elementwise on any shape (softmax: along the last axis), and comes as a pure pair
    <name>_forward(x) -> (y, cache)      <name>_backward(dy, cache) -> dx
with ``cache`` a NamedTuple. All are written so that nothing overflows for |x| up to 1e3 and beyond:
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


# Name -> (forward, backward), for configs that choose a head parameter's activation by name.
ACTIVATIONS = {
    "identity": (identity_forward, identity_backward),
    "relu": (relu_forward, relu_backward),
    "one_plus_relu": (one_plus_relu_forward, one_plus_relu_backward),
    "hard_sigmoid": (hard_sigmoid_forward, hard_sigmoid_backward),
    "clip01": (clip01_forward, clip01_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "softplus": (softplus_forward, softplus_backward),
    "oneplus": (oneplus_forward, oneplus_backward),
    "softmax": (softmax_forward, softmax_backward),
}
