"""Priority sort (paper section 4.5).

The paper: "A sequence of random binary vectors is input to the network along with a scalar priority
rating for each vector. The priority is drawn uniformly from the range [-1, 1]. The target sequence
contains the binary vectors sorted according to their priorities ... Each input sequence contained 20
binary vectors with corresponding priorities, and each target sequence was the 16 highest-priority vectors
in the input." The paper tests on the training distribution only (Figure 18).

Dimension legend: B batch, T time steps, W vector width, n input vectors, k output vectors.

Layout of one sequence (W = width = 8, n = 20 inputs, k = 16 outputs), T = n + 1 + k = 37 steps:

    channel        steps 0..n-1         step n         steps n+1..n+k
    x[:, 0:W]      the n vectors        0              0
    x[:, W]        their priorities     0              0
    x[:, W+1]      0                    1 (delimiter)  0
    y[:, 0:W]      0                    0              the k highest-priority vectors, highest first
    mask           0                    0              1

Input width W + 2 = 10, output width W = 8. Bits Bernoulli(0.5); priorities uniform on [-1, 1) (numpy's
uniform excludes the upper end, a set of probability zero).

Choices where the paper is silent:
- The vector width: 8, as the copy tasks. The paper's LSTM baseline row (3 x 128, 384,424 parameters)
  fits input 10 / output 8 up to an apparent digit swap (348,424; docs/param-counts.md), i.e. 8 bits +
  priority + a delimiter channel.
- The delimiter between input and output phases, on its own channel, as in copy.
- Order: descending priority (highest first). "Sorted according to their priorities" fixes no direction
  in the text (the direction of Figure 16's picture is not stated). Highest first makes the 16 targets
  the first 16 of the full sort, so the task with n_outputs = n_inputs is a plain descending sort.
- Ties have probability zero; argsort is stable, so they would keep input order.
- Random draws, in order: bits (B, n, W), then priorities (B, n).
"""
import numpy as np

from tasks.base import Task, check_int, zeros

WIDTH = 8
N_INPUTS = 20  # "Each input sequence contained 20 binary vectors"
N_OUTPUTS = 16  # "the 16 highest-priority vectors"


class PrioritySort(Task):
    """The priority sort task; the defaults are the paper's training distribution."""

    name = "priority_sort"

    def __init__(self, width=WIDTH, n_inputs=N_INPUTS, n_outputs=N_OUTPUTS):
        self.width = check_int("width", width, 1)
        self.n_inputs = check_int("n_inputs", n_inputs, 1)
        self.n_outputs = check_int("n_outputs", n_outputs, 1, self.n_inputs)
        self.input_size = self.width + 2
        self.output_size = self.width
        self.input_labels = tuple(f"bit {i}" for i in range(self.width)) + ("prio", "delim")
        self.output_labels = tuple(f"bit {i}" for i in range(self.width))

    def _constructor_args(self):
        return dict(width=self.width, n_inputs=self.n_inputs, n_outputs=self.n_outputs)

    def training_parameters(self):
        return dict(n_inputs=self.n_inputs, n_outputs=self.n_outputs)

    def generalisation_sets(self):
        """The paper tests priority sort on the training distribution only: {"training": {}}."""
        return {"training": {}}

    def batch(self, rng, batch_size, n_inputs=None, n_outputs=None):
        """x (B, T, W+2), y (B, T, W), mask (B, T), T = n_inputs + 1 + n_outputs; no padding."""
        B = self._check_batch_args(rng, batch_size)
        n = check_int("n_inputs", self.n_inputs if n_inputs is None else n_inputs, 1)
        k = check_int("n_outputs", self.n_outputs if n_outputs is None else n_outputs, 1, n)
        W = self.width
        bits = rng.integers(0, 2, size=(B, n, W)).astype(np.float64)
        priorities = rng.uniform(-1.0, 1.0, size=(B, n))
        order = np.argsort(-priorities, axis=1, kind="stable")[:, :k]  # highest priority first
        T = n + 1 + k
        x, y, mask = zeros(B, T, self.input_size), zeros(B, T, self.output_size), zeros(B, T, None)
        x[:, :n, :W] = bits
        x[:, :n, W] = priorities
        x[:, n, W + 1] = 1.0  # delimiter
        y[:, n + 1:] = np.take_along_axis(bits, order[:, :, None], axis=1)
        mask[:, n + 1:] = 1.0
        return x, y, mask
