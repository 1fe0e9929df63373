"""
The wheel, built from the checkout the way `pip` builds it for an index (an isolated build
environment with hatchling), and a virtualenv outside the checkout holding only that wheel and
the dependencies it declares, from the package index: what a site gets from
`pip install django-live-notifications`.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from ..relay import BASE_DIR

COMMAND_TIMEOUT = 120  # seconds: a `manage.py` command on a busy 2-core machine
INSTALL_TIMEOUT = 600  # building and installing with the index's packages, caches cold
# Variables of the test run that would let a process of the site import from the checkout or
# configure it like the demo site; the site's processes never inherit them.
INHERITED_NOT = ("PYTHON", "DJANGO_", "WSSERVER_", "NOTIFICATIONS_", "VIRTUAL_ENV", "REDIS_URL", "DATABASE_URL")


def clean_env(**variables):
    """The environment of a process of the site: the test run's, less INHERITED_NOT, plus `variables`."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(INHERITED_NOT)}
    return {**inherited, "PYTHONUNBUFFERED": "1", **variables}


def run(argv, cwd, env=None, timeout=COMMAND_TIMEOUT):
    """Run a command to its end, outside the checkout; its stdout, or a failure showing all it said."""
    argv = [str(arg) for arg in argv]
    result = subprocess.run(
        argv, cwd=cwd, env=env or clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(argv)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def build_wheel(directory):
    """The checkout's wheel, built into `directory`."""
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", directory, BASE_DIR]
    run(pip_wheel, directory, timeout=INSTALL_TIMEOUT)
    (wheel,) = Path(directory).glob("*.whl")
    return wheel


def wheel_files(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def wheel_requirements(wheel):
    """The wheel's Requires-Dist lines, as its METADATA states them."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    return [line.removeprefix("Requires-Dist: ") for line in lines if line.startswith("Requires-Dist: ")]


def create_venv(directory, wheel):
    """
    A virtualenv in `directory` (no system site packages) with `wheel` installed; its python.
    The test run's pip installs into it (`pip --python`), which spares the virtualenv a pip of
    its own: the same install, seconds sooner.
    """
    run([sys.executable, "-m", "venv", "--without-pip", directory], directory.parent)
    python = Path(directory) / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", wheel], directory.parent, timeout=INSTALL_TIMEOUT)
    return python


def import_origins(python, modules, cwd):
    """{module: the file it is imported from, or None if it is not installed}, in the virtualenv."""
    script = (
        "import importlib.util, json, sys\n"
        "specs = {name: importlib.util.find_spec(name) for name in sys.argv[1:]}\n"
        "print(json.dumps({'path': sys.path, 'origins': {name: spec and spec.origin for name, spec in specs.items()}}))\n"
    )
    found = json.loads(run([python, "-c", script, *modules], cwd))
    return found["path"], found["origins"]
