"""gradcheck: finite-difference checks of hand-written backward passes (float64, NumPy only).

An op is a pair ``forward(*inputs) -> (out, cache)``, ``backward(dout, cache) -> gradients``::

    import numpy as np
    from gradcheck import assert_gradients, check_op

    def tanh_forward(x):
        out = np.tanh(x)
        return out, out

    def tanh_backward(dout, out):
        return dout * (1.0 - out ** 2)           # in the forward pass this was out = tanh(x)

    report = check_op(tanh_forward, tanh_backward, [np.linspace(-2.0, 2.0, 5)], names=["x"])
    print(report)                                # verdict, structural checks, per-block table
    assert_gradients(report)                     # AssertionError(str(report)) unless report.ok

Whole models: ``check_loss(loss_fn, params, grads, mode="full" | "probe")`` with params and grads
dicts name -> array. Hypothesis strategies for the NTM's input domains live in ``gradcheck.strategies``
(imported on first use, so ``import gradcheck`` does not need hypothesis).

The scalar checked is sum(out * dout) for a seeded random Gaussian dout. Numeric derivatives are central
differences with one Richardson step (step eps^(1/5) * max(min(1, rms x), |x|)), one-sided at a declared bound; an
entry passes iff |a - n| <= atol_i + rtol * max(|a|, |n|), atol_i tied to the measured noise. Failing
entries are re-estimated down a ladder of smaller steps, which also tells a wrong gradient (the ladder
converges elsewhere) from a kink (the one-sided slopes settle apart: the analytic value must lie between
them, a valid subgradient, which passes unless strict=True) and from noise (they do not settle).
docs/gradcheck.md is the user's guide.
"""
import importlib

from gradcheck.asserts import assert_gradients, assert_loss_gradients
from gradcheck.loss import check_loss
from gradcheck.op import check_op
from gradcheck.report import Failure, Report, load_inputs

__all__ = ["check_op", "check_loss", "Report", "Failure", "assert_gradients", "assert_loss_gradients", "load_inputs"]


def __getattr__(name):
    """Import gradcheck.strategies (which needs hypothesis) only when it is asked for."""
    if name == "strategies":
        return importlib.import_module("gradcheck.strategies")
    raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
