"""ntm-ref plot: every figure is written for a run; a missing folder, a file, a bad --out, a bad metrics
file or checkpoint give one clear line and change nothing (no PNG, no temporary file, no new folder), and
an interruption leaves no partial or temporary file; the figures have labelled axes, titles, colour bars,
whole-number ticks, one labelled block per head and a bounded size."""
import hashlib
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("matplotlib")   # installed by the test extra, so CI runs this

from ntm_ref import cli, plots                       # noqa: E402
from ntm_ref.config import NTMConfig                 # noqa: E402
from ntm_ref.model import NTM                        # noqa: E402
from ntm_ref.train import TrainSettings, train       # noqa: E402
from tasks import make_task                          # noqa: E402

FIGURES = ["copy_generalisation.png", "learning_curve.png", "memory.png", "sequence.png"]
SMALL = {"memory_slots": 8, "memory_width": 4, "controller_size": 12}


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    """A tiny copy run (4 steps, two evaluations, a checkpoint) shared by the tests: never written to."""
    out = str(tmp_path_factory.mktemp("plots") / "copy")
    settings = TrainSettings(task="copy", model="ntm-ff", batch_size=2, steps=4, eval_every=2,
                             checkpoint_every=2, val_size=4, task_options={"max_length": 3},
                             config_overrides=SMALL)
    train(settings, out, log=lambda *_: None)
    return out


@pytest.fixture(autouse=True)
def short_copies(monkeypatch):
    """Copy generalisation at lengths 3 and 5, not up to 120: the same figure, drawn faster."""
    monkeypatch.setattr(plots, "COPY_LENGTHS", (3, 5))


@pytest.fixture
def run_copy(copy_run, tmp_path):
    """A private copy of the tiny run that a test may damage."""
    return shutil.copytree(copy_run, str(tmp_path / "run"))


def _cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr and lines[0].startswith("ntm-ref plot: error: "), stderr
    return lines[0]


def _listing(folder):
    """Every file under folder with a digest of its bytes: what "nothing changed" compares."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                found[os.path.relpath(os.path.join(root, name), folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


# ------------------------------------------------------------------------------------- the command line

def test_plot_writes_every_figure(copy_run, tmp_path, capsys):
    code, stdout, stderr = _cli(["plot", copy_run, "--out", str(tmp_path / "figs")], capsys)
    assert code == 0, stderr
    assert sorted(os.path.basename(p) for p in stdout.split()) == FIGURES
    assert sorted(os.listdir(tmp_path / "figs")) == FIGURES          # and no temporary file
    for name in FIGURES:
        with open(tmp_path / "figs" / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_missing_run_folder_is_not_created(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    code, _, stderr = _cli(["plot", str(missing)], capsys)
    assert code == 2 and "no such run folder" in _one_error_line(stderr) and str(missing) in stderr
    assert not missing.exists()
    code, _, stderr = _cli(["plot", str(missing), "--out", str(tmp_path / "figs")], capsys)
    assert code == 2 and not missing.exists() and not (tmp_path / "figs").exists()


def test_a_file_is_not_a_run_folder(copy_run, capsys):
    path = os.path.join(copy_run, "metrics.csv")
    code, _, stderr = _cli(["plot", path], capsys)
    line = _one_error_line(stderr)
    assert code == 2 and "not a run folder" in line and path in line and "Errno" not in line


def test_out_pointing_at_a_file(run_copy, capsys):
    before = _listing(run_copy)
    target = os.path.join(run_copy, "settings.json")
    code, _, stderr = _cli(["plot", run_copy, "--out", target], capsys)
    line = _one_error_line(stderr)
    assert code == 2 and "--out" in line and target in line and "not a folder" in line and "Errno" not in line
    code, _, stderr = _cli(["plot", run_copy, "--out", os.path.join(target, "figs")], capsys)
    assert code == 2 and "not a folder" in _one_error_line(stderr)
    assert _listing(run_copy) == before


@pytest.mark.parametrize("damage", ["truncated checkpoint", "no checkpoint", "metrics without rows",
                                    "metrics not numbers"])
def test_a_bad_run_writes_nothing(run_copy, tmp_path, capsys, damage):
    """Before the fix, learning_curve.png was written before the checkpoint was read (exit 2 afterwards)."""
    ckpt, metrics = os.path.join(run_copy, "checkpoint.npz"), os.path.join(run_copy, "metrics.csv")
    if damage == "truncated checkpoint":
        with open(ckpt, "rb") as f:
            data = f.read()
        with open(ckpt, "wb") as f:
            f.write(data[: len(data) // 2])
    elif damage == "no checkpoint":
        os.remove(ckpt)
    else:
        with open(metrics) as f:
            lines = f.read().splitlines()
        kept = lines[:1] if damage == "metrics without rows" else [lines[0], lines[1].replace(",", ",x", 1)]
        with open(metrics, "w") as f:
            f.write("\n".join(kept) + "\n")
    before = _listing(run_copy)
    code, _, stderr = _cli(["plot", run_copy], capsys)
    named = ckpt if "checkpoint" in damage else metrics
    assert code == 2 and named in _one_error_line(stderr)
    assert _listing(run_copy) == before                     # no PNG, no temporary file, nothing changed
    code, _, stderr = _cli(["plot", run_copy, "--out", str(tmp_path / "new" / "figs")], capsys)
    assert code == 2 and not (tmp_path / "new").exists()


def test_an_interrupted_write_leaves_old_figures_and_no_temporary_file(run_copy, tmp_path, monkeypatch):
    """The second PNG fails while being written (Ctrl-C; then a full disk): the first is not in place yet,
    no temporary file is left, an existing figure keeps its bytes and a folder made for --out is removed."""
    from matplotlib.figure import Figure
    with open(os.path.join(run_copy, "learning_curve.png"), "wb") as f:
        f.write(b"the old figure")
    before = _listing(run_copy)
    real_savefig, calls, error = Figure.savefig, [], [KeyboardInterrupt("interrupted")]

    def failing_savefig(self, fname, **kwargs):
        calls.append(fname)
        if len(calls) == 2:
            if hasattr(fname, "write"):
                fname.write(b"half a PNG")
            else:
                with open(fname, "wb") as f:
                    f.write(b"half a PNG")
            raise error[0]
        return real_savefig(self, fname, **kwargs)

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(KeyboardInterrupt):
        plots.make_plots(run_copy)
    assert len(calls) == 2 and _listing(run_copy) == before
    calls.clear()
    error[0] = OSError(28, "No space left on device")
    with pytest.raises(plots.PlotError, match="No space left on device"):
        plots.make_plots(run_copy, out_dir=str(tmp_path / "new" / "figs"))
    assert len(calls) == 2 and not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------------------- the figures

def _image_axes(fig):
    """The axes of a figure that show an image (colour bars excluded)."""
    return [ax for ax in fig.axes if ax.images]


def _draw(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    return fig


def _tick_labels(axis):
    """The texts of the ticks shown (inside the view) on an axis, after a draw."""
    lo, hi = sorted(axis.get_view_interval())
    return [t.get_text() for t, v in zip(axis.get_ticklabels(), axis.get_ticklocs()) if lo <= v <= hi]


def _assert_whole_or_named(labels, where):
    """Every tick label is a whole number or a name ("bit 0", "head 3"), never a fraction like 2.5."""
    for text in labels:
        try:
            value = float(text.replace("\N{MINUS SIGN}", "-"))
        except ValueError:
            continue
        assert value == int(value) and "." not in text, f"{where}: tick label {text!r}"


def _assert_labelled(fig, every_image_has_colorbar=True, shared_time_axis=False):
    """Every image axes has a title, axis labels (with shared_time_axis, only the bottom one names the
    shared x axis), whole-number ticks and (when asked) its own colour bar with a label; the figure has at
    least one labelled colour bar."""
    images = _image_axes(_draw(fig))
    assert images
    bars = []
    for ax in images:
        where = ax.get_title()
        assert ax.get_title() and ax.get_ylabel(), where
        assert ax.get_xlabel() or (shared_time_axis and ax is not images[-1]), where
        for axis, shown in ((ax.xaxis, bool(ax.get_xlabel())), (ax.yaxis, True)):
            labels = _tick_labels(axis)
            assert [t for t in labels if t] or not shown, f"{where}: no tick labels"
            _assert_whole_or_named(labels, where)
        bar = ax.images[0].colorbar
        if every_image_has_colorbar:
            assert bar is not None, f"{where}: no colour bar"
        if bar is not None:
            bars.append(bar)
    assert bars and all(bar.ax.get_ylabel() for bar in bars)


def _model(task, **overrides):
    return NTM(NTMConfig(input_size=task.input_size, output_size=task.output_size, **{**SMALL, **overrides}),
               seed=0)


def test_sequence_and_memory_figures_are_labelled():
    task = make_task("copy", max_length=3)
    model = _model(task)
    x, y, mask = task.batch(np.random.default_rng(0), 1)
    seq = plots.sequence_figure(model, x[0], y[0], mask[0], "copy", task)
    _assert_labelled(seq, shared_time_axis=True)
    assert _image_axes(seq)[-1].get_xlabel() == "time step"
    _assert_labelled(plots.memory_figure(model, x[0], mask[0], "copy", task))


def test_copy_generalisation_figure_is_labelled():
    task = make_task("copy", max_length=3)
    fig = plots.copy_generalisation_figure(_model(task), task, lengths=(3, 7), title="copy")
    _assert_labelled(fig, every_image_has_colorbar=False)
    assert fig._suptitle is not None and fig._suptitle.get_text()


def test_learning_curve_is_labelled_and_shows_values():
    """Values within one decade: symlog showed no tick label on the y axis at all."""
    metrics = {"sequences": np.array([2.0, 4.0, 6.0]), "cost_bits": np.array([41.0, 40.0, 39.5]),
               "bit_errors": np.array([12.0, 11.0, 10.0]), "val_cost_bits": np.array([40.5, 40.2, 39.0]),
               "val_bit_errors": np.array([11.0, 11.0, 9.0])}
    fig = _draw(plots.learning_curve_figure(metrics, "run"))
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert len([t for t in _tick_labels(ax.yaxis) if t]) >= 2
        _assert_whole_or_named(_tick_labels(ax.xaxis), ax.get_title())


def test_every_head_is_a_separated_labelled_block():
    """8 read and 8 write heads (priority sort's number): one block per head, a line between blocks."""
    task = make_task("priority_sort", n_inputs=3, n_outputs=2)
    model = _model(task, read_heads=8, write_heads=8)
    x, _, mask = task.batch(np.random.default_rng(0), 1)
    fig = _draw(plots.memory_figure(model, x[0], mask[0], "priority sort", task))
    N = SMALL["memory_slots"]
    for kind in ("write", "read"):
        ax, = [a for a in _image_axes(fig) if a.get_title().startswith(kind)]
        assert "8 heads" in ax.get_title()
        assert _tick_labels(ax.yaxis) == [f"head {h}" for h in range(8)]
        separators = sorted(line.get_ydata()[0] for line in ax.lines)
        assert separators == [h * N - 0.5 for h in range(1, 8)]


def test_a_long_one_channel_sequence_has_a_bounded_figure(tmp_path):
    """N-grams: 1 input and 1 output channel over 199 steps. Before, sequence.png was 3316 x 600 pixels
    with y ticks -0.4 .. 0.4."""
    import matplotlib.image
    task = make_task("ngrams")
    x, y, mask = task.batch(np.random.default_rng(0), 1)
    fig = plots.sequence_figure(_model(task), x[0], y[0], mask[0], "ngrams", task)
    _assert_labelled(fig, shared_time_axis=True)
    width, height = fig.get_size_inches()
    assert width <= plots.MAX_WIDTH and height <= 8
    path = str(tmp_path / "sequence.png")
    assert plots.save_figures([(path, fig)]) == [path]
    rows, cols = matplotlib.image.imread(path).shape[:2]
    assert cols <= plots.MAX_WIDTH * plots.DPI and rows <= 800, (rows, cols)
    assert os.listdir(tmp_path) == ["sequence.png"]
    # without the task's channel names: whole-number ticks still (matplotlib's integer locator alone gives
    # -0.5, 0, 0.5 on a one-row image)
    _assert_labelled(plots.sequence_figure(_model(task), x[0], y[0], mask[0], "ngrams"), shared_time_axis=True)


def test_figure_width_grows_with_the_sequence_then_stops():
    assert plots.time_width(10) == plots.MIN_WIDTH
    assert plots.MIN_WIDTH < plots.time_width(60) < plots.time_width(100) < plots.MAX_WIDTH
    assert plots.time_width(10_000) == plots.MAX_WIDTH
