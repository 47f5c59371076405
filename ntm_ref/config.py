"""NTMConfig: every choice that defines an NTM, validated when the config is made.

Sources of the defaults (see docs/model.md for the full table):
  the paper     Graves, Wayne & Danihelka 2014, arXiv:1410.5401 (sizes: memory 128 x 20, shift range 1,
                controller 100 for copy, Tables 1-3)
  Collier       Collier & Beel 2018, arXiv:1807.08518 and its TensorFlow code (activations of the head
                parameters, memory initialised to the constant 1e-6, learned initial reads and weightings,
                clipping of head parameters and outputs at +-20, reads from the memory before the write)

Every field is checked in ``__post_init__``; a bad value raises ValueError naming the field, the value
and what is allowed, so a mistake never surfaces later as a NumPy broadcasting error.
"""
import dataclasses
import json
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from ntm_ref.activations import ELEMENTWISE, INF, SHIFT_ACTIVATIONS

# Activation choices per head parameter: every activation of ntm_ref.activations whose range fits what
# the parameter must be (docs/conventions.md says which implementation uses which):
#   key, add     any real vector                      every elementwise activation
#   beta         a key strength >= 0                  range in [0, inf)
#   g            an interpolation gate in [0, 1]      range in [0, 1]
#   gamma        a sharpening exponent >= 1           range in [1, inf)
#   erase        an erase vector >= 0                 range in [0, inf) (pytorch-ntm 0682553's relu
#                                                     erase exceeds 1; the paper's e is in (0, 1))
#   s            a kernel on the simplex              softmax, or softmax_<name>: softmax(<name>(z))
FIELD_RANGES = {  # field -> (lowest allowed value, highest allowed value) of the activation's range
    "key_activation": (-INF, INF), "beta_activation": (0.0, INF), "gate_activation": (0.0, 1.0),
    "gamma_activation": (1.0, INF), "erase_activation": (0.0, INF), "add_activation": (-INF, INF),
}
HEAD_ACTIVATION_CHOICES = {
    field: tuple(name for name, (_, _, (low, high)) in ELEMENTWISE.items() if low >= lo and high <= hi)
    for field, (lo, hi) in FIELD_RANGES.items()
}
HEAD_ACTIVATION_CHOICES["shift_activation"] = SHIFT_ACTIVATIONS
ACTIVATION_RULES = {   # the reason a choice is refused, for the error message
    "key_activation": "any elementwise activation", "add_activation": "any elementwise activation",
    "beta_activation": "a key strength must be >= 0", "gate_activation": "a gate must lie in [0, 1]",
    "gamma_activation": "a sharpening exponent must be >= 1", "erase_activation": "an erase vector must be >= 0",
    "shift_activation": "the shift kernel is a softmax, of the raw values or of an elementwise activation",
}
CONTROLLERS = ("feedforward", "lstm")
CONTROLLER_ACTIVATIONS = ("tanh", "relu", "sigmoid")
CONTROLLER_INITS = ("normal", "pytorch_ntm")
MEMORY_INITS = ("constant", "learned", "learned_constant", "random")
FIXED_INITIAL_WEIGHTS = ("one_hot", "zeros")
FIXED_INITIAL_READS = ("zeros", "random")
STEP_ORDERS = ("read_first", "write_first")
# Conventions on which public implementations differ (docs/conventions.md says which one each uses).
SHIFT_CONVENTIONS = ("convolution", "correlation")
COSINE_EPSILON_MODES = ("smooth_norm", "denominator", "clamp_norms", "smooth_norm_denominator")
SHARPEN_EPSILON_MODES = ("base", "denominator")


@dataclass(frozen=True)
class NTMConfig:
    """The architecture of one NTM. Shapes: I = input_size, O = output_size, C = controller_size(s),
    N = memory_slots, M = memory_width, R = read_heads, W = write_heads, S = 2 * shift_range + 1."""

    input_size: int
    output_size: int
    controller: str = "feedforward"
    # int for one layer, tuple for several (the paper: 100 for most tasks)
    controller_size: Union[int, Tuple[int, ...]] = 100
    # hidden-layer nonlinearity of the feedforward controller (the paper does not say; tanh as in Graves 2013's RNNs)
    controller_activation: str = "tanh"
    # the controller's starting weights (ntm_ref.model.init_params): "normal", Normal(0, 1/fan_in) weights,
    # zero biases, LSTM forget-gate biases LSTM_FORGET_BIAS, learned h0 and c0 at zero (Collier's scale);
    # "pytorch_ntm" (LSTM only), pytorch-ntm's LSTMController: weights Uniform(+-5 / sqrt(D + C)), D the
    # controller's input width and C its cells, all biases 0, learned h0 and c0 drawn Normal(0, 0.05^2)
    controller_init: str = "normal"
    memory_slots: int = 128          # N, the paper's 128
    memory_width: int = 20           # M, the paper's 20
    read_heads: int = 1              # R
    write_heads: int = 1             # W
    shift_range: int = 1             # shifts -1, 0, +1 (the paper's copy figures)
    # head-parameter activations (HEAD_ACTIVATION_CHOICES lists what each field allows)
    key_activation: str = "tanh"     # Collier
    beta_activation: str = "softplus"
    gate_activation: str = "sigmoid"
    shift_activation: str = "softmax"
    gamma_activation: str = "oneplus"
    erase_activation: str = "sigmoid"
    add_activation: str = "tanh"     # Collier
    # "constant": every entry memory_init_value, fixed; "learned": a parameter drawn at random;
    # "learned_constant": a parameter that starts at memory_init_value (what Collier's code trains: its
    # "constant" memory is a trainable variable); "random": a fixed random buffer (pytorch-ntm)
    memory_init: str = "constant"    # Collier's best: converges about twice as fast as learned or random
    memory_init_value: float = 1e-6  # Collier's constant
    learn_initial_reads: bool = True     # Collier: r0 = tanh(learned); else fixed_initial_reads
    # r0 without learning: "zeros", or "random", a fixed buffer read0 (R, M) drawn N(0, 0.01^2) and never
    # learned (pytorch-ntm's read<i>_bias buffers)
    fixed_initial_reads: str = "zeros"
    learn_initial_weights: bool = True   # Collier: w0 = softmax(learned); else fixed_initial_weights
    fixed_initial_weights: str = "one_hot"   # w0 without learning: one-hot on slot 0, or "zeros" (pytorch-ntm)
    learn_initial_controller_state: bool = True   # LSTM h0, c0 learned; False: zeros (Collier, pytorch-ntm)
    clip_value: Optional[float] = 20.0   # Collier clips head parameters and output logits to +-20; None = off
    step_order: str = "read_first"       # Collier and pytorch-ntm read the memory before this step's write
    # eq 8 as written (a circular convolution: the kernel's +1 entry moves mass from slot i to i + 1), or
    # "correlation", the kernel applied reversed, which is what PyTorch's conv1d computes (pytorch-ntm)
    shift_convention: str = "convolution"
    # eq 6 has no epsilon. "smooth_norm": every norm |u| -> sqrt(|u|^2 + eps);
    # "denominator": u.v / (|u| |v| + eps) (Collier); "clamp_norms": u.v / (max(|u|, eps) max(|v|, eps))
    # (torch.nn.functional.cosine_similarity, pytorch-ntm); "smooth_norm_denominator": smooth norms and
    # + eps in the denominator (DeepMind's DNC). See ntm_ref.addressing.COSINE_EPS.
    cosine_epsilon_mode: str = "smooth_norm"
    cosine_epsilon: float = 1e-6
    # added to every entry of the memory and of the key before eq 6: pytorch-ntm's
    # F.cosine_similarity(memory + 1e-16, k + 1e-16); moves an all-zero key (relu keys) off zero
    cosine_input_offset: float = 0.0
    # eq 9 has no epsilon. "base": (w~ + eps)^gamma / sum (w~ + eps)^gamma, computed in log space;
    # "denominator": w~^gamma / (sum w~^gamma + eps) (pytorch-ntm). See ntm_ref.addressing.SHARPEN_EPS.
    sharpen_epsilon_mode: str = "base"
    sharpen_epsilon: float = 1e-30

    def __post_init__(self):
        for name in ("input_size", "output_size", "memory_slots", "memory_width", "read_heads", "write_heads"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("shift_range", self.shift_range, minimum=0)
        sizes = self.controller_size
        if isinstance(sizes, list):
            sizes = tuple(sizes)
            object.__setattr__(self, "controller_size", sizes)
        if isinstance(sizes, tuple):
            bad = not sizes or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                                   for v in sizes)
            if bad:
                raise ValueError(f"controller_size: got {sizes!r}; must be an int >= 1 or a non-empty tuple "
                                 f"of ints >= 1 (one per layer)")
        else:
            _check_int("controller_size", sizes, minimum=1)
        _check_choice("controller", self.controller, CONTROLLERS)
        _check_choice("controller_activation", self.controller_activation, CONTROLLER_ACTIVATIONS)
        _check_choice("controller_init", self.controller_init, CONTROLLER_INITS)
        if self.controller_init != "normal" and self.controller != "lstm":
            raise ValueError(f"controller_init: got {self.controller_init!r}, but it applies only to an LSTM "
                             f"controller (controller {self.controller!r}: use 'normal')")
        for name, choices in HEAD_ACTIVATION_CHOICES.items():
            _check_choice(name, getattr(self, name), choices, why=ACTIVATION_RULES[name])
        _check_choice("memory_init", self.memory_init, MEMORY_INITS)
        _check_choice("step_order", self.step_order, STEP_ORDERS)
        _check_choice("shift_convention", self.shift_convention, SHIFT_CONVENTIONS)
        _check_choice("cosine_epsilon_mode", self.cosine_epsilon_mode, COSINE_EPSILON_MODES)
        _check_choice("sharpen_epsilon_mode", self.sharpen_epsilon_mode, SHARPEN_EPSILON_MODES)
        # "denominator" may run without an epsilon (the paper's bare formula); the other modes divide by
        # the epsilon itself at a zero vector (clamp_norms, smooth_norm) or take log(eps) (base).
        for name, mode in (("cosine_epsilon", self.cosine_epsilon_mode), ("sharpen_epsilon", self.sharpen_epsilon_mode)):
            value = getattr(self, name)
            if mode == "denominator":
                if not (_is_real(value) and value >= 0):
                    raise ValueError(f"{name}: got {value!r}; must be a finite number >= 0")
            elif not (_is_real(value) and value > 0):
                raise ValueError(f"{name}: got {value!r}; must be a finite number > 0 with "
                                 f"{name}_mode={mode!r} (only 'denominator' allows 0)")
        _check_choice("fixed_initial_weights", self.fixed_initial_weights, FIXED_INITIAL_WEIGHTS)
        if self.learn_initial_weights and self.fixed_initial_weights != "one_hot":
            raise ValueError(f"fixed_initial_weights: got {self.fixed_initial_weights!r}, but it applies only "
                             f"with learn_initial_weights=False (learned weightings start from softmax(w0.*))")
        _check_choice("fixed_initial_reads", self.fixed_initial_reads, FIXED_INITIAL_READS)
        if self.learn_initial_reads and self.fixed_initial_reads != "zeros":
            raise ValueError(f"fixed_initial_reads: got {self.fixed_initial_reads!r}, but it applies only with "
                             f"learn_initial_reads=False (learned reads start from tanh(read0))")
        for name in ("learn_initial_reads", "learn_initial_weights", "learn_initial_controller_state"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: got {getattr(self, name)!r}; must be True or False")
        if not _is_real(self.cosine_input_offset):
            raise ValueError(f"cosine_input_offset: got {self.cosine_input_offset!r}; must be a finite number")
        if not _is_real(self.memory_init_value):
            raise ValueError(f"memory_init_value: got {self.memory_init_value!r}; must be a finite number")
        if self.clip_value is not None and not (_is_real(self.clip_value) and self.clip_value > 0):
            raise ValueError(f"clip_value: got {self.clip_value!r}; must be a positive number or None (no clipping)")
        S = 2 * self.shift_range + 1
        if S > self.memory_slots:
            raise ValueError(f"shift_range: got {self.shift_range}, a kernel of width {S} is wider than the "
                             f"memory ({self.memory_slots} slots); need 2 * shift_range + 1 <= memory_slots")

    # -- derived sizes ---------------------------------------------------------------------------------
    @property
    def controller_sizes(self) -> Tuple[int, ...]:
        """The controller's layer sizes as a tuple (one entry per layer)."""
        return self.controller_size if isinstance(self.controller_size, tuple) else (self.controller_size,)

    @property
    def shift_width(self) -> int:
        """S = 2 * shift_range + 1."""
        return 2 * self.shift_range + 1

    @property
    def read_head_size(self) -> int:
        """Raw parameters per read head: key M, beta 1, g 1, shift S, gamma 1."""
        return self.memory_width + 3 + self.shift_width

    @property
    def write_head_size(self) -> int:
        """Raw parameters per write head: a read head's, plus erase M and add M."""
        return self.read_head_size + 2 * self.memory_width

    # -- (de)serialisation -------------------------------------------------------------------------------
    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown NTMConfig field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        d = dict(d)
        if isinstance(d.get("controller_size"), list):
            d["controller_size"] = tuple(d["controller_size"])
        return cls(**d)

    def replace(self, **changes):
        """A copy with some fields changed (validated again; an unknown field is a ValueError naming it)."""
        return self.from_dict({**self.to_dict(), **changes})

    @classmethod
    def field_names(cls):
        """The fields, in declaration order (what --set and a config JSON may name)."""
        return [f.name for f in dataclasses.fields(cls)]


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: got {value!r} ({type(value).__name__}); must be an int >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}: got {value}; must be an int >= {minimum}")


def _check_choice(name, value, choices, why=None):
    if not isinstance(value, str) or value not in choices:
        reason = f" ({why})" if why else ""
        raise ValueError(f"{name}: got {value!r}; allowed{reason}: {', '.join(map(repr, choices))}")


def parse_value(text):
    """A field's value typed as text (--set FIELD=VALUE, a sweep's values): JSON when it parses (numbers,
    true/false, null, lists, as tuples), else the plain string."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value
