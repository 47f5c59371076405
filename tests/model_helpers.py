"""Shared by the whole-model tests (test_model, test_fast, test_parallel): a tiny configuration, a batch
with sequences of different lengths, and a model at a generic point."""
import numpy as np

from ntm_ref import trace
from ntm_ref.model import NTM

TINY = dict(input_size=3, output_size=2, memory_slots=6, memory_width=3, controller_size=5)


def make_batch(config, B=2, T=6, seed=1):
    """Inputs, binary targets and a (B, T) mask with a different length per sequence (each keeps >= 1 step)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, config.input_size))
    y = (rng.random((B, T, config.output_size)) > 0.5).astype(np.float64)
    mask = np.ones((B, T))
    for b in range(1, B):
        mask[b, max(1, T - b):] = 0.0          # sequence b is b steps shorter
    return x, y, mask


def randomise_biases(model, seed):
    """Move a model to a generic point (ntm_ref.trace.randomise_biases on its params): biases and initial
    LSTM states drawn at random rather than the zeros they start at, so that no unit sits exactly on a kink
    (relu at 0) and no symmetry hides an error."""
    trace.randomise_biases(model.params, seed)
    return model


def generic_model(config, seed, engine="reference"):
    """An NTM at a generic point (see randomise_biases)."""
    return randomise_biases(NTM(config, seed=seed, engine=engine), seed)
