"""scripts/campaign.sh (the seed campaign of docs/results.md): every sweep it runs is a valid grid with the
seeds the campaign promises (ten for copy, five for associative recall and repeat copy per controller,
three for the LSTM baseline, N-grams and priority sort), and MINUTES raises every budget. DRY_RUN=1
prints the commands; they are parsed here by the CLI's own parser and planned (no Dask, nothing runs)."""
import os
import shlex
import subprocess
from collections import Counter

from ntm_ref import cli
from ntm_ref.sweep import plan_from_args

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "campaign.sh")


def commands(tmp_path, *parts, **env):
    out = subprocess.run(["bash", SCRIPT, str(tmp_path), *parts], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "DRY_RUN": "1", **env}, check=True).stdout
    return [shlex.split(line)[1:] for line in out.splitlines()]


def test_every_part_is_a_valid_grid_with_the_promised_seeds(tmp_path):
    seeds = Counter()
    for argv in commands(tmp_path):
        assert argv[0] == "sweep"
        for point in plan_from_args(cli.build_parser().parse_args(argv)):
            s = point.settings
            seeds[(s.task, s.model)] += 1
            assert s.max_minutes in (10.0, 12.0)
    assert seeds == {("copy", "ntm-ff"): 10, ("copy", "ntm-lstm"): 10, ("associative_recall", "ntm-ff"): 5,
                     ("associative_recall", "ntm-lstm"): 5, ("repeat_copy", "ntm-ff"): 5,
                     ("repeat_copy", "ntm-lstm"): 5, ("copy", "lstm"): 3, ("associative_recall", "lstm"): 3,
                     ("ngrams", "ntm-ff"): 3, ("priority_sort", "ntm-ff"): 3}


def test_minutes_raises_the_budget_of_the_parts_asked_for(tmp_path):
    (argv,) = commands(tmp_path, "copy-lstm", MINUTES="30")
    assert {p.settings.max_minutes for p in plan_from_args(cli.build_parser().parse_args(argv))} == {30.0}
    assert argv[argv.index("--out") + 1] == str(tmp_path / "copy-lstm")


def test_an_unknown_part_is_refused(tmp_path):
    result = subprocess.run(["bash", SCRIPT, str(tmp_path), "copy", "nope"], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "DRY_RUN": "1"})
    assert result.returncode == 2 and "unknown part: copy" in result.stderr
