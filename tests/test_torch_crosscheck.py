"""The reference against an independent PyTorch NTM (tests/torch_ntm.py, autograd gradients), through
`ntm-ref compare` at its default tolerances (float64: rtol 1e-10, atol 1e-12; float32: rtol 1e-3,
atol 1e-6): the presets, then on tiny-ff and tiny-lstm every value of every convention field and the
other config switches, then a check that the comparison does fail on a deliberately wrong convention.

Skipped when torch is not importable, unless NTM_REF_REQUIRE_TORCH=1 (CI), which makes it an error.
"""
import os
import re
import sys

import numpy as np
import pytest

if os.environ.get("NTM_REF_REQUIRE_TORCH") == "1":
    import torch                                           # noqa: F401  (CI: a missing torch is an error)
else:
    torch = pytest.importorskip("torch")

# one intra-op thread: these arrays are tiny, and on a loaded machine torch's OpenMP threads spin at every
# parallel op (softmax, backward) and make the file ~10x slower
torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ntm                                           # noqa: E402

from ntm_ref.cli import main as cli_main                   # noqa: E402
from ntm_ref.compare import compare_traces                 # noqa: E402
from ntm_ref.trace import make_trace, params_of, preset_config, preset_trace, save_trace, trace_config  # noqa: E402,E501

PYTORCH_NTM = dict(key_activation="identity", add_activation="identity", memory_init="random",
                   learn_initial_reads=False, learn_initial_weights=False, clip_value=None,
                   shift_convention="correlation", cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-8,
                   sharpen_epsilon_mode="denominator", sharpen_epsilon=1e-16)
COLLIER = dict(cosine_epsilon_mode="denominator", cosine_epsilon=1e-8, sharpen_epsilon_mode="denominator",
               sharpen_epsilon=0.0)
DNC = dict(key_activation="identity", add_activation="identity", memory_init="constant", memory_init_value=0.0,
           learn_initial_reads=False, step_order="write_first")
LASAGNE = dict(key_activation="clip01", beta_activation="relu", gate_activation="hard_sigmoid",
               gamma_activation="one_plus_relu", erase_activation="hard_sigmoid", add_activation="clip01")

# (id, overrides) run on both tiny presets
SWITCHES = [
    ("shift-correlation", dict(shift_convention="correlation")),
    ("shift-range-2", dict(shift_range=2)),
    ("shift-range-0", dict(shift_range=0)),
    ("cos-denominator-1e-8", dict(cosine_epsilon_mode="denominator", cosine_epsilon=1e-8)),
    ("cos-denominator-1e-2", dict(cosine_epsilon_mode="denominator", cosine_epsilon=1e-2)),
    ("cos-denominator-0", dict(cosine_epsilon_mode="denominator", cosine_epsilon=0.0)),
    ("cos-clamp-1e-8", dict(cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-8)),
    ("cos-clamp-1e-2", dict(cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-2)),
    ("cos-smooth-1e-2", dict(cosine_epsilon=1e-2)),
    ("zero-memory-denominator", dict(memory_init_value=0.0, cosine_epsilon_mode="denominator",
                                     cosine_epsilon=1e-8)),
    ("zero-memory-clamp", dict(memory_init_value=0.0, cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-8)),
    ("sharpen-denominator-1e-16", dict(sharpen_epsilon_mode="denominator", sharpen_epsilon=1e-16)),
    ("sharpen-denominator-0", dict(sharpen_epsilon_mode="denominator", sharpen_epsilon=0.0)),
    ("sharpen-base-1e-6", dict(sharpen_epsilon=1e-6)),
    ("beta-oneplus", dict(beta_activation="oneplus")),
    ("beta-relu", dict(beta_activation="relu")),
    ("pytorch-ntm", PYTORCH_NTM),
    ("collier", COLLIER),
    ("dnc", DNC),
    ("lasagne", LASAGNE),
    ("memory-random", dict(memory_init="random")),
    ("memory-learned", dict(memory_init="learned")),
    ("no-initial-reads", dict(learn_initial_reads=False)),
    ("no-initial-weights", dict(learn_initial_weights=False)),
    ("no-initial-state", dict(learn_initial_reads=False, learn_initial_weights=False)),
    ("clip-0.6", dict(clip_value=0.6)),
    ("clip-off", dict(clip_value=None)),
    ("read-first", dict(step_order="read_first")),
    ("write-first", dict(step_order="write_first")),
    ("heads-3-1", dict(read_heads=3, write_heads=1)),
    ("heads-1-3", dict(read_heads=1, write_heads=3)),
    ("one-layer", dict(controller_size=7)),
    ("three-layers", dict(controller_size=(6, 5, 4))),
]
SWITCHES += [
    ("memory-learned-constant", dict(memory_init="learned_constant")),
    ("fixed-weights-zeros", dict(learn_initial_weights=False, fixed_initial_weights="zeros")),
    ("no-initial-controller-state", dict(learn_initial_controller_state=False)),
    ("cos-smooth-denominator", dict(cosine_epsilon_mode="smooth_norm_denominator")),
    ("cos-smooth-denominator-zero-memory", dict(cosine_epsilon_mode="smooth_norm_denominator",
                                                memory_init_value=0.0, key_activation="identity")),
    ("pytorch-ntm-zero-state", dict(PYTORCH_NTM, fixed_initial_weights="zeros",
                                    learn_initial_controller_state=False)),
]
FF_ONLY = [
    ("ctrl-relu", dict(controller_activation="relu")),
    ("ctrl-sigmoid", dict(controller_activation="sigmoid")),
]
CASES = [pytest.param("tiny-ff", o, id=f"tiny-ff-{i}") for i, o in SWITCHES + FF_ONLY] + \
        [pytest.param("tiny-lstm", o, id=f"tiny-lstm-{i}") for i, o in SWITCHES]


def compare_files(tmp_path, ref, other, capsys=None):
    """Write both traces and run `ntm-ref compare REF OTHER` -> (exit status, its output)."""
    ref_path, other_path = str(tmp_path / "ref.npz"), str(tmp_path / "torch.npz")
    save_trace(ref_path, ref, overwrite=True)
    save_trace(other_path, other, overwrite=True)
    status = cli_main(["compare", ref_path, other_path])
    return status, (capsys.readouterr().out if capsys else "")


@pytest.mark.parametrize("preset", ["tiny-ff", "tiny-lstm", "copy"])
def test_presets_agree(preset, tmp_path, capsys):
    ref = preset_trace(preset)
    status, out = compare_files(tmp_path, ref, torch_ntm.run_trace(ref), capsys)
    assert status == 0, out
    assert "AGREE" in out


@pytest.mark.parametrize("preset, overrides", CASES)
def test_conventions_agree(preset, overrides, tmp_path, capsys):
    ref = preset_trace(preset, overrides=overrides)
    status, out = compare_files(tmp_path, ref, torch_ntm.run_trace(ref), capsys)
    assert status == 0, out


def test_small_clip_engages():
    """clip_value 0.6 does clip: some raw head parameters and logits sit on the bound (so the clip-0.6
    cases above check the clipped forward values and the zero gradient there)."""
    ref = preset_trace("tiny-ff", overrides=dict(clip_value=0.6))
    for name in ("fwd/read.raw", "fwd/write.raw", "fwd/logits"):
        assert np.any(np.abs(ref[name]) == 0.6), name


@pytest.mark.parametrize("preset", ["tiny-ff", "tiny-lstm"])
@pytest.mark.parametrize("overrides", [dict(clip_value=None), dict(LASAGNE, clip_value=None)],
                         ids=["default-activations", "lasagne"])
def test_saturated_agree(preset, overrides, tmp_path, capsys):
    """Biases scaled by 40 and no clipping: raw head parameters up to ~40 and logits past 20, so softplus
    runs where torch's F.softplus would have turned linear, and relu, hard_sigmoid and clip01 saturate."""
    base = preset_trace(preset, overrides=overrides)
    params = {k: v * 40.0 if k.endswith(".b") else v for k, v in params_of(base).items()}
    ref = make_trace(trace_config(base), params, base["input/x"], base["input/y"], base["input/mask"],
                     params_of(base, "buffer/"))
    assert np.abs(ref["fwd/read.raw"]).max() > 30
    status, out = compare_files(tmp_path, ref, torch_ntm.run_trace(ref), capsys)
    assert status == 0, out


@pytest.mark.parametrize("preset", ["tiny-ff", "tiny-lstm", "copy"])
def test_float32_agrees(preset, tmp_path, capsys):
    ref = preset_trace(preset, dtype="float32")
    mine = torch_ntm.run_trace(ref, dtype=torch.float32)
    assert mine["fwd/memory"].dtype == np.float32 and mine["grad/out.W"].dtype == np.float32
    status, out = compare_files(tmp_path, ref, mine, capsys)
    assert status == 0, out
    assert "float32 defaults" in out


@pytest.mark.parametrize("reference_convention", ["convolution", "correlation"])
def test_wrong_shift_convention_is_caught(reference_convention, tmp_path, capsys):
    """The comparison can fail: the mirror run with the other shift convention differs, and compare
    names the circular shift (eq 8) as the first divergence."""
    ref = preset_trace("tiny-ff", overrides=dict(shift_convention=reference_convention))
    flipped = {"convolution": "correlation", "correlation": "convolution"}[reference_convention]
    mine = torch_ntm.run_trace(ref, config=trace_config(ref).replace(shift_convention=flipped))
    status, out = compare_files(tmp_path, ref, mine, capsys)
    assert status == 1, out
    first = compare_traces(ref, mine).first_divergence
    assert first.name.endswith(".w_shifted"), out
    assert re.search(r"first divergence at step 0: fwd/(read|write)\.w_shifted", out), out


def test_script_writes_a_trace(tmp_path):
    """python tests/torch_ntm.py REF OUT: the command-line entry point."""
    ref_path, out_path = str(tmp_path / "ref.npz"), str(tmp_path / "out.npz")
    save_trace(ref_path, preset_trace("tiny-lstm"))
    assert torch_ntm.main([ref_path, out_path]) == 0
    assert cli_main(["compare", ref_path, out_path]) == 0
