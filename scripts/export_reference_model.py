"""Export a trained checkpoint as a reference model: reference_models/<NAME>/config.json, params.npz
(param/..., buffer/...: the layout of `ntm-ref import`, which trace, gradcheck, eval and NTM.from_arrays
read) and eval.txt (its `ntm-ref eval` table, with the command that made it).

    python scripts/export_reference_model.py RUN/checkpoint.npz copy-ntm-ff [--sequences 64]

Only the learned parameters and fixed buffers are kept (no optimiser state): small enough to commit.
"""
import argparse
import json
import os
import re
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # this checkout's ntm_ref
from ntm_ref.checkpoint import CheckpointError  # noqa: E402
from ntm_ref.evaluate import evaluate_checkpoint  # noqa: E402
from ntm_ref.train import load_model  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference_models")


def main(argv=None, root=ROOT):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("name", help="folder name under reference_models/, e.g. copy-ntm-ff")
    parser.add_argument("--sequences", type=int, default=64, help="sequences per generalisation set")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name):
        parser.error(f"name: got {args.name!r}; must be a folder name (letters, digits, '.', '_', '-')")
    if args.sequences < 1:
        parser.error(f"--sequences: got {args.sequences}; must be >= 1")
    try:
        model, settings, meta = load_model(args.checkpoint)
    except (CheckpointError, OSError) as err:
        parser.exit(2, f"export_reference_model.py: error: {err}\n")
    out = os.path.join(root, args.name)
    part = f"{out}.part-{os.getpid()}"     # written whole, then renamed: an interrupt leaves no half model
    try:
        os.makedirs(part)
        with open(os.path.join(part, "config.json"), "w", encoding="utf-8") as f:
            json.dump(model.config.to_dict(), f, indent=1, sort_keys=True)
            f.write("\n")
        arrays = {f"param/{k}": v for k, v in model.params.items()}
        arrays.update({f"buffer/{k}": v for k, v in model.buffers.items()})
        np.savez(os.path.join(part, "params.npz"), **arrays)
        table = evaluate_checkpoint(part, n=args.sequences, task=settings["task"])
        with open(os.path.join(part, "eval.txt"), "w", encoding="utf-8") as f:
            f.write(f"# ntm-ref eval reference_models/{args.name} --task {settings['task']} "
                    f"--sequences {args.sequences}\n")
            f.write(f"# trained: ntm-ref train with {json.dumps(settings, sort_keys=True)}; "
                    f"step {meta['step']:,}, {meta['sequences']:,} sequences\n")
            f.write(table.replace(part, f"reference_models/{args.name}") + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(part, out)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    print(f"wrote {out}: config.json, params.npz, eval.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
