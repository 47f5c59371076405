"""Dynamic N-grams (paper section 4.4) and the paper's Bayes-optimal predictor (its equation 10).

The paper: "Each 6-Gram distribution can be expressed as a table of 2^5 = 32 numbers, specifying the
probability that the next bit will be one, given all possible length five binary histories. For each
training example, we first generated random 6-Gram probabilities by independently drawing all 32
probabilities from the Beta(1/2, 1/2) distribution. We then generated a particular training sequence by
drawing 200 successive bits using the current lookup table. [Footnote 4: The first 5 bits, for which
insufficient context exists to sample from the table, are drawn i.i.d. from a Bernoulli distribution with
p = 0.5.] The network observes the sequence one bit at a time and is then asked to predict the next bit."
Equation 10, the optimal estimator: P(B = 1 | N1, N0, c) = (N1 + 1/2) / (N1 + N0 + 1), "where c is the
five bit previous context, B is the value of the next bit and N0 and N1 are respectively the number of
zeros and ones observed after c so far in the sequence." Validation: "1000 length 200 sequences"; Figure
13 puts the optimal estimator at about 133 bits per sequence.

Dimension legend: B batch, T time steps (n - 1), n bits per sequence, C = 32 contexts.

Layout of one sequence of n = length = 200 bits b_0 .. b_{n-1}, T = n - 1 = 199 steps:

    step t = 0 .. n-2:   x[t, 0] = b_t (the bit just observed)   y[t, 0] = b_{t+1}   mask[t] = 1

Input width 1, output width 1. Every prediction is scored, the first four included: b_1 .. b_4 are fair
coins (footnote 4), so no predictor can do better than 1 bit on each, and equation 10 gives exactly 1/2
there (no counts yet). b_0 is never predicted: there is nothing to predict it from.

Context convention: the table index of the context b_{j-5} .. b_{j-1} is sum_k b_{j-5+k} 2^(4-k), oldest
bit most significant ("00010" is index 2). Bit j >= 5 is 1 with probability table[context of j].

Choices where the paper is silent:
- b_0 is input only and not scored (above); the sequence is not padded, all sequences of a batch have the
  same length.
- Validation set: 1000 sequences (the paper's), not 640; `validation_set(n=640)` gives Collier's size.

Check against the paper: on our fixed validation set the optimal estimator costs 132.1 bits per sequence
(131.8 on 4000 other sequences); Figure 13 shows about 133. Scoring b_0 too would add exactly 1 bit; a
curve read off a figure cannot tell the two conventions apart.
- Random draws, in order: tables (B, 32) from Beta(1/2, 1/2); the first five bits (B, 5) as integers 0/1;
  uniforms (B, n - 5), bit j = 1 when its uniform < table[context].
"""
import numpy as np

from tasks.base import Task, check_int, check_rng
from tasks.metrics import cost_bits_by_sequence

CONTEXT = 5  # "given all possible length five binary histories": a 6-gram
TABLE_SIZE = 2 ** CONTEXT  # 32
LENGTH = 200  # "drawing 200 successive bits"
BETA = 0.5  # Beta(1/2, 1/2)
PRIOR = 0.5  # the 1/2 pseudo-count of equation 10 (the same Beta(1/2, 1/2) as the tables)
PLACE_VALUES = 2 ** np.arange(CONTEXT - 1, -1, -1)  # oldest bit most significant: [16, 8, 4, 2, 1]


def draw_tables(rng, batch_size):
    """(B, 32) probabilities P(1 | context), each Beta(1/2, 1/2)."""
    return check_rng(rng).beta(BETA, BETA, size=(batch_size, TABLE_SIZE))


def draw_bits(rng, tables, length=LENGTH):
    """Sample sequences from their tables: tables (B, 32) -> bits (B, length) of 0.0/1.0.

    The first CONTEXT bits are fair coins (footnote 4); bit j >= CONTEXT is 1 with probability
    tables[b, context index of bits j-5 .. j-1].
    """
    check_rng(rng)
    tables = np.asarray(tables, dtype=np.float64)
    B = tables.shape[0]
    length = check_int("length", length, CONTEXT + 1)
    bits = np.zeros((B, length), dtype=np.int64)
    bits[:, :CONTEXT] = rng.integers(0, 2, size=(B, CONTEXT))
    uniforms = rng.random(size=(B, length - CONTEXT))
    rows = np.arange(B)
    for j in range(CONTEXT, length):
        context = bits[:, j - CONTEXT:j] @ PLACE_VALUES
        bits[:, j] = uniforms[:, j - CONTEXT] < tables[rows, context]
    return bits.astype(np.float64)


def bits_to_batch(bits):
    """bits (B, n) -> x (B, n-1, 1) = bits 0..n-2, y (B, n-1, 1) = bits 1..n-1, mask (B, n-1) of ones."""
    bits = np.asarray(bits, dtype=np.float64)
    B, n = bits.shape
    return bits[:, :-1, None].copy(), bits[:, 1:, None].copy(), np.ones((B, n - 1))


def batch_to_bits(x, y):
    """The inverse of bits_to_batch: x (B, T, 1), y (B, T, 1) -> bits (B, T + 1)."""
    return np.concatenate([x[:, :1, 0], y[:, :, 0]], axis=1)


def bayes_optimal_probs(bits):
    """Equation 10 at every step: bits (B, n) -> P(b_{t+1} = 1 | b_0 .. b_t), shape (B, n - 1).

    P = (N1 + 1/2) / (N1 + N0 + 1), N1 and N0 the ones and zeros seen so far after the current five-bit
    context; 1/2 where there is no full context yet (predicting b_1 .. b_4: fair coins).
    """
    bits = np.asarray(bits).astype(np.int64)
    B, n = bits.shape
    counts = np.zeros((B, TABLE_SIZE, 2))  # counts[b, c, v]: times bit v followed context c
    rows = np.arange(B)
    probs = np.full((B, n - 1), 0.5)
    for j in range(CONTEXT, n):  # predict bit j, then count it
        context = bits[:, j - CONTEXT:j] @ PLACE_VALUES
        n0, n1 = counts[rows, context, 0], counts[rows, context, 1]
        probs[:, j - 1] = (n1 + PRIOR) / (n1 + n0 + 2 * PRIOR)
        counts[rows, context, bits[:, j]] += 1
    return probs


def bayes_optimal_cost_bits_by_sequence(x, y, mask):
    """The optimal estimator's cost in bits of each sequence of an N-gram batch -> (B,)."""
    probs = bayes_optimal_probs(batch_to_bits(x, y))
    return cost_bits_by_sequence(probs[:, :, None], y, mask)


def bayes_optimal_cost_bits_per_sequence(x, y, mask):
    """The optimal estimator's cost in bits per sequence, averaged over the batch (paper Figure 13)."""
    return float(bayes_optimal_cost_bits_by_sequence(x, y, mask).mean())


class NGrams(Task):
    """The dynamic N-grams task: NGrams(length=200) is the paper's training distribution."""

    name = "ngrams"
    input_size = 1
    output_size = 1
    input_labels = ("bit",)
    output_labels = ("next",)
    validation_size = 1000  # "a validation set of 1000 length 200 sequences"

    def __init__(self, length=LENGTH):
        self.length = check_int("length", length, CONTEXT + 1)

    def _constructor_args(self):
        return dict(length=self.length)

    def training_parameters(self):
        return dict(length=self.length)

    def generalisation_sets(self):
        """The paper tests N-grams on the training distribution only: {"training": {}}."""
        return {"training": {}}

    def sample(self, rng, batch_size, length=None):
        """-> bits (B, n), tables (B, 32): the sequences of batch(rng, ...) and the tables behind them."""
        B = self._check_batch_args(rng, batch_size)
        tables = draw_tables(rng, B)
        return draw_bits(rng, tables, self.length if length is None else length), tables

    def batch(self, rng, batch_size, length=None):
        """x (B, n-1, 1), y (B, n-1, 1), mask (B, n-1) of ones; n = length (200) bits per sequence."""
        bits, _ = self.sample(rng, batch_size, length)
        return bits_to_batch(bits)

    def bayes_optimal_cost(self, x, y, mask):
        """bayes_optimal_cost_bits_per_sequence: the paper's optimal estimator on these sequences."""
        return bayes_optimal_cost_bits_per_sequence(x, y, mask)


__all__ = ["NGrams", "draw_tables", "draw_bits", "bits_to_batch", "batch_to_bits", "bayes_optimal_probs",
           "bayes_optimal_cost_bits_by_sequence", "bayes_optimal_cost_bits_per_sequence"]
