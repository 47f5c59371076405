"""How closely the independent PyTorch NTM (tests/torch_ntm.py) agrees with the reference in float64: the
largest max abs error over every array of the three presets, with the paper's conventions and with
pytorch-ntm's (docs/trace-format.md quotes the result). Needs torch: pip install torch==2.13.0

    python scripts/mirror_agreement.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import torch  # noqa: E402
import torch_ntm  # noqa: E402

from ntm_ref.compare import compare_traces  # noqa: E402
from ntm_ref.trace import preset_trace  # noqa: E402

PYTORCH_NTM = dict(shift_convention="correlation", cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-8,
                   sharpen_epsilon_mode="denominator", sharpen_epsilon=1e-16)


def main():
    torch.set_num_threads(1)
    worst = (0.0, "")
    for preset in ("tiny-ff", "tiny-lstm", "copy"):
        for label, overrides in (("paper", {}), ("pytorch-ntm", PYTORCH_NTM)):
            ref = preset_trace(preset, overrides=overrides)
            cmp = compare_traces(ref, torch_ntm.run_trace(ref))
            here = max((r.max_abs, r.name) for r in cmp.rows)
            print(f"{preset:10s} {label:12s} agree {cmp.agrees}  max abs error {here[0]:.1e} ({here[1]})")
            worst = max(worst, (here[0], f"{preset}, {label}, {here[1]}"))
    print(f"worst: {worst[0]:.1e} ({worst[1]})")


if __name__ == "__main__":
    main()
