"""The docs' code stays true: every NTMConfig(...) block in docs/conventions.md builds and runs, and every code
line the derivation pages quote is still at the line they name."""
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


# The derivation pages and the fewest quotes each must hold (fewer means quotes were lost or no longer parse).
DERIVATION_PAGES = {"derivations.md": 200, "derivations-conventions.md": 40}
SOURCE = os.path.join(DOCS, "..", "ntm_ref")
QUOTE = re.compile(r"`([^`]+)`\s*\(([\w./]*):(\d+)(?:-(\d+))?\)")
FILE_OF_HEADING = re.compile(r"`ntm_ref/([\w/]+\.py)`")


def derivation_quotes(page):
    """Every `code` (:N), (:N-M), (file.py:N) or (file.py:N-M) quote of a derivations page, with its file.

    A quote that names no file takes the one named (as `ntm_ref/<file>.py`) in its heading: a "## " heading
    names the file of its whole section, a "### " heading that names one overrides it for that subsection.
    -> [(page line, file name or None, quoted text, first line, last line)].
    """
    section = current = None
    quotes = []
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        text = f.read().split("\n")
    for n, line in enumerate(text, 1):
        if line.startswith(("## ", "### ")):
            named = FILE_OF_HEADING.search(line)
            if line.startswith("## "):
                section = current = named.group(1) if named else None
            else:
                current = named.group(1) if named else section
        for m in QUOTE.finditer(line):
            first = int(m.group(3))
            quotes.append((n, m.group(2) or current, m.group(1), first, int(m.group(4) or first)))
    return quotes


def stale_quotes(page):
    """The quotes of ``page`` whose file is unknown or missing, or whose lines no longer hold the text."""
    stale, sources = [], {}
    for n, name, quote, first, last in derivation_quotes(page):
        path = os.path.join(SOURCE, name) if name else None
        if path is None or not os.path.isfile(path):
            stale.append(f"{page}:{n}: {quote!r} names no file of ntm_ref/ (got {name!r})")
            continue
        if path not in sources:
            with open(path, encoding="utf-8") as f:
                sources[path] = f.read().split("\n")
        if first < 1 or last < first or quote not in "\n".join(sources[path][first - 1:last]):
            stale.append(f"{page}:{n}: {name}:{first}-{last} no longer holds {quote!r}")
    return stale


@pytest.mark.parametrize("page", sorted(DERIVATION_PAGES))
def test_derivations_quote_the_code_at_the_lines_they_name(page):
    """The derivation pages match each formula to a quoted code line: the quote must still be there."""
    found = len(derivation_quotes(page))
    assert found >= DERIVATION_PAGES[page], f"{page}: {found} quotes found, expected at least {DERIVATION_PAGES[page]}"
    stale = stale_quotes(page)
    assert not stale, "\n".join(stale)


def test_pytorch_ntm_block_is_what_the_importer_makes():
    """conventions.md's pytorch-ntm settings are ntm_ref.interop's for the latest revision, field by field."""
    from ntm_ref.interop import PYTORCH_NTM_CONVENTIONS, find_revision
    config = eval(BLOCKS[0], {"NTMConfig": NTMConfig})           # noqa: S307 (our own docs)
    expected = {**PYTORCH_NTM_CONVENTIONS, **find_revision("3c64937").activations}
    assert {k: getattr(config, k) for k in expected} == expected
