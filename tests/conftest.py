"""Hypothesis profiles, chosen by the HYPOTHESIS_PROFILE environment variable.

    dev       (default on a developer's machine) few examples, fast feedback
    ci        (default when CI is set, as in .ci/run) derandomized, no deadline, 200 examples per test
    thorough  many more examples, for occasional deep runs: HYPOTHESIS_PROFILE=thorough python -m pytest
"""
import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=25, **_common)
settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=2000, **_common)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
