"""The Faust application of a worker: hosts the stream engine as a service and the HTTP API."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import faust
from faust.app.base import BootStrategy
from mode import Service

from streams.api import web_log
from streams.runtime.engine import Engine
from streams.settings import Settings

log = logging.getLogger(__name__)


class Companion(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class _HostOnly(BootStrategy):
    """Faust hosts the worker (lifecycle, signals, logging, the HTTP API and the engine as a
    service); the engine consumes and produces with its own clients. Faust's own Kafka
    consumer had no agent or table to serve, yet its group join (and the wait for tables
    before it) held the engine's start back by about 4 s."""

    enable_kafka = False


class _WorkerApp(faust.App):
    BootStrategy = _HostOnly


def create_app(
    settings: Settings,
    engine: Engine | None,
    install_api: Callable[[faust.App], None],
    companions: Sequence[Companion] = (),
) -> faust.App:
    """A Faust app for one worker. Faust owns the process lifecycle (signals, logging, web
    server); the engine (None: a worker serving the API only) does the stateful stream
    processing in its own thread."""
    app = _WorkerApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap()}",
        store="memory://",
        topic_partitions=settings.partitions,
        web_host=settings.api_bind,
        web_port=settings.api_port,
        web_bind=settings.api_bind,
        datadir=str(settings.data_dir / "faust"),
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=6.0,
        web_in_thread=False,
    )

    @app.service
    class EngineService(Service):
        """Runs the engine thread for as long as the app runs; stopping finishes the batch in
        hand, commits it, and leaves the group."""

        _thread: threading.Thread | None = None

        async def on_start(self) -> None:
            for companion in companions:
                companion.start()
            if engine is not None:
                self._thread = threading.Thread(
                    target=self._run, name="storystream-engine", daemon=True
                )
                self._thread.start()

        def _run(self) -> None:
            assert engine is not None
            try:
                engine.run()
            except Exception as exc:
                log.exception("stream engine failed; stopping the worker")
                engine.failure = exc
                # The worker's own signal handling stops every service in order; the exit
                # status then says the worker failed (see streams.worker.build.run_worker).
                os.kill(os.getpid(), signal.SIGTERM)

        async def on_stop(self) -> None:
            if engine is not None:
                engine.stop()
            loop = asyncio.get_running_loop()
            if self._thread is not None:
                await loop.run_in_executor(None, self._thread.join, 60)
            for companion in reversed(companions):
                await loop.run_in_executor(None, companion.stop)

    install_api(app)
    web_log.install()
    # Faust leaves aiokafka's logger at DEBUG, which costs about 10% CPU.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return app


def utc_now() -> datetime:
    return datetime.now(UTC)
