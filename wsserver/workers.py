"""
`runwsserver --workers N`: N relay processes sharing one port (SO_REUSEPORT), so one machine's
cores all serve sockets. Each worker is a whole relay (its own event loop, Redis reader and
hub); every event reaches every worker, which delivers it to its own connections.

The command's process supervises: it starts the workers (spawned, not forked: each sets Django
up and opens its own Redis and database connections), waits until all listen, restarts one that
dies, and on SIGINT or SIGTERM stops them all (each closes its sockets with 1001) within 5 s.
"""

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time

logger = logging.getLogger(__name__)

START_TIMEOUT = 60
STOP_TIMEOUT = 5


def worker(host, port, ready):
    """One worker process: a relay on the shared port, reporting to `ready` once it listens."""
    import django

    django.setup()
    from . import server

    server.run_forever(host, port, ready=lambda _server: ready.put(os.getpid()), reuse_port=True)


class Supervisor:
    def __init__(self, host, port, count):
        self.host, self.port, self.count = host, port, count
        self.context = multiprocessing.get_context("spawn")
        self.ready = self.context.Queue()
        self.processes = []
        self.stopping = threading.Event()

    def run(self, on_ready):
        """Start the workers, call on_ready() once all listen, then supervise until stopped."""
        metrics_dir = self._metrics_dir()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stopping.set())
        try:
            self.processes = [self._start() for _ in range(self.count)]
            self._wait_until_listening()
            on_ready()
            while not self.stopping.wait(0.5):
                self._restart_dead_workers()
        finally:
            self._stop()
            if metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)

    def _metrics_dir(self):
        """A directory for the workers' metrics (wsserver.metrics), unless one is configured."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            return None
        path = tempfile.mkdtemp(prefix="wsserver-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        return path

    def _start(self):
        process = self.context.Process(target=worker, args=(self.host, self.port, self.ready), daemon=False)
        process.start()
        return process

    def _wait_until_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        for _ in range(self.count):
            remaining = deadline - time.monotonic()
            try:
                self.ready.get(timeout=max(remaining, 0.1))
            except Exception:
                raise RuntimeError(f"{self.count} workers did not all listen within {START_TIMEOUT} s") from None
            if any(process.exitcode not in (None, 0) for process in self.processes):
                raise RuntimeError("A worker exited while starting; see its output above")

    def _restart_dead_workers(self):
        for index, process in enumerate(self.processes):
            if not process.is_alive() and not self.stopping.is_set():
                logger.warning("Worker %s exited with code %s; starting another", process.pid, process.exitcode)
                self._forget_metrics_of(process.pid)
                self.processes[index] = self._start()

    @staticmethod
    def _forget_metrics_of(pid):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)

    def _stop(self):
        for process in self.processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
