"""
Early pytest plugin (`-p tests.redis_server` in pytest.ini): the services the settings need.

pytest-django imports the settings in its own `pytest_load_initial_conftests`, before any
conftest.py runs, and project/settings.py needs REDIS_URL (outside DEBUG it raises; in DEBUG it
would point at the development Redis in the repo's .redis/, which tests must not touch). So this
plugin's tryfirst hook runs before pytest-django's and:

- starts a real redis-server on a unix socket in a temporary directory (notifications.devredis,
  the same launcher as the dev commands) unless REDIS_URL is already set, and exports its URL;
- points DATABASE_URL at a throwaway SQLite file unless it is set, so the repo's db.sqlite3 is
  never opened.

The SQLite *test* database goes in a file, so relay subprocesses can open the very database the
tests write to: the plugin notifications.testing.pytest does that (pytest.ini enables it), as for
any site.

With DATABASE_URL=postgres://... and/or REDIS_URL set, those servers are used instead.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_state = {"dir": None, "redis": None}


def work_dir():
    """The temporary directory of this test run (Redis socket, SQLite files, relay logs)."""
    return _state["dir"]


def controllable():
    """Whether this run started its own Redis, so tests may stop and restart it."""
    return _state["redis"] is not None


def stop_redis(lose_data=False):
    """Stop the run's Redis: gracefully (it saves its data), or killed with its data deleted."""
    from notifications import devredis

    if lose_data:
        kill_redis()
        (_state["dir"] / "redis" / "dump.rdb").unlink(missing_ok=True)
    else:
        process, _state["redis"] = _state["redis"], None
        devredis.stop(process)


def kill_redis():
    """Kill the run's Redis (SIGKILL): started again, it has its last snapshot (`SAVE`), not what came after."""
    process, _state["redis"] = _state["redis"], None
    process.kill()
    process.wait()


def start_redis():
    """Start the run's Redis again, on the same socket."""
    from notifications import devredis

    _state["redis"] = devredis.start(_state["dir"] / "redis")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if _state["dir"] is not None:
        return
    # A short path: unix socket paths are limited to about 100 bytes.
    _state["dir"] = Path(tempfile.mkdtemp(prefix="notif-tests-", dir="/tmp" if os.path.isdir("/tmp") else None))
    if not os.environ.get("REDIS_URL"):
        from notifications import devredis

        redis_dir = _state["dir"] / "redis"
        _state["redis"] = devredis.start(redis_dir)
        os.environ["REDIS_URL"] = devredis.url(redis_dir)
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{_state['dir'] / 'unused-main.sqlite3'}"


def pytest_unconfigure(config):
    if _state["redis"] is not None:
        from notifications import devredis

        devredis.stop(_state["redis"])
        _state["redis"] = None
    if _state["dir"] is not None:
        shutil.rmtree(_state["dir"], ignore_errors=True)
        _state["dir"] = None
