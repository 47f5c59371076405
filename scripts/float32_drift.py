"""How far the reference drifts in float32 from itself in float64: the measurement behind ntm-ref compare's
float32 default tolerance (ntm_ref/compare.py, docs/trace-format.md).

    python scripts/float32_drift.py [--seeds 3]

For each configuration and seed, both traces are made from the same float64 parameters and inputs; for
every compared array we record the normwise error max|d| / max|ref| and the smallest atol that lets every
entry pass |d| <= atol + rtol |ref| at rtol = 1e-3. The last line is the worst over all of them.
"""
import argparse

import numpy as np

from ntm_ref import trace as tr
from ntm_ref.compare import META
from ntm_ref.model import init_buffers, init_params

RTOL = 1e-3


def cases():
    yield "tiny-ff", "tiny-ff", {}, None
    yield "tiny-lstm", "tiny-lstm", {}, None
    yield "copy (T=7)", "copy", {}, None
    yield "copy (T=41, B=4)", "copy", {}, 20
    yield "copy LSTM (T=41, B=4)", "copy", {"controller": "lstm"}, 20
    yield "tiny-ff pytorch-ntm conventions", "tiny-ff", dict(shift_convention="correlation",
                                                             cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-8,
                                                             sharpen_epsilon_mode="denominator",
                                                             sharpen_epsilon=1e-16), None


def pair(name, overrides, length, seed):
    config = tr.preset_config(name, overrides)
    if length is None:
        t64 = tr.preset_trace(name, seed, overrides)
        params = tr.params_of(t64)
        x, y, mask = t64["input/x"], t64["input/y"], t64["input/mask"]
    else:
        from tasks import make_task
        params = init_params(config, seed)
        x, y, mask = make_task("copy").batch(np.random.default_rng(seed), 4, min_length=length, max_length=length)
        t64 = tr.make_trace(config, params, x, y, mask, init_buffers(config, seed))
    t32 = tr.make_trace(config, params, x, y, mask, init_buffers(config, seed), dtype="float32")
    return t64, t32


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    worst_norm, worst_atol = (0.0, ""), (0.0, "")
    print(f"{'configuration':34s} {'seed':>4s} {'worst normwise':>15s} {'atol needed at rtol 1e-3':>26s}  (array)")
    for label, name, overrides, length in cases():
        for seed in range(args.seeds):
            t64, t32 = pair(name, overrides, length, seed)
            norm, atol = (0.0, ""), (0.0, "")
            for k, r in t64.items():
                if k in META or k.startswith(("param/", "input/", "buffer/")):
                    continue
                d = np.abs(t32[k].astype(np.float64) - r)
                norm = max(norm, (float(d.max() / max(np.abs(r).max(), 1e-300)), k))
                atol = max(atol, (float((d - RTOL * np.abs(r)).max()), k))
            print(f"{label:34s} {seed:4d} {norm[0]:15.2e} {atol[0]:26.2e}  ({norm[1]}; {atol[1]})")
            worst_norm, worst_atol = max(worst_norm, norm), max(worst_atol, atol)
    print(f"worst: normwise {worst_norm[0]:.2e} ({worst_norm[1]}), atol needed at rtol {RTOL:g}: "
          f"{worst_atol[0]:.2e} ({worst_atol[1]})")


if __name__ == "__main__":
    main()
