"""Process metrics in the Prometheus text format: counters by label, gauges, latency sums."""

from __future__ import annotations

import threading
from collections import defaultdict


class Counter:
    def __init__(self, name: str, help_text: str, label: str) -> None:
        self.name, self.help, self.label = name, help_text, label
        self._values: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def inc(self, label_value: str, amount: float = 1) -> None:
        with self._lock:
            self._values[label_value] += amount

    def value(self, label_value: str) -> float:
        return self._values.get(label_value, 0.0)

    def values(self) -> dict[str, float]:
        """Every label's value, as of one instant."""
        with self._lock:
            return dict(self._values)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            for key, value in sorted(self._values.items()):
                lines.append(f'{self.name}{{{self.label}="{key}"}} {value:g}')
        return lines


class Gauge:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self._value = 0.0

    def set(self, value: float) -> None:
        self._value = value

    @property
    def value(self) -> float:
        return self._value

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {self._value:g}",
        ]


class Metrics:
    """Everything `/metrics` reports for one worker."""

    def __init__(self) -> None:
        self.processed = Counter(
            "storystream_events_processed_total",
            "Events processed (on stage topics: messages, several to a batched record).",
            "topic",
        )
        self.committed = Counter(
            "storystream_events_committed_total",
            "Events processed whose batch is durable (outputs acknowledged, checkpoint written).",
            "topic",
        )
        self.outputs = Counter("storystream_outputs_total", "Records published.", "topic")
        self.dead_letters = Counter(
            "storystream_dead_letters_total", "Records sent to story-dead-letters.", "topic"
        )
        self.expiries = Counter("storystream_expiries_total", "Stories expired, by kind.", "kind")
        self.rejected = Counter(
            "storystream_events_not_applied_total",
            "Events for unknown, expired or deleted stories.",
            "reason",
        )
        self.timer_failures = Counter(
            "storystream_timer_failures_total",
            "Timer runs (expiry, purge, sweeps) that failed and were left for the next tick.",
            "stage",
        )
        self.restored = Counter(
            "storystream_partitions_restored_total",
            "Partitions restored from the changelog.",
            "partition",
        )
        self.restored_records = Counter(
            "storystream_changelog_records_restored_total",
            "Changelog records replayed into local state when taking a partition over "
            "(grows while a restore runs).",
            "partition",
        )
        self.standby_caught_up = Counter(
            "storystream_standby_catch_ups_total",
            "Standby partitions brought up to date from the changelog.",
            "partition",
        )
        self.assigned = Gauge("storystream_assigned_partitions", "Partitions this worker owns.")
        self.lag = Gauge("storystream_consumer_lag", "Records behind the end of the inputs.")
        self.batch_seconds = Gauge(
            "storystream_last_batch_seconds", "Wall time of the last processed batch."
        )
        self.expiry_delay = Gauge(
            "storystream_expiry_delay_seconds", "Delay between expires_at and the tombstones."
        )

    def render(self) -> str:
        parts: list[str] = []
        for metric in (
            self.processed,
            self.committed,
            self.outputs,
            self.dead_letters,
            self.expiries,
            self.rejected,
            self.timer_failures,
            self.restored,
            self.restored_records,
            self.standby_caught_up,
            self.assigned,
            self.lag,
            self.batch_seconds,
            self.expiry_delay,
        ):
            parts.extend(metric.render())
        return "\n".join(parts) + "\n"
