"""
Coalescing lookups: many coroutines awaiting the same kind of lookup (the session of each
handshake in a reconnect storm) share a few calls instead of making one each.
"""

import asyncio
from itertools import islice


class Batched:
    """
    Many callers, few calls: `await batched(key)` is `(await lookup(keys))[key]` (or None), where
    the keys asked for while `concurrency` lookups are running wait for the next one, which takes
    them all (up to `max_keys`). When idle, a lookup starts at once with one key; under load (a
    reconnect storm) a lookup's fixed cost, its queries, is paid once for many keys.
    """

    def __init__(self, lookup, concurrency=2, max_keys=200):
        self.lookup = lookup
        self.concurrency = concurrency
        self.max_keys = max_keys
        self._waiting = {}  # key → futures of the callers waiting for it
        self._running = 0
        self._tasks = set()  # the running lookups (the loop keeps only weak references)

    async def __call__(self, key):
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        self._start_calls()
        return await future

    def _start_calls(self):
        while self._waiting and self._running < self.concurrency:
            keys = list(islice(self._waiting, self.max_keys))
            waiting = {key: self._waiting.pop(key) for key in keys}
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._call(waiting))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, waiting):
        try:
            results = await self.lookup(list(waiting))
        except Exception as error:
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
        else:
            for key, futures in waiting.items():
                for future in futures:
                    if not future.done():
                        future.set_result(results.get(key))
        finally:
            self._running -= 1
            self._start_calls()
