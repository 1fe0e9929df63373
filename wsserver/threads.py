"""
Running Django's blocking ORM calls off the event loop.

Sessions, users and permissions are loaded in a small pool of threads, each with its own
database connection; close_old_connections() before each call drops connections that broke or
outlived CONN_MAX_AGE, as Django does at the start of every request. Replays from the database
have a pool of their own, and so have the re-checks of many connections at once (after a Redis
outage, and periodically), and so has Web Push, whose POSTs wait on push services: however many
there are, handshakes and subscriptions never wait behind them.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections


def _call(function, args):
    close_old_connections()
    return function(*args)


def _runner(threads, name, purpose):
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    async def run(function, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, _call, function, args)

    run.__doc__ = f"Await function(*args), run in the thread pool of {purpose}."
    return run


run_sync = _runner(4, "wsserver-orm", "handshakes, subscriptions and single re-checks")
run_replay = _runner(2, "wsserver-replay", "replays")
run_in_background = _runner(1, "wsserver-recheck", "re-checks of many connections")
run_push = _runner(8, "wsserver-push", "Web Push: choosing recipients, and the POSTs to push services")
