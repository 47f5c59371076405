"""Write a pytorch-ntm-shaped model file (torch.save of an EncapsulatedNTM state dict, copy-task sizes:
9 inputs, 8 outputs, LSTM 100, N = 128, M = 20, one head pair) with random weights, made by the PyTorch
module of tests/pytorch_ntm_revisions.py for the chosen revision. It stands in for a trained checkpoint
in docs/validate.md ("I have a pytorch-ntm checkpoint"); pytorch-ntm's published model files are binary
and could not be fetched on the machine the docs were written on.

    python scripts/pytorch_ntm_example.py --revision 3c64937 --out copy-task.model [--float32]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import pytorch_ntm_revisions as P   # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="3c64937", choices=sorted(P.GROUPS))
    parser.add_argument("--out", default="copy-task.model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float32", action="store_true", help="save float32 weights, as pytorch-ntm trains")
    args = parser.parse_args()
    net = P.build(args.revision, seed=args.seed, N=128, M=20, C=100, I=9, O=8, scale=0.3)
    if args.float32:
        net = net.float()
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}: pytorch-ntm {args.revision} copy-task model, random weights "
          f"({sum(p.numel() for p in net.parameters()):,} parameters)")


if __name__ == "__main__":
    main()
