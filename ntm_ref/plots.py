"""PNG figures of a training run (matplotlib is an optional extra: pip install ".[plot]").

    learning_curve.png      cost and bit errors per sequence against sequences seen (metrics.csv)
    sequence.png            input, target and output of one validation sequence
    memory.png              the paper's Figure 6 kind: inputs, outputs, write and read weightings over time,
                            and the memory after the last step (NTM runs only)
    copy_generalisation.png targets and outputs at copy lengths 10, 20, 30, 50, 120 (Figure 4; copy only)
"""
import csv
import os

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_learning_curve(metrics_csv, path):
    plt = _pyplot()
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{metrics_csv}: no rows yet")
    seq = np.array([float(r["sequences"]) for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "cost_bits", "cost (bits per sequence)"),
                           (axes[1], "bit_errors", "bit errors per sequence")):
        ax.plot(seq, [float(r[key]) for r in rows], label="training", alpha=0.7)
        ax.plot(seq, [float(r["val_" + key]) for r in rows], label="validation")
        ax.set_xlabel("sequences seen")
        ax.set_ylabel(label)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(os.path.basename(os.path.dirname(os.path.abspath(metrics_csv))))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_sequence(model, x, y, mask, path, title=""):
    """Input, target and output of one sequence (x (T, I), y (T, O), mask (T,)) as images over time."""
    plt = _pyplot()
    probs = model.forward(x[None])[0]
    T = int(np.nonzero(np.abs(x).sum(-1) + mask)[0].max()) + 1
    fig, axes = plt.subplots(3, 1, figsize=(max(6, T / 6), 6), sharex=True)
    for ax, data, label in ((axes[0], x[:T], "input"), (axes[1], (y * mask[:, None])[:T], "target"),
                            (axes[2], (probs * mask[:, None])[:T], "output")):
        ax.imshow(data.T, aspect="auto", cmap="gray_r", vmin=-1 if data.min() < 0 else 0, vmax=1,
                  interpolation="nearest")
        ax.set_ylabel(label)
    axes[-1].set_xlabel("time step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_memory(model, x, mask, path, title=""):
    """The paper's Figure 6 kind of picture for one sequence: inputs, outputs, write and read weightings
    (heads stacked) over time, and the memory contents after the last step."""
    plt = _pyplot()
    T = int(np.nonzero(np.abs(x).sum(-1) + mask)[0].max()) + 1
    tr = model.trace(x[None, :T])
    probs = 1.0 / (1.0 + np.exp(-tr["logits"][0]))
    w_write = tr["write.w"][0].transpose(1, 2, 0).reshape(-1, T)     # (W N, T)
    w_read = tr["read.w"][0].transpose(1, 2, 0).reshape(-1, T)       # (R N, T)
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    panels = [(axes[0, 0], x[:T].T, "inputs"), (axes[1, 0], (probs * mask[:T, None]).T, "outputs"),
              (axes[0, 1], w_write, "write weightings"), (axes[1, 1], w_read, "read weightings"),
              (axes[0, 2], tr["memory"][0, -1], "memory after the last step (N x M)")]
    for ax, data, label in panels:
        ax.imshow(data, aspect="auto", cmap="gray_r", interpolation="nearest")
        ax.set_title(label)
    axes[1, 2].axis("off")
    for ax in (axes[0, 1], axes[1, 1]):
        ax.set_xlabel("time step")
        ax.set_ylabel("memory slot")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_copy_generalisation(model, task, path, seed=0, lengths=(10, 20, 30, 50, 120)):
    """Targets and outputs of one copy sequence at each length (the paper's Figure 4)."""
    plt = _pyplot()
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(lengths), 2, figsize=(16, 2 * len(lengths)),
                             gridspec_kw={"width_ratios": [1, 1]})
    for row, L in enumerate(lengths):
        x, y, mask = task.batch(rng, 1, min_length=L, max_length=L)
        probs = model.forward(x)[0]
        out = mask[0].astype(bool)
        for col, (data, label) in enumerate(((y[0][out], "target"), (probs[out], "output"))):
            ax = axes[row, col]
            ax.imshow(data.T, aspect="auto", cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"length {L}: {label}", fontsize=9)
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def make_plots(run_dir, out_dir=None, seed=0):
    """Every figure that applies to the run in ``run_dir``.  -> list of written paths."""
    from ntm_ref.model import NTM
    from ntm_ref.train import load_model
    from tasks import make_task
    out_dir = out_dir or run_dir
    os.makedirs(out_dir, exist_ok=True)
    written = [plot_learning_curve(os.path.join(run_dir, "metrics.csv"), os.path.join(out_dir, "learning_curve.png"))]
    model, settings, meta = load_model(os.path.join(run_dir, "checkpoint.npz"))
    task = make_task(settings["task"])
    x, y, mask = task.batch(np.random.default_rng(seed), 1)
    title = f"{settings['task']}, {settings['model']}, step {meta['step']:,}"
    written.append(plot_sequence(model, x[0], y[0], mask[0], os.path.join(out_dir, "sequence.png"), title))
    if isinstance(model, NTM):
        written.append(plot_memory(model, x[0], mask[0], os.path.join(out_dir, "memory.png"), title))
    if settings["task"] == "copy":
        written.append(plot_copy_generalisation(model, task, os.path.join(out_dir, "copy_generalisation.png"), seed))
    return written
