"""The package's modules form layers: each imports only from layers below it, lazy imports inside functions
included, so data flows one way -- the command line -> training and traces -> the model class -> an
engine (engines.fast, engines.parallel, or the reference step functions) -> the operations. No engine imports the module
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
    ("engines.fast", "lstm_baseline"),
    ("engines.parallel",),
    ("model",),
    ("limits",),
    ("interop", "trace"),
    ("compare", "train", "walkthrough"),
    ("evaluate", "plots", "sweep"),
    ("report",),
    ("cli",),
]
LAYER = {module: n for n, modules in enumerate(LAYERS) for module in modules}


PACKAGES = ("engines",)     # subpackages: their modules are named "engines.fast", ...


def _module_name(dotted):
    """'ntm_ref.engines.fast' -> 'engines.fast'; 'ntm_ref.model.NTM' style suffixes are not modules."""
    parts = dotted.split(".")[1:]
    return ".".join(parts[:2]) if parts and parts[0] in PACKAGES else (parts[0] if parts else None)


def imported_modules(path):
    """Every ntm_ref module a file imports, anywhere in it (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ntm_ref":
            parts = node.module.split(".")
            if len(parts) == 1 or (len(parts) == 2 and parts[1] in PACKAGES):   # from ntm_ref(.pkg) import x
                prefix = "" if len(parts) == 1 else parts[1] + "."
                found |= {prefix + a.name for a in node.names}
            else:
                found.add(_module_name(node.module))
        elif isinstance(node, ast.Import):
            found |= {_module_name(a.name) for a in node.names if a.name.startswith("ntm_ref.")}
    return found


def _files():
    """module name -> path, for every module of the package (subpackages' __init__ excluded)."""
    out = {}
    for dirpath, _, names in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        for f in names:
            if f.endswith(".py") and f != "__init__.py":
                out[(f[:-3] if rel == "." else f"{rel.replace(os.sep, '.')}.{f[:-3]}")] = os.path.join(dirpath, f)
    return out


def test_every_module_has_a_layer():
    assert set(_files()) == set(LAYER)


@pytest.mark.parametrize("module", sorted(LAYER))
def test_imports_only_from_below(module):
    above = {m for m in imported_modules(_files()[module]) if LAYER[m] >= LAYER[module]}
    assert not above, f"ntm_ref.{module} (layer {LAYER[module]}) imports {sorted(above)} from its own layer or above"


def test_the_check_sees_a_lazy_import(tmp_path):
    """The test can fail: an import inside a function is found like one at the top."""
    path = tmp_path / "engine.py"
    path.write_text("def run():\n    from ntm_ref.model import NTM\n    return NTM\n")
    assert imported_modules(str(path)) == {"model"}


def test_the_check_sees_the_engines_subpackage():
    """The engines' modules are seen under their own names, whichever import form names them."""
    assert {"engines.fast", "engines.parallel"} <= imported_modules(_files()["model"])
    assert "engines.fast" in imported_modules(_files()["engines.parallel"])
