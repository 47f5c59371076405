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


def derivation_quotes():
    """Every `code` (:N) or (:N-M) quote of docs/derivations.md, with the file its section is about."""
    root = os.path.join(DOCS, "..", "ntm_ref")
    current, quotes = None, []
    for n, line in enumerate(open(os.path.join(DOCS, "derivations.md"), encoding="utf-8"), 1):
        section = re.match(r"## (\d+)\.", line)
        if section:
            number = int(section.group(1))
            current = "activations.py" if number == 1 else "memory.py" if number >= 8 else "addressing.py"
        elif line.startswith("## Summary"):
            current = "addressing.py"
        if current is None:
            continue
        for m in re.finditer(r"`([^`]+)`\s*\(:(\d+)(?:-(\d+))?\)", line):
            quotes.append((n, os.path.join(root, current), m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))))
    return quotes


def test_derivations_quote_the_code_at_the_lines_they_name():
    """docs/derivations.md matches each formula to a quoted code line: the quote must still be there."""
    quotes = derivation_quotes()
    assert len(quotes) > 80
    stale = []
    for n, path, quote, first, last in quotes:
        lines = open(path, encoding="utf-8").read().split("\n")[first - 1:last]
        if quote not in "\n".join(lines):
            stale.append(f"derivations.md:{n}: {os.path.basename(path)}:{first}-{last} no longer holds {quote!r}")
    assert not stale, "\n".join(stale)


def test_pytorch_ntm_block_is_what_the_importer_makes():
    """conventions.md's pytorch-ntm settings are ntm_ref.interop's for the latest revision, field by field."""
    from ntm_ref.interop import PYTORCH_NTM_CONVENTIONS, find_revision
    config = eval(BLOCKS[0], {"NTMConfig": NTMConfig})           # noqa: S307 (our own docs)
    expected = {**PYTORCH_NTM_CONVENTIONS, **find_revision("3c64937").activations}
    assert {k: getattr(config, k) for k in expected} == expected
