"""The ``ntm-ref`` command line.

    ntm-ref demo      run one addressing step of two heads on a small memory and print every stage

Later issues add ``train``, ``eval``, ``plot``, ``trace`` and ``compare``.
"""
import argparse
import sys

import numpy as np

from ntm_ref import addressing, memory
from ntm_ref.activations import oneplus_forward, sigmoid_forward, softmax_forward, softplus_forward


def _fmt(row):
    return " ".join(f"{v:6.3f}" for v in row)


def demo(args):
    """One addressing step (eqs 5-9) and a read (eq 2) for two heads on an N x M memory, printed stage by stage."""
    rng = np.random.default_rng(args.seed)
    N, M = args.slots, args.width
    mem = rng.normal(size=(1, N, M))
    # head 0 looks for the contents of slot 3 by content; head 1 moves one slot on from where it was
    key = np.stack([mem[0, 3] + 0.1 * rng.normal(size=M), rng.normal(size=M)])[None]   # (B=1, H=2, M)
    w_prev = np.zeros((1, 2, N))
    w_prev[0, :, 0] = 1.0
    beta, _ = softplus_forward(np.array([[5.0, 0.0]]))        # key strength > 0
    g, _ = sigmoid_forward(np.array([[6.0, -6.0]]))           # head 0 content, head 1 previous weighting
    s, _ = softmax_forward(np.array([[[0.0, 6.0, 0.0], [0.0, 0.0, 6.0]]]))   # shifts -1, 0, +1
    gamma, _ = oneplus_forward(np.array([[1.0, 3.0]]))        # sharpening >= 1

    w, cache = addressing.address_forward(mem, w_prev, key, beta, g, s, gamma)
    r, _ = memory.read_forward(mem, w)

    print(f"ntm_ref demo: one addressing step, memory N={N} slots x M={M}, 2 heads (seed {args.seed})")
    print(f"  head 0: key near slot 3, beta={beta[0, 0]:.2f}, g={g[0, 0]:.3f} (content), "
          f"shift 0, gamma={gamma[0, 0]:.2f}")
    print(f"  head 1: random key,     beta={beta[0, 1]:.2f}, g={g[0, 1]:.3f} (previous), "
          f"shift +1, gamma={gamma[0, 1]:.2f}")
    print("  slot:              " + " ".join(f"{i:6d}" for i in range(N)))
    stages = [("w_prev", w_prev), ("content  (eq 5)", cache.w_content), ("gated    (eq 7)", cache.w_gated),
              ("shifted  (eq 8)", cache.w_shifted), ("sharpened(eq 9)", cache.w)]
    for h in range(2):
        print(f"  head {h}")
        for name, arr in stages:
            print(f"    {name:15s} {_fmt(arr[0, h])}")
        print(f"    read (eq 2)     {_fmt(r[0, h])}   (argmax slot {int(w[0, h].argmax())})")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="ntm-ref", description="NumPy reference Neural Turing Machine")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run one addressing step and print the weightings of every stage")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--slots", type=int, default=8, help="memory slots N (default 8, at least 4)")
    p.add_argument("--width", type=int, default=4, help="memory word width M (default 4)")
    p.set_defaults(func=demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and (args.slots < 4 or args.width < 1):
        parser.error("--slots must be at least 4 and --width at least 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
