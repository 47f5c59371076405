"""Regenerate the golden traces in tests/golden/ (the presets of ntm_ref.trace.PRESETS, seed 0, float64).

    python scripts/make_golden.py            # refuses to overwrite a golden trace that changed
    python scripts/make_golden.py --force    # after a deliberate change to the reference's numbers

tests/test_golden.py regenerates every preset and requires it to match its golden file, so a change to
the numbers cannot slip in unnoticed: if you meant it, rerun this with --force, and say why in the commit.
"""
import argparse
import os

import numpy as np

from ntm_ref.compare import compare_traces, format_table
from ntm_ref.trace import PRESETS, load_trace, preset_trace

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")
RTOL, ATOL = 1e-12, 1e-14   # the golden test's tolerance: far below any real change, above BLAS round-off


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="overwrite golden traces that changed")
    args = parser.parse_args()
    os.makedirs(GOLDEN, exist_ok=True)
    for name in PRESETS:
        path = os.path.join(GOLDEN, f"{name}.npz")
        trace = preset_trace(name, seed=0)
        if os.path.exists(path) and not args.force:
            cmp = compare_traces(load_trace(path), trace, rtol=RTOL, atol=ATOL)
            if not cmp.agrees:
                print(format_table(cmp, only_failures=True))
                raise SystemExit(f"{path}: the reference's numbers changed; rerun with --force if you meant it")
            print(f"{path}: unchanged")
            continue
        np.savez_compressed(path, **trace)
        print(f"{path}: written ({os.path.getsize(path) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
