"""The media side of a worker: transcodes uploads (in worker processes, never on the engine's
thread) and carries out object-store changes (purge, move to highlights).

It is its own consumer-group member: an upload's offset is committed only after its
`media_transcoded` event is acknowledged, so a crash re-runs the (idempotent) transcode.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from connectors.media_jobs import apply_objects_change, process_upload
from connectors.object_store import ObjectStore, ObjectStoreError
from connectors.s3_store import S3ObjectStore
from connectors.transcoder import Transcoder
from processors.media import PUBLIC_PREFIXES, MediaLimits
from schemas.events import MediaUploaded
from schemas.records import DeadLetter
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import SchemaRegistry
from streams.kafka.clients import producer_config
from streams.runtime.metrics import Metrics
from streams.settings import Settings
from streams.stages.common import decode_message
from streams.topics import DEAD_LETTERS, MEDIA_TRANSCODED, MEDIA_UPLOADED

log = logging.getLogger(__name__)


def object_store(settings: Settings) -> S3ObjectStore:
    """The configured S3-compatible store (created lazily by the adapter)."""
    credentials = None
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        credentials = (settings.s3_access_key_id, settings.s3_secret_access_key.get_secret_value())
    return S3ObjectStore(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        credentials=credentials,
        public_base_url=settings.s3_public_url,
        create_bucket=True,
        public_prefixes=PUBLIC_PREFIXES,
    )


def media_limits(settings: Settings) -> MediaLimits:
    return MediaLimits(
        max_bytes=settings.media_max_bytes,
        max_video_ms=int(settings.media_max_video.total_seconds() * 1000),
    )


class MediaService:
    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        objects_topic: str,
        store: ObjectStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._objects_topic = objects_topic
        self._store = store
        self._uploaded = AvroCodec(MEDIA_UPLOADED.record, registry, MEDIA_UPLOADED.subject)
        self._transcoded = AvroCodec(MEDIA_TRANSCODED.record, registry, MEDIA_TRANSCODED.subject)
        self._dead = AvroCodec(DEAD_LETTERS.record, registry, DEAD_LETTERS.subject)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storystream-media", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(60)

    def _run(self) -> None:
        settings = self._settings
        store = self._store or object_store(settings)
        limits = media_limits(settings)
        producer = Producer(producer_config(settings.bootstrap(), **{"linger.ms": 0}))
        consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap(),
                "group.id": f"{settings.app_id}-media",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "max.poll.interval.ms": 600_000,
            }
        )
        consumer.subscribe([MEDIA_UPLOADED.name, self._objects_topic])
        with (
            Transcoder(settings.transcode_workers, limits=limits) as transcoder,
            tempfile.TemporaryDirectory(prefix="storystream-media-") as workdir,
        ):
            try:
                while not self._stopping.is_set():
                    msg = consumer.poll(0.2)
                    if msg is None:
                        continue
                    if msg.error() is not None:
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("media consumer: %s", msg.error().str())
                        continue
                    if self._handle(msg, store, transcoder, Path(workdir), producer, limits):
                        consumer.commit(message=msg, asynchronous=False)
                    else:  # read it again after the pause
                        consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
            finally:
                consumer.close()
                producer.flush(30)

    def _dead_letter(self, producer: Producer, msg: Any, reason: str) -> None:
        letter = DeadLetter(
            source_topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            error=reason,
            original_key=msg.key(),
            original_value=msg.value(),
            at=datetime.now(UTC),
        )
        producer.produce(DEAD_LETTERS.name, self._dead.encode(letter), msg.key() or b"")
        producer.flush(30)
        if self._metrics is not None:
            self._metrics.dead_letters.inc(msg.topic())

    def _handle(
        self,
        msg: object,
        store: ObjectStore,
        transcoder: Transcoder,
        workdir: Path,
        producer: Producer,
        limits: MediaLimits,
    ) -> bool:
        """True when the record is done (commit it); False to retry it later."""
        try:
            if msg.topic() == MEDIA_UPLOADED.name:  # type: ignore[attr-defined]
                event = self._uploaded.decode(msg.value())  # type: ignore[attr-defined]
                if not isinstance(event, MediaUploaded):  # the topic's record is one
                    raise CodecError(f"not a media upload: {type(event).__name__}")
                result = process_upload(
                    store, event, workdir, datetime.now(UTC), transcoder=transcoder, limits=limits
                )
                producer.produce(
                    MEDIA_TRANSCODED.name, self._transcoded.encode(result), result.media_id.encode()
                )
                if producer.flush(30) > 0:
                    raise ObjectStoreError("media-transcoded not acknowledged")
                if result.error:
                    log.warning("media %s rejected: %s", result.media_id, result.error)
                    self._dead_letter(producer, msg, result.error)
            else:
                apply_objects_change(store, decode_message(msg.value()))  # type: ignore[attr-defined]
            return True
        except CodecError as exc:
            log.warning("undecodable %s record dead-lettered: %s", msg.topic(), exc)  # type: ignore[attr-defined]
            self._dead_letter(producer, msg, f"undecodable: {exc}")
            return True
        except ObjectStoreError as exc:
            log.warning("object store unavailable, will retry: %s", exc)
            self._stopping.wait(2.0)
            return False
