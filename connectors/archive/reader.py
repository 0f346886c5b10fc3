"""Reads the archive back: a topic's files by partition, and a partition's records merged from
its files of every hour into offset order."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator

from connectors.archive.files import ArchivedRecord, decode_file
from connectors.archive.layout import (
    ArchivedFile,
    first_hour_of_date,
    hour_of,
    parse_key,
    topic_prefix,
)
from connectors.object_store import ObjectStore


class ArchiveReader:
    """The archive in `store`."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.duplicates = 0  # records found in two files (left out the second time)

    def files(self, topic: str, from_ms: int | None = None) -> dict[int, list[ArchivedFile]]:
        """The topic's files by partition, oldest first offset first: every file, or those of
        the hours from `from_ms`'s on."""
        from_hour = None if from_ms is None else hour_of(from_ms)
        found: dict[int, list[ArchivedFile]] = defaultdict(list)
        for day in self.store.list_prefixes(topic_prefix(topic)):
            first_hour = first_hour_of_date(day)
            if first_hour is None or (from_hour is not None and first_hour + 24 <= from_hour):
                continue
            for key in self.store.list_keys(day):
                archived = parse_key(key)
                if archived is None or archived.topic != topic:
                    continue
                if from_hour is None or archived.hour >= from_hour:
                    found[archived.partition].append(archived)
        return {p: sorted(files) for p, files in sorted(found.items())}

    def records(
        self, files: list[ArchivedFile], below: int | None = None
    ) -> Iterator[ArchivedRecord]:
        """The records of one partition's `files` in offset order (those below `below`), each
        file fetched when the merge reaches its first offset."""
        pending = sorted(f for f in files if below is None or f.first < below)
        pending.reverse()  # popped from the end: lowest first offset first
        heap: list[tuple[int, int, ArchivedRecord, Iterator[ArchivedRecord]]] = []
        opened = 0
        last = -1
        while pending or heap:
            while pending and (not heap or pending[-1].first <= heap[0][0]):
                source = decode_file(self.store.get_bytes(pending.pop().key))
                head = next(source, None)
                if head is not None:
                    opened += 1
                    heapq.heappush(heap, (head.offset, opened, head, source))
            offset, index, record, source = heap[0]
            if below is not None and offset >= below:
                heapq.heappop(heap)  # the rest of this file is the broker's
                continue
            if offset == last:
                self.duplicates += 1
            else:
                last = offset
                yield record
            head = next(source, None)
            if head is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (head.offset, index, head, source))
