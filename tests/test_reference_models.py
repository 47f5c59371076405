"""The committed reference models (reference_models/) still load and give the validation numbers their
eval.txt records: the model code cannot change what they compute unnoticed."""
import os
import re

import pytest

from ntm_ref.evaluate import load_for_eval
from ntm_ref.train import cost_and_bit_errors

ROOT = os.path.join(os.path.dirname(__file__), "..", "reference_models")
MODELS = sorted(d for d in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, d)))


def recorded(folder):
    """(task, validation cost, validation bit errors) from the folder's eval.txt."""
    text = open(os.path.join(ROOT, folder, "eval.txt"), encoding="utf-8").read()
    task = re.search(r"--task (\w+)", text).group(1)
    row = re.search(r"^validation\s+\d+\s+\d+\s+([\d.]+)\s+([\d.]+)", text, re.M)
    return task, float(row.group(1)), float(row.group(2))


def test_there_is_a_reference_model():
    assert MODELS, "reference_models/ holds no model"


@pytest.mark.parametrize("folder", MODELS)
def test_a_reference_model_gives_its_recorded_validation_numbers(folder):
    from tasks import make_task
    task_name, cost, errors = recorded(folder)
    model, settings, _ = load_for_eval(os.path.join(ROOT, folder), task=task_name)
    x, y, mask = make_task(task_name).validation_set()
    got_cost, got_errors = cost_and_bit_errors(model, x, y, mask)
    assert round(got_cost, 3) == cost and round(got_errors, 3) == errors, (got_cost, got_errors)
