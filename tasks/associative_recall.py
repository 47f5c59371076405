"""Associative recall (paper section 4.3).

The paper: "we define an item as a sequence of binary vectors that is bounded on the left and right by
delimiter symbols. After several items have been propagated to the network, we query by showing a random
item, and we ask the network to produce the next item. In our experiments, each item consisted of three
six-bit binary vectors ... we used a minimum of 2 items and a maximum of 6 items in a single episode."
Figure 12: "the input denotes item delimiters as single bits in row 7. After the sequence of items has been
propagated, a delimiter in row 8 prepares the network to receive a query item"; its input picture shows the
row-8 delimiter again after the query. Generalisation (Figure 11): 6, 10, 15 and 20 items; the text adds
"nearly perfect for sequences of up to 12 items".

Dimension legend: B batch, T time steps, W vector width, K vectors per item, n items.

Layout of one episode of n items, each K = 3 vectors of W = 6 bits, query item q, T = (K + 1)(n + 2) steps
(4 n + 8 for K = 3):

    steps                         x[:, 0:W]          x[:, W]   x[:, W+1]   y[:, 0:W]      mask
    (K+1) i, i = 0..n-1           0                  1         0           0              0    item delimiter
    (K+1) i + 1 .. (K+1) i + K    item i             0         0           0              0
    (K+1) n                       0                  0         1           0              0    query delimiter
    (K+1) n + 1 .. (K+1) n + K    item q (the query) 0         0           0              0
    (K+1) n + K + 1               0                  0         1           0              0    query-end delimiter
    the last K steps              0                  0         0           item q + 1     1

Input width W + 2 = 8 (channel index 6 = the paper's row 7, index 7 = row 8), output width W = 6.
Each bit is Bernoulli(0.5), n uniform in min_items..max_items, q uniform in 0..n-2 (any item but the
last, which has no next item).

Choices where the paper is silent:
- Each item is preceded by its delimiter; the last item is closed on the right by the query delimiter,
  and the query by the query-end delimiter (the row-8 flag, as in Figure 12), so every item is "bounded on
  the left and right by delimiter symbols". The answer comes on the K steps after the query-end
  delimiter, with zero input, as in copy.
- The items of one episode are all different: a duplicate (probability about n^2 / 2^19, under 1e-3 for
  20 items) would make "the item that followed it" ambiguous. Duplicates are redrawn.
- Random draws, in order: B item counts; items (B, max n, K, W); for each episode in order, redraws of
  any duplicates; B query positions.
"""
import numpy as np

from tasks.base import Task, check_int, check_range, zeros

WIDTH = 6  # "three six-bit binary vectors"
ITEM_LENGTH = 3
MIN_ITEMS, MAX_ITEMS = 2, 6  # "a minimum of 2 items and a maximum of 6 items"
GENERALISATION_ITEMS = (6, 10, 12, 15, 20)  # Figure 11 (6, 10, 15, 20) and the text's 12


class AssociativeRecall(Task):
    """The associative recall task; the defaults are the paper's training distribution."""

    name = "associative_recall"

    def __init__(self, width=WIDTH, item_length=ITEM_LENGTH, min_items=MIN_ITEMS, max_items=MAX_ITEMS):
        self.width = check_int("width", width, 1)
        self.item_length = check_int("item_length", item_length, 1)
        self.min_items, self.max_items = check_range("min_items", min_items, "max_items", max_items, 2)
        self.input_size = self.width + 2
        self.output_size = self.width
        self.input_labels = tuple(f"bit {i}" for i in range(self.width)) + ("item", "query")
        self.output_labels = tuple(f"bit {i}" for i in range(self.width))

    def _constructor_args(self):
        return dict(width=self.width, item_length=self.item_length, min_items=self.min_items,
                    max_items=self.max_items)

    def training_parameters(self):
        return dict(min_items=self.min_items, max_items=self.max_items)

    def generalisation_sets(self):
        """items_6, items_10, items_12, items_15, items_20: every episode with exactly that many items."""
        return {f"items_{n}": dict(min_items=n, max_items=n) for n in GENERALISATION_ITEMS}

    def steps(self, n_items):
        """Steps of one episode of n items: (K + 1)(n + 2)."""
        return (self.item_length + 1) * (n_items + 2)

    def batch(self, rng, batch_size, min_items=None, max_items=None):
        """x (B, T, W+2), y (B, T, W), mask (B, T), T = (K + 1)(max n + 2)."""
        B = self._check_batch_args(rng, batch_size)
        lo, hi = check_range("min_items", self.min_items if min_items is None else min_items,
                             "max_items", self.max_items if max_items is None else max_items, 2)
        K, W = self.item_length, self.width
        if hi > 2 ** (K * W):
            raise ValueError(f"max_items = {hi}: more than the {2 ** (K * W)} different items of "
                             f"{K} x {W} bits")
        n_items = rng.integers(lo, hi + 1, size=B)
        items = rng.integers(0, 2, size=(B, int(n_items.max()), K, W)).astype(np.float64)
        for b, n in enumerate(n_items):
            _redraw_duplicates(rng, items[b, :n])
        queries = rng.integers(0, n_items - 1)  # 0..n-2 per episode
        T = self.steps(int(n_items.max()))
        x, y, mask = zeros(B, T, self.input_size), zeros(B, T, self.output_size), zeros(B, T, None)
        for b, (n, q) in enumerate(zip(n_items, queries)):
            for i in range(n):
                x[b, (K + 1) * i, W] = 1.0  # item delimiter
                x[b, (K + 1) * i + 1:(K + 1) * (i + 1), :W] = items[b, i]
            start = (K + 1) * n
            x[b, start, W + 1] = 1.0  # query delimiter
            x[b, start + 1:start + 1 + K, :W] = items[b, q]
            x[b, start + K + 1, W + 1] = 1.0  # query-end delimiter
            answer = slice(start + K + 2, start + 2 * K + 2)
            y[b, answer] = items[b, q + 1]
            mask[b, answer] = 1.0
        return x, y, mask


def _redraw_duplicates(rng, items):
    """items (n, K, W) of 0/1, changed in place until no two are equal; redraws the later copy."""
    while True:
        flat = items.reshape(len(items), -1)
        _, first = np.unique(flat, axis=0, return_index=True)
        duplicates = np.setdiff1d(np.arange(len(items)), first)
        if len(duplicates) == 0:
            return
        items[duplicates] = rng.integers(0, 2, size=(len(duplicates),) + items.shape[1:])
