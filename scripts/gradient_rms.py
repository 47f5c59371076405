"""RMS gradient per parameter element over training sequences, and the fraction of elements below a size:
how much of a model Graves RMSProp's epsilon (1e-4 inside the square root: it never divides by less than
0.01) would damp. docs/results.md, "A recipe for the LSTM controller".

    python scripts/gradient_rms.py --task copy --model ntm-lstm            # at initialisation (seed 0)
    python scripts/gradient_rms.py --checkpoint RUN/checkpoint.npz         # a trained run's model

Each gradient is model.run's on one training sequence (batch 1, the paper's recipe), squared and averaged
per element over --sequences sequences drawn with --seed.
"""
import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads (docs/model.md, "BLAS threads")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # this checkout's ntm_ref
from ntm_ref import train  # noqa: E402
from ntm_ref.checkpoint import CheckpointError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="copy")
    parser.add_argument("--model", default="ntm-lstm", choices=["ntm-ff", "ntm-lstm", "lstm"])
    parser.add_argument("--checkpoint", help="a run's checkpoint.npz (its task and model; else --task/--model "
                                             "at initialisation)")
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--below", type=float, default=0.01, help="the size to count elements under")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.sequences < 1:
        parser.error(f"--sequences: got {args.sequences}; must be >= 1")
    if args.checkpoint:
        try:
            model, saved, _ = train.load_model(args.checkpoint)
        except (CheckpointError, OSError) as err:
            parser.exit(2, f"gradient_rms.py: error: {err}\n")
        settings = train.TrainSettings(**saved)
    else:
        settings = train.TrainSettings(task=args.task, model=args.model)
        model, _ = train.build_model(settings)
    task = train.make_run_task(settings)
    rng = np.random.default_rng(args.seed)
    mean_sq = {name: np.zeros_like(p) for name, p in model.params.items()}
    for _ in range(args.sequences):
        x, y, mask = task.batch(rng, 1)
        for name, g in model.run(x, y, mask).grads.items():
            mean_sq[name] += g * g / args.sequences
    print(f"{settings.model} on {settings.task}, {args.checkpoint or 'at initialisation'}: RMS gradient over "
          f"{args.sequences} sequences")
    print(f"{'parameter':<14} {'elements':>9} {'median RMS':>11} {'below ' + format(args.below, 'g'):>12}")
    for name, ms in [*mean_sq.items(), ("all", np.concatenate([v.ravel() for v in mean_sq.values()]))]:
        rms = np.sqrt(ms)
        print(f"{name:<14} {rms.size:>9,} {np.median(rms):>11.2e} {np.mean(rms < args.below):>12.0%}")


if __name__ == "__main__":
    main()
