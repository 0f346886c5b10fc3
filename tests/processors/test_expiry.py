"""Each story's next due time."""

from __future__ import annotations

import pytest

from processors.expiry import next_due
from processors.stories import expire, handle
from tests.processors.factories_stories import (
    GRACE_MIN,
    MEDIA,
    TTL_MIN,
    at,
    ctx,
    deleted,
    highlight,
    posted,
)


@pytest.mark.parametrize(
    ("story_minutes", "expected"),
    [
        ("live", TTL_MIN),
        ("expired", TTL_MIN + GRACE_MIN),
        ("deleted", TTL_MIN + GRACE_MIN),  # kept until expires_at + grace at least
        ("highlighted", None),
    ],
)
def test_next_due(story_minutes: str, expected: float | None) -> None:
    live, _ = handle(None, posted(media_id=MEDIA, ready=True), ctx())
    if story_minutes == "expired":
        live, _ = expire(live, ctx(TTL_MIN))
    elif story_minutes == "deleted":
        live, _ = handle(live, deleted(minutes=30), ctx(30))
    elif story_minutes == "highlighted":
        live, _ = handle(live, highlight(minutes=1), ctx(1))
        live, _ = expire(live, ctx(TTL_MIN))
    due = next_due(live, ctx().policy)
    assert due == (None if expected is None else at(expected))
    assert next_due(None, ctx().policy) is None
