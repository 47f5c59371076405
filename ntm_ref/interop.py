"""Other implementations' trained models, run in the reference: pytorch-ntm (loudinthecloud/pytorch-ntm).

    load_pytorch_ntm(path_or_state_dict, revision)  -> NTM with that model's weights and conventions
    pytorch_ntm_config(state_dict, revision)        -> the NTMConfig that computes what that revision computes
    pytorch_ntm_arrays(state_dict, config)          -> (params, buffers) for NTM.from_arrays
    ntm-ref import pytorch-ntm FILE --revision REV --out DIR     (cli.py) writes DIR/config.json, DIR/params.npz

Dimension legend: N memory slots, M word width, R read heads, C controller size, L controller layers,
I input width, O output width, P_r = M + 6 and P_w = 3 M + 6 raw parameters of a read / write head.

What pytorch-ntm computes, read from its code at the revisions below (docs/conventions.md section 3 quotes
the lines): an LSTM controller (nn.LSTM, gates i f g o, two biases) fed [x, r_{t-1}]; per head one
nn.Linear laid out [k M | beta | g | s 3 | gamma (| e M | a M)]; content addressing with
F.cosine_similarity (eps 1e-8, norms clamped) and a softmax over the slots; the shift
w~(i) = s0 w(i-1) + s1 w(i) + s2 w(i+1) (conv1d, a correlation); sharpening w^gamma / (sum w^gamma + 1e-16);
the read heads before the write head; output sigmoid(fc([h, r_t])). The initial memory is a fixed buffer
mem_bias, the initial reads fixed buffers read<i>_bias, the initial weightings zero, the LSTM's h0, c0
learned (lstm_h_bias, lstm_c_bias). Only the head activations changed between revisions.

A state dict does not say which revision trained it: every revision saves the same names and shapes. So
the revision is always named by the caller (a 7-or-more-character prefix of its commit).
"""
from typing import NamedTuple

import numpy as np

from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM, array_shapes


class InteropError(Exception):
    """A model file or state dict cannot be imported; the message is one line saying why."""


class Revision(NamedTuple):
    commit: str
    date: str
    change: str
    activations: dict     # NTMConfig activation fields


_RELU_HEADS = dict(key_activation="relu", beta_activation="relu", gate_activation="sigmoid",
                   shift_activation="softmax_relu", gamma_activation="one_plus_relu", erase_activation="relu",
                   add_activation="relu")
_SOFTPLUS_SHIFT = dict(key_activation="identity", beta_activation="torch_softplus", gate_activation="sigmoid",
                       shift_activation="softmax_torch_softplus", gamma_activation="torch_oneplus",
                       erase_activation="sigmoid", add_activation="identity")
_LATEST = dict(_SOFTPLUS_SHIFT, shift_activation="softmax")

# The public commits whose code changed what the model computes (or, as noted, only looks as if it did).
PYTORCH_NTM_REVISIONS = (
    Revision("0682553ff6890b9de1ae87f3d0a432bab22542b4", "2017-09-27",
             "first revision: relu on k, beta, e, a; softmax(relu(s)); gamma = 1 + relu", _RELU_HEADS),
    Revision("d8fedf63b8b07d5f5fa7e43ccef6f4fc2d78ccdc", "2017-10-07",
             "'use better activations': k, a linear; softplus beta; softmax(softplus(s)); sigmoid e",
             _SOFTPLUS_SHIFT),
    Revision("64f1d58a7ac87515915555fe68fde463fef7abb5", "2018-03-17",
             "softmax dim=1 written out (the implicit dim was already 1: same numbers as d8fedf6)",
             _SOFTPLUS_SHIFT),
    Revision("7ae872d5f9a85b86a0ccc6f215c5306d4256ddd6", "2018-03-25",
             "circular convolution padded by 1 instead of 2 (same numbers as d8fedf6)", _SOFTPLUS_SHIFT),
    Revision("d7b38405753e99fab6435cc4075e46607c75013d", "2018-03-26",
             "softplus removed from the shift: softmax(s)", _LATEST),
    Revision("3c64937cb075e737528ff7ecf02b2c1c6d8347a1", "2018-06-21",
             "latest (batched write: same numbers as d7b3840)", _LATEST),
)

# Every revision: the conventions that never changed (docs/conventions.md section 3.2).
PYTORCH_NTM_CONVENTIONS = dict(
    controller="lstm", controller_init="pytorch_ntm", shift_range=1, shift_convention="correlation",
    cosine_epsilon_mode="clamp_norms", cosine_epsilon=1e-8, cosine_input_offset=1e-16,
    sharpen_epsilon_mode="denominator", sharpen_epsilon=1e-16,
    memory_init="random", learn_initial_reads=False, fixed_initial_reads="random",
    learn_initial_weights=False, fixed_initial_weights="zeros", learn_initial_controller_state=True,
    clip_value=None, step_order="read_first",
)

_TORCH_GATES = "ifgo"       # nn.LSTM's gate blocks; ours are i f o g (ntm_ref.controller.lstm_forward)
_OUR_GATE_BLOCKS = [_TORCH_GATES.index(g) for g in "ifog"]


def revision_choices():
    """One line naming every known revision, for messages."""
    return "; ".join(f"{r.commit[:7]} ({r.date}: {r.change})" for r in PYTORCH_NTM_REVISIONS)


def find_revision(revision) -> Revision:
    """The Revision named by a commit prefix of at least 7 hex characters."""
    if revision is None:
        raise InteropError(f"a pytorch-ntm state dict does not say which revision trained it (every revision "
                           f"saves the same names and shapes): name it with --revision / revision=, one of: "
                           f"{revision_choices()}")
    text = str(revision).strip().lower()
    if len(text) < 7 or any(ch not in "0123456789abcdef" for ch in text):
        raise InteropError(f"revision {revision!r}: give at least the first 7 characters of a commit, one of: "
                           f"{revision_choices()}")
    found = [r for r in PYTORCH_NTM_REVISIONS if r.commit.startswith(text)]
    if not found:
        raise InteropError(f"revision {revision!r} is not one whose computation is known here. A commit between "
                           f"two of these computes what the earlier one does; the known ones: "
                           f"{revision_choices()}")
    return found[0]


# ---------------------------------------------------------------------------------------------------
# reading the state dict
# ---------------------------------------------------------------------------------------------------

def read_state_dict(path):
    """A pytorch-ntm .model / .pt file (torch.save(net.state_dict(), path)) as a dict name -> float64 array.
    Needs torch; loads with weights_only=True (no code from the file runs)."""
    try:
        import torch
    except ImportError:
        raise InteropError(f'{path}: reading a PyTorch file needs torch: pip install ".[torch]"') from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InteropError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InteropError(f"{path}: a folder, not a PyTorch file") from None
    except Exception as err:          # torch raises many kinds for a file it cannot read
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InteropError(f"{path}: not a PyTorch state dict torch can load with weights_only=True "
                           f"({first[:200]})") from None
    return _as_arrays(data, path)


def _as_arrays(data, where):
    """A mapping name -> tensor or array (or one holding it under 'state_dict') -> dict of float64 arrays."""
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data:
        raise InteropError(f"{where}: holds a {type(data).__name__}, not a state dict (name -> tensor)")
    out = {}
    for name, value in data.items():
        if hasattr(value, "detach"):                      # a torch tensor
            value = value.detach().cpu()
            if value.is_complex() or not value.is_floating_point():
                raise InteropError(f"{where}: {name} holds {value.dtype} values; expected real floating point")
            value = value.double().numpy()
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise InteropError(f"{where}: {name} holds {value.dtype} values; expected real floating point")
        out[str(name)] = np.array(value, dtype=np.float64)
    return out


def _strip(state_dict):
    """Names relative to the NTM module: EncapsulatedNTM saves them under 'ntm.', with copies of the memory
    buffer under 'memory.' and 'heads.<j>.memory.' (the same module registered again)."""
    ntm = {k[4:]: v for k, v in state_dict.items() if k.startswith("ntm.")}
    rest = {k: v for k, v in state_dict.items() if not k.startswith("ntm.")}
    if not ntm:
        return dict(state_dict), {}
    return ntm, rest


# ---------------------------------------------------------------------------------------------------
# config and arrays
# ---------------------------------------------------------------------------------------------------

def _need(sd, name, ndim, where):
    if name not in sd:
        raise InteropError(f"{where}: no {name} (is this a pytorch-ntm state dict? it has "
                           f"{', '.join(sorted(sd)[:12])}{', ...' if len(sd) > 12 else ''})")
    if sd[name].ndim != ndim:
        raise InteropError(f"{where}: {name} has shape {sd[name].shape}; expected {ndim} dimensions")
    return sd[name]


def pytorch_ntm_config(state_dict, revision, where="state dict") -> NTMConfig:
    """The NTMConfig of a pytorch-ntm state dict: sizes from its shapes, conventions from the revision."""
    rev = find_revision(revision)
    sd, _ = _strip(state_dict)
    N, M = _need(sd, "memory.mem_bias", 2, where).shape
    heads = sorted({int(k.split(".")[1]) for k in sd if k.startswith("heads.") and k.split(".")[1].isdigit()})
    kinds = ["read" if f"heads.{j}.fc_read.weight" in sd else "write" if f"heads.{j}.fc_write.weight" in sd
             else "?" for j in heads]
    if heads != list(range(len(heads))) or "?" in kinds or not kinds:
        raise InteropError(f"{where}: heads {heads} of kinds {kinds}: expected heads.0, heads.1, ... each with "
                           f"fc_read or fc_write")
    if kinds != ["read", "write"]:
        pairs = kinds == ["read", "write"] * (len(kinds) // 2)
        raise InteropError(
            f"{where}: {len(kinds)} heads ({', '.join(kinds)}). " + (
                f"pytorch-ntm runs num_heads={len(kinds) // 2} read/write pairs interleaved (read head 1 reads "
                f"the memory write head 0 has just written, writes one after another); the reference reads "
                f"with every head, then writes with every head, and cannot express that order: only "
                f"num_heads=1 imports (docs/conventions.md 3.3)" if pairs else
                "expected one read head and one write head (heads.0.fc_read, heads.1.fc_write)"))
    L = len([k for k in sd if k.startswith("controller.lstm.weight_ih_l")])
    if L == 0:
        raise InteropError(f"{where}: no controller.lstm.weight_ih_l0 (pytorch-ntm's LSTM controller)")
    C = _need(sd, "controller.lstm.weight_hh_l0", 2, where).shape[1]
    R = 1
    I = _need(sd, "controller.lstm.weight_ih_l0", 2, where).shape[1] - R * M
    O = _need(sd, "fc.weight", 2, where).shape[0]
    if I < 1:
        raise InteropError(f"{where}: controller.lstm.weight_ih_l0 has {I + R * M} inputs, not more than the "
                           f"{R * M} read values")
    try:
        return NTMConfig(input_size=I, output_size=O, controller_size=C if L == 1 else (C,) * L,
                         memory_slots=N, memory_width=M, read_heads=R, write_heads=1,
                         **PYTORCH_NTM_CONVENTIONS, **rev.activations)
    except ValueError as err:
        raise InteropError(f"{where}: sizes that make no NTM: {err}") from None


def pytorch_ntm_arrays(state_dict, config: NTMConfig, where="state dict"):
    """The reference's params and buffers from a pytorch-ntm state dict (names as ntm_ref.model.init_params).

        ctrl.<l>.W = [weight_ih_l<l> | weight_hh_l<l>]^T with the gate blocks reordered i f g o -> i f o g
        ctrl.<l>.b = bias_ih_l<l> + bias_hh_l<l>, reordered;  ctrl.<l>.h0 / c0 = lstm_h_bias / lstm_c_bias[l, 0]
        read.W, read.b = heads.0.fc_read.weight^T, .bias;  write.W, write.b = heads.1.fc_write.weight^T, .bias
        out.W, out.b = fc.weight^T, fc.bias;  buffers memory0 = memory.mem_bias, read0 = read0_bias
    Every array of the state dict is used or checked: an unknown name, a wrong shape or two copies of the
    memory buffer that differ are errors.
    """
    sd, rest = _strip(state_dict)
    used = set()

    def take(name, ndim):
        used.add(name)
        return _need(sd, name, ndim, where)

    params = {}
    for l, C_l in enumerate(config.controller_sizes):
        w_ih, w_hh = take(f"controller.lstm.weight_ih_l{l}", 2), take(f"controller.lstm.weight_hh_l{l}", 2)
        b_ih, b_hh = take(f"controller.lstm.bias_ih_l{l}", 1), take(f"controller.lstm.bias_hh_l{l}", 1)
        blocks = lambda a: np.concatenate([a[k * C_l:(k + 1) * C_l] for k in _OUR_GATE_BLOCKS])  # noqa: E731
        if w_ih.shape[0] != 4 * C_l or w_hh.shape != (4 * C_l, C_l) or b_ih.shape != (4 * C_l,) \
                or b_hh.shape != (4 * C_l,):
            raise InteropError(f"{where}: controller layer {l} shapes {w_ih.shape}, {w_hh.shape}, {b_ih.shape}, "
                               f"{b_hh.shape} do not make an LSTM of size {C_l}")
        b = b_ih + b_hh
        params[f"ctrl.{l}.W"] = blocks(np.concatenate([w_ih, w_hh], axis=1)).T
        params[f"ctrl.{l}.b"] = blocks(b)
    h0, c0 = take("controller.lstm_h_bias", 3), take("controller.lstm_c_bias", 3)
    L, C = len(config.controller_sizes), config.controller_sizes[0]
    for name, value in (("controller.lstm_h_bias", h0), ("controller.lstm_c_bias", c0)):
        if value.shape != (L, 1, C):
            raise InteropError(f"{where}: {name} has shape {value.shape}; the LSTM of {L} layer(s) of size {C} "
                               f"needs {(L, 1, C)}")
    for l in range(L):
        params[f"ctrl.{l}.h0"], params[f"ctrl.{l}.c0"] = h0[l, 0], c0[l, 0]
    params["read.W"], params["read.b"] = take("heads.0.fc_read.weight", 2).T, take("heads.0.fc_read.bias", 1)
    params["write.W"], params["write.b"] = take("heads.1.fc_write.weight", 2).T, take("heads.1.fc_write.bias", 1)
    params["out.W"], params["out.b"] = take("fc.weight", 2).T, take("fc.bias", 1)
    memory0 = take("memory.mem_bias", 2)
    reads = [take(f"read{r}_bias", 2) for r in range(config.read_heads)]
    for r, value in enumerate(reads):
        if value.shape != (1, config.memory_width):
            raise InteropError(f"{where}: read{r}_bias has shape {value.shape}; needs {(1, config.memory_width)}")
    read0 = np.concatenate(reads, axis=0)
    # the memory module is registered under the NTM, under each head and under EncapsulatedNTM: every
    # copy must be the same buffer
    copies = [(k, source) for source in (sd, rest) for k in source
              if k.endswith("mem_bias") and not (source is sd and k == "memory.mem_bias")]
    for name, source in copies:
        if source[name].shape != memory0.shape or not np.array_equal(source[name], memory0):
            raise InteropError(f"{where}: {name} differs from memory.mem_bias (the same buffer, saved twice)")
    copied = {k for k, _ in copies}
    unknown = sorted((set(sd) - used - copied) | (set(rest) - copied))
    if unknown:
        raise InteropError(f"{where}: names pytorch-ntm does not save: {', '.join(unknown)}")
    buffers = {"memory0": memory0, "read0": read0}
    want_p, want_b = array_shapes(config)
    for name, shape in {**want_p, **want_b}.items():
        got = (params.get(name) if name in want_p else buffers.get(name))
        if got is None or got.shape != shape:
            raise InteropError(f"{where}: {name} comes out with shape {None if got is None else got.shape}; the "
                               f"sizes read from the state dict need {shape}")
    return params, buffers


def load_pytorch_ntm(path_or_state_dict, revision=None, engine="reference") -> NTM:
    """A pytorch-ntm model (a file saved with torch.save(net.state_dict(), ...) or the state dict itself:
    tensors or arrays) as a reference NTM. revision: the commit of pytorch-ntm the model was trained with,
    at least its first 7 characters (PYTORCH_NTM_REVISIONS); a state dict cannot tell it."""
    if isinstance(path_or_state_dict, dict):
        where, state_dict = "state dict", _as_arrays(path_or_state_dict, "state dict")
    else:
        where = str(path_or_state_dict)
        find_revision(revision)                 # a missing or unknown revision before the file is read
        state_dict = read_state_dict(path_or_state_dict)
    config = pytorch_ntm_config(state_dict, revision, where)
    params, buffers = pytorch_ntm_arrays(state_dict, config, where)
    return NTM.from_arrays(config, params, buffers, engine=engine)
