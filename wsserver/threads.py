"""
Running Django's blocking ORM calls off the event loop.

Sessions, users and permissions are loaded in a small pool of threads, each with its own
database connection; close_old_connections() before each call drops connections that broke or
outlived CONN_MAX_AGE, as Django does at the start of every request. Replays from the database
have a pool of their own: however many clients resume at once, handshakes and subscriptions
never wait behind them.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wsserver-orm")
_replay_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wsserver-replay")


def _call(function, args):
    close_old_connections()
    return function(*args)


async def run_sync(function, *args):
    """Await function(*args), run in the ORM thread pool."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _call, function, args)


async def run_replay(function, *args):
    """Await function(*args), run in the replays' thread pool."""
    return await asyncio.get_running_loop().run_in_executor(_replay_pool, _call, function, args)
