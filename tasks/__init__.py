"""The paper's five tasks (Graves, Wayne & Danihelka 2014, section 4), their metrics and a printer.

    from tasks import make_task
    task = make_task("copy")                                    # the paper's training distribution
    x, y, mask = task.batch(np.random.default_rng(0), 32)       # (B, T, 9), (B, T, 8), (B, T)
    x, y, mask = task.validation_set()                          # fixed: 640 sequences
    x, y, mask = task.generalisation_set("length_120", n=16)    # 241 steps
    print(task.format_sequence(x, y, mask, probs))              # probs (B, T, O): a model's outputs

Every task has name, input_size, output_size, batch(rng, batch_size, **lengths) -> (x, y, mask),
training_parameters(), generalisation_sets(), generalisation_set(name, n, seed), validation_set(n, seed);
see tasks.base. Layouts and the choices made where the paper is silent are in each task's module docstring.

    name                 class              input / output   module
    copy                 Copy               9 / 8            tasks.copy_task
    repeat_copy          RepeatCopy         10 / 9           tasks.repeat_copy
    associative_recall   AssociativeRecall  8 / 6            tasks.associative_recall
    ngrams               NGrams             1 / 1            tasks.ngrams (with the Bayes-optimal predictor)
    priority_sort        PrioritySort       10 / 8           tasks.priority_sort

This package depends on numpy only (not on ntm_ref), so it can score any model.
"""
from tasks.associative_recall import AssociativeRecall
from tasks.base import Task
from tasks.copy_task import Copy
from tasks.metrics import (bit_errors_by_sequence, bit_errors_per_sequence, cost_bits_by_sequence,
                           cost_bits_per_sequence)
from tasks.ngrams import NGrams, bayes_optimal_cost_bits_by_sequence, bayes_optimal_cost_bits_per_sequence
from tasks.printing import format_sequence
from tasks.priority_sort import PrioritySort
from tasks.repeat_copy import RepeatCopy

TASKS = {
    "copy": Copy,
    "repeat_copy": RepeatCopy,
    "associative_recall": AssociativeRecall,
    "ngrams": NGrams,
    "priority_sort": PrioritySort,
}


def make_task(name, **kwargs):
    """TASKS[name](**kwargs); ValueError naming the bad name and the allowed ones."""
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: " + ", ".join(repr(k) for k in TASKS))
    return TASKS[name](**kwargs)


__all__ = ["TASKS", "make_task", "Task", "Copy", "RepeatCopy", "AssociativeRecall", "NGrams", "PrioritySort",
           "cost_bits_by_sequence", "cost_bits_per_sequence", "bit_errors_by_sequence",
           "bit_errors_per_sequence", "bayes_optimal_cost_bits_by_sequence",
           "bayes_optimal_cost_bits_per_sequence", "format_sequence"]
