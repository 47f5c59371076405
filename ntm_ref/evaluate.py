"""``ntm-ref eval``: a checkpoint's cost and bit errors on the validation set and on the paper's
generalisation sets, as a table (evaluation_rows gives its numbers)."""
from typing import NamedTuple, Optional

import numpy as np

from ntm_ref.train import cost_and_bit_errors, load_model


def checked_settings(path, settings):
    """The run settings saved in checkpoint ``path`` as TrainSettings, or CheckpointError (one line naming
    the file and the setting) when they are not a dict, name no task, or hold a value TrainSettings or the
    task refuses (an unknown task, task_options that are not a dict or that the task does not take)."""
    import dataclasses
    from ntm_ref.checkpoint import CheckpointError
    from ntm_ref.train import TrainSettings, make_run_task
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path}: its saved settings are not a JSON object (got {type(settings).__name__})")
    missing = [k for k in ("task", "model") if k not in settings]
    if missing:
        raise CheckpointError(f"{path}: its saved settings name no {' and no '.join(missing)}")
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(TrainSettings)})
    if unknown:
        raise CheckpointError(f"{path}: its saved settings hold unknown field(s) {', '.join(unknown)}")
    try:
        checked = TrainSettings(**settings)
        make_run_task(checked)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its saved settings are not usable: {err}") from None
    return checked


def load_for_eval(path, task=None):
    """(model, settings, meta) of a checkpoint file, a run folder (its checkpoint.npz) or a folder of
    ntm-ref import (config.json, params.npz: task names its task)."""
    import json
    import os
    from ntm_ref.checkpoint import CheckpointError
    from ntm_ref.config import NTMConfig
    from ntm_ref.model import NTM
    from ntm_ref.npzio import read_npz
    from ntm_ref.trace import params_of
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "checkpoint.npz")):
            path = os.path.join(path, "checkpoint.npz")
        elif os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(path, "params.npz")):
            if task is None:
                raise CheckpointError(f"{path}: an imported model does not know its task: give --task")
            try:
                with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
                    config = NTMConfig.from_dict(json.load(f))
                arrays = read_npz(os.path.join(path, "params.npz"), "")
                model = NTM.from_arrays(config, params_of(arrays), params_of(arrays, "buffer/"), engine="fast")
            except (ValueError, TypeError, OSError) as err:
                raise CheckpointError(f"{path}: not a usable import folder: {err}") from None
            return model, {"task": task, "model": "ntm"}, {"step": 0, "sequences": 0, "imported": True}
        else:
            raise CheckpointError(f"{path}: a folder with neither checkpoint.npz nor config.json and params.npz")
    model, settings, meta = load_model(path)
    checked_settings(path, settings)
    if task is not None and task != settings["task"]:
        raise CheckpointError(f"{path}: trained on {settings['task']}, not {task}; leave out --task")
    return model, settings, meta


class EvalRow(NamedTuple):
    """One set of the table: its name, how many sequences, their steps (T, padded), and the model's cost
    (bits per sequence) and bit errors per sequence on them; bayes_cost: the Bayes-optimal cost of the same
    sequences (N-grams), else None."""
    name: str
    sequences: int
    steps: int
    cost: float
    bit_errors: float
    bayes_cost: Optional[float] = None


def evaluation_rows(path, n=64, seed=1234, task=None):
    """The numbers of ntm-ref eval's table.  -> (title, rows): rows a list of EvalRow, the validation set
    (the task's fixed one) first, then every generalisation set (n sequences each) in the task's order."""
    from tasks import make_task
    model, settings, meta = load_for_eval(path, task)
    task = make_task(settings["task"], **settings.get("task_options", {}))
    if model.config.input_size != task.input_size or model.config.output_size != task.output_size:
        from ntm_ref.checkpoint import CheckpointError
        raise CheckpointError(f"{path}: the model has {model.config.input_size} inputs and "
                              f"{model.config.output_size} outputs; {settings['task']} needs {task.input_size} "
                              f"and {task.output_size}")
    sets = [("validation", *task.validation_set(settings.get("val_size")))]
    for name in task.generalisation_sets():
        sets.append((name, *task.generalisation_set(name, n=n, seed=seed)))
    bayes = getattr(task, "bayes_optimal_cost", None)
    title = (f"{path}: imported model on {settings['task']}" if meta.get("imported") else
             f"{path}: {settings['model']} on {settings['task']}, step {meta['step']:,}, {meta['sequences']:,} sequences")
    rows = []
    for name, x, y, mask in sets:
        cost, errors = cost_and_bit_errors(model, x, y, mask)
        rows.append(EvalRow(name, x.shape[0], x.shape[1], cost, errors,
                            float(np.mean(bayes(x, y, mask))) if bayes else None))
    return title, rows


def format_evaluation(title, rows):
    """evaluation_rows' (title, rows) as ntm-ref eval's table (a Bayes-optimal column when rows have one)."""
    bayes = any(r.bayes_cost is not None for r in rows)
    header = f"{'set':<22} {'sequences':>9} {'steps':>6} {'cost (bits/seq)':>16} {'bit errors/seq':>15}"
    if bayes:
        header += f" {'Bayes-optimal cost':>19}"
    lines = [title, header, "-" * len(header)]
    for r in rows:
        line = f"{r.name:<22} {r.sequences:>9} {r.steps:>6} {r.cost:>16.3f} {r.bit_errors:>15.3f}"
        if bayes:
            line += f" {r.bayes_cost:>19.3f}"
        lines.append(line)
    return "\n".join(lines)


def evaluate_checkpoint(path, n=64, seed=1234, task=None):
    """-> the table as text. n sequences per generalisation set (the validation set is the task's fixed
    one). For N-grams the Bayes-optimal cost of the same sequences stands beside the model's."""
    return format_evaluation(*evaluation_rows(path, n=n, seed=seed, task=task))
