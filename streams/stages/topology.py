"""The storystream topology, declared once: every stage, the topics it consumes, its handler
and state, and where each stage's forwards go. The live engine, replay and the tests drive it."""

from __future__ import annotations

from streams.codecs.registry import SchemaRegistry
from streams.runtime.topology import Route, Stage, Topology
from streams.stages.social import AuthorHandler, TrayHandler
from streams.stages.stories import (
    MEDIA_DUE,
    STORY_DUE,
    STORY_PARKING,
    MediaJoinHandler,
    StoryHandler,
)
from streams.stages.tray_store import MarkIndexKeys
from streams.stages.views import (
    PARKING,
    ReactionsHandler,
    ViewerOrderKeys,
    ViewsHandler,
    apply_lifecycle,
)
from streams.topics import (
    MEDIA_TRANSCODED,
    STORY_DELETED,
    STORY_HIGHLIGHTS,
    STORY_POSTED,
    STORY_REACTED,
    STORY_VIEWED,
    TOPICS,
    USER_FOLLOWS,
    stage_topic,
)


def build_topology(
    registry: SchemaRegistry, app_id: str, partitions: int, output_prefix: str = ""
) -> Topology:
    """The stages in tie order: at equal timestamps a story's post, highlights and deletion
    are applied before the views and reactions that depend on them."""

    def stage(name: str) -> str:
        return stage_topic(app_id, name)

    stages = (
        Stage(
            "story",
            (STORY_POSTED.name, STORY_HIGHLIGHTS.name, STORY_DELETED.name, stage("story")),
            StoryHandler(registry),
            state=("story", "storydue"),
            timers=(STORY_DUE, STORY_PARKING),
        ),
        Stage(
            "media",
            (MEDIA_TRANSCODED.name, stage("media")),
            MediaJoinHandler(registry),
            state=("media", "mediadue"),
            timers=(MEDIA_DUE,),
        ),
        Stage(
            "views",
            (STORY_VIEWED.name,),
            ViewsHandler(registry),
            state=("info", "views", "viewer index", "viewer list", "parked"),
            derived=ViewerOrderKeys(),
            timers=(PARKING,),
        ),
        Stage(
            "reactions",
            (STORY_REACTED.name,),
            ReactionsHandler(registry),
            state=("reactions", "reaction events"),
        ),
        Stage(
            "author",
            (USER_FOLLOWS.name, stage("author")),
            AuthorHandler(registry),
            state=("author", "followers", "close friends"),
        ),
        Stage(
            "tray",
            (stage("tray"),),
            TrayHandler(),
            state=("tray", "marks"),
            derived=MarkIndexKeys(),
            sink=True,  # publishes trays, forwards nothing
        ),
    )
    routes = {
        name: Route(name, stage(name), batched=True)
        for name in ("story", "media", "author", "tray")
    }
    routes["objects"] = Route("objects", stage("objects"))  # the media service reads it
    routes["lifecycle"] = Route("lifecycle", apply=apply_lifecycle)  # keyed like its sender
    return Topology(
        stages,
        routes,
        partitions,
        changelog=f"{app_id}-changelog",
        output_prefix=output_prefix,
        external_inputs=frozenset(s.name for s in TOPICS if s.kind in ("input", "pipeline")),
    )
