"""The archive connector: a consumer group over the input topics writing every record to the
object store (connectors.archive). `storystream archive` runs it alone; a worker runs it too
with STORYSTREAM_ARCHIVE_IN_WORKER (as `storystream dev`'s workers do)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from connectors.archive import ArchiveWriter, sweep
from connectors.archive.layout import HOUR_MS
from connectors.object_store import ObjectStore, ObjectStoreError
from connectors.s3_store import S3ObjectStore
from streams.settings import Settings
from streams.topics import TOPICS

log = logging.getLogger(__name__)

ARCHIVED_KINDS = ("input", "pipeline")
COMMIT_EVERY_SECONDS = 5.0
SWEEP_EVERY_SECONDS = 600.0
REPORT_EVERY_SECONDS = 60.0
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # waits between failed uploads


def archived_topics() -> list[str]:
    """The topics the archive keeps: every input (and pipeline) topic of the catalog."""
    return [spec.name for spec in TOPICS if spec.kind in ARCHIVED_KINDS]


def archive_store(settings: Settings, create_bucket: bool = True) -> S3ObjectStore:
    """The object store holding the archive (ARCHIVE_BUCKET, else S3_BUCKET; never public)."""
    credentials = None
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        credentials = (settings.s3_access_key_id, settings.s3_secret_access_key.get_secret_value())
    return S3ObjectStore(
        settings.archive_bucket or settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        credentials=credentials,
        create_bucket=create_bucket,
    )


def archive_configured(settings: Settings) -> bool:
    """Whether an object store is configured (an endpoint, keys, or boto3's own chain)."""
    from connectors.upload import default_credentials_found

    if settings.s3_endpoint_url or settings.s3_access_key_id:
        return True
    return default_credentials_found()


class Archiver:
    """One member of the archive's consumer group (`{app}-archive`): consumes the input topics
    and hands each record to an ArchiveWriter; commits each partition's position (its oldest
    unwritten record) after uploads; sweeps files past the retention."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore | None = None,
        *,
        group_id: str | None = None,
        topics: list[str] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store or archive_store(settings)
        self._group_id = group_id or f"{settings.app_id}-archive"
        self._topics = topics or archived_topics()
        retention = settings.archive_retention
        self._retention_ms = int(retention.total_seconds() * 1000) if retention else None
        self.writer = ArchiveWriter(
            self._store,
            flush_records=settings.archive_flush_records,
            flush_seconds=settings.archive_flush_interval.total_seconds(),
            retention_ms=self._retention_ms,
            codec=settings.archive_codec,
        )
        self.consumed = 0
        self._owned: set[tuple[str, int]] = set()
        self._committed: dict[tuple[str, int], int] = {}
        self._stopping = threading.Event()
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    # -- as a worker's companion ------------------------------------------------------------
    def start(self) -> None:
        """Run in a thread of its own (a worker's companion)."""
        self._thread = threading.Thread(target=self._run_logged, name="storystream-archive")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Write what is buffered, commit, leave the group."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(120)

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self.failure = exc
            log.exception("archive connector failed")

    # -- the loop ---------------------------------------------------------------------------
    def run(self, until: Any = None) -> None:
        """Consume and archive until stopped (or until `until()` is true), then write every
        open file and commit."""
        consumer = Consumer(self._config())
        consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("archiving %s into %r under archive/", ", ".join(self._topics), self._store)
        last_commit = last_report = time.monotonic()
        last_sweep = 0.0
        failures = 0
        paused = False
        try:
            while not self._stopping.is_set() and not (until and until()):
                if failures:
                    self._stopping.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])
                try:
                    self._take(consumer, consumer.consume(10_000, timeout=0.5))
                    written = self.writer.flush_due()
                except ObjectStoreError as exc:
                    failures += 1
                    log.warning("archive: the object store failed (attempt %d): %s", failures, exc)
                    if not paused and self.writer.over_bound:  # hold no more until it works
                        consumer.pause(self._partitions(self._owned))
                        paused = True
                    continue
                failures = 0
                if paused:
                    consumer.resume(self._partitions(self._owned))
                    paused = False
                now = time.monotonic()
                if written or now - last_commit >= COMMIT_EVERY_SECONDS:
                    self._commit(consumer, self._owned)
                    last_commit = now
                if self._retention_ms is not None and now - last_sweep >= SWEEP_EVERY_SECONDS:
                    self._sweep()
                    last_sweep = now
                if now - last_report >= REPORT_EVERY_SECONDS:
                    self._report()
                    last_report = now
            try:
                self.writer.flush()
            except ObjectStoreError as exc:
                log.error(
                    "archive: %d buffered records not written (%s); they are read again at the "
                    "next start",
                    self.writer.buffered_records,
                    exc,
                )
            self._commit(consumer, self._owned)
            self._report()
        except BaseException:
            self._abandoned = True  # leaving the group writes and commits nothing more
            raise
        finally:
            consumer.close()

    def _config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self._settings.bootstrap(),
            "group.id": self._group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 600_000,
            "fetch.wait.max.ms": 100,
        }

    def _take(self, consumer: Consumer, batch: list[Message]) -> None:
        add = self.writer.add
        for index, msg in enumerate(batch):
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("archive consumer: %s", error.str())
                continue
            try:
                add(
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    msg.timestamp()[1],
                    msg.key(),
                    msg.value(),
                    msg.headers(),
                )
            except ObjectStoreError:
                self._rewind(consumer, batch[index:])
                raise
            self.consumed += 1

    @staticmethod
    def _rewind(consumer: Consumer, unread: list[Message]) -> None:
        """Fetch these records again: each partition from its first one here."""
        firsts: dict[tuple[str, int], int] = {}
        for msg in unread:
            if msg.error() is None:
                firsts.setdefault((msg.topic(), msg.partition()), msg.offset())
        for (topic, partition), offset in firsts.items():
            consumer.seek(TopicPartition(topic, partition, offset))

    def _commit(self, consumer: Consumer, partitions: set[tuple[str, int]]) -> None:
        offsets = []
        for tp in sorted(partitions):
            position = self.writer.position(tp)
            if position is not None and position > self._committed.get(tp, -1):
                offsets.append(TopicPartition(tp[0], tp[1], position))
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # the files stay right; the next commit catches up
            log.warning("archive commit failed: %s", exc)
            return
        for tp in offsets:
            self._committed[tp.topic, tp.partition] = tp.offset

    # -- rebalances -------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self.writer.assigned(tps)
        self._owned |= tps
        for tp in tps:
            self._committed.pop(tp, None)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before the group hands these partitions on: write their open files and commit."""
        tps = {(tp.topic, tp.partition) for tp in partitions}
        if self._abandoned:
            self._release(tps)
            return
        try:
            self.writer.flush(tps)
        except ObjectStoreError as exc:  # their new owner reads them again from the commit
            log.warning("archive upload failed while handing partitions over: %s", exc)
        self._commit(consumer, tps)
        self._release(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Already someone else's: write nothing more of them."""
        self._release({(tp.topic, tp.partition) for tp in partitions})

    def _release(self, tps: set[tuple[str, int]]) -> None:
        self.writer.drop(tps)
        self._owned -= tps
        for tp in tps:
            self._committed.pop(tp, None)

    @staticmethod
    def _partitions(tps: set[tuple[str, int]]) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(tps)]

    # -- upkeep -----------------------------------------------------------------------------
    def _sweep(self) -> None:
        assert self._retention_ms is not None
        cutoff = (int(time.time() * 1000) - self._retention_ms) // HOUR_MS
        try:
            deleted = sweep(self._store, cutoff)
        except ObjectStoreError as exc:
            log.warning("archive retention sweep failed: %s", exc)
            return
        if deleted:
            log.info("archive retention: deleted %d files", deleted)

    def _report(self) -> None:
        stats = self.writer.stats
        log.info(
            "archive: %d records in %d files (%d bytes); %d already archived, %d past the "
            "retention; %d buffered",
            stats.records,
            stats.files,
            stats.bytes,
            stats.already_archived,
            stats.expired,
            self.writer.buffered_records,
        )
