"""Time of one validation pass (ntm_ref.train.cost_and_bit_errors) against running the same set in plain
chunks padded to the set's longest sequence, per task with its default model and validation set.

cost_and_bit_errors sorts the sequences by their last scored step and cuts each chunk after its own
longest; the plain pass runs every chunk for all T steps of the padded set. Both give the same numbers
(to round-off; printed). Each cell is the median of --repeats timed calls, the two timed in turn so load
hits them alike.

    python benchmarks/validation.py                       # copy, repeat copy, associative recall
    python benchmarks/validation.py --tasks copy --model ntm-lstm --repeats 9
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads (docs/model.md, "BLAS threads")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # this checkout's ntm_ref

from ntm_ref import train  # noqa: E402
from tasks.metrics import bit_errors_per_sequence, cost_bits_per_sequence  # noqa: E402


def padded_chunks(model, x, y, mask, chunk=train.EVAL_CHUNK):
    """The plain pass: chunks in the set's order, every one run for all T steps.  -> (cost, errors)."""
    cost, errors = 0.0, 0.0
    for start in range(0, x.shape[0], chunk):
        sl = slice(start, start + chunk)
        logits = model.run(x[sl]).logits
        cost += cost_bits_per_sequence(logits, y[sl], mask[sl], from_logits=True) * logits.shape[0]
        errors += bit_errors_per_sequence(logits, y[sl], mask[sl], from_logits=True) * logits.shape[0]
    return cost / x.shape[0], errors / x.shape[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["copy", "repeat_copy", "associative_recall"])
    parser.add_argument("--model", default="ntm-ff", choices=["ntm-ff", "ntm-lstm", "lstm"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| task | sequences x steps | padded chunks (s) | length-sorted, cut (s) | speed-up | cost difference |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.tasks:
        model, task = train.build_model(train.TrainSettings(task=name, model=args.model))
        x, y, mask = task.validation_set(None)
        plain, cut = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            a = padded_chunks(model, x, y, mask)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = train.cost_and_bit_errors(model, x, y, mask)
            cut.append(time.perf_counter() - t)
        p, c = np.median(plain), np.median(cut)
        print(f"| {name} | {x.shape[0]} x {x.shape[1]} | {p:.2f} | {c:.2f} | {p / c:.2f} | {abs(a[0] - b[0]):.1e} |")


if __name__ == "__main__":
    main()
