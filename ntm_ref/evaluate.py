"""``ntm-ref eval``: a checkpoint's cost and bit errors on the validation set and on the paper's
generalisation sets, as a table."""
import numpy as np

from ntm_ref.train import evaluate, load_model


def evaluate_checkpoint(path, n=64, seed=1234):
    """-> the table as text. n sequences per generalisation set (the validation set is the task's fixed
    one). For N-grams the Bayes-optimal cost of the same sequences stands beside the model's."""
    from tasks import make_task
    model, settings, meta = load_model(path)
    task = make_task(settings["task"], **settings.get("task_options", {}))
    rows = [("validation", *task.validation_set(settings.get("val_size")))]
    for name in task.generalisation_sets():
        rows.append((name, *task.generalisation_set(name, n=n, seed=seed)))
    bayes = getattr(task, "bayes_optimal_cost", None)
    header = f"{'set':<22} {'sequences':>9} {'steps':>6} {'cost (bits/seq)':>16} {'bit errors/seq':>15}"
    if bayes:
        header += f" {'Bayes-optimal cost':>19}"
    lines = [f"{path}: {settings['model']} on {settings['task']}, step {meta['step']:,}, "
             f"{meta['sequences']:,} sequences", header, "-" * len(header)]
    for name, x, y, mask in rows:
        cost, errors = evaluate(model, x, y, mask)
        line = f"{name:<22} {x.shape[0]:>9} {x.shape[1]:>6} {cost:>16.3f} {errors:>15.3f}"
        if bayes:
            line += f" {float(np.mean(bayes(x, y, mask))):>19.3f}"
        lines.append(line)
    return "\n".join(lines)
