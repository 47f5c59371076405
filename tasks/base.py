"""The interface every task shares, and the argument checks they use.

Dimension legend: B batch (sequences), T time steps, I input width, O output width.

A task is an object with

    name, input_size (I), output_size (O), input_labels, output_labels
    batch(rng, batch_size, **lengths) -> (x (B, T, I), y (B, T, O), mask (B, T))
    training_parameters()               -> dict: the keyword arguments of batch that give the training
                                           distribution (what batch uses when they are left out)
    generalisation_sets()               -> dict name -> dict of keyword arguments of batch
    generalisation_set(name, n, seed)   -> (x, y, mask) drawn from one of those
    validation_set(n, seed)             -> (x, y, mask), fixed: the same arrays on every call

All three arrays are float64. mask is 1 exactly where a target is scored (the output phase) and 0
elsewhere, including the input phase and the padding. Sequences of different lengths in one batch are
padded at the end to the longest; padding is 0 in x, y and mask. T is the longest sequence in the batch,
so T varies from batch to batch. The same generator state gives the same batch, bit for bit: every random
number comes from `rng`, in a fixed order.

Held-out data and training data never share a random stream. validation_set and generalisation_set draw
from np.random.default_rng(SeedSequence(seed, spawn_key=(purpose,))), with purpose 1 (validation) or 2
(generalisation). A training run that uses np.random.default_rng(s) for any integer s has the empty spawn
key, so its stream is a different one from these for every s, including s == seed.
"""
import numbers

import numpy as np

from tasks.printing import format_sequence

VALIDATION_SEED = 14105401  # arXiv:1410.5401, the paper; any fixed number would do
GENERALISATION_SEED = 14105401
VALIDATION_SIZE = 640  # Collier & Beel validate on 640 sequences
GENERALISATION_SIZE = 640
_VALIDATION_KEY, _GENERALISATION_KEY = 1, 2


def held_out_rng(seed, purpose_key):
    """A generator for held-out data, distinct from default_rng(s) for every integer s (see module doc)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose_key,)))


def check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: got {type(rng).__name__}; must be a numpy.random.Generator, "
                        "e.g. np.random.default_rng(seed)")
    return rng


def check_int(name, value, minimum, maximum=None):
    """value as an int in [minimum, maximum]; ValueError (TypeError for a non-integer) naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: got {value!r}; must be an integer")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name}: got {value}; must be {bound}")
    return value


def check_range(lo_name, lo, hi_name, hi, minimum, maximum=None):
    """(lo, hi) as ints with minimum <= lo <= hi (<= maximum)."""
    lo = check_int(lo_name, lo, minimum, maximum)
    hi = check_int(hi_name, hi, minimum, maximum)
    if lo > hi:
        raise ValueError(f"{lo_name} = {lo} is larger than {hi_name} = {hi}")
    return lo, hi


def zeros(batch_size, steps, width):
    """A float64 array (B, T, width) of zeros, or (B, T) when width is None."""
    return np.zeros((batch_size, steps) if width is None else (batch_size, steps, width))


class Task:
    """The shared part of the five tasks. Subclasses set name, input_size, output_size, input_labels,
    output_labels, validation_size, and define batch, training_parameters and generalisation_sets."""

    name = None
    input_size = None
    output_size = None
    input_labels = ()
    output_labels = ()
    validation_size = VALIDATION_SIZE

    def batch(self, rng, batch_size, **lengths):
        """-> x (B, T, I), y (B, T, O), mask (B, T); see the module docstring."""
        raise NotImplementedError

    def training_parameters(self):
        """The keyword arguments of batch that give the training distribution."""
        raise NotImplementedError

    def generalisation_sets(self):
        """name -> keyword arguments of batch, for the paper's generalisation tests."""
        raise NotImplementedError

    def generalisation_set(self, name, n=GENERALISATION_SIZE, seed=GENERALISATION_SEED):
        """Draw n sequences of the generalisation set `name`; the same (name, n, seed), the same arrays."""
        sets = self.generalisation_sets()
        if name not in sets:
            raise ValueError(f"{self.name}: unknown generalisation set {name!r}; allowed: "
                             + ", ".join(repr(k) for k in sets))
        n = check_int("n", n, 1)
        return self.batch(held_out_rng(seed, _GENERALISATION_KEY), n, **sets[name])

    def validation_set(self, n=None, seed=VALIDATION_SEED):
        """A fixed validation set from the training distribution: n sequences (default
        self.validation_size), the same arrays on every call with the same (n, seed)."""
        n = self.validation_size if n is None else check_int("n", n, 1)
        return self.batch(held_out_rng(seed, _VALIDATION_KEY), n)

    def format_sequence(self, x, y, mask, probs=None, index=0, width=120):
        """tasks.printing.format_sequence with this task's channel labels."""
        return format_sequence(x, y, mask, probs, index, input_labels=self.input_labels,
                               output_labels=self.output_labels, width=width, title=self.name)

    def _check_batch_args(self, rng, batch_size):
        check_rng(rng)
        return check_int("batch_size", batch_size, 1)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._constructor_args().items())
        return f"{type(self).__name__}({args})"

    def _constructor_args(self):
        return {}
