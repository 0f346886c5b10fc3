"""The archive's retention: files of hours older than it are deleted, a whole day or hour
folder at a time."""

from __future__ import annotations

from connectors.archive.layout import ROOT, first_hour_of_date, hour_in_date
from connectors.object_store import ObjectStore


def sweep(store: ObjectStore, cutoff_hour: int) -> int:
    """Delete the files of every archived topic filed under hours before `cutoff_hour` (hours
    since the epoch); returns how many were deleted."""
    deleted = 0
    for topic in store.list_prefixes(ROOT):
        for day in store.list_prefixes(topic):
            first = first_hour_of_date(day)
            if first is None or first >= cutoff_hour:
                continue
            if first + 24 <= cutoff_hour:
                deleted += store.delete_prefix(day)
                continue
            for hour_folder in store.list_prefixes(day):
                hour = hour_in_date(hour_folder)
                if hour is not None and first + hour < cutoff_hour:
                    deleted += store.delete_prefix(hour_folder)
    return deleted
