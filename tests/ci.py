"""Tests that need a system package: skipped on a machine without it, except in CI, where they must run."""

import os

import pytest


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def unavailable(reason, package, tests):
    """Skip for lack of Debian's `package`; in CI (CI=true), where `tests` must run, fail instead."""
    if in_ci():
        pytest.fail(f"{reason}. {tests} must run in CI: .ci/run installs {package} with apt-get.")
    pytest.skip(f"{reason} (apt-get install {package} to run {tests.lower()})")
