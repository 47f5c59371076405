"""Tests of the tasks package: layouts, targets by independent decoding, seeds, held-out sets, metrics,
the Bayes-optimal N-gram predictor and the printer.

Dimension legend: B batch, T time steps, I input width, O output width.

Each task has a checker, `decode_<task>`, that reads one sequence back out of (x, y, mask) step by step,
without the task's code, and asserts the paper's layout (see each module's docstring) and the target it
implies. The same checkers run on the training distribution, on every generalisation set and, through
hypothesis, on arbitrary seeds and batch sizes.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.special import expit

import tasks
from tasks import (TASKS, AssociativeRecall, Copy, NGrams, PrioritySort, RepeatCopy, make_task)
from tasks.base import VALIDATION_SEED
from tasks.metrics import (PROB_EPS, bit_errors_by_sequence, bit_errors_per_sequence, cost_bits_by_sequence,
                           cost_bits_per_sequence)
from tasks.ngrams import (bayes_optimal_cost_bits_by_sequence, bayes_optimal_cost_bits_per_sequence,
                          bayes_optimal_probs, bits_to_batch, draw_bits)
from tasks.printing import format_sequence

NAMES = ("copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort")
WIDTHS = {"copy": (9, 8), "repeat_copy": (10, 9), "associative_recall": (8, 6), "ngrams": (1, 1),
          "priority_sort": (10, 8)}


def rng(seed=0):
    return np.random.default_rng(seed)


def is_binary(a):
    return bool(np.all((a == 0.0) | (a == 1.0)))


def ones_at(values):
    """Indices where a 1-D 0/1 array is 1."""
    return list(np.nonzero(values)[0])


# ---------------------------------------------------------------------------------------------------
# Independent decoders: one sequence -> its parameters; every assertion is the layout of the docstrings
# ---------------------------------------------------------------------------------------------------

def check_common(task, x, y, mask):
    """dtypes, shapes, 0/1 mask, targets only where scored, padding zero after each sequence's end,
    and T exactly the longest sequence. -> per-sequence number of steps (B,)."""
    B, T, I = x.shape
    assert (I, y.shape[2]) == (task.input_size, task.output_size)
    assert y.shape[:2] == mask.shape == (B, T)
    assert x.dtype == y.dtype == mask.dtype == np.float64
    assert is_binary(mask) and is_binary(y)
    assert np.all(y[mask == 0] == 0), "a target outside the output phase"
    ends = np.array([max(ones_at(mask[b])) + 1 for b in range(B)])  # every sequence ends scored
    assert ends.max() == T, "padding beyond the longest sequence"
    for b, end in enumerate(ends):
        assert not x[b, end:].any() and not y[b, end:].any() and not mask[b, end:].any()
    return ends


def decode_copy(x, y, mask, W=8):
    """-> L. Vectors, delimiter at step L on channel W, then the same L vectors as target, no input."""
    delims = ones_at(x[:, W])
    assert len(delims) == 1
    L = delims[0]
    assert L >= 1 and is_binary(x[:L, :W])
    assert not x[L, :W].any() and not x[L + 1:].any(), "input during the output phase"
    assert ones_at(mask) == list(range(L + 1, 2 * L + 1))
    for i in range(L):
        assert np.array_equal(y[L + 1 + i], x[i, :W])
    return L


def decode_repeat_copy(x, y, mask, task):
    """-> (L, r). The count sits on the delimiter step; the target is the input r times, then the end marker."""
    W = task.width
    delims = ones_at(x[:, W])
    assert len(delims) == 1
    L = delims[0]
    assert ones_at(x[:, W + 1] != 0) == [L], "the count is not on the delimiter step only"
    assert is_binary(x[:L, :W]) and not x[L, :W].any() and not x[L + 1:].any()
    scored = ones_at(mask)
    assert scored[0] == L + 1 and scored == list(range(L + 1, scored[-1] + 1))
    r, rest = divmod(len(scored) - 1, L)
    assert rest == 0 and r >= 1
    mean = (task.min_repeats + task.max_repeats) / 2
    std = math.sqrt(((task.max_repeats - task.min_repeats + 1) ** 2 - 1) / 12)
    assert x[L, W + 1] == pytest.approx((r - mean) / std, abs=1e-15)
    for k in range(r * L):
        assert np.array_equal(y[L + 1 + k, :W], x[k % L, :W])
    assert ones_at(y[:, W]) == [L + 1 + r * L], "end marker not right after the last repeat"
    assert not y[L + 1 + r * L, :W].any()
    return L, r


def decode_associative_recall(x, y, mask, K=3, W=6):
    """-> (n, q, items). Item delimiters (channel 6) every K+1 steps, query between two channel-7 flags,
    target the item after the query."""
    item_delims, query_delims = ones_at(x[:, W]), ones_at(x[:, W + 1])
    n = len(item_delims)
    assert n >= 2 and item_delims == [(K + 1) * i for i in range(n)]
    assert query_delims == [(K + 1) * n, (K + 1) * n + K + 1]
    assert not x[item_delims, :W].any() and not x[query_delims, :W].any()
    assert not x[item_delims, W + 1].any() and not x[query_delims, W].any()
    items = [x[(K + 1) * i + 1:(K + 1) * (i + 1), :W] for i in range(n)]
    assert all(is_binary(item) for item in items)
    assert all(not x[(K + 1) * i + 1:(K + 1) * (i + 1), W:].any() for i in range(n))
    query = x[(K + 1) * n + 1:(K + 1) * n + 1 + K]
    assert not query[:, W:].any()
    matches = [i for i, item in enumerate(items) if np.array_equal(item, query[:, :W])]
    assert len(matches) == 1, "the query must match exactly one item (items are distinct)"
    q = matches[0]
    assert q < n - 1, "the last item has no next item"
    answer = list(range((K + 1) * n + K + 2, (K + 1) * n + 2 * K + 2))
    assert ones_at(mask) == answer
    assert not x[answer].any()
    assert np.array_equal(y[answer], items[q + 1])
    assert len({item.tobytes() for item in items}) == n, "duplicate items"
    return n, q, items


def decode_ngrams(x, y, mask):
    """-> bits (n,). Input bit t, target bit t+1, every step scored."""
    assert is_binary(x) and mask.all()
    assert np.array_equal(x[1:, 0], y[:-1, 0]), "the target at t must be the input at t+1"
    return np.concatenate([x[:, 0], y[-1:, 0]])


def decode_priority_sort(x, y, mask, n=20, k=16, W=8):
    """-> priorities (n,). The target is the k highest-priority input vectors, highest first."""
    assert x.shape[0] == y.shape[0] == n + 1 + k
    prio = x[:n, W]
    assert np.all((prio >= -1) & (prio <= 1)) and np.all(prio != 0)
    assert is_binary(x[:n, :W]) and not x[:n, W + 1].any()
    assert ones_at(x[:, W + 1]) == [n] and not x[n, :W + 1].any() and not x[n + 1:].any()
    assert ones_at(mask) == list(range(n + 1, n + 1 + k))
    ranked = sorted(range(n), key=lambda i: prio[i], reverse=True)[:k]
    for j, i in enumerate(ranked):
        assert np.array_equal(y[n + 1 + j], x[i, :W])
    return prio


def check_batch(task, x, y, mask):
    """check_common, then the task's decoder on every sequence. -> the decoded parameters, one per sequence."""
    ends = check_common(task, x, y, mask)
    out = []
    for b, end in enumerate(ends):
        xs, ys, ms = x[b, :end], y[b, :end], mask[b, :end]
        if task.name == "copy":
            out.append(decode_copy(xs, ys, ms, task.width))
        elif task.name == "repeat_copy":
            out.append(decode_repeat_copy(xs, ys, ms, task))
        elif task.name == "associative_recall":
            out.append(decode_associative_recall(xs, ys, ms, task.item_length, task.width))
        elif task.name == "ngrams":
            out.append(decode_ngrams(xs, ys, ms))
        else:
            out.append(decode_priority_sort(xs, ys, ms, task.n_inputs, task.n_outputs, task.width))
    return out


# ---------------------------------------------------------------------------------------------------
# Registry and interface
# ---------------------------------------------------------------------------------------------------

def test_registry_names_and_classes():
    assert tuple(TASKS) == NAMES
    for name, cls in TASKS.items():
        task = make_task(name)
        assert isinstance(task, cls) and isinstance(task, tasks.Task) and task.name == name
        assert (task.input_size, task.output_size) == WIDTHS[name]
        assert len(task.input_labels) == task.input_size and len(task.output_labels) == task.output_size


@pytest.mark.parametrize("bad", ["cpy", "Copy", "", None, 3])
def test_make_task_names_the_bad_value_and_the_allowed_ones(bad):
    with pytest.raises(ValueError) as error:
        make_task(bad)
    message = str(error.value)
    assert repr(bad) in message and all(repr(name) in message for name in NAMES)


def test_make_task_passes_keywords_and_constructors_check_them():
    assert make_task("copy", max_length=5).max_length == 5
    assert make_task("priority_sort", width=4).input_size == 6
    with pytest.raises(ValueError, match="min_length = 5 is larger than max_length = 3"):
        make_task("copy", min_length=5, max_length=3)
    with pytest.raises(ValueError, match="min_items"):
        make_task("associative_recall", min_items=1)
    with pytest.raises(ValueError, match="n_outputs"):
        make_task("priority_sort", n_outputs=21)
    with pytest.raises(TypeError):
        make_task("copy", max_lenght=5)


@pytest.mark.parametrize("name", NAMES)
def test_batch_arguments_are_checked(name):
    task = make_task(name)
    with pytest.raises(ValueError, match="batch_size"):
        task.batch(rng(), 0)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        task.batch(0, 4)
    with pytest.raises(TypeError, match="batch_size"):
        task.batch(rng(), 2.5)


def test_batch_length_arguments_are_checked():
    with pytest.raises(ValueError, match="max_length"):
        Copy().batch(rng(), 2, min_length=3, max_length=2)
    with pytest.raises(ValueError, match="min_repeats"):
        RepeatCopy().batch(rng(), 2, min_repeats=0)
    with pytest.raises(ValueError, match="max_items"):
        AssociativeRecall(width=1, item_length=1).batch(rng(), 2, max_items=3)  # only 2 distinct items
    with pytest.raises(ValueError, match="length"):
        NGrams().batch(rng(), 2, length=5)


# ---------------------------------------------------------------------------------------------------
# Each task on its training distribution
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_training_batch_is_well_formed(name):
    task = make_task(name)
    x, y, mask = task.batch(rng(1), 64)
    assert len(check_batch(task, x, y, mask)) == 64


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_the_training_parameters(name):
    task = make_task(name)
    a = task.batch(rng(3), 8)
    b = task.batch(rng(3), 8, **task.training_parameters())
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_copy_lengths_and_bits_follow_the_training_distribution():
    task = Copy()
    x, y, mask = task.batch(rng(2), 4000)
    lengths = np.array(check_batch(task, x, y, mask))
    assert x.shape[1] == 2 * 20 + 1
    assert set(lengths) == set(range(1, 21))  # uniform on 1..20: every value shows up in 4000
    assert stats.chisquare(np.bincount(lengths)[1:]).pvalue > 1e-4
    bits = np.concatenate([x[b, :L, :8].ravel() for b, L in enumerate(lengths)])
    assert abs(bits.mean() - 0.5) < 0.01  # Bernoulli(0.5); sd of the mean about 0.002


def test_repeat_copy_counts_are_normalised_over_the_training_distribution():
    task = RepeatCopy()
    assert task.count_value(np.arange(1, 11)).mean() == pytest.approx(0.0, abs=1e-15)
    assert task.count_value(np.arange(1, 11)).var() == pytest.approx(1.0, rel=1e-14)
    assert task.count_value(1) == pytest.approx((1 - 5.5) / math.sqrt((10 ** 2 - 1) / 12), rel=1e-15)
    x, y, mask = task.batch(rng(4), 3000)
    decoded = np.array(check_batch(task, x, y, mask))
    assert set(decoded[:, 0]) == set(range(1, 11)) and set(decoded[:, 1]) == set(range(1, 11))
    counts = x[:, :, 9].sum(axis=1)  # one non-zero count per sequence
    assert abs(counts.mean()) < 0.1 and abs(counts.var() - 1) < 0.1
    assert x.shape[1] == int((decoded[:, 0] * (decoded[:, 1] + 1)).max()) + 2


def test_associative_recall_items_and_queries_cover_their_ranges():
    task = AssociativeRecall()
    x, y, mask = task.batch(rng(5), 2000)
    decoded = check_batch(task, x, y, mask)
    n = np.array([d[0] for d in decoded])
    q = np.array([d[1] for d in decoded])
    assert set(n) == set(range(2, 7)) and x.shape[1] == 4 * 6 + 8
    assert set(q[n == 6]) == set(range(5))  # 0..n-2, never the last item
    assert np.all(q <= n - 2)


def test_associative_recall_redraws_duplicate_items():
    # 2 bits per item: only 4 distinct items, so a 4-item episode first draws a duplicate with
    # probability 1 - 4!/4^4 = 0.91; the batch must still come out with all items distinct
    task = AssociativeRecall(width=1, item_length=2, min_items=4, max_items=4)
    x, y, mask = task.batch(rng(6), 50)
    check_batch(task, x, y, mask)


def test_priority_sort_targets_are_the_top_16_in_descending_priority():
    task = PrioritySort()
    x, y, mask = task.batch(rng(7), 500)
    prio = np.array(check_batch(task, x, y, mask))
    assert x.shape[1] == 37
    assert prio.min() < -0.99 and prio.max() > 0.99 and abs(prio.mean()) < 0.02
    assert stats.kstest(prio.ravel(), "uniform", args=(-1, 2)).pvalue > 1e-4


# ---------------------------------------------------------------------------------------------------
# N-grams: the sequences follow their tables; the Bayes-optimal predictor
# ---------------------------------------------------------------------------------------------------

def context_index(bits, j):
    """Table index of the five bits before j, oldest first, by string formatting (independent of the code)."""
    return int("".join(str(int(b)) for b in bits[j - 5:j]), 2)


def test_ngram_sequences_follow_a_deterministic_table_exactly():
    tables = np.array([[c % 3 == 0 for c in range(32)], [bin(c).count("1") % 2 for c in range(32)]], float)
    bits = draw_bits(rng(8), tables, 60)
    for b in range(2):
        for j in range(5, 60):
            assert bits[b, j] == tables[b, context_index(bits[b], j)]


def test_ngram_sequences_follow_a_random_table_in_frequency():
    table = rng(9).beta(0.5, 0.5, size=32)
    bits = draw_bits(rng(10), np.tile(table, (400, 1)), 200)
    ones, seen = np.zeros(32), np.zeros(32)
    for b in range(400):
        for j in range(5, 200):
            c = context_index(bits[b], j)
            seen[c] += 1
            ones[c] += bits[b, j]
    ok = seen > 50
    z = (ones[ok] - seen[ok] * table[ok]) / np.sqrt(seen[ok] * table[ok] * (1 - table[ok]) + 1e-12)
    assert ok.sum() > 10 and np.all(np.abs(z) < 5)
    assert abs(bits[:, :5].mean() - 0.5) < 0.05  # footnote 4: the first five bits are fair coins


def test_ngram_batch_uses_beta_tables_and_matches_sample():
    task = NGrams()
    bits, tables = task.sample(rng(11), 500)
    assert tables.shape == (500, 32) and bits.shape == (500, 200)
    assert stats.kstest(tables.ravel(), "beta", args=(0.5, 0.5)).pvalue > 1e-4
    x, y, mask = task.batch(rng(11), 500)
    assert all(np.array_equal(u, v) for u, v in zip((x, y, mask), bits_to_batch(bits)))
    assert x.shape == (500, 199, 1)
    for b in range(3):
        assert np.array_equal(decode_ngrams(x[b], y[b], mask[b]), bits[b])


def test_bayes_optimal_on_hand_worked_sequences():
    zeros8 = np.zeros((1, 8))
    # bits 1..4 have no context: 1/2; bit 5 (context 00000, unseen): 1/2; bit 6: N0 = 1 -> 0.5 / 2;
    # bit 7: N0 = 2 -> 0.5 / 3
    assert np.allclose(bayes_optimal_probs(zeros8), [[0.5] * 5 + [0.25, 1 / 6]], rtol=0, atol=1e-15)
    x, y, mask = bits_to_batch(zeros8)
    expected = 5 + math.log2(4 / 3) + math.log2(6 / 5)
    assert bayes_optimal_cost_bits_per_sequence(x, y, mask) == pytest.approx(expected, rel=1e-14)

    # 0 0 0 0 0 1 0 0 0 0 0 1 0: contexts 00000 .. 10000 are new (1/2) until bit 11 (context 00000,
    # once followed by 1: 1.5 / 2) and bit 12 (context 00001, once followed by 0: 0.5 / 2)
    seq = np.array([[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]], float)
    assert np.allclose(bayes_optimal_probs(seq), [[0.5] * 10 + [0.75, 0.25]], rtol=0, atol=1e-15)
    x, y, mask = bits_to_batch(seq)
    assert bayes_optimal_cost_bits_by_sequence(x, y, mask) == pytest.approx([10 + 2 * math.log2(4 / 3)])


def naive_bayes_probs(bits):
    """Equation 10 with a dictionary of counts, one bit at a time."""
    counts, probs = {}, []
    for j in range(1, len(bits)):
        if j < 5:
            probs.append(0.5)
            continue
        key = tuple(bits[j - 5:j])
        n0, n1 = counts.get(key, (0, 0))
        probs.append((n1 + 0.5) / (n1 + n0 + 1))
        counts[key] = (n0 + (bits[j] == 0), n1 + (bits[j] == 1))
    return probs


def test_bayes_optimal_matches_a_naive_count():
    bits, _ = NGrams(length=120).sample(rng(12), 4)
    got = bayes_optimal_probs(bits)
    for b in range(4):
        assert np.allclose(got[b], naive_bayes_probs(list(bits[b])), rtol=0, atol=1e-15)


def test_bayes_optimal_cost_is_near_the_papers_figure_13():
    task = NGrams()
    x, y, mask = task.validation_set()
    assert x.shape == (1000, 199, 1)  # "a validation set of 1000 length 200 sequences"
    cost = task.bayes_optimal_cost(x, y, mask)
    assert 130 < cost < 135  # Figure 13: about 133 bits per sequence (132.1 here)
    assert cost < cost_bits_per_sequence(np.full(y.shape, 0.5), y, mask)  # better than coin flips


# ---------------------------------------------------------------------------------------------------
# Seeds, generalisation sets, validation sets
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_batch_different_seed_different_batch(name):
    task = make_task(name)
    a, b, c = task.batch(rng(13), 16), task.batch(rng(13), 16), task.batch(rng(14), 16)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("name", NAMES)
def test_validation_set_is_fixed_and_apart_from_training_streams(name):
    task = make_task(name)
    x, y, mask = task.validation_set()
    assert x.shape[0] == (1000 if name == "ngrams" else 640)
    assert all(np.array_equal(u, v) for u, v in zip((x, y, mask), task.validation_set()))
    for seed in (0, VALIDATION_SEED):  # not the batch a training run seeded with this number would draw
        tx = task.batch(rng(seed), x.shape[0])[0]
        assert tx.shape != x.shape or not np.array_equal(tx, x)
    assert task.validation_set(n=5)[0].shape[0] == 5
    other = task.validation_set(n=5, seed=1)[0]
    assert other.shape != x[:5].shape or not np.array_equal(other, x[:5])  # the seed matters
    check_batch(task, *task.validation_set(n=64))


STATED_SETS = {
    "copy": {f"length_{n}": 2 * n + 1 for n in (10, 20, 30, 50, 120)},  # T for each
    "repeat_copy": {"length_20_repeats_10": 20 * 11 + 2, "length_10_repeats_20": 10 * 21 + 2, "doubled": None},
    "associative_recall": {f"items_{n}": 4 * n + 8 for n in (6, 10, 12, 15, 20)},
    "ngrams": {"training": 199},
    "priority_sort": {"training": 37},
}


@pytest.mark.parametrize("name", NAMES)
def test_generalisation_sets_have_the_stated_lengths(name):
    task = make_task(name)
    assert set(task.generalisation_sets()) == set(STATED_SETS[name])
    for set_name, steps in STATED_SETS[name].items():
        x, y, mask = task.generalisation_set(set_name, n=4)
        decoded = check_batch(task, x, y, mask)
        if steps is not None:
            assert x.shape[1] == steps
        if name == "copy":
            assert set(decoded) == {int(set_name.split("_")[1])}
        elif name == "associative_recall":
            assert {d[0] for d in decoded} == {int(set_name.split("_")[1])}
        a = task.generalisation_set(set_name, n=4)
        assert all(np.array_equal(u, v) for u, v in zip((x, y, mask), a))
    with pytest.raises(ValueError, match="unknown generalisation set 'nope'"):
        task.generalisation_set("nope")


def test_repeat_copy_doubled_set_reaches_beyond_training():
    task = RepeatCopy()
    decoded = np.array(check_batch(task, *task.generalisation_set("doubled", n=300)))
    assert decoded[:, 0].max() == 20 and decoded[:, 1].max() == 20
    assert decoded[:, 0].min() == 1 and decoded[:, 1].min() == 1
    x, _, _ = task.generalisation_set("length_10_repeats_20", n=2)
    assert x[0, 10, 9] == pytest.approx((20 - 5.5) / math.sqrt(99 / 12))  # training normalisation


def test_copy_length_120_has_241_steps():
    x, y, mask = Copy().generalisation_set("length_120", n=2)
    assert x.shape == (2, 241, 9) and mask.sum() == 2 * 120


# ---------------------------------------------------------------------------------------------------
# Property: any seed and batch size gives well-formed batches with correct targets
# ---------------------------------------------------------------------------------------------------

@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2 ** 63), batch_size=st.integers(1, 6))
def test_any_seed_gives_a_well_formed_batch(name, seed, batch_size):
    task = make_task(name) if name != "ngrams" else NGrams(length=40)
    x, y, mask = task.batch(rng(seed), batch_size)
    assert len(check_batch(task, x, y, mask)) == batch_size


# ---------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------

def small_batch():
    """A copy batch with sequences of different lengths (so with padding)."""
    x, y, mask = Copy().batch(rng(15), 6, min_length=2, max_length=9)
    assert len(set(mask.sum(axis=1))) > 1
    return x, y, mask


def test_perfect_outputs_make_no_bit_errors_and_no_cost():
    x, y, mask = small_batch()
    assert bit_errors_per_sequence(y, y, mask) == 0.0
    assert np.all(bit_errors_by_sequence(y, y, mask) == 0)
    assert cost_bits_per_sequence(y, y, mask) < 1e-12  # clipped at 1 - 2^-52: 3e-16 bits an output
    logits = np.where(y == 1, 30.0, -30.0)
    assert bit_errors_per_sequence(logits, y, mask, from_logits=True) == 0.0


def test_half_outputs_cost_one_bit_per_scored_output_bit():
    x, y, mask = small_batch()
    half = np.full(y.shape, 0.5)
    scored_bits = mask.sum(axis=1) * y.shape[2]
    assert np.allclose(cost_bits_by_sequence(half, y, mask), scored_bits, rtol=1e-14, atol=0)
    assert np.allclose(cost_bits_by_sequence(np.zeros(y.shape), y, mask, from_logits=True), scored_bits,
                       rtol=1e-14, atol=0)
    # 1/2 counts as predicting 0: the errors are the scored ones in the target
    assert np.array_equal(bit_errors_by_sequence(half, y, mask), (y * mask[:, :, None]).sum(axis=(1, 2)))


def test_hand_computed_costs_and_errors():
    y = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # B=1, T=2, O=2
    p = np.array([[[0.25, 0.25], [0.9, 0.5]]])
    mask = np.array([[1.0, 0.0]])  # only the first step is scored
    assert cost_bits_per_sequence(p, y, mask) == pytest.approx(2 + math.log2(4 / 3), rel=1e-14)
    assert bit_errors_per_sequence(p, y, mask) == 1.0  # 0.25 for a 1 is wrong, 0.25 for a 0 right
    assert bit_errors_per_sequence(p, y, np.ones((1, 2))) == 3.0  # then 0.9 for a 0 and 0.5 for a 1
    per_output = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    assert cost_bits_per_sequence(p, y, per_output) == pytest.approx(2.0, rel=1e-14)  # (B, T, O) mask


def test_logits_and_probabilities_agree():
    x, y, mask = small_batch()
    logits = rng(16).normal(scale=6.0, size=y.shape)
    by_logits = cost_bits_by_sequence(logits, y, mask, from_logits=True)
    assert np.allclose(by_logits, cost_bits_by_sequence(expit(logits), y, mask), rtol=1e-9, atol=0)
    assert np.array_equal(bit_errors_by_sequence(logits, y, mask, from_logits=True),
                          bit_errors_by_sequence(expit(logits), y, mask))


def test_saturated_logits_give_exact_finite_costs():
    y = np.array([[[0.0, 1.0]]])
    z = np.array([[[1000.0, -1000.0]]])  # both confidently wrong
    assert cost_bits_per_sequence(z, y, np.ones((1, 1)), from_logits=True) == pytest.approx(2000 / math.log(2))
    z = np.array([[[-1000.0, 1000.0]]])  # both confidently right
    assert cost_bits_per_sequence(z, y, np.ones((1, 1)), from_logits=True) == 0.0
    # from probabilities the wrong certainty is capped at log2(1 / PROB_EPS) = 52 bits an output
    assert cost_bits_per_sequence(np.array([[[1.0, 0.0]]]), y, np.ones((1, 1))) == pytest.approx(104.0)
    assert -math.log2(PROB_EPS) == 52


def test_masked_positions_do_not_count():
    x, y, mask = small_batch()
    p = np.clip(y * 0.8 + 0.1, 0, 1)
    garbage = np.where(mask[:, :, None] > 0, p, 1 - y)  # certainly wrong wherever not scored
    assert np.allclose(cost_bits_by_sequence(garbage, y, mask), cost_bits_by_sequence(p, y, mask), rtol=1e-14)
    assert np.array_equal(bit_errors_by_sequence(garbage, y, mask), bit_errors_by_sequence(p, y, mask))


def test_metrics_reject_bad_inputs():
    x, y, mask = small_batch()
    logits = rng(17).normal(scale=3.0, size=y.shape)
    with pytest.raises(ValueError, match="from_logits=True"):
        cost_bits_per_sequence(logits, y, mask)
    with pytest.raises(ValueError, match="NaN"):
        cost_bits_per_sequence(np.full(y.shape, np.nan), y, mask)
    with pytest.raises(ValueError, match="finite"):
        cost_bits_per_sequence(np.full(y.shape, np.inf), y, mask, from_logits=True)
    with pytest.raises(ValueError, match="mask"):
        cost_bits_per_sequence(expit(logits), y, mask[:, :-1])
    with pytest.raises(ValueError, match="0 and 1"):
        bit_errors_per_sequence(expit(logits), y, mask * 0.5)
    with pytest.raises(ValueError, match=r"\(B, T, O\)"):
        cost_bits_per_sequence(expit(logits)[0], y[0], mask[0])


@given(seed=st.integers(0, 2 ** 63), scale=st.floats(0.01, 50.0))
def test_metric_properties(seed, scale):
    g = rng(seed)
    B, T, O = g.integers(1, 5), g.integers(1, 12), g.integers(1, 9)
    y = g.integers(0, 2, size=(B, T, O)).astype(float)
    mask = g.integers(0, 2, size=(B, T)).astype(float)
    logits = g.normal(scale=scale, size=(B, T, O))
    cost = cost_bits_by_sequence(logits, y, mask, from_logits=True)
    errors = bit_errors_by_sequence(logits, y, mask, from_logits=True)
    assert cost.shape == errors.shape == (B,)
    assert np.all(cost >= 0) and np.all(errors >= 0) and np.all(errors <= mask.sum(axis=1) * O)
    assert cost_bits_per_sequence(logits, y, mask, from_logits=True) == pytest.approx(cost.mean(), rel=1e-12)
    # a wrong bit costs at least one bit (p on the wrong side of 1/2)
    assert np.all(cost >= errors - 1e-9)
    # From probabilities, 1 - p keeps only about 2^-53 / (1 - p) of relative precision (e^|z| 1e-16 nats
    # an output), so the routes agree closely only away from saturation.
    if np.abs(logits).max() < 15:
        assert np.allclose(cost_bits_by_sequence(expit(logits), y, mask), cost, rtol=1e-9, atol=1e-7)


# ---------------------------------------------------------------------------------------------------
# Printer
# ---------------------------------------------------------------------------------------------------

def test_printer_copy_length_20_fits_in_120_columns():
    task = Copy()
    x, y, mask = task.generalisation_set("length_20", n=2)
    probs = y * 0.92 + 0.04  # 0.04 -> '.', 0.96 -> '#'
    probs[1, 25, 3] = 0.34
    text = task.format_sequence(x, y, mask, probs, index=1)
    lines = text.split("\n")
    assert len(lines) == 1 + 1 + 9 + 8 + 8 + 1  # header, ruler, inputs, targets, outputs, key
    assert max(map(len, lines)) <= 120
    label_width = len("in  delim") + 2
    rows = lines[2:-1]
    assert all(len(row) == label_width + 41 for row in rows)
    assert lines[1][label_width:] == "0         10        20        30"  # 40 would run past step 40
    delim = rows[8]
    assert delim.startswith("in  delim") and delim[label_width:] == "." * 20 + "#" + "." * 20
    for o in range(8):
        inp, tgt, out = rows[o][label_width:], rows[9 + o][label_width:], rows[17 + o][label_width:]
        assert tgt[:21] == " " * 21 and out[:21] == " " * 21  # nothing scored before the output phase
        assert tgt[21:] == inp[:20]  # the target picture is the input picture, 21 steps later
        assert set(out[21:]) <= {".", "#", "3"}
    assert rows[17 + 3][label_width + 25] == "3"  # 0.34 -> '3'
    assert len(task.format_sequence(x, y, mask).split("\n")) == 1 + 1 + 9 + 8 + 1  # without outputs


def test_printer_wraps_long_sequences_and_drops_padding():
    x, y, mask = Copy().generalisation_set("length_120", n=1)
    width = 80
    text = format_sequence(x, y, mask, probs=np.full(y.shape, 0.5), width=width)
    lines = text.split("\n")
    label_width = len("out 7") + 2
    blocks = math.ceil(241 / (width - label_width))
    assert len(lines) == 1 + blocks * (1 + 9 + 8 + 8) + (blocks - 1) + 1
    assert max(map(len, lines)) <= width
    # a short sequence padded in a batch with a long one stops at its own last step
    x, y, mask = Copy().batch(rng(18), 8, min_length=1, max_length=20)
    b = int(np.argmin(mask.sum(axis=1)))
    L = int(mask[b].sum())
    rows = format_sequence(x, y, mask, index=b).split("\n")[2:-1]
    assert all(len(row) == len("in  0") + 2 + 2 * L + 1 for row in rows)


def test_printer_shows_continuous_inputs_and_checks_arguments():
    task = PrioritySort()
    x, y, mask = task.batch(rng(19), 1)
    text = task.format_sequence(x, y, mask)
    prio_row = [line for line in text.split("\n") if line.startswith("in  prio")][0]
    chars = prio_row[len("in  delim") + 2:]
    assert set(chars[:20]) <= set("0123456789") and chars[20:] == "." * 17
    assert chars[int(np.argmax(x[0, :20, 8]))] == "9" and chars[int(np.argmin(x[0, :20, 8]))] == "0"
    assert "prio 0-9 = " in text.split("\n")[-1]
    with pytest.raises(IndexError):
        format_sequence(x, y, mask, index=1)
    with pytest.raises(ValueError, match="probs"):
        format_sequence(x, y, mask, probs=y[:, :-1])
