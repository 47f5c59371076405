"""Copy (paper section 4.1). The module is copy_task, not copy, so it is never mistaken for the standard copy.

The paper: "The network is presented with an input sequence of random binary vectors followed by a
delimiter flag. ... The networks were trained to copy sequences of eight bit random vectors, where the
sequence lengths were randomised between 1 and 20. The target sequence was simply a copy of the input
sequence (without the delimiter flag). Note that no inputs were presented to the network while it receives
the targets". Generalisation (Figure 4): lengths 10, 20, 30, 50 and 120, after training up to 20.

Dimension legend: B batch, T time steps, W vector width, L sequence length.

Layout of one sequence of length L (W = width = 8), T = 2 L + 1 steps:

    channel          steps 0..L-1        step L       steps L+1..2L
    x[:, 0:W]        the L vectors       0            0            (no input while the targets come)
    x[:, W]          0                   1            0            delimiter flag, its own channel
    y[:, 0:W]        0                   0            the L vectors, in the same order
    mask             0                   0            1

Input width W + 1 = 9, output width W = 8. Each bit is Bernoulli(0.5) and L uniform in
min_length..max_length, as the paper says ("random", "randomised between 1 and 20").

Choices where the paper is silent:
- The delimiter has its own input channel and is 0 on every data step (the paper's Figure 6 shows it on
  a separate row; pytorch-ntm and Collier do the same).
- The output phase starts on the step after the delimiter, and nothing is scored on the input or
  delimiter steps (pytorch-ntm and Collier do the same).
- Random draws, in order: the B lengths, then the bits (B, max length, W); bits beyond a sequence's
  length are drawn and discarded, so a batch depends only on (rng state, B, lengths).
"""
import numpy as np

from tasks.base import Task, check_int, check_range, zeros

WIDTH = 8  # "eight bit random vectors"
MIN_LENGTH, MAX_LENGTH = 1, 20  # "randomised between 1 and 20"
GENERALISATION_LENGTHS = (10, 20, 30, 50, 120)  # paper Figure 4


class Copy(Task):
    """The copy task. Copy(width=8, min_length=1, max_length=20) is the paper's training distribution."""

    name = "copy"

    def __init__(self, width=WIDTH, min_length=MIN_LENGTH, max_length=MAX_LENGTH):
        self.width = check_int("width", width, 1)
        self.min_length, self.max_length = check_range("min_length", min_length, "max_length",
                                                       max_length, 1)
        self.input_size = self.width + 1
        self.output_size = self.width
        self.input_labels = tuple(f"bit {i}" for i in range(self.width)) + ("delim",)
        self.output_labels = tuple(f"bit {i}" for i in range(self.width))

    def _constructor_args(self):
        return dict(width=self.width, min_length=self.min_length, max_length=self.max_length)

    def training_parameters(self):
        return dict(min_length=self.min_length, max_length=self.max_length)

    def generalisation_sets(self):
        """length_10, length_20, length_30, length_50, length_120: every sequence of exactly that length."""
        return {f"length_{n}": dict(min_length=n, max_length=n) for n in GENERALISATION_LENGTHS}

    def batch(self, rng, batch_size, min_length=None, max_length=None):
        """x (B, T, W+1), y (B, T, W), mask (B, T) with T = 2 max(L) + 1; L uniform in min..max_length."""
        B = self._check_batch_args(rng, batch_size)
        lo, hi = check_range("min_length", self.min_length if min_length is None else min_length,
                             "max_length", self.max_length if max_length is None else max_length, 1)
        lengths = rng.integers(lo, hi + 1, size=B)
        bits = rng.integers(0, 2, size=(B, int(lengths.max()), self.width)).astype(np.float64)
        T = 2 * int(lengths.max()) + 1
        x, y, mask = zeros(B, T, self.input_size), zeros(B, T, self.output_size), zeros(B, T, None)
        for b, L in enumerate(lengths):
            x[b, :L, :self.width] = bits[b, :L]
            x[b, L, self.width] = 1.0  # the delimiter
            y[b, L + 1:2 * L + 1] = bits[b, :L]
            mask[b, L + 1:2 * L + 1] = 1.0
        return x, y, mask

