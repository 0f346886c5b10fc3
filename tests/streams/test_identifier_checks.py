"""Identifiers are checked whole: a trailing newline is not a valid identifier anywhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.auth import issue_token
from streams.handlers.views import check_view

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_a_token_is_refused_for_an_id_with_a_trailing_newline() -> None:
    with pytest.raises(ValueError, match="invalid user id"):
        issue_token("alice\n", "a-secret-of-at-least-32-bytes-long!!", AT)
    assert issue_token("alice", "a-secret-of-at-least-32-bytes-long!!", AT)


@pytest.mark.parametrize("field", ["story_id", "viewer_id", "event_id"])
def test_a_decoded_view_with_a_trailing_newline_in_an_id_is_refused(field: str) -> None:
    view = {
        "event_id": "e1",
        "type": "story_viewed",
        "story_id": "s1",
        "viewer_id": "u1",
        "viewed_at": AT,
    }
    assert check_view(view) is None
    assert check_view({**view, field: view[field] + "\n"}) == (
        f"{field}: must be 1-64 characters of [A-Za-z0-9_-]"
    )
