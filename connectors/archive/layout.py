"""Where the archive keeps a topic's records, after the Confluent S3 sink's layout:
`archive/{topic}/date=YYYY-MM-DD/hour=HH/{topic}+{partition}+{first offset}+{last offset}.avro`,
the hour being that of the records' timestamps (UTC), offsets zero-padded to 20 digits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

ROOT = "archive/"
HOUR_MS = 3_600_000
SUFFIX = ".avro"
_KEY = re.compile(
    r"^archive/(?P<topic>[A-Za-z0-9._-]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P=topic)\+(?P<partition>\d+)\+(?P<first>\d{20})\+(?P<last>\d{20})\.avro$"
)
_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})/$")
_HOUR = re.compile(r"hour=(\d{2})/$")


def hour_of(timestamp_ms: int) -> int:
    """The hour (since the epoch, UTC) a record of this timestamp is filed under."""
    return timestamp_ms // HOUR_MS


def topic_prefix(topic: str) -> str:
    return f"{ROOT}{topic}/"


def date_prefix(topic: str, hour: int) -> str:
    """The folder of the day holding `hour`."""
    return f"{topic_prefix(topic)}date={_when(hour):%Y-%m-%d}/"


def hour_prefix(topic: str, hour: int) -> str:
    return f"{date_prefix(topic, hour)}hour={_when(hour):%H}/"


def partition_prefix(topic: str, partition: int, hour: int) -> str:
    """The start of the keys of one partition's files of one hour (`+` ends the partition)."""
    return f"{hour_prefix(topic, hour)}{topic}+{partition}+"


def _when(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def first_hour_of_date(prefix: str) -> int | None:
    """The first hour of a `.../date=YYYY-MM-DD/` folder; None for any other name."""
    match = _DATE.search(prefix)
    if match is None:
        return None
    day = datetime.strptime(match[1], "%Y-%m-%d").replace(tzinfo=UTC)
    return int(day.timestamp()) // 3600


def hour_in_date(prefix: str) -> int | None:
    """The hour of the day of an `.../hour=HH/` folder; None for any other name."""
    match = _HOUR.search(prefix)
    return None if match is None else int(match[1])


@dataclass(frozen=True, order=True)
class ArchivedFile:
    """One archive file: a partition's records of one hour, from `first` to `last` offset
    (the records of that hour between them, in offset order; other hours' records between
    `first` and `last` are in other hours' files)."""

    topic: str
    partition: int
    first: int
    last: int
    hour: int

    @property
    def key(self) -> str:
        start = partition_prefix(self.topic, self.partition, self.hour)
        return f"{start}{self.first:020d}+{self.last:020d}{SUFFIX}"


def parse_key(key: str) -> ArchivedFile | None:
    """The file an object key names; None when the key is not an archive file's."""
    match = _KEY.match(key)
    if match is None:
        return None
    day = datetime.strptime(match["date"], "%Y-%m-%d").replace(tzinfo=UTC)
    hour = int(day.timestamp()) // 3600 + int(match["hour"])
    return ArchivedFile(
        match["topic"], int(match["partition"]), int(match["first"]), int(match["last"]), hour
    )
