"""Identifiers are checked whole: a trailing newline is not a valid identifier anywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.views import View
from schemas.types import millis
from streams.api.auth import issue_token
from streams.stages.views import check_view

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_a_token_is_refused_for_an_id_with_a_trailing_newline() -> None:
    with pytest.raises(ValueError, match="invalid user id"):
        issue_token("alice\n", "a-secret-of-at-least-32-bytes-long!!", AT)
    assert issue_token("alice", "a-secret-of-at-least-32-bytes-long!!", AT)


@pytest.mark.parametrize("field", ["story_id", "viewer_id", "event_id"])
def test_a_decoded_view_with_a_trailing_newline_in_an_id_is_refused(field: str) -> None:
    view = View(story_id="s1", viewer_id="u1", event_id="e1", viewed_at=millis(AT))
    assert check_view(view) is None
    assert check_view(view._replace(**{field: getattr(view, field) + "\n"})) == (
        f"{field}: must be 1-64 characters of [A-Za-z0-9_-]"
    )


_ID_ALPHABET = st.sampled_from([*"aZ09_-", "/", "\n", " ", "é"])


@settings(max_examples=300, deadline=None)
@given(
    ids=st.tuples(*[st.text(_ID_ALPHABET, min_size=0, max_size=66)] * 3),
)
def test_the_view_check_names_the_first_bad_identifier_or_none(ids: tuple[str, ...]) -> None:
    fields = ("story_id", "viewer_id", "event_id")
    view = View(viewed_at=millis(AT), **dict(zip(fields, ids, strict=True)))
    bad = [
        f for f, v in zip(fields, ids, strict=True) if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v)
    ]
    expected = f"{bad[0]}: must be 1-64 characters of [A-Za-z0-9_-]" if bad else None
    assert check_view(view) == expected
