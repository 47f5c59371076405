"""The repository stands alone: no document or docstring points at files outside it, and every relative
link in the docs and the README leads to a file that exists."""
import os
import re

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUTSIDE = re.compile(r"\.\./shared|\bnotes/(paper|field-notes|style|gradcheck)\.md|\bseed/ntm-paper")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _files(exts):
    for folder in ("ntm_ref", "gradcheck", "tasks", "tests", "scripts", "benchmarks", "docs", "."):
        base = os.path.join(ROOT, folder)
        names = os.listdir(base) if folder == "." else [os.path.relpath(os.path.join(d, n), base)
                                                         for d, _, ns in os.walk(base) for n in ns]
        for name in names:
            path = os.path.join(base, name)
            if os.path.isfile(path) and name.endswith(exts):
                yield path


def test_nothing_points_outside_the_repository():
    here = os.path.abspath(__file__)
    found = [f"{os.path.relpath(p, ROOT)}:{n}: {line.strip()[:80]}"
             for p in set(_files((".py", ".md", ".txt", ".cfg", ".toml", ".ini"))) if os.path.abspath(p) != here
             for n, line in enumerate(open(p, encoding="utf-8", errors="replace"), 1) if OUTSIDE.search(line)]
    assert not found, "pointers outside the repository:\n" + "\n".join(sorted(found))


def test_every_relative_link_in_the_docs_exists():
    broken = []
    for p in _files((".md",)):
        for n, line in enumerate(open(p, encoding="utf-8"), 1):
            for target, _ in LINK.findall(re.sub(r"`[^`]*`", "", line)):     # not inside code
                if "://" in target or target.startswith("mailto:"):
                    continue
                if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(p), target))):
                    broken.append(f"{os.path.relpath(p, ROOT)}:{n}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_docs_commands_can_be_typed_in_order():
    """A reader typing a page's commands from the top never meets "exists; choose another path or pass
    --force": a trace written to a file an earlier command on the page wrote carries --force."""
    problems = []
    for p in _files((".md",)):
        written = set()
        for n, line in enumerate(open(p, encoding="utf-8"), 1):
            if line.startswith("## ") and not re.match(r"## ([2-9]|\d\d)\.", line):   # a new walk-through
                written = set()
            m = re.search(r"ntm-ref trace .*--out (\S+)", line)
            if not m or line.lstrip().startswith("$") or "next:" in line:   # transcripts, printed hints
                continue
            if m.group(1) in written and "--force" not in line:
                problems.append(f"{os.path.relpath(p, ROOT)}:{n}: {m.group(1)} again without --force")
            written.add(m.group(1))
    assert not problems, "\n".join(problems)


def test_every_package_is_installed():
    """setup.py lists every folder with an __init__.py: a package left out works in a clone (and in an
    editable install) but is missing after `pip install .`."""
    import ast
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    listed = next(set(ast.literal_eval(k.value)) for node in ast.walk(tree) if isinstance(node, ast.Call)
                  for k in node.keywords if k.arg == "packages")
    found = {os.path.relpath(d, ROOT).replace(os.sep, ".") for top in ("ntm_ref", "gradcheck", "tasks")
             for d, _, names in os.walk(os.path.join(ROOT, top)) if "__init__.py" in names}
    assert found == listed, f"packages found {sorted(found)}, setup.py lists {sorted(listed)}"


def test_results_quote_the_parameter_count_training_prints():
    """docs/results.md's LSTM baseline count is the one `ntm-ref train --task copy --model lstm` prints."""
    from ntm_ref.count import count_params
    from ntm_ref.train import TrainSettings, model_config
    n = count_params(model_config(TrainSettings(task="copy", model="lstm")), model="lstm")
    text = open(os.path.join(ROOT, "docs", "results.md"), encoding="utf-8").read()
    assert f"{n:,} parameters as training" in text, n
