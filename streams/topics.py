"""The topic catalog (contract section 4): names, keys, value records, cleanup policies."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from schemas.events import (
    CloseFriendChanged,
    Event,
    FollowChanged,
    HighlightChanged,
    MediaTranscoded,
    MediaUploaded,
    StoryDeleted,
    StoryPosted,
    StoryReacted,
    StoryViewed,
)
from schemas.records import (
    DeadLetter,
    ReactionCounts,
    Record,
    StoryState,
    StoryViewer,
    Tray,
    ViewCount,
)
from streams.kafka.clients import CHANGELOG_DELETE_RETENTION_MS

Kind = Literal["input", "pipeline", "output", "dead-letters", "stage", "changelog", "members"]


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what its key is, the Avro record of its values, its retention."""

    name: str
    record: str
    kind: Kind
    key: str
    story_keyed: bool = False
    partitions: int | None = None  # None: the configured count (co-partitioned)

    @property
    def compacted(self) -> bool:
        return self.kind in ("output", "changelog", "members")

    @property
    def subject(self) -> str:
        """The registry subject of its values (topic-name strategy)."""
        return f"{self.name}-value"

    def config(self, input_retention_ms: int) -> dict[str, str]:
        """Topic configs set explicitly (some brokers report only explicit configs)."""
        if self.kind == "changelog":  # how long compaction keeps a tombstone: see restore
            tombstones = str(CHANGELOG_DELETE_RETENTION_MS)
            return {
                "cleanup.policy": "compact",
                "retention.ms": "-1",
                "delete.retention.ms": tombstones,
            }
        if self.compacted:
            return {"cleanup.policy": "compact", "retention.ms": "-1"}
        if self.kind == "dead-letters":
            return {"cleanup.policy": "delete", "retention.ms": str(30 * 86_400_000)}
        return {"cleanup.policy": "delete", "retention.ms": str(input_retention_ms)}


STORY_POSTED = TopicSpec("story-posted", "StoryPosted", "input", "story_id", story_keyed=True)
STORY_VIEWED = TopicSpec("story-viewed", "StoryViewed", "input", "story_id", story_keyed=True)
STORY_REACTED = TopicSpec("story-reacted", "StoryReacted", "input", "story_id", story_keyed=True)
STORY_HIGHLIGHTS = TopicSpec(
    "story-highlights", "HighlightChanged", "input", "story_id", story_keyed=True
)
STORY_DELETED = TopicSpec("story-deleted", "StoryDeleted", "input", "story_id", story_keyed=True)
USER_FOLLOWS = TopicSpec("user-follows", "FollowChanged", "input", "followee_id / list owner")
MEDIA_UPLOADED = TopicSpec("media-uploaded", "MediaUploaded", "input", "media_id")
MEDIA_TRANSCODED = TopicSpec("media-transcoded", "MediaTranscoded", "pipeline", "media_id")
STORY_STATE = TopicSpec("story-state", "StoryState", "output", "story_id", story_keyed=True)
STORY_TRAYS = TopicSpec("story-trays", "Tray", "output", "user_id (the viewer)")
STORY_VIEW_COUNTS = TopicSpec(
    "story-view-counts", "ViewCount", "output", "story_id", story_keyed=True
)
STORY_VIEWERS = TopicSpec("story-viewers", "StoryViewer", "output", "{story_id}/{viewer_id}")
STORY_REACTION_COUNTS = TopicSpec(
    "story-reaction-counts", "ReactionCounts", "output", "story_id", story_keyed=True
)
DEAD_LETTERS = TopicSpec("story-dead-letters", "DeadLetter", "dead-letters", "the original key")

TOPICS: tuple[TopicSpec, ...] = (
    STORY_POSTED,
    STORY_VIEWED,
    STORY_REACTED,
    STORY_HIGHLIGHTS,
    STORY_DELETED,
    USER_FOLLOWS,
    MEDIA_UPLOADED,
    MEDIA_TRANSCODED,
    STORY_STATE,
    STORY_TRAYS,
    STORY_VIEW_COUNTS,
    STORY_VIEWERS,
    STORY_REACTION_COUNTS,
    DEAD_LETTERS,
)
BY_NAME = {spec.name: spec for spec in TOPICS}

EVENT_ROUTES: dict[type[Event], tuple[TopicSpec, str]] = {  # topic, the field that is the key
    StoryPosted: (STORY_POSTED, "story_id"),
    StoryViewed: (STORY_VIEWED, "story_id"),
    StoryReacted: (STORY_REACTED, "story_id"),
    HighlightChanged: (STORY_HIGHLIGHTS, "story_id"),
    StoryDeleted: (STORY_DELETED, "story_id"),
    FollowChanged: (USER_FOLLOWS, "followee_id"),
    CloseFriendChanged: (USER_FOLLOWS, "user_id"),
    MediaUploaded: (MEDIA_UPLOADED, "media_id"),
    MediaTranscoded: (MEDIA_TRANSCODED, "media_id"),
}
_RECORD_TOPICS: dict[type[Record], TopicSpec] = {
    StoryState: STORY_STATE,
    Tray: STORY_TRAYS,
    ViewCount: STORY_VIEW_COUNTS,
    StoryViewer: STORY_VIEWERS,
    ReactionCounts: STORY_REACTION_COUNTS,
    DeadLetter: DEAD_LETTERS,
}


STAGES = ("story", "media", "author", "tray", "objects")  # the worker's repartition topics


def stage_topic(app_id: str, stage: str) -> str:
    return f"{app_id}-stage-{stage}"


def internal_topics(app_id: str) -> tuple[TopicSpec, ...]:
    """The worker's own topics: stage repartitions, the state changelog (every stage's state,
    compacted) and the members topic (which worker serves which partitions)."""
    stages = tuple(
        TopicSpec(stage_topic(app_id, stage), "internal messages", "stage", "the stage's key")
        for stage in STAGES
    )
    return (
        *stages,
        TopicSpec(f"{app_id}-changelog", "state", "changelog", "state key"),
        TopicSpec(f"{app_id}-members", "announcements", "members", "worker id", partitions=1),
    )


def output_topics(prefix: str) -> tuple[TopicSpec, ...]:
    """The output topics under `prefix` (an isolated run: replay, STORYSTREAM_OUTPUT_PREFIX)."""
    return tuple(
        replace(spec, name=prefix + spec.name)
        for spec in TOPICS
        if spec.kind in ("output", "dead-letters")
    )


def route(event: Event) -> tuple[TopicSpec, str]:
    """The topic and key an input event is published under."""
    spec, key_field = EVENT_ROUTES[type(event)]
    key: str = getattr(event, key_field)
    return spec, key


def topic_of_record(record: type[Record]) -> TopicSpec:
    """The output topic that carries records of this type."""
    return _RECORD_TOPICS[record]


def lookup(name: str) -> TopicSpec:
    """The spec of a topic by name, with a clear error listing the known ones."""
    if name in BY_NAME:
        return BY_NAME[name]
    for spec in TOPICS:  # an output topic of a prefixed run (replay, STORYSTREAM_OUTPUT_PREFIX)
        if spec.kind in ("output", "dead-letters") and name.endswith("-" + spec.name):
            return replace(spec, name=name)
    raise ValueError(f"unknown topic {name!r}; known: {', '.join(BY_NAME)}")
