import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("DATAMARKETS_NO_PROGRESS", "1")

import pytest
from hypothesis import HealthCheck, settings

from helpers import run_main

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def cli(capsys):
    """Run ``datamarkets ARGS...`` in process (:func:`helpers.run_main`): (exit code, stdout, stderr)."""

    def run(*args: object) -> tuple[int, str, str]:
        return run_main(capsys, *args)

    return run
