"""Hypothesis strategies for valid input events as JSON objects (the `publish` input)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from schemas.types import NAMED_REACTIONS

identifiers = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
_base = datetime(2020, 1, 1, tzinfo=UTC)
times = st.integers(0, 10 * 365 * 86_400_000).map(lambda ms: _base + timedelta(milliseconds=ms))


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


iso_times = times.map(iso)
reactions = st.sampled_from(sorted(NAMED_REACTIONS) + ["👍", "❤️", "🔥", "👍🏽", "👨‍👩‍👧"])
renditions = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["1080", "720", "480", "thumbnail"]),
        "url": identifiers.map(lambda k: f"https://cdn.example/{k}.jpg"),
        "width": st.integers(1, 4000),
        "height": st.integers(1, 4000),
        "content_type": st.sampled_from(["image/jpeg", "video/mp4"]),
    }
)
maybe_event_id = st.one_of(st.none(), identifiers)


def _with(required: dict, optional: dict) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(required, optional=optional).map(
        lambda d: {k: v for k, v in d.items() if v is not None}
    )


@st.composite
def story_posted(draw: st.DrawFn) -> dict:
    created = draw(times)
    event = draw(
        _with(
            {
                "type": st.just("story_posted"),
                "story_id": identifiers,
                "author_id": identifiers,
                "created_at": st.just(iso(created)),
            },
            {
                "event_id": maybe_event_id,
                "media_id": identifiers,
                "media": st.lists(renditions, max_size=3),
                "media_type": st.sampled_from(["image", "video"]),
                "audience": st.sampled_from(["followers", "close_friends", "public"]),
                "mentions": st.lists(identifiers, max_size=3),
                "hashtags": st.lists(st.text(min_size=1, max_size=20), max_size=3),
                "location": st.text(max_size=50),
            },
        )
    )
    if draw(st.booleans()):
        event["expires_at"] = iso(created + timedelta(milliseconds=draw(st.integers(1, 10**9))))
    return event


def _simple(kind: str, fields: dict, optional: dict | None = None) -> st.SearchStrategy[dict]:
    return _with(
        {"type": st.just(kind), **fields}, {"event_id": maybe_event_id, **(optional or {})}
    )


events = st.one_of(
    story_posted(),
    _simple(
        "story_viewed", {"story_id": identifiers, "viewer_id": identifiers, "viewed_at": iso_times}
    ),
    _simple(
        "story_reacted",
        {
            "story_id": identifiers,
            "user_id": identifiers,
            "reaction": reactions,
            "reacted_at": iso_times,
        },
        {"text": st.text(max_size=1000)},
    ),
    *[
        _simple(
            kind,
            {
                "story_id": identifiers,
                "author_id": identifiers,
                "highlight_id": identifiers,
                "at": iso_times,
            },
            {"title": st.text(max_size=200)},
        )
        for kind in ("highlight_added", "highlight_removed")
    ],
    _simple(
        "story_deleted",
        {"story_id": identifiers, "author_id": identifiers, "deleted_at": iso_times},
    ),
    *[
        _simple(kind, {"follower_id": identifiers, "followee_id": identifiers, "at": iso_times})
        for kind in ("user_followed", "user_unfollowed")
    ],
    *[
        _simple(kind, {"user_id": identifiers, "friend_id": identifiers, "at": iso_times})
        for kind in ("close_friend_added", "close_friend_removed")
    ],
    _simple(
        "media_uploaded",
        {
            "media_id": identifiers,
            "author_id": identifiers,
            "object_key": identifiers,
            "content_type": st.sampled_from(["image/jpeg", "video/mp4"]),
            "at": iso_times,
        },
        {"size_bytes": st.integers(0, 2**40), "story_id": identifiers},
    ),
    _simple(
        "media_transcoded",
        {"media_id": identifiers, "renditions": st.lists(renditions, max_size=4), "at": iso_times},
        {"duration_ms": st.integers(0, 60_000), "error": st.text(max_size=100)},
    ),
)
