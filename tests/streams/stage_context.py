"""A StageContext for stage-level tests: a real store and clock, outputs recorded as the
processors gave them (routing and encoding are the router's, tested on their own)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from processors.context import Output, Policy
from streams.runtime.context import StageContext
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore


class OutputRecorder:
    """Takes what a StageContext emits: outputs as given, dead letters as (record, reason)."""

    def __init__(self) -> None:
        self.emitted: list[Any] = []
        self.dead: list[tuple[InRecord, str]] = []

    def emit(self, ctx: StageContext, outputs: Iterable[Output], at_ms: int | None = None) -> None:
        self.emitted.extend(outputs)

    def dead_letter(self, record: InRecord, reason: str, now_ms: int) -> None:
        self.dead.append((record, reason))


def recording_context(
    store: PartitionStore, now: datetime, policy: Policy | None = None, partition: int = 0
) -> tuple[StageContext, OutputRecorder]:
    """A context on `store` at `now` and the recorder of what is emitted through it."""
    recorder = OutputRecorder()
    ctx = StageContext(partition, store, now, policy or Policy(), Metrics(), recorder)  # type: ignore[arg-type]
    return ctx, recorder
