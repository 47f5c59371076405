"""Checkpoints: round trip, atomic write, and one clear error for every kind of bad file."""
import os

import numpy as np
import pytest

from ntm_ref.checkpoint import CHECKPOINT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM
from ntm_ref.optim import Adam

CONFIG = NTMConfig(input_size=3, output_size=2, memory_slots=6, memory_width=3, controller_size=5)


def saved(tmp_path):
    model = NTM(CONFIG, seed=1)
    state = Adam().init_state(model.params)
    rng = np.random.default_rng(5)
    rng.random(3)
    meta = {"step": 7, "sequences": 112, "seconds": 1.5, "rng_state": rng.bit_generator.state}
    path = str(tmp_path / "checkpoint.npz")
    save_checkpoint(path, model.params, state, CONFIG, meta)
    return path, model, state, meta


def test_round_trip(tmp_path):
    path, model, state, meta = saved(tmp_path)
    params, opt_state, config, meta2, buffers = load_checkpoint(path, expected_params=model.params)
    assert buffers == {}
    assert NTMConfig.from_dict(config) == CONFIG and meta2 == meta
    for k in model.params:
        np.testing.assert_array_equal(params[k], model.params[k])
    for k in state:
        np.testing.assert_array_equal(opt_state[k], state[k])
        assert opt_state[k].dtype == state[k].dtype and opt_state[k].shape == state[k].shape
    rng = np.random.default_rng()
    rng.bit_generator.state = meta2["rng_state"]
    ref = np.random.default_rng(5)
    ref.random(3)
    assert rng.random() == ref.random()
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]   # no temporary file left


def _one_line(err):
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(tmp_path / "nope.npz"))
    assert "nope.npz: no such checkpoint file" in _one_line(err)


def test_truncated_file(tmp_path):
    path, *_ = saved(tmp_path)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert path in _one_line(err) and "truncated or corrupted" in _one_line(err)


def test_not_an_npz(tmp_path):
    path = str(tmp_path / "c.npz")
    with open(path, "w") as f:
        f.write("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_corrupted_value_fails_the_checksum(tmp_path):
    path, model, state, meta = saved(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["param/out.W"] = arrays["param/out.W"] + 1e-12
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "checksum mismatch" in _one_line(err)


def test_wrong_version(tmp_path):
    path, *_ = saved(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["format_version"] = np.array(CHECKPOINT_VERSION + 1)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert f"format version {CHECKPOINT_VERSION + 1}" in _one_line(err)


def test_wrong_shape_for_the_model(tmp_path):
    path, *_ = saved(tmp_path)
    other = NTM(CONFIG.replace(controller_size=6))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expected_params=other.params)
    assert "has shape" in _one_line(err)
    other = NTM(CONFIG.replace(memory_init="learned"))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path, expected_params=other.params)


def test_a_failed_write_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    path, model, state, meta = saved(tmp_path)
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, model.params, state, CONFIG, meta)
    assert open(path, "rb").read() == before
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]
    load_checkpoint(path)


def test_buffers_round_trip(tmp_path):
    config = CONFIG.replace(memory_init="random")
    model = NTM(config, seed=3)
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, model.params, {}, config, {"step": 0}, model.buffers)
    np.testing.assert_array_equal(load_checkpoint(path).buffers["memory0"], model.buffers["memory0"])


def test_non_scalar_version_is_a_clear_error(tmp_path):
    path, *_ = saved(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["format_version"] = np.array([1, 2])
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="format_version is not a single integer"):
        load_checkpoint(path)
