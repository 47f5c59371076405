"""``ntm-ref report SWEEP``: the seed statistics of a sweep, per grid cell (every grid value but the seed).

Per cell: the seeds finished (and unfinished), how many converged within their budget, the sequences and
training time to converge, the final validation cost and bit errors, each as the median and quartiles
over seeds (docs/sweep.md explains every column); for N-grams also the Bayes-optimal cost of the same
validation sequences (the paper's eq. 10 estimator). Printed, and written to SWEEP/report.md with a table
of every point; the learning curves (median and min-max band over seeds of the validation bit errors, or
of the validation cost for N-grams and priority sort, as the paper's Figures 13 and 16 plot them, with the
Bayes-optimal line for N-grams; one panel per task) go to SWEEP/learning_curves.png when matplotlib is
installed. With generalisation=True the best seed of each cell is evaluated on the task's generalisation
sets (ntm-ref eval), and with matplotlib drawn: SWEEP/generalisation.png (its bit errors and cost per set,
one column per task) and ntm-ref plot's figures of one sequence, SWEEP/best-<cell>-sequence.png and
(NTMs) -memory.png, <cell> as the point names without the seed (cell_slug).

A point counts as finished once done.json says so (its steps, its time limit, convergence under early
stop, or a non-finite loss); the statistics are over finished points only, and the report says how many
are unfinished (running, interrupted, not started).
"""
import dataclasses
import importlib.util
import json
import os
import re
import warnings

import numpy as np

from ntm_ref.sweep import SweepError, format_value, is_finished, load_sweep, read_done, read_rows
from ntm_ref.train import TrainSettings, format_time, write_atomic

REPORT_FILE = "report.md"
FIGURE_FILE = "learning_curves.png"
GENERALISATION_FILE = "generalisation.png"


@dataclasses.dataclass
class PointResult:
    """One point of a sweep as found on disk.  rows: metrics.csv as dicts; done: done.json or None."""
    name: str
    settings: TrainSettings
    rows: list
    done: dict
    finished: bool

    @property
    def converged_row(self):
        """The first metrics row whose validation bit errors fall below the stop threshold, or None."""
        return next((r for r in self.rows if r["val_bit_errors"] < self.settings.stop_threshold), None)

    @property
    def last_row(self):
        return self.rows[-1] if self.rows else None


def load_results(sweep_dir):
    """Every point of SWEEP/sweep.json with its metrics and done.json.  -> list of PointResult."""
    results = []
    for name, saved in load_sweep(sweep_dir).items():
        try:
            settings = TrainSettings(**saved)
        except (TypeError, ValueError) as err:
            raise SweepError(f"{os.path.join(sweep_dir, 'sweep.json')}: point {name}: unusable settings "
                             f"({err})") from None
        folder = os.path.join(sweep_dir, name)
        done = read_done(folder)
        rows = read_rows(os.path.join(folder, "metrics.csv"))
        results.append(PointResult(name, settings, rows, done, is_finished(done, settings)))
    return results


def _flat(settings):
    """Settings as {column label: value} without the seed: config overrides and task options by their
    field name (prefixed when the name is also a training option)."""
    d = json.loads(settings.to_json())
    d.pop("seed")
    out = {k: v for k, v in d.items() if k not in ("config_overrides", "task_options")}
    for kind, values in (("set", d["config_overrides"]), ("task", d["task_options"])):
        for k, v in values.items():
            out[f"{kind} {k}" if k in out else k] = v
    return out


def cell_key(settings):
    """A cell: every setting but the seed (as sorted JSON)."""
    return json.dumps(_flat(settings), sort_keys=True)


def _natural(value):
    """A sort key that puts numbers in numeric order (batch 4 before 16) and None first."""
    if isinstance(value, bool) or value is None:
        return (0, str(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True))


def group_cells(results):
    """Points by cell, cells in the natural order of their settings (numbers numerically).
    -> {cell key: [PointResult]}."""
    cells = {}
    for r in results:
        cells.setdefault(cell_key(r.settings), []).append(r)
    labels = sorted({k for key in cells for k in json.loads(key)})
    return dict(sorted(cells.items(), key=lambda kv: [_natural(json.loads(kv[0]).get(k)) for k in labels]))


def varying_columns(results):
    """The setting columns of the table: task, model, and every other setting that differs between
    cells.  -> list of labels."""
    flats = [_flat(r.settings) for r in results]
    labels = []
    for flat in flats:
        labels += [k for k in flat if k not in labels]
    varying = [k for k in labels if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    return ["task", "model"] + [k for k in varying if k not in ("task", "model")]


def quartiles(values):
    """(q1, median, q3) of a non-empty sequence (numpy's linear interpolation)."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q1), float(med), float(q3)


CURVE_METRICS = {"ngrams": "val_cost_bits", "priority_sort": "val_cost_bits"}   # else val_bit_errors
METRIC_LABELS = {"val_bit_errors": "validation bit errors per sequence",
                 "val_cost_bits": "validation cost (bits per sequence)"}


def optimal_cost(settings):
    """The Bayes-optimal cost in bits per sequence of the run's validation set (the same sequences as the
    run's validation: task.validation_set(val_size)), for a task that has one (N-grams), else None."""
    from ntm_ref.train import make_run_task
    task = make_run_task(settings)
    bayes = getattr(task, "bayes_optimal_cost", None)
    return None if bayes is None else float(np.mean(bayes(*task.validation_set(settings.val_size))))


def _spread(values, fmt):
    """'median (q1-q3)' of values, '-' when there are none; fmt formats one number."""
    if not values:
        return "-"
    q1, med, q3 = quartiles(values)
    return f"{fmt(med)} ({fmt(q1)}-{fmt(q3)})" if len(values) > 1 else fmt(med)


def cell_summary(points):
    """The statistics of one cell over its finished points.  -> dict of column -> text, plus numbers."""
    finished = [p for p in points if p.finished]      # a point that diverged before its first evaluation too
    conv = [p.converged_row for p in finished if p.converged_row is not None]
    last = [p.last_row for p in finished if p.rows]
    unfinished = len(points) - len(finished)
    return {
        "seeds": f"{len(finished)}" + (f" (+{unfinished} unfinished)" if unfinished else ""),
        "converged": f"{len(conv)}/{len(finished)} ({100 * len(conv) / len(finished):.0f}%)" if finished else "-",
        "sequences to converge": _spread([r["sequences"] for r in conv], lambda v: f"{v:,.0f}"),
        "time to converge": _spread([r["seconds"] for r in conv], format_time),
        "final val cost": _spread([r["val_cost_bits"] for r in last], lambda v: f"{v:.3f}"),
        "final val bit errors": _spread([r["val_bit_errors"] for r in last], lambda v: f"{v:.3f}"),
        "n_finished": len(finished), "n_converged": len(conv), "n_unfinished": unfinished,
        "optimal": optimal_cost(points[0].settings),
    }


STAT_COLUMNS = ("seeds", "converged", "sequences to converge", "time to converge", "final val cost",
                "final val bit errors")


def markdown_table(header, rows):
    """A markdown table (columns padded, so it reads as plain text too)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def summary_table(results):
    """The per-cell table.  -> (markdown text, list of (label, summary, points)); label: the model and
    the other varying settings of the cell, e.g. 'ntm-ff, lr=0.0001'."""
    columns = varying_columns(results)
    rows, cells = [], []
    for points in group_cells(results).values():
        flat = _flat(points[0].settings)
        summary = cell_summary(points)
        values = [format_value(flat.get(c)) for c in columns]
        rows.append(values + [summary[c] for c in STAT_COLUMNS])
        label = ", ".join([values[1]] + [f"{c}={v}" for c, v in zip(columns[2:], values[2:])])
        cells.append((label, summary, points))
    header = columns + list(STAT_COLUMNS)
    if any(summary["optimal"] is not None for _, summary, _ in cells):     # N-grams: the line to beat
        header.append("Bayes-optimal val cost")
        for row, (_, summary, _) in zip(rows, cells):
            row.append("-" if summary["optimal"] is None else f"{summary['optimal']:.3f}")
    return markdown_table(header, rows), cells


def points_table(results):
    """Every point: its status, why it finished, and its last metrics row."""
    rows = []
    for r in results:
        row = r.last_row or {}
        status = r.done.get("reason") if r.finished else "unfinished" if r.rows else "not started"
        rows.append([r.name, status, f"{row.get('step', 0):,.0f}", f"{row.get('sequences', 0):,.0f}",
                     format_time(row.get("seconds", 0.0)),
                     f"{row['val_cost_bits']:.3f}" if row else "-", f"{row['val_bit_errors']:.3f}" if row else "-"])
    return markdown_table(["point", "status", "step", "sequences", "time", "val cost", "val bit errors"], rows)


def _hold(x_grid, x, y, past_end=True):
    """y held from each x to the next one (and past the last if past_end, else NaN there), NaN before the
    first.  -> (len(x_grid),)."""
    idx = np.searchsorted(x, x_grid, side="right") - 1
    held = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
    return held if past_end else np.where(x_grid <= x[-1], held, np.nan)


def curve_bands(points, metric="val_bit_errors"):
    """Median, min and max over the finished seeds of a validation metric (a metrics.csv column) against
    sequences.  A seed that converged (early stop) keeps its last value past its end; one that ran out of
    time or steps has none there (carrying it on would draw a run that stopped as one that stalled). The
    curve is drawn where at least half of the seeds have a value.  -> (x, median, low, high), or None."""
    runs = [(np.array([r["sequences"] for r in p.rows]), np.array([r[metric] for r in p.rows]),
             (p.done or {}).get("reason") == "converged") for p in points if p.finished and p.rows]
    if not runs:
        return None
    x = np.unique(np.concatenate([xs for xs, _, _ in runs]))
    ys = np.stack([_hold(x, xs, vs, past_end=converged) for xs, vs, converged in runs])
    keep = 2 * np.sum(~np.isnan(ys), axis=0) >= len(runs)
    x, ys = x[keep], ys[:, keep]
    with warnings.catch_warnings():          # a column of NaN (no seed there yet) is a NaN median
        warnings.simplefilter("ignore", RuntimeWarning)
        return x, np.nanmedian(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)


def learning_curves_figure(cells):
    """One panel per task: per cell, the median over seeds of the task's CURVE_METRICS column (validation
    bit errors unless named) against sequences, with the min-max band, and a cell's Bayes-optimal cost as
    a dashed line.  cells: list of (label, summary, points).  -> matplotlib Figure, or None."""
    from matplotlib.figure import Figure
    by_task = {}
    for label, summary, points in cells:
        bands = curve_bands(points, CURVE_METRICS.get(points[0].settings.task, "val_bit_errors"))
        if bands is not None:
            by_task.setdefault(points[0].settings.task, []).append((label, bands, points, summary["optimal"]))
    if not by_task:
        return None
    fig = Figure(figsize=(6.0 * len(by_task), 4.5), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(by_task)))
    for ax, (task, curves) in zip(axes, by_task.items()):
        for label, (x, med, low, high), points, optimal in curves:
            n = sum(1 for p in points if p.finished and p.rows)
            line, = ax.plot(x, med, label=f"{label} ({n} seeds)")
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            if optimal is not None:
                ax.axhline(optimal, color=line.get_color(), linestyle="--", linewidth=1,
                           label=f"Bayes-optimal, {label} ({optimal:.1f})")
        ax.set_title(f"{task}: median over seeds, band min-max")
        ax.set_xlabel("sequences seen")
        ax.set_ylabel(METRIC_LABELS[CURVE_METRICS.get(task, "val_bit_errors")])
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def _best(points):
    """The finished point of a cell with the lowest final validation bit errors (then cost), or None."""
    finished = [p for p in points if p.finished and p.rows]
    return min(finished, key=lambda p: (p.last_row["val_bit_errors"], p.last_row["val_cost_bits"]), default=None)


def cell_slug(task, label):
    """A cell as a safe file name part, written as the point names are: ('copy', 'ntm-ff, lr=0.001') ->
    'copy-ntm-ff-lr0.001' (any other character but letters, digits and . _ + - becomes '_')."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{task}, {label}".replace(", ", "-").replace("=", ""))


def generalisation_figure(evaluated):
    """One column per task: per cell, the best seed's bit errors per sequence (top) and cost (bottom) on
    each generalisation set, the task's sets in its order as categories.  evaluated: list of (task, label,
    rows); rows: evaluate.evaluation_rows' (validation first, left out here).  -> matplotlib Figure."""
    from matplotlib.figure import Figure
    by_task = {}
    for task, label, rows in evaluated:
        by_task.setdefault(task, []).append((label, rows[1:]))
    fig = Figure(figsize=(6.0 * len(by_task), 7.5), dpi=100, layout="constrained")
    axes = fig.subplots(2, len(by_task), squeeze=False)
    for col, (task, lines) in enumerate(by_task.items()):
        names = list(dict.fromkeys(r.name for _, rows in lines for r in rows))   # cells may differ in options
        for row, (key, ylabel) in enumerate((("bit_errors", "bit errors per sequence"),
                                             ("cost", "cost (bits per sequence)"))):
            ax = axes[row, col]
            for label, rows in lines:
                ax.plot([names.index(r.name) for r in rows], [getattr(r, key) for r in rows], marker="o",
                        label=label)
            values = [getattr(r, key) for _, rows in lines for r in rows]
            if max(values) > 10 * max(min(values), 0.1):      # over a decade (bit errors reach 0): symlog
                ax.set_yscale("symlog", linthresh=0.1)
            ax.set_xticks(range(len(names)), [name.replace("_", " ") for name in names], rotation=20, ha="right")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0, col].set_title(f"{task}: the best seed of each cell")
        axes[0, col].legend(fontsize="small")
        axes[1, col].set_xlabel("generalisation set")
    return fig


def best_seed_figures(ckpt_path, stem, title, seed=0):
    """ntm-ref plot's sequence figure, and its memory figure for an NTM (the LSTM baseline has no memory),
    of a checkpoint on the sequence ntm-ref plot draws: task.batch(default_rng(seed), 1), x (1, T, I),
    y (1, T, O), mask (1, T).  -> list of (file name, alt text, Figure)."""
    from ntm_ref.model import NTM
    from ntm_ref.plots import load_run_model, memory_figure, sequence_figure
    model, _, meta, task = load_run_model(ckpt_path)
    x, y, mask = task.batch(np.random.default_rng(seed), 1)
    title = f"{title}, step {meta['step']:,}"
    figures = [(f"{stem}-sequence.png", "sequence", sequence_figure(model, x[0], y[0], mask[0], title, task))]
    if isinstance(model, NTM):
        figures.insert(0, (f"{stem}-memory.png", "memory and weightings",
                           memory_figure(model, x[0], mask[0], title, task)))
    return figures


def generalisation_section(sweep_dir, cells, n=64, plot=True):
    """ntm-ref eval's table for the best seed of every cell (each evaluated once) and, when plot, the
    figures: GENERALISATION_FILE over every cell, and per cell best-<cell_slug>-memory.png and
    -sequence.png (best_seed_figures).  -> (markdown text linking the figures, [(file name, Figure)])."""
    from ntm_ref.evaluate import evaluation_rows, format_evaluation
    parts = ["## Generalisation (the best seed of each cell: lowest final validation bit errors)", ""]
    evaluated, figures = [], []
    for label, _, points in cells:
        best = _best(points)
        if best is None:
            continue
        task = points[0].settings.task
        path = os.path.join(sweep_dir, best.name, "checkpoint.npz")
        title, rows = evaluation_rows(path, n=n)
        evaluated.append((task, label, rows))
        parts += [f"### {task}, {label}: {best.name}", "", "```", format_evaluation(title, rows), "```", ""]
        if plot:
            drawn = best_seed_figures(path, f"best-{cell_slug(task, label)}", f"{task}, {label}: {best.name}")
            figures += [(name, fig) for name, _, fig in drawn]
            parts += [f"![{alt}]({name})" for name, alt, _ in drawn] + [""]
    if plot and evaluated:
        figures.insert(0, (GENERALISATION_FILE, generalisation_figure(evaluated)))
        parts[2:2] = [f"![generalisation]({GENERALISATION_FILE})", ""]
    return "\n".join(parts), figures


def make_report(sweep_dir, generalisation=False, n=64, log=print):
    """Print the per-cell table and write SWEEP/report.md; with matplotlib also SWEEP/learning_curves.png
    and, with generalisation, the figures of generalisation_section (all through plots.save_figures: none
    is written unless every one could be drawn).  -> the report text."""
    results = load_results(sweep_dir)
    if not results:
        raise SweepError(f"{os.path.join(sweep_dir, 'sweep.json')}: no points")
    table, cells = summary_table(results)
    unfinished = sum(1 for r in results if not r.finished)
    status = (f"{len(results) - unfinished} of {len(results)} points finished" +
              (f"; {unfinished} unfinished (running, interrupted or not started), left out of the statistics"
               if unfinished else ""))
    threshold = sorted({r.settings.stop_threshold for r in results})
    notes = (f"converged: validation bit errors per sequence below the stop threshold "
             f"({', '.join(map(format_value, threshold))}) at an evaluation within the run's budget; "
             f"sequences and time to converge: at that first evaluation, over the converged seeds; final: "
             f"the last evaluation. Numbers: median (first-last quartile) over seeds.")
    log(f"{sweep_dir}: {status}")
    log(table)
    text = [f"# Sweep report: {os.path.abspath(sweep_dir)}", "", f"Made by `ntm-ref report {sweep_dir}`. {status}.",
            "", table, "", notes, "", "## Points", "", points_table(results), ""]
    figures = []                 # (file name, Figure): every one drawn before any is written
    plot = importlib.util.find_spec("matplotlib") is not None
    if not plot:
        log('figures skipped: matplotlib is not installed (pip install ".[plot]")')
    else:
        fig = learning_curves_figure(cells)
        if fig is None:
            log("learning curves skipped: no finished point yet")
        else:
            figures.append((FIGURE_FILE, fig))
            text[6:6] = [f"![learning curves]({FIGURE_FILE})", ""]
    if generalisation:
        gen, gen_figures = generalisation_section(sweep_dir, cells, n=n, plot=plot)
        figures += gen_figures
        log(gen)
        text += [gen]
    if figures:
        from ntm_ref.plots import save_figures
        for path in save_figures([(os.path.join(sweep_dir, name), fig) for name, fig in figures]):
            log(f"wrote {path}")
    report_path = os.path.join(sweep_dir, REPORT_FILE)
    write_atomic(report_path, "\n".join(text) + "\n")
    log(f"wrote {report_path}")
    return "\n".join(text)

