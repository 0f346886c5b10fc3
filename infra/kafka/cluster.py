"""Apache Kafka in KRaft mode on loopback: one node, or a cluster of three, data kept on disk."""

from __future__ import annotations

import base64
import logging
import shutil
import signal
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from infra.kafka.jars import LOG4J_CONFIG, java_binary, kafka_classpath
from infra.process import ChildService, free_port, spawn, stop

log = logging.getLogger(__name__)


# The JVM of a broker that shares a small machine with its clients (tests, `dev`, the
# benchmarks), not of a production cluster: the serial collector has no concurrent marking
# threads, and the client compiler alone compiles a fraction of what C2 does while the
# broker's request path runs as fast here (the README's measured section has the A/B).
JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


class KafkaError(RuntimeError):
    """A Kafka node could not be formatted or started."""


def _test_friendly(size: int) -> dict[str, str]:
    """Server settings for a small cluster on one machine: internal topics replicated to
    what the cluster has, few partitions (fast first group join and first transaction), no
    delay before a group's first rebalance, topics only created explicitly, and a log
    cleaner that looks for work every second (compaction is observable in a test)."""
    replicas = str(min(size, 3))
    min_isr = str(min(size, 2))
    return {
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.cleaner.backoff.ms": "1000",
    }


class KafkaNode(ChildService):
    """One Kafka process, broker and controller at once, with its own data directory."""

    def __init__(self, node_id: int, home: Path, host: str = "127.0.0.1", port: int = 0):
        self.node_id = node_id
        self.home = home
        self.host = host
        self.port = port or free_port(host)
        self.controller_port = free_port(host)
        while self.controller_port == self.port:  # the kernel may hand the same port twice
            self.controller_port = free_port(host)
        super().__init__(home / "broker.log")
        self._java: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def voter(self) -> str:
        return f"{self.node_id}@{self.host}:{self.controller_port}"

    @property
    def formatted(self) -> bool:
        return (self.home / "logs" / "meta.properties").exists()

    def configure(self, java: list[str], voters: str, settings: dict[str, str]) -> None:
        """Write its server.properties (`java` is the command line up to the main class)."""
        self._java = java
        self.home.mkdir(parents=True, exist_ok=True)
        config = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{self.host}:"
            f"{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home / "logs"),
            **settings,
        }
        lines = [f"{key}={value}" for key, value in config.items()]
        (self.home / "server.properties").write_text("\n".join(lines) + "\n")

    def format(self, cluster_id: str) -> None:
        """Format its storage for `cluster_id` (done once; a restart keeps the data)."""
        args = [*self._java, "kafka.tools.StorageTool", "format", "-t", cluster_id]
        args += ["-c", str(self.home / "server.properties")]
        with open(self.home / "format.log", "wb") as out:
            proc = spawn(args, log=out)
            if proc.wait(120) != 0:
                text = (self.home / "format.log").read_text(errors="replace")
                raise KafkaError(f"formatting node {self.node_id} failed: {text[-2000:]}")

    def start(self) -> Self:
        """Start the process (the caller waits for readiness: a quorum needs its peers)."""
        if self.running:
            return self
        with open(self.home / "broker.log", "ab") as out:
            self._proc = spawn(
                [*self._java, "kafka.Kafka", str(self.home / "server.properties")], log=out
            )
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until this node answers metadata requests and counts itself among the brokers."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise KafkaError(f"kafka node {self.node_id} exited ({code}): {self.log_tail()}")
            try:
                if self.node_id in admin.list_topics(timeout=1.0).brokers:
                    return
            except Exception:  # KafkaException while it boots
                pass
            time.sleep(0.2)
        raise KafkaError(f"kafka node {self.node_id} not ready after {timeout}s: {self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM: controlled shutdown, logs closed), SIGKILL after
        `timeout`."""
        if self._proc is not None:
            stop(self._proc, timeout)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash; what the page cache holds survives, as on a real host's crash
        of the process (not of the machine)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
            self._proc = None


class KafkaCluster:
    """`size` Kafka nodes (1 or 3) on loopback, each broker and controller, formatted on first
    start under `data_dir` (a temporary directory removed at stop when not given); `stop()` (or
    the context manager's exit) ends them all, and the kernel does if this process dies first.

    `settings` are added to (or override) the server properties of every node, e.g.
    `{"min.insync.replicas": "2"}`. Java must be 17+; the jars are resolved with Maven once.
    """

    def __init__(
        self,
        size: int = 1,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        heap: str = "512m",
        settings: dict[str, str] | None = None,
    ) -> None:
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kafka-"))
        self.heap = heap
        self.settings = {**_test_friendly(size), **(settings or {})}
        self.nodes = [
            KafkaNode(i + 1, self.data_dir / f"node-{i + 1}", host, port if i == 0 else 0)
            for i in range(size)
        ]

    @property
    def bootstrap(self) -> str:
        """Every node's listener, comma-separated (clients need only one that is up)."""
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout: float = 120.0) -> Self:
        """Resolve the jars (once per version), format new storage, start every node and wait
        until each one is a registered broker."""
        java = [
            java_binary(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            *JVM_OPTIONS,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            kafka_classpath(),
        ]
        voters = ",".join(node.voter for node in self.nodes)
        for node in self.nodes:
            node.configure(java, voters, self.settings)
        cluster_id = self._cluster_id()
        try:
            new = [node for node in self.nodes if not node.formatted]
            with ThreadPoolExecutor(max(1, len(new))) as pool:  # a JVM start each
                list(pool.map(lambda node: node.format(cluster_id), new))
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("kafka: %d node(s) on %s (%s)", len(self.nodes), self.bootstrap, self.data_dir)
        return self

    def _cluster_id(self) -> str:
        path = self.data_dir / "cluster-id"
        while not path.exists() or path.read_text().startswith("-"):
            # As Kafka's own ids: never starting with "-", which its tool reads as an option.
            path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())
        return path.read_text().strip()

    def stop(self) -> None:
        """Stop every node (SIGTERM to all at once, so none waits for a peer already gone)."""
        for node in self.nodes:
            if node._proc is not None and node._proc.poll() is None:
                node._proc.terminate()
        for node in self.nodes:
            node.stop()
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def stop_node(self, index: int) -> None:
        """A clean shutdown of one node (its data is kept)."""
        self.nodes[index].stop()

    def kill_node(self, index: int) -> None:
        """SIGKILL one node (its data is kept)."""
        self.nodes[index].kill()

    def start_node(self, index: int, timeout: float = 120.0) -> None:
        """Start one stopped or killed node again on its data, and wait until it is back."""
        node = self.nodes[index]
        node.start()
        node.wait_ready(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
