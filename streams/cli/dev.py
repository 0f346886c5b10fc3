"""`storystream dev`: the embedded broker, topics, object store, workers and API on one machine."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from contextlib import ExitStack

from pydantic import SecretStr

from infra.broker import EmbeddedBroker
from infra.kafka import KafkaCluster, KafkaUnavailable, kafka_version
from infra.s3 import EmbeddedS3
from infra.schema_registry import EmbeddedSchemaRegistry
from streams.cli import devstate
from streams.cli.worker_pool import PooledWorker, WorkerPool, child_env, healthy
from streams.codecs.registry import topic_subjects
from streams.kafka.admin import create_topics
from streams.settings import Settings

log = logging.getLogger(__name__)


def _port_or_free(port: int) -> int:
    """`port` if it can be bound on loopback, else 0 (any free port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            log.warning("port %s is taken; using a free port instead", port)
            return 0
    return port


def archiving(settings: Settings) -> bool:
    """dev keeps an archive: its workers run the archive connector unless told otherwise."""
    return settings.archive_in_worker or "STORYSTREAM_ARCHIVE_IN_WORKER" not in os.environ


def _worker_env(settings: Settings, index: int, s3: EmbeddedS3 | None) -> dict[str, str]:
    if s3 is not None:
        key, secret = s3.credentials
        settings = settings.model_copy(
            update={
                "s3_endpoint_url": s3.endpoint_url,
                "s3_access_key_id": key,
                "s3_secret_access_key": SecretStr(secret),
            }
        )
    env = child_env(settings, index, settings.data_dir / f"worker-{index}")
    env["STORYSTREAM_ARCHIVE_IN_WORKER"] = str(archiving(settings)).lower()
    return env


def run_dev(settings: Settings, broker_port: int = 9092, workers: int = 1) -> int:
    """Run everything until SIGINT/SIGTERM, then stop everything that was started.

    A worker that dies meanwhile is restarted (with backoff); the broker, the object store
    and the other workers stay up, so the embedded broker's in-memory data is kept.
    """
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    kept_on_disk = not settings.broker and settings.broker_impl == "kafka"
    with ExitStack() as stack:
        if settings.broker:
            bootstrap = settings.broker
            print(f"broker: {bootstrap} (STORYSTREAM_BROKER)", flush=True)
        elif settings.broker_impl == "kafka":
            # On disk under the data directory: stories, offsets and the workers' local
            # state (kept too) carry over to the next `dev`.
            kafka = KafkaCluster(
                data_dir=settings.data_dir / "kafka", port=_port_or_free(broker_port)
            )
            try:
                stack.enter_context(kafka)
            except KafkaUnavailable as exc:
                print(f"storystream dev --broker-impl kafka: {exc}", flush=True)
                return 1
            bootstrap = kafka.bootstrap
            print(
                f"broker: {bootstrap} (Apache Kafka {kafka_version()}, {kafka.data_dir})",
                flush=True,
            )
        else:
            broker = EmbeddedBroker(
                port=_port_or_free(broker_port), log_path=settings.data_dir / "broker.log"
            )
            stack.enter_context(broker)
            bootstrap = broker.bootstrap
            print(f"broker: {bootstrap} (embedded, in memory)", flush=True)
            # The embedded broker starts empty: local state from an earlier run is stale.
            for old in settings.data_dir.glob("worker-*"):
                shutil.rmtree(old, ignore_errors=True)
        settings = settings.model_copy(update={"broker": bootstrap})
        how = "STORYSTREAM_SCHEMA_REGISTRY_URL"
        if not settings.schema_registry_url:
            registry = EmbeddedSchemaRegistry(
                topic_subjects(),
                port=_port_or_free(8081),
                log_path=settings.data_dir / "schema-registry.log",
            )
            stack.enter_context(registry)
            settings = settings.model_copy(update={"schema_registry_url": registry.url})
            how = "embedded, the fixed ids of schemas/ids.json"
        print(f"schema registry: {settings.schema_registry_url} ({how})", flush=True)
        s3 = None
        if not settings.s3_endpoint_url:
            s3 = stack.enter_context(EmbeddedS3())
            settings = settings.model_copy(update={"s3_endpoint_url": s3.endpoint_url})
            print(f"object store: {s3.endpoint_url} (embedded, in memory)", flush=True)
            if kept_on_disk:
                print(
                    "note: media uploaded by an earlier dev is gone (not its stories)", flush=True
                )
        if archiving(settings):
            bucket = settings.archive_bucket or settings.s3_bucket
            print(f"archive: s3://{bucket}/archive/ (written by the workers)", flush=True)
        create_topics(settings)
        urls = [f"http://127.0.0.1:{settings.api_port + i}" for i in range(workers)]
        pool = WorkerPool(
            PooledWorker(
                index,
                [sys.executable, "-m", "streams.cli", "worker"],
                _worker_env(settings, index, s3),
                settings.data_dir / f"worker-{index}.log",
                urls[index],
            )
            for index in range(workers)
        )
        stack.callback(pool.stop)  # before the broker and the object store (LIFO)
        pool.start()
        deadline = time.monotonic() + 120
        while not all(healthy(u) for u in urls) and not stopping.is_set():
            if pool.any_exited() or time.monotonic() > deadline:
                print(f"a worker failed to start; see {settings.data_dir}/worker-*.log", flush=True)
                return 1
            time.sleep(0.5)
        devstate.write(
            settings.data_dir,
            broker=bootstrap,
            schema_registry_url=settings.schema_registry_url,
            api=urls[0],
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_credentials=list(s3.credentials) if s3 else None,
            story_ttl_seconds=settings.story_ttl.total_seconds(),
            expiry_grace_seconds=settings.expiry_grace.total_seconds(),
        )
        stack.callback(devstate.clear, settings.data_dir)
        print(f"api: {urls[0]}" + (f" (and {', '.join(urls[1:])})" if urls[1:] else ""), flush=True)
        # The data directory, not the broker alone: `post` needs dev's object store too.
        elsewhere = f"export STORYSTREAM_DATA_DIR={settings.data_dir.absolute()}"
        print(f"ready: {workers} worker(s); elsewhere: {elsewhere}; Ctrl-C stops", flush=True)
        while not stopping.wait(0.5):
            for line in pool.supervise():
                print(line, flush=True)
        print("stopping", flush=True)
    return 0
