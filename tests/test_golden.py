"""The golden traces (tests/golden/*.npz, made by scripts/make_golden.py) are what the reference computes
today: every preset is regenerated and compared with its golden file at rtol 1e-12, so a change to the
reference's numbers cannot slip in unnoticed."""
import os

import numpy as np
import pytest

from ntm_ref.compare import compare_traces, format_table
from ntm_ref.trace import PRESETS, load_trace, preset_trace, trace_config

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
RTOL, ATOL = 1e-12, 1e-14       # as scripts/make_golden.py


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_regenerated_trace_matches_golden(name):
    golden = load_trace(os.path.join(GOLDEN, f"{name}.npz"))
    fresh = preset_trace(name, seed=0)
    assert sorted(golden) == sorted(fresh)
    assert trace_config(golden) == trace_config(fresh)          # the preset's configuration itself
    cmp = compare_traces(golden, fresh, rtol=RTOL, atol=ATOL)
    assert cmp.agrees, format_table(cmp, only_failures=True)


def test_golden_guard_catches_a_change_in_the_last_digits():
    """A change of one part in 1e10 in one memory entry (a change far smaller than any real bug) fails."""
    golden = load_trace(os.path.join(GOLDEN, "tiny-ff.npz"))
    changed = dict(golden)
    changed["fwd/memory"] = golden["fwd/memory"].copy()
    changed["fwd/memory"][1, 3, 2, 4] *= 1 + 1e-10
    cmp = compare_traces(golden, changed, rtol=RTOL, atol=ATOL)
    assert not cmp.agrees
    assert cmp.first_divergence.name == "fwd/memory" and cmp.first_divergence.first_step == 3


def test_golden_traces_are_small_and_plain():
    for name in PRESETS:
        path = os.path.join(GOLDEN, f"{name}.npz")
        assert os.path.getsize(path) < 600_000
        with np.load(path, allow_pickle=False) as data:
            assert all(data[k].dtype != object for k in data.files)
