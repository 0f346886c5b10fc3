"""`storystream worker`: one worker process (engine, media service, HTTP API) in a Faust app."""

from __future__ import annotations

import logging
import socket
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from connectors.resumable import Uploads
from streams.api import routes as api_module
from streams.api.http import Endpoint, install
from streams.api.members import Members
from streams.api.openapi import openapi_endpoint
from streams.api.uploads import UploadSweeper, upload_routes
from streams.api.writer import Writer
from streams.api.writes import write_routes
from streams.client.aio import AsyncEventClient
from streams.codecs.registry import make_registry
from streams.kafka.admin import create_topics
from streams.policy import policy_of
from streams.runtime.engine import Engine
from streams.runtime.store import StateMemory
from streams.settings import Settings
from streams.stages.topology import build_topology
from streams.topics import stage_topic
from streams.worker.app import Companion, create_app
from streams.worker.media import MediaService, media_limits, object_store

log = logging.getLogger(__name__)


def build_engine(
    settings: Settings,
    clock: Callable[[], datetime],
    worker_id: str,
    members: Members | None = None,
    state_dir: Path | None = None,
) -> Engine:
    """The live engine of the topology, for this worker."""
    registry = make_registry(settings.schema_registry_url)
    topology = build_topology(
        registry, settings.app_id, settings.partitions, settings.output_prefix
    )
    standby = settings.standby_interval
    exactly_once = settings.processing_guarantee == "exactly_once"
    return Engine(
        bootstrap=settings.bootstrap(),
        group_id=f"{settings.app_id}-engine",
        state_dir=state_dir or settings.data_dir / "state" / worker_id,
        topology=topology,
        registry=registry,
        policy=policy_of(settings),
        clock=clock,
        on_assignment=members.announce if members else None,
        standby_interval=standby.total_seconds() if standby else None,
        transactional_id=f"{settings.app_id}-{worker_id}" if exactly_once else None,
        state_memory=StateMemory(settings.state_memory_mb * 1024 * 1024),
    )


def worker_id(settings: Settings) -> str:
    """Stable per data directory and port, so a restarted worker finds its local state."""
    return f"{socket.gethostname()}-{settings.api_port}"


def build_worker(
    settings: Settings, clock: Callable[[], datetime] | None = None
) -> tuple[faust.App, Engine | None]:
    """A ready-to-run worker: the Faust app hosting engine, media service and API; or, when
    `settings.worker_engine` is false, the API alone (no engine: None)."""
    clock = clock or (lambda: datetime.now(UTC))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_topics(settings)
    wid = worker_id(settings)
    members = Members(
        settings.bootstrap(),
        f"{settings.app_id}-members",
        f"{wid}-{uuid.uuid4().hex[:6]}",
        settings.advertised_api_url(),
    )
    engine = build_engine(settings, clock, wid, members) if settings.worker_engine else None
    api = api_module.Api(settings, engine or api_module.NoPartitions(), members, clock)
    client = AsyncEventClient(
        settings.bootstrap(),
        registry_url=settings.schema_registry_url,
        story_ttl=settings.story_ttl,
        on_full="raise",
        producer=api_producer(settings),
    )
    uploads = Uploads(
        object_store(settings), clock, media_limits(settings), settings.upload_part_bytes
    )
    executor = ThreadPoolExecutor(8, thread_name_prefix="storystream-s3")
    sweeper = UploadSweeper(uploads, settings, executor)
    writer = Writer(settings, client)
    endpoints: list[Endpoint] = [
        *api_module.read_endpoints(api),
        *write_routes(api, writer),
        *upload_routes(api, writer, uploads, settings, executor),
        openapi_endpoint(),
    ]
    companions: list[Companion] = [members, client, sweeper]
    if engine is not None:
        companions.append(
            MediaService(
                settings,
                make_registry(settings.schema_registry_url),
                stage_topic(settings.app_id, "objects"),
                metrics=engine.metrics,
            )
        )
        if settings.archive_in_worker:
            companions.append(_archiver(settings))
    app = create_app(settings, engine, lambda a: install(a, api, endpoints), companions)
    return app, engine


def api_producer(settings: Settings) -> dict[str, Any]:
    """The write API's producer: short linger (a request waits for its ack), a bounded queue
    (then 503), and a delivery timeout a client can wait out."""
    return {
        "linger.ms": settings.api_producer_linger_ms,
        "queue.buffering.max.messages": settings.api_producer_queue,
        "delivery.timeout.ms": 30_000,
    }


def _archiver(settings: Settings) -> Companion:
    from streams.worker.archiver import Archiver, archive_configured

    if not archive_configured(settings):
        raise SystemExit(
            "storystream worker: STORYSTREAM_ARCHIVE_IN_WORKER needs an object store: set "
            "STORYSTREAM_S3_ENDPOINT_URL with STORYSTREAM_S3_ACCESS_KEY_ID and "
            "STORYSTREAM_S3_SECRET_ACCESS_KEY"
        )
    return Archiver(settings)


def run_worker(settings: Settings) -> int:
    """Run one worker until SIGINT/SIGTERM (Faust handles the signals)."""
    app, engine = build_worker(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if engine is not None and engine.failure is not None:  # a supervisor should restart it
            print(f"storystream worker: stream engine failed: {engine.failure}", file=sys.stderr)
            return 1
        raise exit_ from None
    return 0
