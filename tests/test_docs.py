"""The docs' code stays true: every NTMConfig(...) block in docs/conventions.md builds and runs."""
import os
import re

import numpy as np
import pytest

from ntm_ref.config import NTMConfig
from ntm_ref.model import NTM

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")


def python_blocks(name):
    text = open(os.path.join(DOCS, name), encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


BLOCKS = [b for b in python_blocks("conventions.md") if b.lstrip().startswith("NTMConfig(")]


def test_conventions_page_has_the_three_implementations():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("block", BLOCKS, ids=["pytorch-ntm", "collier", "dnc"])
def test_conventions_config_blocks_build_and_run(block):
    config = eval(block, {"NTMConfig": NTMConfig})                 # noqa: S307 (our own docs)
    small = config.replace(memory_slots=16, controller_size=8)
    model = NTM(small, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, small.input_size))
    y = (rng.random((2, 4, small.output_size)) > 0.5).astype(float)
    result = model.run(x, y)
    assert np.isfinite(result.loss) and all(np.all(np.isfinite(g)) for g in result.grads.values())
