"""A text picture of one sequence of a batch: inputs, targets and outputs over time, one character a step.

    copy: sequence 0 of 2, 9 steps (T = 9), 4 scored
                0
    in  bit 0   ##.......
    ...
    in  delim   ....#....
    tgt bit 0        ##..
    ...
    out bit 0        #8..
    ...
    key: '#' 1  '.' 0  1-9 tenths  ' ' not scored

Dimension legend: B batch, T time steps, I input width, O output width.

Characters: a value v in [0, 1] is drawn as ".123456789#"[round(10 v)], so binary values read as '.' and '#'
and a probability as its nearest tenth ('#' means >= 0.95, '.' below 0.05). Targets and outputs are drawn
only where the mask is 1, ' ' elsewhere. An input channel with values outside {0, 1} (the repeat count, a
priority) is drawn '.' where it is 0 and a digit 0-9 elsewhere, linear from the smallest to the largest
non-zero value of that channel in this sequence ('*' when they are all equal); the key line gives the range.
The picture stops at the last scored step, which leaves out the padding of shorter sequences. Rows longer
than `width` are cut into blocks of columns, one after the other, each with its own time ruler.
"""
import numpy as np

SHADES = ".123456789#"


def _value_chars(values):
    """values (T,) in [0, 1] -> list of characters from SHADES."""
    return [SHADES[int(k)] for k in np.clip(np.rint(np.asarray(values) * 10), 0, 10)]


def _input_row(values):
    """(characters, key text or None) for one input channel over time."""
    values = np.asarray(values, dtype=np.float64)
    if np.all((values == 0.0) | (values == 1.0)):
        return _value_chars(values), None
    nonzero = values[values != 0.0]
    lo, hi = nonzero.min(), nonzero.max()
    if hi == lo:
        chars = ["." if v == 0.0 else "*" for v in values]
        return chars, f"* = {lo:+.3f}"
    digits = np.rint((values - lo) / (hi - lo) * 9).astype(int)
    chars = ["." if v == 0.0 else str(d) for v, d in zip(values, digits)]
    return chars, f"0-9 = {lo:+.3f}..{hi:+.3f}"


def _ruler(start, stop):
    """A line with the step number written at every multiple of 10 in [start, stop) where it fits."""
    line = [" "] * (stop - start)
    for t in range(start + (-start) % 10, stop, 10):
        text = str(t)
        if t + len(text) <= stop:
            line[t - start:t - start + len(text)] = text
    return "".join(line).rstrip()


def format_sequence(x, y, mask, probs=None, index=0, *, input_labels=None, output_labels=None,
                    width=120, title=None):
    """A text picture of sequence `index` of a batch.

    x (B, T, I), y (B, T, O), mask (B, T), probs None or (B, T, O) in [0, 1] -> str.
    input_labels / output_labels: names of the channels (default their numbers); width: the longest line
    before the columns are cut into blocks; title: printed first (e.g. the task name).

    Lines (one block): a header, a time ruler, I input rows, O target rows, O output rows if probs is
    given, a key line. With k blocks, each block after the first adds a blank line, a ruler and the rows.
    """
    x, y, mask = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(mask)
    B, T, I = x.shape
    O = y.shape[2]
    if y.shape[:2] != (B, T) or mask.shape != (B, T):
        raise ValueError(f"x {x.shape}, y {y.shape}, mask {mask.shape}: must be (B, T, I), (B, T, O), (B, T)")
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != y.shape:
            raise ValueError(f"probs {probs.shape} must have the shape of y {y.shape}")
    if not -B <= index < B:
        raise IndexError(f"index {index} out of range for a batch of {B}")
    index %= B
    input_labels = tuple(str(i) for i in range(I)) if input_labels is None else tuple(input_labels)
    output_labels = tuple(str(o) for o in range(O)) if output_labels is None else tuple(output_labels)
    if len(input_labels) != I or len(output_labels) != O:
        raise ValueError(f"{len(input_labels)} input labels for {I} channels or "
                         f"{len(output_labels)} output labels for {O} channels")

    scored = mask[index] > 0
    steps = int(np.nonzero(scored)[0].max()) + 1 if scored.any() else T  # drop the padding
    rows, keys = [], []
    for i, label in enumerate(input_labels):
        chars, key = _input_row(x[index, :steps, i])
        rows.append((f"in  {label}", chars))
        if key is not None:
            keys.append(f"{label} {key}")
    blank = [" "] * steps
    for name, values in [("tgt", y)] + ([("out", probs)] if probs is not None else []):
        for o, label in enumerate(output_labels):
            chars = _value_chars(values[index, :steps, o])
            rows.append((f"{name} {label}", [c if s else b for c, s, b in zip(chars, scored, blank)]))

    label_width = max(len(label) for label, _ in rows) + 2
    columns = max(10, width - label_width)
    header = (f"{title + ': ' if title else ''}sequence {index} of {B}, {steps} steps (T = {T}), "
              f"{int(scored.sum())} scored")
    lines = [header]
    for start in range(0, steps, columns):
        stop = min(steps, start + columns)
        if start > 0:
            lines.append("")
        lines.append(" " * label_width + _ruler(start, stop))
        lines.extend(f"{label:<{label_width}}{''.join(chars[start:stop])}" for label, chars in rows)
    lines.append("key: '#' 1  '.' 0  1-9 tenths  ' ' not scored" + "".join(f";  {k}" for k in keys))
    return "\n".join(lines)
