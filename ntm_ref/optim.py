"""Optimisers and gradient clipping for the NTM reference, as pure functions of arrays.

Which optimiser is for what
---------------------------
- ``GravesRMSProp``: the optimiser the NTM paper used (arXiv:1410.5401 §4: "RMSProp with
  momentum 0.9", in the form of Graves 2013, arXiv:1308.0850 eqs 38-41). Use it to reproduce
  the paper. It is a *centred* RMSProp (it divides by a running estimate of the gradient's
  standard deviation, not its root mean square) with epsilon inside the square root and
  momentum applied to the scaled step.
- ``RMSPropMomentum``: the RMSProp most reimplementations use. Its default form is
  ``torch.optim.RMSprop`` (pytorch-ntm); ``eps_inside_sqrt=True, v_init=1.0`` gives TensorFlow 1's
  ``tf.compat.v1.train.RMSPropOptimizer``. Use it to compare with those codebases.
- ``Adam``: Kingma & Ba (arXiv:1412.6980) with bias correction, as ``torch.optim.Adam``.
  The paper did not use it; it is here as a common, forgiving baseline.

The paper clips each gradient element to (-10, 10) before the update: ``clip_elementwise``.
DeepMind's DNC and Collier & Beel clip the global norm at 50 instead: ``clip_global_norm``.

Conventions
-----------
Every update is elementwise, so there is no dimension legend beyond this: a parameter has any
shape (...), and its gradient and every optimiser slot for it have that same shape (...).

- ``params`` and ``grads``: flat dicts name -> float64 ndarray, with the same keys and shapes.
- ``state``: flat dict str -> ndarray, so a checkpoint can write it with ``np.savez`` and read it
  with ``dict(np.load(path, allow_pickle=False))``. Keys are ``"<slot>/<param name>"`` (for
  example ``"n/ctrl/W"``) plus ``"step"``, a 0-d int64 array counting the updates applied.
  Every slot key contains a "/", so no parameter name can collide with ``"step"``.
- ``opt.step(params, grads, state) -> (new_params, new_state)`` is pure: it never writes to its
  inputs and returns fresh arrays. The optimiser object holds hyperparameters only (a frozen
  dataclass); all that changes between steps is in ``state``.
- ``step`` checks that ``state`` holds exactly the slots this optimiser, with these
  hyperparameters, makes for these parameters. So a state from another optimiser (or from
  RMSPropMomentum with another ``centered``/``eps_inside_sqrt``) raises instead of being misread.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Dict, Tuple

import numpy as np

Arrays = Dict[str, np.ndarray]

STEP_KEY = "step"  # state key of the update counter (0-d int64 array)


# ----------------------------------------------------------------------------------------------
# Hyperparameter checks: each raises ValueError naming the field, the value and what is allowed.
# ----------------------------------------------------------------------------------------------

def _real(owner: str, field: str, value) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{owner}: {field}={value!r} is invalid; allowed: a finite real number")
    return float(value)


def _check_range(owner: str, field: str, value, low: float, high: float,
                 low_open: bool, high_open: bool) -> float:
    """Check ``low <(=) value <(=) high`` and return ``value`` as a float."""
    x = _real(owner, field, value)
    ok_low = x > low if low_open else x >= low
    ok_high = x < high if high_open else x <= high
    if not (ok_low and ok_high):
        interval = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
        raise ValueError(f"{owner}: {field}={value!r} is invalid; allowed: {interval}")
    return x


def _check_positive(owner: str, field: str, value) -> float:
    x = _real(owner, field, value)
    if not x > 0.0:
        raise ValueError(f"{owner}: {field}={value!r} is invalid; allowed: a finite number > 0")
    return x


def _check_nonnegative(owner: str, field: str, value) -> float:
    x = _real(owner, field, value)
    if not x >= 0.0:
        raise ValueError(f"{owner}: {field}={value!r} is invalid; allowed: a finite number >= 0")
    return x


def _check_bool(owner: str, field: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {field}={value!r} is invalid; allowed: True or False")
    return bool(value)


# ----------------------------------------------------------------------------------------------
# State helpers shared by the optimisers.
# ----------------------------------------------------------------------------------------------

def _slot_key(slot: str, name: str) -> str:
    return f"{slot}/{name}"


def _new_state(params: Arrays, slots: Dict[str, float]) -> Arrays:
    """Fresh state: ``step`` = 0 and, per parameter, one array per slot set to its start value."""
    state: Arrays = {STEP_KEY: np.array(0, dtype=np.int64)}
    for name, theta in params.items():
        for slot, start in slots.items():
            state[_slot_key(slot, name)] = np.full(np.shape(theta), start, dtype=np.float64)
    return state


def _check_step_inputs(owner: str, params: Arrays, grads: Arrays, state: Arrays,
                       slots) -> int:
    """Check that grads and state match params; return the step count stored in state."""
    if set(grads) != set(params):
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        raise ValueError(f"{owner}: grads must have the keys of params; "
                         f"missing {missing}, unexpected {extra}")
    expected = {STEP_KEY} | {_slot_key(s, n) for n in params for s in slots}
    if set(state) != expected:
        missing = sorted(expected - set(state))
        extra = sorted(set(state) - expected)
        raise ValueError(f"{owner}: state does not match these params and this optimiser "
                         f"(make it with {owner}.init_state(params)); "
                         f"missing {missing}, unexpected {extra}")
    for name, theta in params.items():
        shape = np.shape(theta)
        if np.shape(grads[name]) != shape:
            raise ValueError(f"{owner}: grads[{name!r}] has shape {np.shape(grads[name])}, "
                             f"params[{name!r}] has shape {shape}; they must be equal")
        for s in slots:
            key = _slot_key(s, name)
            if np.shape(state[key]) != shape:
                raise ValueError(f"{owner}: state[{key!r}] has shape {np.shape(state[key])}, "
                                 f"params[{name!r}] has shape {shape}; they must be equal")
    step = np.asarray(state[STEP_KEY])
    is_count = step.shape == () and np.issubdtype(step.dtype, np.integer)
    if not is_count or int(step) < 0:
        raise ValueError(f"{owner}: state['step']={state[STEP_KEY]!r} is invalid; "
                         f"allowed: a 0-d integer array >= 0")
    return int(step)


# ----------------------------------------------------------------------------------------------
# Optimisers.
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GravesRMSProp:
    """RMSProp with momentum in the form of Graves 2013 (arXiv:1308.0850, eqs 38-41), as the NTM
    paper used it. Per element, with g the gradient (after clipping, if any):

        n     = decay * n    + (1 - decay) * g^2                        (38)
        gbar  = decay * gbar + (1 - decay) * g                          (39)
        delta = momentum * delta - lr * g / sqrt(n - gbar^2 + eps)      (40)
        theta = theta + delta                                           (41)

    n, gbar and delta start at 0. n - gbar^2 is a running variance and so >= 0 in exact
    arithmetic; it is floored at 0 before eps is added, so round-off cannot make the square
    root NaN. That is the same as the paper whenever the paper's value is defined.

    Args (defaults and where they come from):
        lr: 1e-4. The NTM paper's Tables 1-3 use 1e-4 (copy, repeat copy, associative recall)
            or 3e-5 (N-grams, priority sort); Graves 2013 also used 1e-4.
        decay: 0.95, Graves 2013 (the NTM paper does not restate it).
        momentum: 0.9, the NTM paper §4 (and Graves 2013).
        eps: 1e-4, Graves 2013; it is added *inside* the square root. Relative to a typical
            gradient variance this is large, so it also damps steps for near-constant gradients.

    State slots per parameter: ``n/``, ``gbar/``, ``delta/`` (all shape (...)), plus ``step``.
    """

    lr: float = 1e-4
    decay: float = 0.95
    momentum: float = 0.9
    eps: float = 1e-4

    name = "graves_rmsprop"  # the make_optimizer name (a class attribute, not a field)
    _slots = ("n", "gbar", "delta")

    def __post_init__(self):
        owner = type(self).__name__
        object.__setattr__(self, "lr", _check_positive(owner, "lr", self.lr))
        object.__setattr__(self, "decay",
                           _check_range(owner, "decay", self.decay, 0.0, 1.0, True, True))
        object.__setattr__(self, "momentum",
                           _check_range(owner, "momentum", self.momentum, 0.0, 1.0, False, True))
        object.__setattr__(self, "eps", _check_positive(owner, "eps", self.eps))

    def init_state(self, params: Arrays) -> Arrays:
        """State for ``params``: n, gbar, delta all zero, step 0."""
        return _new_state(params, {s: 0.0 for s in self._slots})

    def step(self, params: Arrays, grads: Arrays, state: Arrays) -> Tuple[Arrays, Arrays]:
        """One update. Returns ``(new_params, new_state)``; the inputs are left untouched."""
        t = _check_step_inputs(type(self).__name__, params, grads, state, self._slots)
        d, mom, lr, eps = self.decay, self.momentum, self.lr, self.eps
        new_params: Arrays = {}
        new_state: Arrays = {STEP_KEY: np.array(t + 1, dtype=np.int64)}
        for name, theta in params.items():
            g = grads[name]
            n = d * state[_slot_key("n", name)] + (1.0 - d) * (g * g)          # (38)
            gbar = d * state[_slot_key("gbar", name)] + (1.0 - d) * g          # (39)
            variance = np.maximum(n - gbar * gbar, 0.0)  # >= 0 exactly; floor only round-off
            delta = mom * state[_slot_key("delta", name)] - lr * g / np.sqrt(variance + eps)  # (40)
            new_params[name] = theta + delta                                     # (41)
            new_state[_slot_key("n", name)] = n
            new_state[_slot_key("gbar", name)] = gbar
            new_state[_slot_key("delta", name)] = delta
        return new_params, new_state


@dataclasses.dataclass(frozen=True)
class RMSPropMomentum:
    """RMSProp with heavy-ball momentum, in the PyTorch form by default.

    Default form (``eps_inside_sqrt=False``), the same as ``torch.optim.RMSprop`` with momentum:

        v     = alpha * v + (1 - alpha) * g^2
        gbar  = alpha * gbar + (1 - alpha) * g                 (only if centered)
        denom = sqrt(v - gbar^2) + eps   if centered  else  sqrt(v) + eps     (eps OUTSIDE sqrt)
        buf   = momentum * buf + g / denom
        theta = theta - lr * buf

    TensorFlow 1 form (``eps_inside_sqrt=True``). Checked against the docs of
    ``tf.compat.v1.train.RMSPropOptimizer`` / ``tf.raw_ops.ApplyRMSProp`` and the source of
    ``tensorflow/python/training/rmsprop.py``:

        ms  = rho * ms + (1 - rho) * g^2
        mg  = rho * mg + (1 - rho) * g                         (only if centered)
        mom = momentum * mom + lr * g / sqrt(ms - mg^2 + eps)  (centered)
        mom = momentum * mom + lr * g / sqrt(ms + eps)         (not centered; eps INSIDE sqrt)
        var = var - mom

    What that check found beyond the formula: TF1 starts ``ms`` (its "rms" slot) at ONES, not
    zeros (``mg`` and ``mom`` start at zeros), so to reproduce TF1 pass ``v_init=1.0`` as well;
    the first ~100-300 steps differ otherwise. TF1's defaults are decay 0.9, momentum 0.0,
    epsilon 1e-10. Also, TF1 keeps ``lr`` inside the momentum buffer (``mom``) while PyTorch
    applies it outside (``buf``); with a constant lr the two give the same trajectory, but the
    buffers hold different quantities, so they are stored under different slot names
    (``mom/`` vs ``buf/``) and one cannot be loaded as the other.

    With ``centered=True, eps_inside_sqrt=True, v_init=0`` this is exactly GravesRMSProp
    (alpha = decay, and ``mom`` = -delta).

    The centred variance v - gbar^2 is floored at 0 before the square root (it is >= 0 in exact
    arithmetic; PyTorch does not floor it and could return NaN from round-off, otherwise equal).

    Args:
        lr: 1e-4, the NTM paper's rate for most tasks (torch's default is 1e-2).
        alpha: 0.95, the NTM paper's decay (torch's default is 0.99, TF1's 0.9).
        momentum: 0.9, the NTM paper's (torch's and TF1's default is 0).
        eps: 1e-10, TF1's default (torch's is 1e-8).
        centered: divide by the running standard deviation instead of the running RMS.
        eps_inside_sqrt: False for the PyTorch form, True for the TF1 form.
        v_init: start value of v (0.0 as PyTorch; 1.0 reproduces TF1).

    State slots per parameter: ``v/``, ``gbar/`` (only if centered), and ``buf/`` (PyTorch form)
    or ``mom/`` (TF1 form), all shape (...), plus ``step``.
    """

    lr: float = 1e-4
    alpha: float = 0.95
    momentum: float = 0.9
    eps: float = 1e-10
    centered: bool = False
    eps_inside_sqrt: bool = False
    v_init: float = 0.0

    name = "rmsprop"

    def __post_init__(self):
        owner = type(self).__name__
        object.__setattr__(self, "lr", _check_positive(owner, "lr", self.lr))
        object.__setattr__(self, "alpha",
                           _check_range(owner, "alpha", self.alpha, 0.0, 1.0, True, True))
        object.__setattr__(self, "momentum",
                           _check_range(owner, "momentum", self.momentum, 0.0, 1.0, False, True))
        object.__setattr__(self, "eps", _check_positive(owner, "eps", self.eps))
        object.__setattr__(self, "centered", _check_bool(owner, "centered", self.centered))
        object.__setattr__(self, "eps_inside_sqrt",
                           _check_bool(owner, "eps_inside_sqrt", self.eps_inside_sqrt))
        object.__setattr__(self, "v_init", _check_nonnegative(owner, "v_init", self.v_init))

    @property
    def _momentum_slot(self) -> str:
        return "mom" if self.eps_inside_sqrt else "buf"

    @property
    def _slots(self) -> Tuple[str, ...]:
        return ("v", "gbar", self._momentum_slot) if self.centered else ("v", self._momentum_slot)

    def init_state(self, params: Arrays) -> Arrays:
        """State for ``params``: v = v_init, gbar and the momentum buffer zero, step 0."""
        starts = {s: 0.0 for s in self._slots}
        starts["v"] = self.v_init
        return _new_state(params, starts)

    def step(self, params: Arrays, grads: Arrays, state: Arrays) -> Tuple[Arrays, Arrays]:
        """One update. Returns ``(new_params, new_state)``; the inputs are left untouched."""
        t = _check_step_inputs(type(self).__name__, params, grads, state, self._slots)
        a, mom, lr, eps = self.alpha, self.momentum, self.lr, self.eps
        mslot = self._momentum_slot
        new_params: Arrays = {}
        new_state: Arrays = {STEP_KEY: np.array(t + 1, dtype=np.int64)}
        for name, theta in params.items():
            g = grads[name]
            v = a * state[_slot_key("v", name)] + (1.0 - a) * (g * g)
            new_state[_slot_key("v", name)] = v
            if self.centered:
                gbar = a * state[_slot_key("gbar", name)] + (1.0 - a) * g
                new_state[_slot_key("gbar", name)] = gbar
                second_moment = np.maximum(v - gbar * gbar, 0.0)  # floor only round-off
            else:
                second_moment = v
            buf_prev = state[_slot_key(mslot, name)]
            if self.eps_inside_sqrt:   # TF1: lr inside the buffer, eps inside the sqrt
                buf = mom * buf_prev + lr * g / np.sqrt(second_moment + eps)
                new_params[name] = theta - buf
            else:                      # PyTorch: lr outside the buffer, eps outside the sqrt
                buf = mom * buf_prev + g / (np.sqrt(second_moment) + eps)
                new_params[name] = theta - lr * buf
            new_state[_slot_key(mslot, name)] = buf
        return new_params, new_state


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba, arXiv:1412.6980, Algorithm 1) with bias correction, as torch.optim.Adam
    (no weight decay, no amsgrad). Per element, with t the 1-based step number:

        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t);   v_hat = v / (1 - beta2^t)
        theta = theta - lr * m_hat / (sqrt(v_hat) + eps)

    So the first step moves each parameter by lr * g / (|g| + eps), about lr * sign(g).

    Args (the usual defaults of the Adam paper and of torch): lr 1e-3, beta1 0.9, beta2 0.999,
    eps 1e-8. State slots per parameter: ``m/``, ``v/`` (shape (...)), plus ``step`` (t).
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    name = "adam"
    _slots = ("m", "v")

    def __post_init__(self):
        owner = type(self).__name__
        object.__setattr__(self, "lr", _check_positive(owner, "lr", self.lr))
        object.__setattr__(self, "beta1",
                           _check_range(owner, "beta1", self.beta1, 0.0, 1.0, False, True))
        object.__setattr__(self, "beta2",
                           _check_range(owner, "beta2", self.beta2, 0.0, 1.0, False, True))
        object.__setattr__(self, "eps", _check_positive(owner, "eps", self.eps))

    def init_state(self, params: Arrays) -> Arrays:
        """State for ``params``: m and v zero, step 0."""
        return _new_state(params, {s: 0.0 for s in self._slots})

    def step(self, params: Arrays, grads: Arrays, state: Arrays) -> Tuple[Arrays, Arrays]:
        """One update. Returns ``(new_params, new_state)``; the inputs are left untouched."""
        t = _check_step_inputs(type(self).__name__, params, grads, state, self._slots) + 1
        b1, b2 = self.beta1, self.beta2
        # Same order of operations as torch: step size lr / (1 - b1^t), then
        # denom = sqrt(v) / sqrt(1 - b2^t) + eps.
        step_size = self.lr / (1.0 - b1 ** t)
        sqrt_bias2 = math.sqrt(1.0 - b2 ** t)
        new_params: Arrays = {}
        new_state: Arrays = {STEP_KEY: np.array(t, dtype=np.int64)}
        for name, theta in params.items():
            g = grads[name]
            m = b1 * state[_slot_key("m", name)] + (1.0 - b1) * g
            v = b2 * state[_slot_key("v", name)] + (1.0 - b2) * (g * g)
            denom = np.sqrt(v) / sqrt_bias2 + self.eps
            new_params[name] = theta - step_size * m / denom
            new_state[_slot_key("m", name)] = m
            new_state[_slot_key("v", name)] = v
        return new_params, new_state


# ----------------------------------------------------------------------------------------------
# Gradient clipping (pure: new dicts of new arrays).
# ----------------------------------------------------------------------------------------------

def clip_elementwise(grads: Arrays, limit: float = 10.0) -> Arrays:
    """Clip every gradient element to [-limit, limit]; the NTM paper §4 clips to (-10, 10).

    NaN elements stay NaN (np.clip passes them through), so a NaN gradient is not hidden.
    """
    limit = _check_positive("clip_elementwise", "limit", limit)
    return {name: np.clip(g, -limit, limit) for name, g in grads.items()}


def global_norm(grads: Arrays) -> float:
    """The L2 norm of all gradient elements together: sqrt(sum over arrays of sum(g^2))."""
    return float(math.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())))


def clip_global_norm(grads: Arrays, max_norm: float = 50.0) -> Tuple[Arrays, float]:
    """Scale all gradients by max_norm / norm when their global norm exceeds max_norm.

    DeepMind's DNC and Collier & Beel use max_norm = 50. Returns ``(clipped, norm)`` with
    ``norm`` the global norm *before* clipping, to log. After clipping the global norm is
    max_norm (up to round-off; torch.nn.utils.clip_grad_norm_ instead divides by norm + 1e-6).

    If the norm is not finite (an inf or NaN gradient), the gradients are returned unscaled
    (copies) rather than turned into NaN by the scaling; check ``math.isfinite(norm)``.
    """
    max_norm = _check_positive("clip_global_norm", "max_norm", max_norm)
    norm = global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        return {name: g * scale for name, g in grads.items()}, norm
    return {name: np.array(g, copy=True) for name, g in grads.items()}, norm


# ----------------------------------------------------------------------------------------------
# Construction by name.
# ----------------------------------------------------------------------------------------------

OPTIMIZERS = {cls.name: cls for cls in (GravesRMSProp, RMSPropMomentum, Adam)}


def make_optimizer(name: str, **kwargs):
    """Build an optimiser by name: "graves_rmsprop", "rmsprop" or "adam".

    ``kwargs`` are the hyperparameters of that class (see its docstring); unset ones take the
    class defaults. An unknown name, an unknown hyperparameter or an invalid value raises
    ValueError naming the field, the value, and what is allowed.
    """
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"make_optimizer: name={name!r} is invalid; "
                         f"allowed: {', '.join(repr(k) for k in sorted(OPTIMIZERS))}")
    cls = OPTIMIZERS[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    for key, value in kwargs.items():
        if key not in fields:
            raise ValueError(f"make_optimizer({name!r}): hyperparameter {key}={value!r} is "
                             f"invalid; allowed hyperparameters: {', '.join(fields)}")
    return cls(**kwargs)
