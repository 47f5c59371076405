"""gradcheck at kinks and ties: how often a correct backward passes, and how often one that is wrong only at
the kink is called wrong, on ordinary layers evaluated at, next to and away from their kinks.

    python benchmarks/gradcheck_kinks.py            # the table of docs/gradcheck.md
    python benchmarks/gradcheck_kinks.py --trials 20

Each layer comes with its correct backward (any valid subgradient at the kink) and with a backward that
differs from it only at the kink, where it returns a value outside the one-sided slopes. Inputs: random
entries with some set exactly at the kink (or tied), some within 1e-6 of it, the rest ordinary. Run by
hand, not in the test suite; the numbers go into docs/gradcheck.md.
"""
import argparse
import time

import numpy as np

from gradcheck import check_op


def relu(x):
    return np.maximum(x, 0.0), x


def leaky(x):
    return np.where(x > 0, x, 0.01 * x), x


def absolute(x):
    return np.abs(x), x


def clip(x):
    return np.clip(x, -1.0, 1.0), x


def maxpool(x):
    """Max over pairs (x[0], x[1]), (x[2], x[3]), ...: x (2 K,) -> (K,); the backward routes to the first max."""
    pairs = x.reshape(-1, 2)
    return pairs.max(axis=1), x


def maxpool_backward(d, x):
    pairs = x.reshape(-1, 2)
    first = (pairs[:, 0] >= pairs[:, 1])
    return np.stack([d * first, d * ~first], axis=1).reshape(-1)


def maxpool_backward_both_at_tie(d, x):
    """Wrong only at a tie: both tied entries get the gradient (the sum is then 2, not 1)."""
    pairs = x.reshape(-1, 2)
    return np.stack([d * (pairs[:, 0] >= pairs[:, 1]), d * (pairs[:, 1] >= pairs[:, 0])], axis=1).reshape(-1)


LAYERS = {
    # name: (forward, correct backward, backward wrong only at the kink, where the kinks are)
    "relu": (relu, lambda d, x: d * (x > 0), lambda d, x: d * np.where(x == 0, 1.5, x > 0), (0.0,)),
    "leaky relu": (leaky, lambda d, x: d * np.where(x > 0, 1.0, 0.01),
                   lambda d, x: d * np.where(x > 0, 1.0, np.where(x == 0, 0.0, 0.01)), (0.0,)),
    "abs": (absolute, lambda d, x: d * np.sign(x), lambda d, x: d * np.where(x == 0, 2.0, np.sign(x)), (0.0,)),
    "clip [-1, 1]": (clip, lambda d, x: d * (np.abs(x) < 1), lambda d, x: d * np.where(np.abs(x) == 1, -1.0,
                                                                                     np.abs(x) < 1), (-1.0, 1.0)),
    "max-pool, ties": (maxpool, maxpool_backward, maxpool_backward_both_at_tie, None),
}


def inputs(name, rng, n=8):
    """n entries: a quarter exactly at a kink (or tied), a quarter within 1e-6 of one, the rest ordinary."""
    x = rng.normal(size=n) * 1.5
    kinks = LAYERS[name][3]
    if kinks is None:                                  # max-pool: tie pairs, and near-ties
        x[0:2] = x[0]
        x[2:4] = x[2], x[2] + rng.uniform(-1e-6, 1e-6)
        return x
    at = rng.choice(kinks, size=n // 4)
    x[:n // 4] = at
    x[n // 4:n // 2] = rng.choice(kinks, size=n // 4) + rng.uniform(-1e-6, 1e-6, size=n // 4)
    return x


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    print(f"{'layer':<16} {'correct passes':>15} {'wrong-at-kink called':>21} {'of which wrong':>15} {'ms/check':>9}")
    for name, (forward, good, bad, _) in LAYERS.items():
        passes = caught = wrong_verdict = 0
        seconds = 0.0
        for trial in range(args.trials):
            x = inputs(name, np.random.default_rng(trial))
            start = time.perf_counter()
            passes += check_op(forward, good, [x], seed=trial).ok
            seconds += time.perf_counter() - start
            report = check_op(forward, bad, [x], seed=trial)
            caught += not report.ok
            wrong_verdict += any(e.verdict.startswith("wrong") for b in report.blocks for e in b.failures)
        n = args.trials
        print(f"{name:<16} {passes:>8} of {n:<4} {caught:>14} of {n:<4} {wrong_verdict:>8} of {n:<4} "
              f"{1000 * seconds / n:>9.1f}")


if __name__ == "__main__":
    main()
