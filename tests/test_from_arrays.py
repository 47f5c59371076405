"""NTM.from_arrays and check_arrays: a model built from a user's arrays, every name and shape checked, every
problem in one message with the reason when it is a flag or a prefix, nothing filled in at random."""
import numpy as np
import pytest

from model_helpers import TINY, make_batch
from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM, array_shapes, check_arrays, init_buffers, init_params

CONFIGS = [
    NTMConfig(**TINY),
    NTMConfig(**{**TINY, "controller_size": (4, 3)}, controller="lstm", memory_init="random", learn_initial_reads=False,
              fixed_initial_reads="random", learn_initial_weights=False, fixed_initial_weights="zeros"),
    NTMConfig(**TINY, controller="lstm", memory_init="learned", read_heads=2, learn_initial_controller_state=False),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["ff", "lstm-pytorch-ntm-state", "lstm-learned-memory"])
def test_array_shapes_are_what_init_makes_and_from_arrays_runs_the_same(config):
    params, buffers = init_params(config, seed=3), init_buffers(config, seed=3)
    want_p, want_b = array_shapes(config)
    assert {k: v.shape for k, v in params.items()} == want_p and list(params) == list(want_p)
    assert {k: v.shape for k, v in buffers.items()} == want_b
    model = NTM.from_arrays(config, params, buffers)
    x, y, mask = make_batch(config, B=2, T=3, seed=1)
    expected = NTM(config, seed=3).run(x, y, mask)
    got = model.run(x, y, mask)
    assert got.loss == expected.loss
    for k in params:
        np.testing.assert_array_equal(got.grads[k], expected.grads[k])
    params["out.b"][:] = 7.0                      # the model holds copies
    assert not np.any(model.params["out.b"] == 7.0)


def message(config, params, buffers=None):
    with pytest.raises(ValueError) as err:
        NTM.from_arrays(config, params, buffers)
    text = str(err.value)
    assert "\n" not in text
    return text


def test_every_problem_in_one_message():
    config = CONFIGS[1]
    params, buffers = init_params(config), init_buffers(config)
    params["memory0"] = buffers.pop("memory0")          # a buffer given as a parameter
    params["read0"] = buffers.pop("read0")
    del params["out.b"]
    params["ctrl.5.W"] = np.zeros(3)
    params["read.W"] = np.zeros((2, 2))
    params["write.b"] = np.full(params["write.b"].shape, np.nan)
    text = message(config, params, buffers)
    for part in ("memory0 is a buffer with this config, not a parameter: give it in buffers, buffer/memory0",
                 "read0 is a buffer with this config", "missing parameter out.b",
                 "unknown parameter ctrl.5.W (ctrl.5.W: the config has 2 controller layer(s)",
                 "parameter read.W: shape (2, 2); the config needs (3, 9)", "parameter write.b: contains NaN"):
        assert part in text, text
    assert "missing buffer" not in text            # memory0 and read0 were given, in the wrong place


@pytest.mark.parametrize("config,name,hint", [
    (NTMConfig(**TINY, learn_initial_reads=False), "read0", "read0 needs learn_initial_reads=True"),
    (NTMConfig(**TINY), "memory0", "memory0 needs memory_init 'learned' or 'learned_constant'"),
    (NTMConfig(**TINY, learn_initial_weights=False), "w0.read", "w0.read needs learn_initial_weights=True"),
    (NTMConfig(**TINY), "ctrl.0.h0", "ctrl.0.h0 needs controller='lstm' and learn_initial_controller_state=True"),
    (NTMConfig(**TINY), "extra", "unknown parameter extra ("),
])
def test_an_unknown_name_says_which_flag_or_field_would_need_it(config, name, hint):
    params = init_params(config)
    params[name] = np.zeros(2)
    text = message(config, params, init_buffers(config))
    if name == "extra":
        assert "unknown parameter extra (docs/" in text      # no made-up reason for a meaningless name
    else:
        assert hint in text, text


def test_a_parameter_given_as_buffer_says_so():
    config = NTMConfig(**TINY, memory_init="learned")
    params = init_params(config)
    text = message(config, params, {"memory0": params.pop("memory0")})
    assert "memory0 is a parameter with this config, not a buffer: give it in params, param/memory0" in text


def test_missing_buffer_is_an_error_never_a_random_default():
    config = NTMConfig(**TINY, memory_init="random")
    assert "missing buffer memory0" in message(config, init_params(config))
    assert "missing buffer memory0" in message(config, init_params(config), {})


def test_non_numeric_and_complex_arrays_are_refused():
    config = NTMConfig(**TINY)
    params = init_params(config)
    params["out.b"] = params["out.b"].astype(complex)
    params["read.b"] = np.array(["a"] * params["read.b"].size)
    text = message(config, params)
    assert "parameter out.b: complex128 values; must be real numbers" in text
    assert "parameter read.b: <U1 values" in text


def test_check_arrays_accepts_what_init_makes():
    for config in CONFIGS:
        check_arrays(config, init_params(config), init_buffers(config))
