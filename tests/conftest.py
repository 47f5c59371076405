"""Hypothesis profiles, chosen by the HYPOTHESIS_PROFILE environment variable.

    dev       (default on a developer's machine) few examples, fast feedback
    ci        (default when CI is set, as in .ci/run) derandomized, no deadline, 30 examples per test
    thorough  many more examples, for occasional deep runs: HYPOTHESIS_PROFILE=thorough python -m pytest
"""
import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=25, **_common)
# ci: every property of every op and convention runs, with fewer examples than thorough, so that the
# whole suite stays within a few minutes on a 2-core machine (200 examples took it to 21 minutes)
settings.register_profile("ci", max_examples=30, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=2000, **_common)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
