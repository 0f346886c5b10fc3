"""The topology as plain data: stages, the topics each consumes, their handlers and state,
where their forwards go and which topic takes each output record."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from schemas.records import Record
from streams.topics import DEAD_LETTERS, TopicSpec, output_topics, topic_of_record

if TYPE_CHECKING:
    from streams.runtime.context import StageContext
    from streams.runtime.records import InRecord
    from streams.runtime.store import PartitionStore


class StageHandler(Protocol):
    """A stage's wiring: decodes its topics' records, applies its processors, emits."""

    def handle(self, ctx: StageContext, records: Sequence[InRecord]) -> None:
        """Apply `records` (all of one topic and partition, in processing order)."""
        ...

    def tick(self, ctx: StageContext) -> None:
        """Run the stage's timers (expiry, purge, sweeps) at `ctx.now`."""
        ...


class Timer(Protocol):
    """A time index a stage's `tick` acts on (its expiries, its parked events' deadlines)."""

    def first_due(self, store: PartitionStore) -> int | None:
        """The earliest time (epoch ms) an entry may be due (its exact time is that or later);
        None when nothing waits."""
        ...


class DerivedKeys(Protocol):
    """State keys rebuilt from other keys on restore instead of being changelogged."""

    prefixes: tuple[bytes, ...]

    def rebuild(
        self, store: PartitionStore, key: bytes, old: bytes | None, new: bytes | None
    ) -> None:
        """`key` is being restored from `old` to `new`: write the keys derived from it."""
        ...


LocalApply = Callable[["StageContext", str, Any], None]


@dataclass(frozen=True)
class Stage:
    """One keyed stage: the topics it consumes (in tie order), its handler, the state key
    families it owns, those of them rebuilt on restore, and the timers whose entries make its
    `tick` emit or change what it decides later (a sweep of what no processor reads any more
    is not one). A `sink` forwards nothing and has no such timers: applying its records
    later changes no other stage, so the in-process driver may hold them back and apply
    many batches' worth at once, as a live stage that lags does."""

    name: str
    topics: tuple[str, ...]
    handler: StageHandler
    state: tuple[str, ...] = ()
    derived: DerivedKeys | None = None
    timers: tuple[Timer, ...] = ()
    sink: bool = False


@dataclass(frozen=True)
class Route:
    """Where forwards to a stage go: a repartition topic (`batched`: one record per stage
    partition and batch) or, for a stage keyed like its sender, `apply` in place."""

    stage: str
    topic: str | None = None
    batched: bool = False
    apply: LocalApply | None = None


@dataclass(frozen=True)
class Topology:
    """The whole processing graph of a worker (and of replay), declared once."""

    stages: tuple[Stage, ...]
    routes: Mapping[str, Route]
    partitions: int
    changelog: str
    output_prefix: str = ""
    external_inputs: frozenset[str] = frozenset()  # keyed by producers: keys are checked
    _by_topic: dict[str, Stage] = field(default_factory=dict, init=False, repr=False)
    _rank: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for stage in self.stages:
            for topic in stage.topics:
                if topic in self._by_topic:
                    raise ValueError(f"topic {topic} is consumed by two stages")
                self._by_topic[topic] = stage
                self._rank[topic] = len(self._rank)
        for route in self.routes.values():
            if (route.topic is None) == (route.apply is None):
                raise ValueError(f"route to {route.stage}: a topic or an in-place apply")
        for stage in self.stages:
            if stage.sink and stage.timers:
                raise ValueError(f"stage {stage.name}: a sink has no timers")

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the stages consume."""
        return tuple(self._by_topic)

    def stage_of(self, topic: str) -> Stage:
        return self._by_topic[topic]

    def rank(self, topic: str) -> int:
        """Tie order at equal timestamps: stages in declaration order, topics within."""
        return self._rank[topic]

    def route(self, stage: str) -> Route:
        try:
            return self.routes[stage]
        except KeyError:
            raise KeyError(f"no route to stage {stage!r}") from None

    @property
    def derived_prefixes(self) -> tuple[bytes, ...]:
        return tuple(p for s in self.stages if s.derived is not None for p in s.derived.prefixes)

    @property
    def dead_letters(self) -> TopicSpec:
        return DEAD_LETTERS

    def output_spec(self, record: type[Record]) -> TopicSpec:
        return topic_of_record(record)

    def output_topic(self, record: type[Record]) -> str:
        """The topic records of this type are published to (with the output prefix)."""
        return self.output_prefix + topic_of_record(record).name

    @property
    def output_topics(self) -> tuple[str, ...]:
        """Every topic outputs and dead letters go to (with the output prefix)."""
        return tuple(spec.name for spec in output_topics(self.output_prefix))
