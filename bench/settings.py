"""
The settings this project's relay (and Django, in bench/run.py and bench/notify_cost.py) runs
with in the benchmarks: the demo site's (project/settings.py, configured from the environment
by bench/harness.py: DEBUG off, localhost allowed, SQLite, the benchmark's Redis), plus:

- WSSERVER_MAX_CONNECTIONS_PER_IP raised from 500 to 100,000: every benchmark client connects
  from 127.0.0.1, and the cap is per relay process. Nothing else about limits changes.
- A fast password hasher: the benchmark creates 10,000 users; the relay never hashes passwords.
- bench.urls: the site's URLs plus the view bench/notify_cost.py times.
"""

from project.settings import *  # noqa: F401,F403

WSSERVER_MAX_CONNECTIONS_PER_IP = 100_000
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ROOT_URLCONF = "bench.urls"
