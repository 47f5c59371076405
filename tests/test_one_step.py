"""docs/one-step.md is what the code computes today, and the walk-through is step_backward, stage by stage."""
import os

import numpy as np
import pytest

from ntm_ref import cli, walkthrough

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "one-step.md")


def test_the_page_is_current():
    """Regenerate the page: any change in the model's numbers (or the text) shows up as a stale page."""
    with open(DOC, encoding="utf-8") as f:
        assert f.read() == walkthrough.page(), "docs/one-step.md is stale: run python scripts/one_step.py"


def test_demo_step_prints_the_same_numbers(capsys):
    assert cli.main(["demo", "--step"]) == 0
    assert capsys.readouterr().out == walkthrough.text() + "\n"


def test_the_walk_through_checks_itself_against_step_backward(monkeypatch):
    """A stage-by-stage backward that parts from step_backward is refused, not printed."""
    real = walkthrough.read_backward

    def off(dr, cache):
        dmemory, dw = real(dr, cache)
        return dmemory, dw * (1 + 1e-12)
    monkeypatch.setattr(walkthrough, "read_backward", off)
    with pytest.raises(AssertionError, match="differs"):
        walkthrough.walk()


def test_every_stage_is_named_with_its_function():
    text = walkthrough.text()
    for name in ("controller_forward", "content_forward", "interpolate_forward", "shift_forward",
                 "sharpen_forward", "read_forward", "write_forward", "bce_bits_backward", "write_backward",
                 "sharpen_backward", "shift_backward", "interpolate_backward", "content_backward",
                 "read_backward", "controller_backward"):
        assert name in text, name
    assert np.isfinite(walkthrough.make_example()[2]).all()
