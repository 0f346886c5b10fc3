"""What a stage handler sees of one partition: its store, the time, its outputs, metrics."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from processors.context import Output, Policy
from schemas.types import millis
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore

if TYPE_CHECKING:
    from streams.runtime.routing import Router


class StageContext:
    """One partition during a batch (or a timer tick): handlers read and write `store`, emit
    outputs and dead letters here, and count what they did in `metrics`."""

    __slots__ = ("partition", "store", "now", "policy", "metrics", "_router")

    def __init__(
        self,
        partition: int,
        store: PartitionStore,
        now: datetime,
        policy: Policy,
        metrics: Metrics,
        router: Router,
    ) -> None:
        self.partition = partition
        self.store = store
        self.now = now
        self.policy = policy
        self.metrics = metrics
        self._router = router

    def emit(self, outputs: Iterable[Output], at_ms: int | None = None) -> None:
        """Publish (or forward, or apply in place) a processor's outputs; `at_ms`: the event
        time (epoch ms) the published records reflect, when the handler knows it."""
        self._router.emit(self, outputs, at_ms)

    def dead_letter(self, record: InRecord, reason: str) -> None:
        """Send `record` to the dead letters with `reason`; it is not applied."""
        self._router.dead_letter(record, reason, millis(self.now))
