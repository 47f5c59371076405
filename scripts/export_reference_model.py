"""Export a trained checkpoint as a reference model: reference_models/<NAME>/config.json, params.npz
(param/..., buffer/...: the layout of `ntm-ref import`, which trace, gradcheck, eval and NTM.from_arrays
read) and eval.txt (its `ntm-ref eval` table, with the command that made it).

    python scripts/export_reference_model.py RUN/checkpoint.npz copy-ntm-ff [--sequences 64]

Only the learned parameters and fixed buffers are kept (no optimiser state): small enough to commit.
"""
import argparse
import json
import os
import sys

import numpy as np

from ntm_ref.evaluate import evaluate_checkpoint
from ntm_ref.train import load_model

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference_models")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("name", help="folder name under reference_models/, e.g. copy-ntm-ff")
    parser.add_argument("--sequences", type=int, default=64, help="sequences per generalisation set")
    args = parser.parse_args()
    model, settings, meta = load_model(args.checkpoint)
    out = os.path.join(ROOT, args.name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(model.config.to_dict(), f, indent=1, sort_keys=True)
        f.write("\n")
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    arrays.update({f"buffer/{k}": v for k, v in model.buffers.items()})
    np.savez(os.path.join(out, "params.npz"), **arrays)
    table = evaluate_checkpoint(out, n=args.sequences, task=settings["task"])
    with open(os.path.join(out, "eval.txt"), "w", encoding="utf-8") as f:
        f.write(f"# ntm-ref eval reference_models/{args.name} --task {settings['task']} --sequences {args.sequences}\n")
        f.write(f"# trained: ntm-ref train with {json.dumps(settings, sort_keys=True)}; step {meta['step']:,}, "
                f"{meta['sequences']:,} sequences\n")
        f.write(table.replace(out, f"reference_models/{args.name}") + "\n")
    print(f"wrote {out}: config.json, params.npz, eval.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
