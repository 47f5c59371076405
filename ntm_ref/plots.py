"""PNG figures of a training run (matplotlib is an optional extra: pip install ".[plot]").

    learning_curve.png      cost and bit errors per sequence against sequences seen (metrics.csv)
    sequence.png            input, target and output of one sequence of the training distribution
    memory.png              the paper's Figure 6 kind: inputs, outputs, write and read weightings over time
                            (one block per head, separated and labelled), and the memory after the last step
                            (NTM runs only)
    copy_generalisation.png targets and outputs at copy lengths 10, 20, 30, 50, 120 (Figure 4; copy only)

make_plots checks the whole run (the folder, metrics.csv, the checkpoint, the output folder) and draws
every figure before it writes anything. Each PNG is written under a temporary name in its own folder and
then renamed into place, so an error or an interruption (Ctrl-C included) leaves no partial PNG and no
temporary file. The *_figure functions return matplotlib Figures drawn without pyplot (no global state,
nothing to close); save_figures writes them.

Dimension legend: T time steps, I input channels, O output channels, N memory slots, M memory width,
H heads.
"""
import csv
import os
import secrets

import numpy as np

DPI = 100
MAX_WIDTH = 16.0      # inches: no figure is wider than 1600 pixels, however long the sequence
MIN_WIDTH = 6.0       # inches: short sequences still get readable panels
STEP_WIDTH = 0.12     # inches per time step, until MAX_WIDTH
MAX_LABELLED_CHANNELS = 12   # up to this many image rows are each named (the task's channel labels)
METRIC_KEYS = ("sequences", "cost_bits", "bit_errors", "val_cost_bits", "val_bit_errors")
COPY_LENGTHS = (10, 20, 30, 50, 120)


class PlotError(ValueError):
    """A run folder, metrics file or output folder that cannot be plotted (one line naming the path)."""


# ----------------------------------------------------------------------------------------------- reading

def check_run_dir(run_dir):
    """PlotError unless run_dir is an existing folder (it is never created)."""
    if not os.path.exists(run_dir):
        raise PlotError(f"{run_dir}: no such run folder")
    if not os.path.isdir(run_dir):
        raise PlotError(f"{run_dir}: not a run folder (a file; give the folder of ntm-ref train that holds "
                        f"metrics.csv and checkpoint.npz)")


def read_metrics(path):
    """The learning-curve columns of metrics.csv.  -> dict key -> float array (rows,) for METRIC_KEYS.
    PlotError naming the file when it is missing, unreadable, lacks a column, has no rows or a non-number."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file (not a run folder of ntm-ref train?)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PlotError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
    if not rows:
        raise PlotError(f"{path}: no rows yet (the run has not been evaluated once)")
    missing = [k for k in METRIC_KEYS if k not in rows[0]]
    if missing:
        raise PlotError(f"{path}: not a metrics file of ntm-ref train (no column {', '.join(missing)})")
    columns = {k: np.empty(len(rows)) for k in METRIC_KEYS}
    for i, row in enumerate(rows):
        for k in METRIC_KEYS:
            try:
                columns[k][i] = float(row[k])
            except (TypeError, ValueError):
                raise PlotError(f"{path}: row {i + 1}: {k} is {row[k]!r}, not a number") from None
    return columns


def load_run_model(ckpt_path):
    """The model of a checkpoint and the task it was trained on.  -> (model, settings dict, meta, task).
    CheckpointError naming the file when either cannot be rebuilt."""
    from ntm_ref.checkpoint import CheckpointError
    from ntm_ref.train import load_model
    from tasks import make_task
    model, settings, meta = load_model(ckpt_path)
    try:
        task = make_task(settings["task"], **settings.get("task_options", {}))
        step = int(meta["step"])
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt_path}: its saved task settings are not usable: {err}") from None
    if (model.config.input_size, model.config.output_size) != (task.input_size, task.output_size):
        raise CheckpointError(f"{ckpt_path}: the model has {model.config.input_size} inputs and "
                              f"{model.config.output_size} outputs; {task.name} needs {task.input_size} and "
                              f"{task.output_size}")
    meta = {**meta, "step": step}
    return model, settings, meta, task


# ----------------------------------------------------------------------------------------------- writing

def save_figures(figures):
    """Write every (path, Figure) as PNG: all to temporary files in the target folders first, then each
    renamed into place (os.replace). On any exception, KeyboardInterrupt included, every temporary file is
    removed and the exception re-raised.  -> list of the written paths."""
    temps = []
    try:
        for path, fig in figures:
            folder, name = os.path.split(os.path.abspath(path))
            temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
            temps.append(temp)
            with open(temp, "xb") as f:
                fig.savefig(f, format="png", dpi=DPI)
        for (path, _), temp in zip(figures, temps):
            os.replace(temp, path)
    except BaseException:
        for temp in temps:
            try:
                os.remove(temp)
            except FileNotFoundError:
                pass
        raise
    return [path for path, _ in figures]


def _missing_folders(folder):
    """The folders os.makedirs(folder) would create, deepest last.  -> list of paths."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        missing.insert(0, folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _check_targets(out_dir, paths):
    """PlotError when out_dir or a parent is a file, or a figure's path is taken by a folder."""
    missing = _missing_folders(out_dir)
    existing = os.path.dirname(missing[0]) if missing else os.path.abspath(out_dir)
    if not os.path.isdir(existing):
        raise PlotError(f"{existing}: a file, not a folder; cannot write the figures in {out_dir}")
    for path in paths:
        if os.path.isdir(path):
            raise PlotError(f"{path}: a folder is in the way of the figure")


# ----------------------------------------------------------------------------------------------- drawing

def _new_figure(width, height):
    """A Figure of width x height inches (constrained layout, so titles and colour bars never overlap)."""
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def time_width(T, extra=2.0):
    """Figure width in inches for T time steps: STEP_WIDTH per step plus extra, within MIN_WIDTH..MAX_WIDTH."""
    return float(min(MAX_WIDTH, max(MIN_WIDTH, extra + STEP_WIDTH * T)))


def _panel_height(rows):
    """Height in inches of an image panel of ``rows`` channels (bounded: 1 row to thousands)."""
    return float(min(3.0, 1.3 + 0.15 * rows))


def _used_steps(x, mask):
    """x (T, I), mask (T,): 1 + the last step with an input or a scored target (padding cut off)."""
    used = np.nonzero(np.abs(x).sum(-1) + mask)[0]
    return int(used.max()) + 1 if used.size else x.shape[0]


def _integer_axis(axis):
    """Ticks on whole numbers only (time steps, slots, bits), at 1, 2, 5 or 10 times a power of ten."""
    from matplotlib.ticker import MaxNLocator
    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))


def _channel_axis(ax, labels, rows):
    """The y axis of an image whose rows are channels: each row named by ``labels`` when there are few,
    otherwise integer ticks."""
    if labels and len(labels) == rows and rows <= MAX_LABELLED_CHANNELS:
        ax.set_yticks(range(rows), labels)
    else:
        _integer_axis(ax.yaxis)


def _image(ax, data, title, ylabel, xlabel="time step", cmap="gray_r", vmin=0.0, vmax=1.0, colorbar=None,
           interpolation="nearest", colorbar_aspect=20):
    """data (rows, columns) as an image with its title, axis labels, integer ticks and (when colorbar
    names its meaning) a colour bar, colorbar_aspect times as long as it is wide.  -> the AxesImage."""
    im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation=interpolation)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _integer_axis(ax.xaxis)
    _integer_axis(ax.yaxis)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=colorbar, pad=0.01, aspect=colorbar_aspect)
    return im


def _input_scale(x):
    """(cmap, vmin, vmax) for inputs x: white is 0; a diverging map when some input is negative
    (priorities, normalised repeat counts)."""
    top = max(1.0, float(np.abs(x).max()))
    return ("RdBu_r", -top, top) if x.min() < 0 else ("gray_r", 0.0, top)


def learning_curve_figure(metrics, title=""):
    """Training and validation cost and bit errors against sequences seen (metrics: read_metrics)."""
    fig = _new_figure(11, 4.2)
    axes = fig.subplots(1, 2)
    seq = metrics["sequences"]
    marker = "o" if len(seq) < 20 else None    # a run of few evaluations still shows its points
    for ax, key, name, unit in ((axes[0], "cost_bits", "cost", "cost (bits per sequence)"),
                                (axes[1], "bit_errors", "bit errors", "bit errors per sequence")):
        ax.plot(seq, metrics[key], label="training", alpha=0.7, marker=marker)
        ax.plot(seq, metrics["val_" + key], label="validation", marker=marker)
        ax.set_title(name)
        ax.set_xlabel("sequences seen")
        ax.set_ylabel(unit)
        values = np.concatenate([metrics[key], metrics["val_" + key]])
        if values.max() > 10 * max(values.min(), 0.1):   # over a decade: symlog (bit errors reach 0)
            ax.set_yscale("symlog", linthresh=0.1)         # within one, symlog would show no tick at all
        _integer_axis(ax.xaxis)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def sequence_figure(model, x, y, mask, title="", task=None):
    """Input, target and output of one sequence (x (T, I), y (T, O), mask (T,)) as images over time;
    the padding at the end is cut off. task (optional) names the channels."""
    probs = model.forward(x[None])[0]
    T = _used_steps(x, mask)
    in_labels, out_labels = getattr(task, "input_labels", ()), getattr(task, "output_labels", ())
    cmap, lo, hi = _input_scale(x[:T])
    panels = [(x[:T].T, "input", "input channel", in_labels, cmap, lo, hi, "input value"),
              ((y * mask[:, None])[:T].T, "target (scored steps)", "output bit", out_labels, "gray_r", 0, 1,
               "target bit"),
              ((probs * mask[:, None])[:T].T, "output (scored steps)", "output bit", out_labels, "gray_r", 0, 1,
               "P(bit = 1)")]
    heights = [_panel_height(p[0].shape[0]) for p in panels]
    fig = _new_figure(time_width(T), sum(heights) + 0.6)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, (data, name, ylabel, labels, cmap, lo, hi, meaning) in zip(axes, panels):
        _image(ax, data, name, ylabel, xlabel="", cmap=cmap, vmin=lo, vmax=hi, colorbar=meaning)
        _channel_axis(ax, labels, data.shape[0])
    axes[-1].set_xlabel("time step")
    fig.suptitle(title)
    return fig


def _heads_image(ax, w, kind):
    """w (T, H, N): the weightings of H heads over T steps as one image (H N, T), head 0 on top, with a
    red line between heads and each block labelled "head h"."""
    T, H, N = w.shape
    data = w.transpose(1, 2, 0).reshape(H * N, T)
    # downsampled by nearest neighbour, a sharp one-slot weighting could fall between pixel rows
    interpolation = "antialiased" if H * N > 300 else "nearest"
    _image(ax, data, f"{kind} weightings ({H} head{'s' if H > 1 else ''})", "memory slot",
           vmax=max(float(data.max()), 1e-12), colorbar="weighting", interpolation=interpolation)
    if H > 1:
        for h in range(1, H):
            ax.axhline(h * N - 0.5, color="tab:red", linewidth=1.2)
        ax.set_yticks([h * N + (N - 1) / 2 for h in range(H)], [f"head {h}" for h in range(H)])
        ax.tick_params(axis="y", length=0)
        ax.set_ylabel(f"head (memory slots 0-{N - 1} each, top down)")


def memory_figure(model, x, mask, title="", task=None):
    """The paper's Figure 6 kind of picture for one sequence (x (T, I), mask (T,)) of an NTM: inputs and
    outputs, write and read weightings of every head over time, and the memory (N, M) after the last step."""
    T = _used_steps(x, mask)
    tr = model.trace(x[None, :T])
    probs = 1.0 / (1.0 + np.exp(-tr["logits"][0]))
    H = max(tr["write.w"].shape[2], tr["read.w"].shape[2])
    fig = _new_figure(min(MAX_WIDTH, max(12.0, 6.0 + 2 * STEP_WIDTH * T)), min(14.0, 7.5 + 0.4 * H))
    ax = fig.subplot_mosaic([["in", "write", "memory"], ["out", "read", "memory"]],
                            gridspec_kw={"width_ratios": [1, 1, 0.7]})
    cmap, lo, hi = _input_scale(x[:T])
    _image(ax["in"], x[:T].T, "inputs", "input channel", cmap=cmap, vmin=lo, vmax=hi, colorbar="input value")
    _channel_axis(ax["in"], getattr(task, "input_labels", ()), x.shape[1])
    _image(ax["out"], (probs * mask[:T, None]).T, "outputs (scored steps)", "output bit",
           colorbar="P(bit = 1)")
    _channel_axis(ax["out"], getattr(task, "output_labels", ()), probs.shape[1])
    _heads_image(ax["write"], tr["write.w"][0], "write")
    _heads_image(ax["read"], tr["read.w"][0], "read")
    memory = tr["memory"][0, -1]
    top = max(float(np.abs(memory).max()), 1e-12)
    N, M = memory.shape
    _image(ax["memory"], memory, f"memory after step {T - 1} ({N} slots x {M})", "memory slot",
           xlabel="element of the memory word", cmap="RdBu_r", vmin=-top, vmax=top, colorbar="memory value",
           colorbar_aspect=40)
    fig.suptitle(title)
    return fig


def copy_generalisation_figure(model, task, seed=0, lengths=None, title=""):
    """Targets and outputs of one copy sequence at each length (default COPY_LENGTHS; the paper's Figure 4),
    output phase only."""
    lengths = COPY_LENGTHS if lengths is None else lengths
    rng = np.random.default_rng(seed)
    fig = _new_figure(MAX_WIDTH, 1.9 * len(lengths) + 0.8)
    axes = fig.subplots(len(lengths), 2, squeeze=False)
    for row, L in enumerate(lengths):
        x, y, mask = task.batch(rng, 1, min_length=L, max_length=L)
        probs = model.forward(x)[0]
        out = mask[0].astype(bool)
        for col, (data, name) in enumerate(((y[0][out], "target"), (probs[out], "output"))):
            im = _image(axes[row, col], data.T, f"length {L}: {name}", "bit",
                        xlabel="output step (time steps after the delimiter)")
    fig.colorbar(im, ax=axes, label="target bit / P(bit = 1)", shrink=0.6, pad=0.01)
    trained = getattr(task, "max_length", None)
    fig.suptitle(f"{title}: copy of longer sequences" + (f" (trained on lengths up to {trained})"
                                                        if trained else ""))
    return fig


# ----------------------------------------------------------------------------------------------- the run

def make_plots(run_dir, out_dir=None, seed=0):
    """Every figure that applies to the run in ``run_dir``, written to out_dir (default run_dir; created if
    missing).  -> list of written paths. Nothing is created or changed unless every figure could be drawn
    (PlotError or CheckpointError, one line naming the file, otherwise)."""
    from ntm_ref.model import NTM
    check_run_dir(run_dir)
    metrics = read_metrics(os.path.join(run_dir, "metrics.csv"))
    model, settings, meta, task = load_run_model(os.path.join(run_dir, "checkpoint.npz"))
    out_dir = out_dir or run_dir
    names = ["learning_curve", "sequence"] + (["memory"] if isinstance(model, NTM) else [])
    names += ["copy_generalisation"] if task.name == "copy" else []
    paths = {name: os.path.join(out_dir, name + ".png") for name in names}
    _check_targets(out_dir, paths.values())

    x, y, mask = task.batch(np.random.default_rng(seed), 1)
    title = f"{task.name}, {settings.get('model', meta.get('model'))}, step {meta['step']:,}"
    run_name = os.path.basename(os.path.abspath(run_dir))
    draw = {"learning_curve": lambda: learning_curve_figure(metrics, f"{run_name}: {title}"),
            "sequence": lambda: sequence_figure(model, x[0], y[0], mask[0], title, task),
            "memory": lambda: memory_figure(model, x[0], mask[0], title, task),
            "copy_generalisation": lambda: copy_generalisation_figure(model, task, seed, COPY_LENGTHS, title)}
    figures = [(paths[name], draw[name]()) for name in names]

    created = _missing_folders(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
        return save_figures(figures)
    except BaseException as err:
        for folder in reversed(created):      # only the folders made here, and only while empty
            try:
                os.rmdir(folder)
            except OSError:
                pass
        if isinstance(err, OSError):          # e.g. no permission, disk full: name the folder, not a temp file
            raise PlotError(f"{out_dir}: cannot write the figures ({err.strerror or err})") from None
        raise
