"""`apply_by_key` (one state read and write per key and batch) gives what applying each
message on its own gives: the same states and, per key, the same outputs in the same order."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors import authors
from processors.authors import Author
from processors.context import Ctx
from streams.engine import InRecord, PartitionContext
from streams.handlers.common import Table, apply_by_key
from streams.store import PartitionStore
from tests.processors.factories_social import T0, closed, ctx, cut, followed, opened, unfollowed

AUTHOR_IDS = ("ann", "bob")
AUTHORS: Table[Author] = Table("author")  # pickled, sets and all (a table like any other)


class _Engine:
    """What a handler reaches through its PartitionContext: the policy and emit."""

    def __init__(self) -> None:
        self.policy = ctx().policy
        self.emitted: list[tuple[str, Any]] = []

    def emit(self, _: PartitionContext, outputs: Iterable[tuple[str, Any]]) -> None:
        self.emitted.extend(outputs)


def _author_of(item: Any) -> str:
    return str(getattr(item, "followee_id", None) or item.author_id)


def _tagged(state: Author | None, item: Any, c: Ctx) -> tuple[Author, list[tuple[str, Any]]]:
    """authors.handle, its outputs tagged with the author they came from."""
    new, outputs = authors.handle(state, item, c)
    return new, [(_author_of(item), output) for output in outputs]


_messages = st.lists(
    st.one_of(
        st.builds(followed, st.sampled_from(("u1", "u2", "u3")), st.sampled_from(AUTHOR_IDS)),
        st.builds(unfollowed, st.sampled_from(("u1", "u2", "u3")), st.sampled_from(AUTHOR_IDS)),
        st.builds(opened, st.sampled_from(("s1", "s2", "s3")), st.sampled_from(AUTHOR_IDS)),
        st.builds(closed, st.sampled_from(("s1", "s2", "s3")), st.sampled_from(AUTHOR_IDS)),
    ),
    max_size=30,
)


def _run(batches: list[list[Any]]) -> tuple[dict[str, Author | None], dict[str, list[Any]]]:
    engine = _Engine()
    with tempfile.TemporaryDirectory() as tmp:
        store = PartitionStore(Path(tmp) / "p0")
        pctx = PartitionContext(engine, 0, store, T0)  # type: ignore[arg-type]
        offsets: Iterator[int] = iter(range(10_000))
        for batch in batches:
            records = [
                (InRecord("t", 0, next(offsets), _author_of(m).encode(), None, 0), m) for m in batch
            ]
            apply_by_key(pctx, AUTHORS, records, _tagged)
        states = {a: AUTHORS.get(store, a) for a in AUTHOR_IDS}
        store.close()
    by_author: dict[str, list[Any]] = defaultdict(list)
    for author, output in engine.emitted:
        by_author[author].append(output)
    return states, dict(by_author)


@settings(max_examples=60, deadline=None)
@given(_messages, st.lists(st.integers(1, 10), max_size=10))
def test_batched_application_equals_one_message_at_a_time(
    messages: list[Any], cuts: list[int]
) -> None:
    batches = cut(messages, cuts)
    assert _run(batches) == _one_at_a_time(messages)


def _one_at_a_time(messages: list[Any]) -> tuple[dict[str, Author | None], dict[str, list[Any]]]:
    """The reference: the processor called once per message, no store, no batching."""
    states: dict[str, Author | None] = dict.fromkeys(AUTHOR_IDS)
    by_author: dict[str, list[Any]] = defaultdict(list)
    for message in messages:
        author = _author_of(message)
        new, outputs = authors.handle(states[author], message, ctx())
        states[author] = None if new.is_empty else new
        by_author[author] += outputs
    return states, {author: outputs for author, outputs in by_author.items() if outputs}


def test_a_state_emptied_in_a_batch_is_deleted() -> None:
    states, _ = _run([[followed("u1", "ann"), followed("u2", "bob"), unfollowed("u1", "ann")]])
    assert states["ann"] is None
    assert states["bob"] is not None and states["bob"].followers == {"u2"}
