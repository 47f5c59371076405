"""A small mutation runner: plant one one-line mutant at a time in a copy of the repository, run the tests
that cover the mutated module, and report which mutants no test noticed (docs/mutation.md).

    python scripts/mutate.py --modules ntm_ref/checkpoint.py ntm_ref/compare.py --max-per-file 15
    python scripts/mutate.py --modules ntm_ref/optim.py --list          # the mutants only, nothing run

The repository is copied to a temporary folder first (without .git and caches); every mutant is written
there and only there, and the tests run there (cwd and PYTHONPATH both the copy, checked before the first
run), so the working tree is never touched. A mutant is a small edit found with the ``ast`` module and
applied to the exact operator token, so it always parses:

    comparisons     == <-> !=,  < <-> <=,  > <-> >=,  is <-> is not,  in <-> not in
    arithmetic      + <-> -,  * <-> /,  // -> /,  ** -> *   (also in +=, -=, *=, /=; not on string literals)
    logic           and <-> or,  drop a `not`,  drop a unary minus,  True <-> False
    constants       0 <-> 1,  0.0 <-> 1.0,  any other float c -> 100 c (tolerances, epsilons, limits)
    calls           min <-> max,  np.minimum <-> np.maximum
    exceptions      except BaseException -> except Exception
    attributes      .shape -> .size

Each mutant runs ``python -m pytest <tests> -x -q -n 0 -p no:randomly`` with a timeout. The tests come from
TESTS_FOR (module -> test files), or the whole suite for a module not in it. A mutant is "killed" when the
tests fail (or cannot even be collected), "survived" when they pass, "timed out" when they run past the
timeout (an endless loop is noticed too), "error" when pytest itself fails (exit 3-5). The kill rate is
(killed + timed out) / (mutants - errors). A line ending in ``# pragma: no mutate`` is never mutated.

Exit status: 0 after a full report, 2 for a bad option or when a module's tests fail before any mutation.
"""
import argparse
import ast
import bisect
import io
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize
from typing import List, NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CORE_MODULES = ("ntm_ref/activations.py", "ntm_ref/addressing.py", "ntm_ref/checkpoint.py", "ntm_ref/compare.py",
                "ntm_ref/config.py", "ntm_ref/controller.py", "ntm_ref/engines/fast.py", "ntm_ref/heads.py",
                "ntm_ref/linear.py", "ntm_ref/loss.py", "ntm_ref/memory.py", "ntm_ref/model.py", "ntm_ref/optim.py",
                "ntm_ref/state.py", "ntm_ref/trace.py")   # (the default: those of them that exist)

# module -> the test files that exercise it (missing files are dropped; no entry: the whole suite)
TESTS_FOR = {
    "ntm_ref/activations.py": ("test_activations.py", "test_fast.py", "test_mutants.py"),
    "ntm_ref/addressing.py": ("test_addressing.py", "test_conventions.py", "test_model.py"),
    "ntm_ref/checkpoint.py": ("test_checkpoint.py", "test_mutants.py", "test_hardening_io.py", "test_train.py"),
    "ntm_ref/compare.py": ("test_mutants.py", "test_trace.py", "test_golden.py", "test_hardening_io.py"),
    "ntm_ref/config.py": ("test_config.py", "test_docs.py", "test_mutants.py"),
    "ntm_ref/controller.py": ("test_layers.py", "test_model.py", "test_lstm_baseline.py"),
    "ntm_ref/count.py": ("test_config.py",),
    "ntm_ref/engines/fast.py": ("test_fast.py", "test_mutants.py", "test_parallel.py"),
    "ntm_ref/engines/parallel.py": ("test_parallel.py",),
    "ntm_ref/heads.py": ("test_mutants.py", "test_model.py", "test_fast.py"),
    "ntm_ref/interop.py": ("test_interop.py",),
    "ntm_ref/linear.py": ("test_layers.py", "test_model.py", "test_lstm_baseline.py"),
    "ntm_ref/loss.py": ("test_model.py", "test_tasks.py"),
    "ntm_ref/lstm_baseline.py": ("test_lstm_baseline.py",),
    "ntm_ref/memory.py": ("test_memory.py", "test_model.py"),
    "ntm_ref/model.py": ("test_model.py", "test_from_arrays.py", "test_mutants.py", "test_fast.py"),
    "ntm_ref/optim.py": ("test_optim.py", "test_mutants.py"),
    "ntm_ref/state.py": ("test_model.py", "test_fast.py"),
    "ntm_ref/trace.py": ("test_trace.py", "test_golden.py"),
    "ntm_ref/train.py": ("test_train.py", "test_train_robust.py"),
}

IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".hypothesis",
                                 "build", "dist")
PRAGMA = "# pragma: no mutate"

COMPARE_SWAP = {ast.Eq: "!=", ast.NotEq: "==", ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">",
                ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in"}
BINOP_SWAP = {ast.Add: "-", ast.Sub: "+", ast.Mult: "/", ast.Div: "*", ast.FloorDiv: "/", ast.Pow: "*"}
AUGOP_SWAP = {ast.Add: "-=", ast.Sub: "+=", ast.Mult: "/=", ast.Div: "*="}
CALL_SWAP = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum"}


class UserError(Exception):
    """A bad option: printed as one line, exit status 2."""


class Mutant(NamedTuple):
    path: str          # relative to the repository, e.g. ntm_ref/checkpoint.py
    line: int          # 1-based
    start: int         # byte offsets in the file of the replaced text
    stop: int
    original: str      # the replaced text
    replacement: str
    kind: str          # e.g. "compare", "binop", "constant"

    def apply(self, source: bytes) -> bytes:
        return source[:self.start] + self.replacement.encode() + source[self.stop:]

    def lines(self, source: bytes):
        """(original line, mutated line), both stripped."""
        begin = source.rfind(b"\n", 0, self.start) + 1
        end = source.find(b"\n", self.stop)
        end = len(source) if end < 0 else end
        line = source[begin:end]
        mutated = line[:self.start - begin] + self.replacement.encode() + line[self.stop - begin:]
        return line.decode().strip(), mutated.decode().strip()


# ---------------------------------------------------------------------------------------------------------
# finding mutants
# ---------------------------------------------------------------------------------------------------------

class _Source:
    """A module's bytes, its tokens with byte offsets, and line starts (ast columns are UTF-8 bytes)."""

    def __init__(self, source: bytes):
        self.data = source
        text = source.decode()
        lines = io.StringIO(text).readlines()
        self.line_start = [0]
        for line in lines:
            self.line_start.append(self.line_start[-1] + len(line.encode()))
        self.tokens = []   # (start, stop, type, string)
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.OP, tokenize.NAME, tokenize.NUMBER):
                self.tokens.append((self._offset(lines, *tok.start), self._offset(lines, *tok.end), tok.type,
                                    tok.string))
        self.token_starts = [t[0] for t in self.tokens]     # increasing: tokenize goes forward

    def _offset(self, lines, row, col):
        return self.line_start[row - 1] + len(lines[row - 1][:col].encode()) if row <= len(lines) else \
            self.line_start[-1]

    def start(self, node):
        return self.line_start[node.lineno - 1] + node.col_offset

    def stop(self, node):
        return self.line_start[node.end_lineno - 1] + node.end_col_offset

    def tokens_between(self, lo, hi):
        """The tokens inside [lo, hi), parentheses left out."""
        first = bisect.bisect_left(self.token_starts, lo)
        last = bisect.bisect_left(self.token_starts, hi)
        return [t for t in self.tokens[first:last] if t[1] <= hi and t[3] not in ("(", ")")]

    def token_after(self, offset):
        """The first token starting at or after ``offset`` (None at the end)."""
        i = bisect.bisect_left(self.token_starts, offset)
        return self.tokens[i] if i < len(self.tokens) else None

    def line_of(self, offset):
        """1-based line number of a byte offset."""
        return bisect.bisect_right(self.line_start, offset)


def _is_text(node):
    """A string literal, an f-string, or a sum (or % format) with one of them in it: text, not numbers."""
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))


def _candidates(tree, src: _Source):
    """Yield (start, stop, replacement, kind) for every mutation site of the module."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):          # f-string internals: positions unreliable, skipped
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                toks = src.tokens_between(src.stop(left), src.start(right))
                if toks and type(op) in COMPARE_SWAP:
                    yield toks[0][0], toks[-1][1], COMPARE_SWAP[type(op)], "compare"
                left = right
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
            if _is_text(node.left) or _is_text(node.right):
                continue                              # string concatenation: a TypeError, not a test
            toks = src.tokens_between(src.stop(node.left), src.start(node.right))
            if len(toks) == 1:
                yield toks[0][0], toks[0][1], BINOP_SWAP[type(node.op)], "binop"
        elif isinstance(node, ast.AugAssign) and type(node.op) in AUGOP_SWAP:
            toks = src.tokens_between(src.stop(node.target), src.start(node.value))
            if len(toks) == 1:
                yield toks[0][0], toks[0][1], AUGOP_SWAP[type(node.op)], "augassign"
        elif isinstance(node, ast.BoolOp):
            swap = "or" if isinstance(node.op, ast.And) else "and"
            for a, b in zip(node.values, node.values[1:]):
                toks = src.tokens_between(src.stop(a), src.start(b))
                if len(toks) == 1:
                    yield toks[0][0], toks[0][1], swap, "boolop"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            begin = src.start(node)
            after = src.token_after(begin + 1)
            if after is not None and after[0] <= src.start(node.operand):
                yield begin, after[0], "", "drop-not" if isinstance(node.op, ast.Not) else "drop-minus"
        elif isinstance(node, ast.Constant):
            value = node.value
            if value is True or value is False:
                yield src.start(node), src.stop(node), str(not value), "constant"
            elif type(value) in (int, float) and value in (0, 1):
                new = {0: "1", 1: "0"}[int(value)] if type(value) is int else ("1.0" if value == 0 else "0.0")
                yield src.start(node), src.stop(node), new, "constant"
            elif type(value) is float and math.isfinite(value):      # a tolerance, an epsilon, a limit
                yield src.start(node), src.stop(node), repr(value * 100), "constant-x100"
        elif isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name) \
                and node.type.id == "BaseException":
            yield src.start(node.type), src.stop(node.type), "Exception", "except"
        elif isinstance(node, ast.Attribute) and node.attr == "shape":
            yield src.stop(node) - len("shape"), src.stop(node), "size", "attribute"
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("min", "max"):
                yield src.start(f), src.stop(f), CALL_SWAP[f.id], "call"
            elif isinstance(f, ast.Attribute) and f.attr in ("minimum", "maximum"):
                yield src.stop(f) - len(f.attr), src.stop(f), CALL_SWAP[f.attr], "call"


def find_mutants(path: str, source: bytes) -> List[Mutant]:
    """Every valid one-line mutant of one module, in source order (each one parses, and changes the AST)."""
    tree = ast.parse(source)
    src = _Source(source)
    reference = ast.dump(tree)
    mutants, seen = [], set()
    for start, stop, replacement, kind in _candidates(tree, src):
        original = source[start:stop].decode()
        line = src.line_of(start)
        if (start, stop, replacement) in seen or b"\n" in source[start:stop] or original == replacement:
            continue
        end_of_line = source.find(b"\n", start)
        if source[start:len(source) if end_of_line < 0 else end_of_line].rstrip().endswith(PRAGMA.encode()):
            continue
        mutant = Mutant(path, line, start, stop, original, replacement, kind)
        try:
            changed = ast.dump(ast.parse(mutant.apply(source))) != reference
        except SyntaxError:
            changed = False
        if changed:
            seen.add((start, stop, replacement))
            mutants.append(mutant)
    return sorted(mutants, key=lambda m: (m.start, m.replacement))


def choose(mutants, max_per_file, seed):
    """At most max_per_file mutants (0: all), a seeded random sample, kept in source order."""
    if max_per_file and len(mutants) > max_per_file:
        mutants = random.Random(seed).sample(mutants, max_per_file)
    return sorted(mutants, key=lambda m: (m.start, m.replacement))


# ---------------------------------------------------------------------------------------------------------
# running the tests in the copy
# ---------------------------------------------------------------------------------------------------------

class Outcome(NamedTuple):
    status: str        # "killed", "survived", "timeout", "error"
    seconds: float
    detail: str        # the last line pytest printed


def _environment(copy):
    env = dict(os.environ, PYTHONPATH=copy, PYTHONDONTWRITEBYTECODE="1")   # no stale .pyc of a mutant
    env.setdefault("HYPOTHESIS_PROFILE", "ci")                             # derandomized: repeatable
    return env


def check_copy_is_imported(copy):
    """Refuse to run unless `import ntm_ref` in the copy's environment finds the copy."""
    found = subprocess.run([sys.executable, "-c", "import ntm_ref; print(ntm_ref.__file__)"], cwd=copy,
                           env=_environment(copy), capture_output=True, text=True).stdout.strip()
    if not os.path.realpath(found).startswith(os.path.realpath(copy) + os.sep):
        raise UserError(f"the copy {copy} is not what `import ntm_ref` finds there (found {found!r}); "
                        f"nothing was run")


def run_tests(copy, tests, timeout) -> Outcome:
    """pytest on ``tests`` (paths relative to the copy), stopping at the first failure."""
    cmd = [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-n", "0", "-p", "no:randomly"]
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=copy, env=_environment(copy), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)          # the pytest process we started, and its children
        proc.communicate()
        return Outcome("timeout", time.monotonic() - began, f"over {timeout:.0f} s")
    except BaseException:                            # Ctrl-C: its own session does not get the SIGINT
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    seconds = time.monotonic() - began
    last = next((line for line in reversed(out.splitlines()) if line.strip()), "")
    status = {0: "survived", 1: "killed", 2: "killed"}.get(proc.returncode, "error")
    return Outcome(status, seconds, last.strip()[:160])


def tests_for(module, copy, override=None):
    """The test files for a module (relative paths), or ["tests"] (the whole suite)."""
    if override:
        return list(override)
    names = [n for n in TESTS_FOR.get(module, ()) if os.path.exists(os.path.join(copy, "tests", n))]
    return [f"tests/{n}" for n in names] or ["tests"]


# ---------------------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------------------

def summarise(results):
    """results: [(Mutant, Outcome)] -> per-file counts {path: dict}."""
    table = {}
    for mutant, outcome in results:
        row = table.setdefault(mutant.path, {"mutants": 0, "killed": 0, "survived": 0, "timeout": 0, "error": 0})
        row["mutants"] += 1
        row[outcome.status] += 1
    for row in table.values():
        judged = row["mutants"] - row["error"]
        row["kill_rate"] = (row["killed"] + row["timeout"]) / judged if judged else None
    return table


def format_report(results, sources, skipped):
    table = summarise(results)
    head = f"{'file':28s} {'mutants':>7s} {'killed':>6s} {'survived':>8s} {'timed out':>9s} {'error':>5s} {'kill rate':>9s}"
    lines = ["", head, "-" * len(head)]
    totals = {"mutants": 0, "killed": 0, "survived": 0, "timeout": 0, "error": 0}
    for path, row in table.items():
        rate = "-" if row["kill_rate"] is None else f"{100 * row['kill_rate']:.1f}%"
        lines.append(f"{path:28s} {row['mutants']:7d} {row['killed']:6d} {row['survived']:8d} {row['timeout']:9d} "
                     f"{row['error']:5d} {rate:>9s}")
        for k in totals:
            totals[k] += row[k]
    judged = totals["mutants"] - totals["error"]
    rate = f"{100 * (totals['killed'] + totals['timeout']) / judged:.1f}%" if judged else "-"
    lines.append(f"{'total':28s} {totals['mutants']:7d} {totals['killed']:6d} {totals['survived']:8d} "
                 f"{totals['timeout']:9d} {totals['error']:5d} {rate:>9s}")
    for path, why in skipped:
        lines.append(f"{path}: not run: {why}")
    survivors = [m for m, o in results if o.status == "survived"]
    lines += ["", f"survivors ({len(survivors)}): no test noticed these changes"]
    for m in survivors:
        before, after = m.lines(sources[m.path])
        lines.append(f"  {m.path}:{m.line}  [{m.kind}] {m.original!r} -> {m.replacement!r}")
        lines.append(f"      - {before}")
        lines.append(f"      + {after}")
    errors = [(m, o) for m, o in results if o.status == "error"]
    for m, o in errors:
        lines.append(f"  error: {m.path}:{m.line} {m.original!r} -> {m.replacement!r}: {o.detail}")
    return "\n".join(lines)


def to_json(results, command):
    return json.dumps({
        "command": command,
        "files": summarise(results),
        "mutants": [{"path": m.path, "line": m.line, "kind": m.kind, "original": m.original,
                     "replacement": m.replacement, "status": o.status, "seconds": round(o.seconds, 2)}
                    for m, o in results],
    }, indent=1)


# ---------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", metavar="PATH",
                   default=[m for m in CORE_MODULES if os.path.isfile(os.path.join(REPO, m))],
                   help="modules to mutate, relative to the repository (default: the core ntm_ref modules)")
    p.add_argument("--max-per-file", type=int, default=20, metavar="K",
                   help="at most K mutants per module, a random sample (0: all; default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per mutant (default: 4 x the module's unmutated test time, at least 60 s)")
    p.add_argument("--tests", nargs="+", default=None, metavar="PATH",
                   help="run these test files for every module instead of the mapping (relative paths)")
    p.add_argument("--list", action="store_true", help="list the chosen mutants and stop (nothing is run)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = p.parse_args(argv)
    if args.max_per_file < 0:
        raise UserError(f"--max-per-file: got {args.max_per_file}; must be >= 0 (0: all)")
    if args.timeout is not None and not args.timeout > 0:
        raise UserError(f"--timeout: got {args.timeout}; must be > 0 seconds")
    args.modules = [_relative(m) for m in args.modules]
    for module in args.modules:
        full = os.path.join(REPO, module)
        if os.path.isabs(module) or not module.endswith(".py") or not os.path.isfile(full):
            raise UserError(f"--modules: {module}: not a .py file of the repository (paths are relative to "
                            f"{REPO}, e.g. ntm_ref/checkpoint.py)")
    args.tests = None if args.tests is None else [_relative(t) for t in args.tests]
    for test in args.tests or ():
        if os.path.isabs(test) or not os.path.exists(os.path.join(REPO, test)):
            raise UserError(f"--tests: {test}: no such path in the repository (relative paths, e.g. tests/test_optim.py)")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise UserError(f"--json: {args.json}: its folder does not exist")
    return args


def _relative(path):
    """A path inside the repository given absolute (or with ./), as the repository-relative path."""
    full = os.path.realpath(path) if os.path.isabs(path) else os.path.normpath(path)
    if os.path.isabs(full) and full.startswith(os.path.realpath(REPO) + os.sep):
        return os.path.relpath(full, os.path.realpath(REPO))
    return full


def mutate_module(module, mutants, source, copy, tests, timeout, log):
    """Run every mutant of one module in the copy; the copy's file is restored after each.  -> [(Mutant, Outcome)]."""
    target = os.path.realpath(os.path.join(copy, module))
    if not target.startswith(os.path.realpath(copy) + os.sep) or target.startswith(os.path.realpath(REPO) + os.sep):
        raise RuntimeError(f"refusing to write {target}: not inside the temporary copy")
    results = []
    try:
        for i, mutant in enumerate(mutants, 1):
            with open(target, "wb") as f:
                f.write(mutant.apply(source))
            outcome = run_tests(copy, tests, timeout)
            results.append((mutant, outcome))
            after = mutant.lines(source)[1]
            log(f"  [{i:3d}/{len(mutants)}] {outcome.status.upper():8s} line {mutant.line:4d} "
                f"{mutant.original!r} -> {mutant.replacement!r}  ({outcome.seconds:.1f} s)   {after[:70]}")
    finally:
        with open(target, "wb") as f:
            f.write(source)
    return results


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UserError as err:
        print(f"mutate.py: {err}", file=sys.stderr)
        return 2
    command = "python scripts/mutate.py " + " ".join(sys.argv[1:] if argv is None else argv)
    sources = {m: open(os.path.join(REPO, m), "rb").read() for m in args.modules}
    chosen = {}
    for module in args.modules:
        found = find_mutants(module, sources[module])
        chosen[module] = choose(found, args.max_per_file, args.seed)
        print(f"{module}: {len(found)} mutants found, {len(chosen[module])} chosen")
    if args.list:
        for module, mutants in chosen.items():
            for m in mutants:
                print(f"  {module}:{m.line}  [{m.kind}] {m.original!r} -> {m.replacement!r}   "
                      f"{m.lines(sources[module])[1]}")
        return 0
    copy = tempfile.mkdtemp(prefix="ntm-mutate-")
    results, skipped, status = [], [], 0
    began = time.monotonic()
    try:
        shutil.copytree(REPO, copy, ignore=IGNORED, dirs_exist_ok=True)
        check_copy_is_imported(copy)
        print(f"copy of {REPO} in {copy}; ntm_ref imported from the copy")
        for module in args.modules:
            tests = tests_for(module, copy, args.tests)
            baseline = run_tests(copy, tests, timeout=args.timeout or 1800)
            if baseline.status != "survived":
                skipped.append((module, f"its tests do not pass unmutated ({baseline.status}: {baseline.detail})"))
                status = 2
                print(f"{module}: SKIPPED, the unmutated tests do not pass: {baseline.detail}")
                continue
            timeout = args.timeout or max(60.0, 4 * baseline.seconds)
            print(f"{module}: {len(chosen[module])} mutants; tests {' '.join(tests)} "
                  f"(unmutated {baseline.seconds:.1f} s, timeout {timeout:.0f} s)")
            results += mutate_module(module, chosen[module], sources[module], copy, tests, timeout, print)
    except UserError as err:
        print(f"mutate.py: {err}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept the copy: {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)
    print(format_report(results, sources, skipped))
    print(f"\n{len(results)} mutants in {time.monotonic() - began:.0f} s; command: {command}")
    if args.json:
        with open(args.json, "w") as f:
            f.write(to_json(results, command))
    return status


if __name__ == "__main__":
    sys.exit(main())
