"""NTMConfig validation and count_params."""
import pytest

from ntm_ref.config import NTMConfig
from ntm_ref.count import count_params
from ntm_ref.lstm_baseline import LSTMBaseline
from ntm_ref.model import NTM

BASE = dict(input_size=3, output_size=2)


@pytest.mark.parametrize("field, value, allowed", [
    ("input_size", 0, "int >= 1"),
    ("output_size", -3, "int >= 1"),
    ("input_size", 2.5, "must be an int"),
    ("input_size", True, "must be an int"),
    ("memory_slots", 0, "int >= 1"),
    ("memory_width", "20", "must be an int"),
    ("read_heads", 0, "int >= 1"),
    ("write_heads", 0, "int >= 1"),
    ("shift_range", -1, "int >= 0"),
    ("shift_range", 64, "wider than the memory"),
    ("controller", "gru", "allowed: 'feedforward', 'lstm'"),
    ("controller_size", 0, "int >= 1"),
    ("controller_size", (100, 0), "int >= 1"),
    ("controller_size", (), "non-empty tuple"),
    ("controller_activation", "gelu", "allowed"),
    ("controller_init", "xavier", "allowed: 'normal', 'pytorch_ntm'"),
    ("controller_init", "pytorch_ntm", "applies only to an LSTM controller"),
    ("key_activation", "softmax", "allowed (any elementwise activation): 'identity', 'relu', "),
    ("beta_activation", "tanh", "(a key strength must be >= 0): 'relu', "),
    ("gate_activation", "relu", "(a gate must lie in [0, 1]): 'hard_sigmoid', 'clip01', 'sigmoid'"),
    ("shift_activation", "sigmoid", "allowed (the shift kernel is a softmax, of the raw values or of an "
                                    "elementwise activation): 'softmax', 'softmax_relu', "),
    ("shift_activation", "softmax_identity", "allowed"),
    ("gamma_activation", "softplus", "(a sharpening exponent must be >= 1): 'one_plus_relu', 'oneplus'"),
    ("erase_activation", "tanh", "(an erase vector must be >= 0)"),
    ("add_activation", "softmax_relu", "allowed"),
    ("add_activation", None, "allowed"),
    ("memory_init", "zeros", "allowed: 'constant', 'learned', 'learned_constant', 'random'"),
    ("fixed_initial_weights", "uniform", "allowed: 'one_hot', 'zeros'"),
    ("fixed_initial_weights", "zeros", "applies only with learn_initial_weights=False"),
    ("learn_initial_controller_state", 0, "True or False"),
    ("shift_convention", "conv1d", "allowed: 'convolution', 'correlation'"),
    ("cosine_epsilon_mode", "none", "allowed: 'smooth_norm', 'denominator', 'clamp_norms', 'smooth_norm_denominator'"),
    ("sharpen_epsilon_mode", "log", "allowed: 'base', 'denominator'"),
    ("cosine_epsilon", -1.0, "finite number > 0"),
    ("sharpen_epsilon", float("inf"), "finite number > 0"),
    ("memory_init_value", float("nan"), "finite number"),
    ("clip_value", 0.0, "positive number or None"),
    ("clip_value", -5, "positive number or None"),
    ("step_order", "interleaved", "allowed: 'read_first', 'write_first'"),
    ("learn_initial_reads", 1, "True or False"),
    ("learn_initial_weights", "yes", "True or False"),
    ("memory_init_value", float("inf"), "finite number"),
    ("memory_init_value", "small", "finite number"),
    ("clip_value", float("nan"), "positive number or None"),
    ("clip_value", float("inf"), "positive number or None"),
    ("clip_value", "20", "positive number or None"),
    ("memory_slots", 2.0, "must be an int"),
    ("write_heads", None, "must be an int"),
])
def test_invalid_field_names_the_field_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ValueError) as err:
        NTMConfig(**{**BASE, field: value})
    message = str(err.value)
    assert message.startswith(field + ":"), message
    assert repr(value) in message or str(value) in message, message
    assert allowed in message, message


def test_valid_configs_and_round_trip():
    c = NTMConfig(**BASE, controller="lstm", controller_size=[4, 3], shift_range=2, memory_slots=5)
    assert c.controller_size == (4, 3) and c.controller_sizes == (4, 3) and c.shift_width == 5
    assert NTMConfig.from_dict(c.to_dict()) == c
    import json
    assert NTMConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="unknown NTMConfig field"):
        NTMConfig.from_dict({**BASE, "heads": 3})
    with pytest.raises(ValueError, match="^memory_slots:"):
        c.replace(memory_slots=0)


@pytest.mark.parametrize("kw", [
    dict(), dict(controller="lstm"), dict(controller_size=(4, 5), read_heads=2, write_heads=3),
    dict(controller="lstm", controller_size=(4, 3), memory_init="learned", shift_range=2),
    dict(learn_initial_reads=False, learn_initial_weights=False, memory_init="random"),
    dict(controller="lstm", controller_size=(4, 3), memory_init="learned_constant",
         learn_initial_controller_state=False),
    dict(controller="lstm", controller_size=(4, 3), controller_init="pytorch_ntm"),
])
def test_count_params_equals_the_models_params(kw):
    config = NTMConfig(**BASE, memory_slots=6, memory_width=3, controller_size=5).replace(**kw)
    assert count_params(config) == sum(v.size for v in NTM(config).params.values())
    for skip in (True, False):
        assert count_params(config, "lstm", skip) == sum(
            v.size for v in LSTMBaseline(config, skip_connections=skip).params.values())


def test_count_params_reproduces_the_papers_lstm_baseline_rows():
    """Table 3 (LSTM rows), with the widths worked out in docs/param-counts.md."""
    rows = [((10, 9), 256, 1352969), ((8, 7), 512, 5312007), ((8, 6), 256, 1344518), ((1, 1), 128, 331905)]
    for (I, O), C, paper in rows:
        assert count_params(NTMConfig(input_size=I, output_size=O, controller_size=(C,) * 3), "lstm") == paper


def test_count_params_rejects_unknown_model():
    with pytest.raises(ValueError, match="^model:"):
        count_params(NTMConfig(**BASE), model="gru")


def test_controller_init_pytorch_ntm_draws_the_lstm_as_pytorch_ntm_does():
    """LSTMController.reset_parameters of pytorch-ntm: Uniform(+-5 / sqrt(D + C)) weights with D the
    controller's input width (every layer), biases 0, learned h0 and c0 ~ Normal(0, 0.05^2); the rest of the
    model is drawn as with the default init."""
    import numpy as np
    from ntm_ref.model import init_params
    config = NTMConfig(**BASE, controller="lstm", controller_size=(60, 60), memory_width=7, read_heads=2,
                       controller_init="pytorch_ntm")
    p = init_params(config, seed=1)
    bound = 5 / np.sqrt(3 + 2 * 7 + 60)
    for l in (0, 1):
        W = p[f"ctrl.{l}.W"]
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
        assert abs(W.std() - bound / np.sqrt(3)) < 0.02 * bound          # uniform, not the normal of "normal"
        assert not p[f"ctrl.{l}.b"].any()                                   # forget gates too
        for s in ("h0", "c0"):
            assert 0.03 < p[f"ctrl.{l}.{s}"].std() < 0.07
    default = init_params(config.replace(controller_init="normal"), seed=1)
    assert default["ctrl.0.b"].any() and not default["ctrl.0.h0"].any()
    assert sorted(p) == sorted(default) and all(p[k].shape == default[k].shape for k in p)
