"""`storystream dev`: the embedded broker, topics, object store, workers and API on one machine."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from contextlib import ExitStack

from infra.broker import EmbeddedBroker
from streams import devstate
from streams.admin import create_topics
from streams.settings import Settings

log = logging.getLogger(__name__)


def _port_or_free(port: int) -> int:
    """`port` if it can be bound on loopback, else 0 (any free port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            log.warning("port %s is taken; using a free port for the embedded broker", port)
            return 0
    return port


def run_dev(settings: Settings, broker_port: int = 9092, workers: int = 1) -> int:
    """Run everything until SIGINT/SIGTERM, then stop everything that was started."""
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if settings.broker:
            bootstrap = settings.broker
            print(f"broker: {bootstrap} (STORYSTREAM_BROKER)", flush=True)
        else:
            broker = EmbeddedBroker(
                port=_port_or_free(broker_port), log_path=settings.data_dir / "broker.log"
            )
            stack.enter_context(broker)
            bootstrap = broker.bootstrap
            print(f"broker: {bootstrap} (embedded)", flush=True)
        settings = settings.model_copy(update={"broker": bootstrap})
        create_topics(settings)
        devstate.write(settings.data_dir, broker=bootstrap)
        stack.callback(devstate.clear, settings.data_dir)
        print(f"ready: export STORYSTREAM_BROKER={bootstrap}  (Ctrl-C to stop)", flush=True)
        while not stopping.wait(0.5):
            pass
        print("stopping", flush=True)
    return 0
