"""The package's modules form layers: each imports only from layers below it, lazy imports inside functions
included, so data flows one way -- the command line -> training and traces -> the model class -> an
engine (fast, parallel, or the reference step functions) -> the operations. No engine imports the module
that chooses it."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ntm_ref")

# lowest first; a module may import only from modules of a strictly lower layer
LAYERS = [
    ("activations", "linear", "loss", "memory", "npzio", "optim"),
    ("checkpoint",),
    ("config", "addressing", "controller", "heads"),
    ("count", "state"),
    ("fast", "lstm_baseline"),
    ("parallel",),
    ("model",),
    ("limits",),
    ("interop", "trace"),
    ("compare", "train", "walkthrough"),
    ("evaluate", "plots", "sweep"),
    ("report",),
    ("cli",),
]
LAYER = {module: n for n, modules in enumerate(LAYERS) for module in modules}


def imported_modules(path):
    """Every ntm_ref module a file imports, anywhere in it (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ntm_ref":
            parts = node.module.split(".")
            found |= {a.name for a in node.names} if len(parts) == 1 else {parts[1]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ntm_ref.")}
    return found


def test_every_module_has_a_layer():
    modules = {f[:-3] for f in os.listdir(ROOT) if f.endswith(".py") and f != "__init__.py"}
    assert modules == set(LAYER)


@pytest.mark.parametrize("module", sorted(LAYER))
def test_imports_only_from_below(module):
    above = {m for m in imported_modules(os.path.join(ROOT, module + ".py")) if LAYER[m] >= LAYER[module]}
    assert not above, f"ntm_ref.{module} (layer {LAYER[module]}) imports {sorted(above)} from its own layer or above"


def test_the_check_sees_a_lazy_import(tmp_path):
    """The test can fail: an import inside a function is found like one at the top."""
    path = tmp_path / "engine.py"
    path.write_text("def run():\n    from ntm_ref.model import NTM\n    return NTM\n")
    assert imported_modules(str(path)) == {"model"}
