"""Checkpoints: one .npz (read with allow_pickle=False), versioned, checksummed, written atomically.

Layout of a checkpoint file (every entry a plain array, so no pickle is ever needed):
    format_version      int64 ()           CHECKPOINT_VERSION
    meta_json           str ()             step, sequences, seconds, RNG state, training settings (JSON)
    config_json         str ()             the model's NTMConfig (JSON)
    param/<name>        float64            every parameter
    buffer/<name>       float64            fixed, unlearned arrays (the random initial memory)
    opt/<key>           any numeric        the optimiser state
    checksum            str ()             SHA-256 over every other entry (name, dtype, shape, bytes)

Writing goes to a temporary file in the same folder, then os.replace: a crash mid-write leaves the last
good checkpoint in place. Every way a file can be bad (missing, truncated, not an npz, wrong version,
checksum mismatch, wrong shapes) raises CheckpointError with one line naming the file and the problem.
"""
import hashlib
import json
import os
from typing import NamedTuple

import numpy as np

CHECKPOINT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint cannot be used; the message is one line naming the file and the problem."""


class Checkpoint(NamedTuple):
    params: dict       # name -> array
    opt_state: dict    # key -> array
    config: dict       # the NTMConfig as a dict
    meta: dict         # training state and settings
    buffers: dict      # name -> array (fixed model arrays)


def _checksum(arrays):
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path, params, opt_state, config, meta, buffers=None):
    """Write params (dict), opt_state (dict), config (NTMConfig), meta (JSON-able dict) and buffers (dict)
    to ``path`` atomically (a temporary file beside it, then a rename)."""
    arrays = {"format_version": np.array(CHECKPOINT_VERSION, dtype=np.int64),
              "meta_json": np.array(json.dumps(meta, sort_keys=True)),
              "config_json": np.array(config.to_json())}
    arrays.update({f"param/{k}": np.asarray(v) for k, v in params.items()})
    arrays.update({f"opt/{k}": np.asarray(v) for k, v in opt_state.items()})
    arrays.update({f"buffer/{k}": np.asarray(v) for k, v in (buffers or {}).items()})
    arrays["checksum"] = np.array(_checksum(arrays))
    tmp = f"{path}.{os.getpid()}.tmp"        # per process: two writers never share a temporary file
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _check_meta_values(path, meta, config):
    """CheckpointError naming the file and the entry when the metadata or config is not a JSON object, or
    a training entry that is present has the wrong kind of value: step and sequences ints >= 0, seconds a
    finite number >= 0, rng_state a state numpy's PCG64 generator accepts (train --resume restores it)."""
    for name, value in (("meta_json", meta), ("config_json", config)):
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: its {name} is not a JSON object (got {type(value).__name__})")
    for key in ("step", "sequences"):
        value = meta.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"{path}: its metadata's {key} is {value!r}; must be an int >= 0")
    seconds = meta.get("seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
        raise CheckpointError(f"{path}: its metadata's seconds is {seconds!r}; must be a finite number >= 0")
    if "rng_state" in meta:
        try:
            np.random.PCG64().state = meta["rng_state"]
        except (TypeError, ValueError, KeyError, OverflowError) as err:
            raise CheckpointError(f"{path}: its metadata's rng_state is not a state of numpy's PCG64 "
                                  f"generator ({err})") from None


def load_checkpoint(path, expected_params=None):
    """Read and verify a checkpoint.  -> Checkpoint(params, opt_state, config, meta, buffers).

    ``expected_params``: optional dict name -> array whose names and shapes the checkpoint must match.
    Raises CheckpointError (one line: file and problem) for any unusable file.
    """
    from ntm_ref.npzio import NpzError, read_npz
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        arrays = read_npz(path, "")      # headers checked first: no pickle, no array larger than memory
    except NpzError as err:
        raise CheckpointError(f"{path}: not a readable checkpoint: {err.problem}") from None
    if "format_version" not in arrays:
        raise CheckpointError(f"{path}: not an ntm_ref checkpoint (no format_version entry)")
    try:
        version = int(arrays["format_version"])
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: format_version is not a single integer") from None
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version}, this ntm_ref reads version "
                              f"{CHECKPOINT_VERSION}")
    for required in ("checksum", "meta_json", "config_json"):
        if required not in arrays:
            raise CheckpointError(f"{path}: checkpoint has no {required} entry")
    stored = str(arrays.pop("checksum"))
    if _checksum(arrays) != stored:
        raise CheckpointError(f"{path}: checksum mismatch, the file is corrupted")
    try:
        meta = json.loads(str(arrays["meta_json"]))
        config = json.loads(str(arrays["config_json"]))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: unreadable metadata: {err}") from None
    _check_meta_values(path, meta, config)
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    opt_state = {k[len("opt/"):]: v for k, v in arrays.items() if k.startswith("opt/")}
    buffers = {k[len("buffer/"):]: v for k, v in arrays.items() if k.startswith("buffer/")}
    if expected_params is not None:
        missing = sorted(set(expected_params) - set(params))
        extra = sorted(set(params) - set(expected_params))
        if missing or extra:
            raise CheckpointError(f"{path}: parameters do not match the model (missing {missing}, "
                                  f"unexpected {extra})")
        for name, value in expected_params.items():
            if params[name].shape != value.shape:
                raise CheckpointError(f"{path}: parameter {name} has shape {params[name].shape}, the model "
                                      f"needs {value.shape}")
    return Checkpoint(params, opt_state, config, meta, buffers)
