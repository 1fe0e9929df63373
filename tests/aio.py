"""
Async tests and Django's ORM: ORM and test Client code is synchronous, so async tests run it in
asgiref's worker thread with `call`, and mark themselves `live_servers`, which also closes that
thread's database connection after each test, as a request would (with PostgreSQL, an open
connection would block dropping the test database).
"""

import pytest
from asgiref.sync import sync_to_async

# Transactional database (servers in other processes see only committed rows, and on_commit
# callbacks must run) and the worker thread's connection closed after each test.
live_servers = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_orm_thread_connection")]


async def call(function, *args, **kwargs):
    """Run synchronous ORM / test Client code from an async test."""
    return await sync_to_async(function)(*args, **kwargs)
