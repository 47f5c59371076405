"""Repeat copy (paper section 4.2).

The paper: "The network receives random-length sequences of random binary vectors, followed by a scalar
value indicating the desired number of copies, which appears on a separate input channel. ... As with the
copy task, no inputs are provided to the network after the initial sequence and repeat number. The networks
were trained to reproduce sequences of size eight random binary vectors, where both the sequence length and
the number of repetitions were chosen randomly from one to ten. The input representing the repeat number was
normalised to have mean zero and variance one." The output is the sequence repeated, "and then emit an
end-of-sequence marker". Generalisation (Figure 8): "doubling first one [the length], then the other [the
number of repeats]"; the NTM emits "the end marker after the end of every repetition beyond the eleventh".

Dimension legend: B batch, T time steps, W vector width, L sequence length, r repeats.

Layout of one sequence of length L with r repeats (W = width = 8), T = L + 1 + r L + 1 steps:

    channel          steps 0..L-1     step L          steps L+1..L+rL          step L+rL+1
    x[:, 0:W]        the L vectors    0               0                        0
    x[:, W]          0                1 (delimiter)   0                        0
    x[:, W+1]        0                count(r)        0                        0
    y[:, 0:W]        0                0               the L vectors, r times   0
    y[:, W]          0                0               0                        1 (end marker)
    mask             0                0               1                        1

Input width W + 2 = 10 (8 data + delimiter + count), output width W + 1 = 9 (8 data + end marker).
count(r) = (r - mean) / std over the training distribution of r, uniform on min_repeats..max_repeats:
mean = (min + max) / 2, var = ((max - min + 1)^2 - 1) / 12; for 1..10, (r - 5.5) / sqrt(99 / 12), as
pytorch-ntm. The normalisation stays that of the training distribution when a generalisation set asks for
more repeats (20 repeats -> count 5.05), which is the paper's point: the count leaves its trained range.

Choices where the paper is silent:
- The count is presented on the delimiter step, on its own channel (the paper: "followed by a scalar
  value ... on a separate input channel"). pytorch-ntm presents it one step later, on a step of its own;
  we keep it on the delimiter step so the input phase is L + 1 steps long, as in copy.
- The end marker is one step after the last repeat, on an extra output channel that is scored (target 0)
  at every output step, so emitting it too early costs too (Figure 8 shows exactly that error).
- Generalisation sets: the paper does not state the test sequences of Figure 8. We give the two single
  doublings ("length_20_repeats_10": length doubled to 20 at 10 repeats; "length_10_repeats_20": repeats
  doubled to 20 at length 10) and both ranges doubled ("doubled": length and repeats uniform in 1..20).
- Random draws, in order: B lengths, B repeat counts, bits (B, max length, W).
"""
import numpy as np

from tasks.base import Task, check_int, check_range, zeros

WIDTH = 8  # "sequences of size eight random binary vectors"
MIN_LENGTH, MAX_LENGTH = 1, 10  # "chosen randomly from one to ten"
MIN_REPEATS, MAX_REPEATS = 1, 10


def uniform_int_mean_std(lo, hi):
    """Mean and standard deviation of the discrete uniform distribution on lo..hi."""
    return (lo + hi) / 2.0, np.sqrt(((hi - lo + 1) ** 2 - 1) / 12.0)


class RepeatCopy(Task):
    """The repeat copy task; the defaults are the paper's training distribution."""

    name = "repeat_copy"

    def __init__(self, width=WIDTH, min_length=MIN_LENGTH, max_length=MAX_LENGTH,
                 min_repeats=MIN_REPEATS, max_repeats=MAX_REPEATS):
        self.width = check_int("width", width, 1)
        self.min_length, self.max_length = check_range("min_length", min_length, "max_length",
                                                       max_length, 1)
        self.min_repeats, self.max_repeats = check_range("min_repeats", min_repeats, "max_repeats",
                                                         max_repeats, 1)
        self.count_mean, self.count_std = uniform_int_mean_std(self.min_repeats, self.max_repeats)
        if self.count_std == 0:  # a single repeat count: nothing to normalise by
            self.count_std = 1.0
        self.input_size = self.width + 2
        self.output_size = self.width + 1
        self.input_labels = tuple(f"bit {i}" for i in range(self.width)) + ("delim", "count")
        self.output_labels = tuple(f"bit {i}" for i in range(self.width)) + ("end",)

    def _constructor_args(self):
        return dict(width=self.width, min_length=self.min_length, max_length=self.max_length,
                    min_repeats=self.min_repeats, max_repeats=self.max_repeats)

    def count_value(self, repeats):
        """The input value for a repeat count r: (r - mean) / std of the training distribution of r."""
        return (np.asarray(repeats, dtype=np.float64) - self.count_mean) / self.count_std

    def training_parameters(self):
        return dict(min_length=self.min_length, max_length=self.max_length,
                    min_repeats=self.min_repeats, max_repeats=self.max_repeats)

    def generalisation_sets(self):
        """length_20_repeats_10, length_10_repeats_20 (fixed) and doubled (both uniform in 1..2 max)."""
        L, R = self.max_length, self.max_repeats
        return {
            f"length_{2 * L}_repeats_{R}": dict(min_length=2 * L, max_length=2 * L,
                                                min_repeats=R, max_repeats=R),
            f"length_{L}_repeats_{2 * R}": dict(min_length=L, max_length=L,
                                                min_repeats=2 * R, max_repeats=2 * R),
            "doubled": dict(min_length=self.min_length, max_length=2 * L,
                            min_repeats=self.min_repeats, max_repeats=2 * R),
        }

    def batch(self, rng, batch_size, min_length=None, max_length=None, min_repeats=None,
              max_repeats=None):
        """x (B, T, W+2), y (B, T, W+1), mask (B, T), T = max over the batch of L (r + 1) + 2."""
        B = self._check_batch_args(rng, batch_size)
        p = self.training_parameters()
        lo, hi = check_range("min_length", p["min_length"] if min_length is None else min_length,
                             "max_length", p["max_length"] if max_length is None else max_length, 1)
        rlo, rhi = check_range("min_repeats", p["min_repeats"] if min_repeats is None else min_repeats,
                               "max_repeats", p["max_repeats"] if max_repeats is None else max_repeats, 1)
        lengths = rng.integers(lo, hi + 1, size=B)
        repeats = rng.integers(rlo, rhi + 1, size=B)
        bits = rng.integers(0, 2, size=(B, int(lengths.max()), self.width)).astype(np.float64)
        T = int((lengths * (repeats + 1)).max()) + 2
        W = self.width
        x, y, mask = zeros(B, T, self.input_size), zeros(B, T, self.output_size), zeros(B, T, None)
        for b, (L, r) in enumerate(zip(lengths, repeats)):
            end = L + 1 + r * L  # the end-marker step
            x[b, :L, :W] = bits[b, :L]
            x[b, L, W] = 1.0  # delimiter
            x[b, L, W + 1] = self.count_value(r)  # repeat count
            y[b, L + 1:end, :W] = np.tile(bits[b, :L], (r, 1))
            y[b, end, W] = 1.0  # end marker
            mask[b, L + 1:end + 1] = 1.0
        return x, y, mask
