"""When the clock next changes a story: its expiry, its purge, or never."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from processors.context import Policy

if TYPE_CHECKING:
    from processors.stories import Story


def next_due(story: Story | None, policy: Policy) -> datetime | None:
    """When the clock next changes `story`: its expiry, its purge, or never (highlighted).

    Live (processing/active): `expires_at`. Ended (expired, deleted, failed) and not
    highlighted: `max(expires_at, ended_at) + expiry_grace`. Expired but highlighted: `None`,
    the story is kept until a highlight change or a delete.

    A story that ended early (deleted, failed) is still kept until `expires_at + grace`: its
    state is what refuses a redelivered `story_posted`, which would otherwise open it again.
    """
    if story is None:
        return None
    if story.phase in ("processing", "active"):
        return story.expires_at
    if story.phase == "expired" and story.highlighted:
        return None
    ended_at = story.ended_at if story.ended_at is not None else story.expires_at
    return max(ended_at, story.expires_at) + policy.expiry_grace
