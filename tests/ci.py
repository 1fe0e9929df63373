"""Tests that need a system package: skipped on a machine without it, except in CI, where they must run."""

import os
import shutil

import pytest


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def unavailable(reason, package, tests, install=None):
    """
    Skip for lack of `package` (Debian's, installed with apt-get unless `install` says how);
    in CI (CI=true), where `tests` must run, fail instead.
    """
    install = install or f"apt-get install {package}"
    if in_ci():
        pytest.fail(f"{reason}. {tests} must run in CI: .ci/run installs {package} ({install}).")
    pytest.skip(f"{reason} ({install} to run {tests.lower()})")


def system_command(name, package, tests):
    """The path of the command `name`, from Debian's `package`; without it, as unavailable()."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed", package, tests)
    return path
