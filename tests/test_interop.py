"""pytorch-ntm's trained models in the reference (ntm_ref.interop, ntm-ref import): for every revision whose
code changed the computation, a PyTorch module written from that revision (tests/pytorch_ntm_revisions.py)
with random weights, its state dict imported, and the reference agreeing with it in float64 at every
step -- output probabilities, read and write weightings -- to 1e-12 on copy-task inputs of lengths 1-20
and 40; the documented command path (import, trace, compare, gradcheck, eval); every error path of the
import. Needs torch (skipped without it, required in CI by NTM_REF_REQUIRE_TORCH=1)."""
import json
import os

import numpy as np
import pytest

from ntm_ref import cli
from ntm_ref.interop import (PYTORCH_NTM_REVISIONS, InteropError, find_revision, load_pytorch_ntm,
                             pytorch_ntm_config)

if os.environ.get("NTM_REF_REQUIRE_TORCH"):
    import torch                         # noqa: F401  (CI: a missing torch is a failure, not a skip)
else:
    torch = pytest.importorskip("torch")
import pytorch_ntm_revisions as P        # noqa: E402  (needs torch)

AGREE = 1e-12          # max absolute difference of probabilities and weightings (all in [0, 1])
LENGTHS = list(range(1, 21)) + [40]
REVISIONS = [r.commit[:7] for r in PYTORCH_NTM_REVISIONS]


def copy_inputs(length, B=2, seed=0):
    """Copy-task inputs (pytorch-ntm's and ours): L random 8-bit vectors, the delimiter on channel 8,
    then L steps of zeros while the copy is read out.  -> x (B, 2 L + 1, 9)."""
    rng = np.random.default_rng(seed + length)
    x = np.zeros((B, 2 * length + 1, 9))
    x[:, :length, :8] = rng.integers(0, 2, size=(B, length, 8))
    x[:, length, 8] = 1.0
    return x


def differences(torch_model, model, x):
    """max |difference| of the output probabilities, read weightings and write weightings."""
    probs, w_read, w_write = P.run(torch_model, x)
    trace = model.trace(x)
    ours = 1.0 / (1.0 + np.exp(-trace["logits"]))
    return (np.abs(ours - probs).max(), np.abs(trace["read.w"][:, :, 0] - w_read).max(),
            np.abs(trace["write.w"][:, :, 0] - w_write).max())


def test_the_revisions_are_the_six_named_commits():
    assert REVISIONS == ["0682553", "d8fedf6", "64f1d58", "7ae872d", "d7b3840", "3c64937"]
    assert set(P.GROUPS) == set(REVISIONS)


@pytest.mark.parametrize("revision", REVISIONS)
def test_every_revision_agrees_at_every_step_and_length(revision):
    torch_model = P.build(revision, seed=REVISIONS.index(revision))
    model = load_pytorch_ntm(torch_model.state_dict(), revision=revision)
    assert model.config.key_activation == ("relu" if revision == "0682553" else "identity")
    worst = np.zeros(3)
    for length in LENGTHS:
        worst = np.maximum(worst, differences(torch_model, model, copy_inputs(length)))
    assert np.all(worst <= AGREE), f"{revision}: probabilities, read w, write w differ by up to {worst}"


@pytest.mark.parametrize("revision", ["0682553", "d8fedf6", "3c64937"])
def test_agrees_past_softplus_threshold_and_at_relu_zeros(revision):
    """Beta biases of +22 put F.softplus past its threshold of 20 (where PyTorch returns x itself) and,
    for the relu revision, keys of all zeros happen (then only the +1e-16 before the cosine moves them)."""
    torch_model = P.build(revision, seed=7, beta_bias=22.0, scale=1.0)
    model = load_pytorch_ntm(torch_model.state_dict(), revision=revision)
    x = copy_inputs(12, B=3, seed=5)
    trace = model.trace(x)
    assert trace["read.raw"][..., model.config.memory_width].max() > 20
    if revision == "0682553":
        assert np.any(np.all(trace["read.key"] == 0.0, axis=-1))
    assert max(differences(torch_model, model, x)) <= AGREE


def test_two_layer_controller_agrees():
    torch_model = P.build("3c64937", seed=3, layers=2)
    model = load_pytorch_ntm(torch_model.state_dict(), revision="3c64937")
    assert model.config.controller_sizes == (12, 12)
    assert max(differences(torch_model, model, copy_inputs(9))) <= AGREE


def test_a_different_revision_does_not_agree():
    """The test can fail: the latest code's conventions on a model of the first revision differ by far."""
    torch_model = P.build("0682553", seed=1)
    wrong = load_pytorch_ntm(torch_model.state_dict(), revision="3c64937")
    assert max(differences(torch_model, wrong, copy_inputs(10))) > 1e-2


def test_the_wide_padding_shift_is_the_narrow_one():
    """7ae872d's narrower padding of the circular convolution computes the same numbers (the PR's claim)."""
    x = copy_inputs(15)
    a, b = P.build("64f1d58", seed=2), P.build("7ae872d", seed=2)
    np.testing.assert_array_equal(P.run(a, x)[0], P.run(b, x)[0])


# ---------------------------------------------------------------------------------------------------
# the command-line path: import, trace, compare, gradcheck, eval
# ---------------------------------------------------------------------------------------------------

def saved_model(tmp_path, revision="3c64937", **sizes):
    torch_model = P.build(revision, seed=11, **sizes)
    path = tmp_path / "copy-task.model"
    torch.save(torch_model.state_dict(), path)
    return torch_model, str(path)


def test_import_trace_compare_gradcheck_eval(tmp_path, capsys):
    torch_model, path = saved_model(tmp_path)
    out = tmp_path / "imported"
    assert cli.main(["import", "pytorch-ntm", path, "--revision", "3c64937", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["shift_convention"] == "correlation" and config["fixed_initial_reads"] == "random"
    x = copy_inputs(6, B=1)
    np.savez(tmp_path / "inputs.npz", x=x)
    ref = tmp_path / "ref.npz"
    assert cli.main(["trace", "--config", str(out / "config.json"), "--params", str(out / "params.npz"),
                     "--inputs", str(tmp_path / "inputs.npz"), "--out", str(ref)]) == 0
    # the other side: pytorch-ntm's own numbers, written as docs/validate.md shows
    probs, w_read, w_write = P.run(torch_model, x)
    mine = tmp_path / "mine.npz"
    np.savez(mine, format="ntm_ref.trace", schema_version=np.int64(1), **{
        "fwd/logits": np.log(probs) - np.log1p(-probs), "fwd/read.w": w_read[:, :, None],
        "fwd/write.w": w_write[:, :, None]})
    capsys.readouterr()
    status = cli.main(["compare", str(ref), str(mine), "--only", "fwd/logits", "--only", "fwd/*.w"])
    assert status == 0, capsys.readouterr().out
    # the same file through gradcheck (probe mode: a few directions per block) and eval on the copy task
    np.savez(tmp_path / "with_targets.npz", x=x, y=(np.random.default_rng(0).random((1, 13, 8)) > 0.5) * 1.0)
    assert cli.main(["gradcheck", "--config", str(out / "config.json"), "--params", str(out / "params.npz"),
                     "--inputs", str(tmp_path / "with_targets.npz"), "--mode", "probe"]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--task", "copy", "--sequences", "2"]) == 0
    assert "imported model on copy" in capsys.readouterr().out


def test_import_refuses_to_overwrite_and_needs_the_revision(tmp_path, capsys):
    _, path = saved_model(tmp_path)
    out = tmp_path / "imported"
    assert cli.main(["import", "pytorch-ntm", path, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not say which revision" in err and "0682553" in err and "3c64937" in err
    assert not out.exists()
    assert cli.main(["import", "pytorch-ntm", path, "--revision", "d7b3840", "--out", str(out)]) == 0
    assert cli.main(["import", "pytorch-ntm", path, "--revision", "d7b3840", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["import", "pytorch-ntm", path, "--revision", "d7b3840", "--out", str(out), "--force"]) == 0
    assert sorted(os.listdir(out)) == ["config.json", "params.npz"]


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_text("not a model"), "not a PyTorch state dict"),
    (lambda p: None, "no such file"),
    (lambda p: torch.save([1, 2, 3], p), "holds a list, not a state dict"),
    (lambda p: torch.save({"w": torch.zeros(3, dtype=torch.int64)}, p), "int64 values"),
    (lambda p: torch.save({"w": torch.zeros(3)}, p), "no memory.mem_bias"),
])
def test_bad_files_are_one_line(tmp_path, capsys, make, message):
    path = tmp_path / "bad.model"
    make(path)
    assert cli.main(["import", "pytorch-ntm", str(path), "--revision", "3c64937", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def state_dict(**sizes):
    return {k: v.clone() for k, v in P.build("3c64937", seed=1, **sizes).state_dict().items()}


def drop(name):
    def change(sd):
        del sd[name]
    return change


@pytest.mark.parametrize("change,message", [
    (drop("ntm.fc.bias"), "no fc.bias"),
    (drop("ntm.read0_bias"), "no read0_bias"),
    (drop("ntm.controller.lstm_h_bias"), "no controller.lstm_h_bias"),
    (lambda sd: sd.update({"ntm.extra": torch.zeros(2)}), "names pytorch-ntm does not save: extra"),
    (lambda sd: sd["memory.mem_bias"].add_(1.0), "memory.mem_bias differs from memory.mem_bias"),
    (lambda sd: sd["ntm.heads.1.memory.mem_bias"].add_(1.0), "heads.1.memory.mem_bias differs"),
    (lambda sd: sd.update({"ntm.heads.0.fc_read.weight": torch.zeros(7, 12, dtype=torch.float64)}),
     "read.W comes out with shape"),
    (lambda sd: sd.update({"ntm.controller.lstm.weight_hh_l0": torch.zeros(48, 11, dtype=torch.float64)}),
     "controller layer 0 shapes"),
    (lambda sd: sd.update({"ntm.fc.weight": torch.zeros(8, dtype=torch.float64)}), "fc.weight has shape (8,)"),
    (lambda sd: sd.update({"ntm.read0_bias": torch.full((1, 5), float("nan"), dtype=torch.float64)}),
     "buffer read0: contains NaN"),
    (lambda sd: sd.update({"ntm.fc.bias": torch.zeros(8, dtype=torch.complex128)}), "complex128"),
    (lambda sd: sd.update({"ntm.controller.lstm_h_bias": torch.zeros(2, 1, 12, dtype=torch.float64)}),
     "lstm_h_bias has shape (2, 1, 12); the LSTM of 1 layer(s) of size 12 needs (1, 1, 12)"),
    (lambda sd: sd.update({"ntm.read0_bias": torch.zeros(2, 5, dtype=torch.float64)}), "read0_bias has shape (2, 5)"),
    (lambda sd: sd.update({"ntm.controller.lstm.bias_hh_l0": torch.zeros(47, dtype=torch.float64)}),
     "controller layer 0 shapes"),
])
def test_bad_state_dicts_name_the_problem(change, message):
    sd = state_dict()
    change(sd)
    with pytest.raises((InteropError, ValueError), match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pytorch_ntm(sd, revision="3c64937")


def test_two_head_pairs_cannot_be_expressed():
    """num_heads=2 runs read 0, write 0, read 1, write 1 one after another; the reference cannot."""
    sd = state_dict()
    for old, new in (("ntm.heads.0.", "ntm.heads.2."), ("ntm.heads.1.", "ntm.heads.3.")):
        sd.update({k.replace(old, new): v for k, v in list(sd.items()) if k.startswith(old)})
    with pytest.raises(InteropError, match="num_heads=2 read/write pairs interleaved"):
        pytorch_ntm_config(sd, "3c64937")


@pytest.mark.parametrize("revision,message", [
    (None, "does not say which revision"),
    ("3c649", "at least the first 7 characters"),
    ("latest!", "at least the first 7 characters"),
    ("2b83a99", "not one whose computation is known here"),
])
def test_revision_errors_name_the_choices(revision, message):
    with pytest.raises(InteropError, match=message) as err:
        find_revision(revision)
    assert all(r in str(err.value) for r in REVISIONS)


def test_full_commit_and_uppercase_prefix_are_accepted():
    assert find_revision("3C64937CB0").commit == PYTORCH_NTM_REVISIONS[-1].commit
    assert find_revision(PYTORCH_NTM_REVISIONS[0].commit).date == "2017-09-27"


def test_without_torch_one_line(tmp_path, capsys, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    path = str(tmp_path / "x.model")
    assert cli.main(["import", "pytorch-ntm", path, "--revision", "3c64937", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert 'needs torch: pip install ".[torch]"' in err and len(err.strip().splitlines()) == 1


def test_validate_md_walk_through(tmp_path, monkeypatch, capsys):
    """docs/validate.md, 'I have a pytorch-ntm checkpoint': the three commands and the snippet for the user's
    side, run as written (a float32 model file from scripts/pytorch_ntm_example.py's recipe), agree."""
    import re
    docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "validate.md")
    section = open(docs, encoding="utf-8").read().split("## I have a pytorch-ntm checkpoint")[1].split("\n## ")[0]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].split() for line in section.splitlines() if line.startswith("    ntm-ref ")]
    assert [c[1] for c in commands] == ["import", "trace", "compare"]
    monkeypatch.chdir(tmp_path)
    net = P.build("3c64937", seed=4, N=32, M=6, C=16).float()
    torch.save(net.state_dict(), "copy-task.model")
    for argv in commands:
        status = cli.main([a.strip("'") for a in argv[1:]])
        assert status == 0, capsys.readouterr()
        if argv[1] == "trace":
            exec(snippet, {"net": net})          # noqa: S102 (our own docs)
    assert "AGREE: all 3 arrays" in capsys.readouterr().out


def torch_loss_and_grads(torch_model, x, y):
    """pytorch-ntm's forward with autograd on, the reference's loss on its logits (binary cross-entropy in
    bits, summed over a sequence's outputs, mean over the batch)  -> (loss, {state-dict name: gradient})."""
    logits = []
    hook = torch_model.ntm.fc.register_forward_hook(lambda module, inputs, out: logits.append(out))
    xt = torch.as_tensor(x)
    torch_model.zero_grad()
    torch_model.init_sequence(x.shape[0])
    for t in range(x.shape[1]):
        torch_model(xt[:, t])
    hook.remove()
    z = torch.stack(logits, dim=1)
    loss = F_torch.binary_cross_entropy_with_logits(z, torch.as_tensor(y), reduction="sum") / np.log(2) / x.shape[0]
    loss.backward()
    return loss.item(), {k: p.grad.numpy() for k, p in torch_model.named_parameters()}


F_torch = torch.nn.functional


@pytest.mark.parametrize("revision", ["0682553", "d8fedf6", "3c64937"])
def test_gradients_agree_with_torch_autograd(revision):
    """An independent oracle for the backward of every activation a revision uses (relu heads included):
    PyTorch's autograd through pytorch-ntm's computation, against the reference's hand-written gradients,
    mapped as the importer maps the weights."""
    torch_model = P.build(revision, seed=21, beta_bias=3.0)
    model = load_pytorch_ntm(torch_model.state_dict(), revision=revision, engine="reference")
    x = copy_inputs(7, B=2, seed=3)
    y = (np.random.default_rng(4).random((2, x.shape[1], 8)) > 0.5).astype(np.float64)
    loss, g = torch_loss_and_grads(torch_model, x, y)
    result = model.run(x, y)
    assert abs(result.loss - loss) <= 1e-12 * abs(loss)
    C = model.config.controller_sizes[0]
    order = np.concatenate([np.arange(k * C, (k + 1) * C) for k in (0, 1, 3, 2)])   # i f g o -> i f o g
    expected = {
        "ctrl.0.W": np.concatenate([g["ntm.controller.lstm.weight_ih_l0"], g["ntm.controller.lstm.weight_hh_l0"]],
                                   axis=1)[order].T,
        "ctrl.0.b": g["ntm.controller.lstm.bias_ih_l0"][order],      # = bias_hh's: both enter as a sum
        "ctrl.0.h0": g["ntm.controller.lstm_h_bias"][0, 0], "ctrl.0.c0": g["ntm.controller.lstm_c_bias"][0, 0],
        "read.W": g["ntm.heads.0.fc_read.weight"].T, "read.b": g["ntm.heads.0.fc_read.bias"],
        "write.W": g["ntm.heads.1.fc_write.weight"].T, "write.b": g["ntm.heads.1.fc_write.bias"],
        "out.W": g["ntm.fc.weight"].T, "out.b": g["ntm.fc.bias"],
    }
    np.testing.assert_array_equal(g["ntm.controller.lstm.bias_ih_l0"], g["ntm.controller.lstm.bias_hh_l0"])
    assert set(expected) == set(result.grads)
    for name, value in expected.items():
        scale = np.abs(value).max()
        assert scale > 0, name
        np.testing.assert_allclose(result.grads[name], value, rtol=1e-9, atol=1e-11 * scale, err_msg=name)
