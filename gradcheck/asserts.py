"""Assertion forms of check_op and check_loss, for tests: they raise AssertionError(str(report))."""
from gradcheck.loss import check_loss
from gradcheck.op import check_op
from gradcheck.report import Report


def assert_gradients(*args, allow_kinks=True, **kwargs):
    """assert_gradients(report), or assert_gradients(forward, backward, inputs, **check_op_kwargs).

    Raises AssertionError with the full report text unless the report is ok; returns the report.
    allow_kinks=False also fails on entries passed as valid subgradients at kinks (as strict=True).
    """
    report = _given_report(args, kwargs) or check_op(*args, **kwargs)
    return _require(report, allow_kinks)


def assert_loss_gradients(*args, allow_kinks=True, **kwargs):
    """assert_loss_gradients(report), or assert_loss_gradients(loss_fn, params, grads, **check_loss_kwargs)."""
    report = _given_report(args, kwargs) or check_loss(*args, **kwargs)
    return _require(report, allow_kinks)


def _given_report(args, kwargs):
    if len(args) == 1 and not kwargs and isinstance(args[0], Report):
        return args[0]
    return None


def _require(report, allow_kinks):
    if not report.ok:
        raise AssertionError(str(report))
    kinks = [f"{b.name} {e.index}" for b in report.blocks for e in b.kinks]
    if kinks and not allow_kinks:
        raise AssertionError(f"allow_kinks=False, and {len(kinks)} entries passed only as valid subgradients at "
                             f"kinks: {', '.join(kinks[:10])}\n{report}")
    return report
