"""The tray stage's state in the store: one value per user, one key per seen mark. Applied in
batches through the store, with time passing and the sweep deleting old marks, the processors
give what they give on whole in-memory states; a view outside the tray writes one small key
whatever the user has seen; the marks' index is rebuilt on restore."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors import trays
from processors.context import Ctx, Policy, Put
from processors.trays import TrayState
from schemas.types import millis
from streams.runtime.context import StageContext
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore
from streams.stages.social import apply_trays
from streams.stages.tray_store import (
    MARK_TAG,
    SEEN_DUE,
    TRAY_STATE,
    TRAYS,
    MarkIndexKeys,
    TrayValue,
    mark_key,
    read_tray_state,
    sweep,
    with_read_marks,
)
from tests.processors.factories_social import TTL, added, at, celebrity, removed, seen
from tests.streams.stage_context import OutputRecorder

USERS = ("u1", "u2")
STORIES = ("s1", "s2", "s3", "s4")
# Short lifetimes, so that stories and marks expire within a run and the sweep has work.
POLICY = Policy(story_ttl=timedelta(minutes=60), expiry_grace=timedelta(minutes=10))


class _Engine(OutputRecorder):
    """Records what the tray stage emits."""


def _context(engine: _Engine, store: PartitionStore, now: datetime) -> StageContext:
    return StageContext(0, store, now, POLICY, Metrics(), engine)  # type: ignore[arg-type]


def _message(kind: str, user: str, story: str, ttl: int, minute: float) -> Any:
    author = "ann" if story in ("s1", "s2") else "cid"
    if kind == "added":
        return added(user, author, story, minute, ttl=timedelta(minutes=ttl))
    if kind == "removed":
        return removed(user, author, story)
    if kind == "seen":  # a view a little before it reaches the stage
        return seen(user, story, minute - ttl / 10)
    return celebrity(user, "zed", following=ttl % 2 == 0)


_message_args = st.tuples(
    st.sampled_from(("added", "removed", "seen", "seen", "celebrity")),
    st.sampled_from(USERS),
    st.sampled_from(STORIES),
    st.integers(5, 90),
)
_steps = st.lists(
    st.tuples(st.lists(_message_args, max_size=6), st.integers(0, 40)), min_size=1, max_size=12
)


def _batches(steps: list[tuple[list[Any], int]]) -> list[tuple[float, list[Any]]]:
    minute = 0.0
    batches = []
    for args, advance in steps:
        minute += advance
        batches.append((minute, [_message(k, u, s, ttl, minute) for k, u, s, ttl in args]))
    return batches


def _records(messages: list[Any], offsets: Iterator[int]) -> list[tuple[InRecord, Any]]:
    return [(InRecord("t", 0, next(offsets), m.user_id.encode(), None, 0), m) for m in messages]


def _stored_marks(store: PartitionStore, user: str) -> dict[str, datetime]:
    prefix = MARK_TAG + user.encode() + b"\x00"
    state = read_tray_state(store.get, user) or TrayState(user)
    ids = [key[len(prefix) :].decode() for key, _ in store.scan(prefix)]
    return {m.story_id: m.keep_until for m in with_read_marks(store.get, state, ids).seen}


def _run_stored(tmp: Path, batches: list[tuple[float, list[Any]]]) -> tuple[Any, ...]:
    engine = _Engine()
    store = PartitionStore(tmp / "p0")
    try:
        offsets = iter(range(10_000))
        for i, (minute, messages) in enumerate(batches):
            pctx = _context(engine, store, at(minute))
            apply_trays(pctx, _records(messages, offsets))
            pctx.store.keep_run()  # the run succeeded, as the driver would say
            if i % 2:
                sweep(store, at(minute))
                store.flush()  # some batches read what earlier ones left in RocksDB
        end = at(batches[-1][0])
        sweep(store, end)
        cores = {u: read_tray_state(store.get, u) for u in USERS}
        marks = {u: _stored_marks(store, u) for u in USERS}
        due = {raw for raw, _ in SEEN_DUE.due_entries(store, end + timedelta(days=365))}
    finally:
        store.close()
    return engine.emitted, cores, marks, due


def _one_at_a_time(batches: list[tuple[float, list[Any]]]) -> tuple[Any, ...]:
    """The reference: the processor once per message on whole in-memory states. The stage
    publishes a user's tray once per run, so of each batch's outputs for a user only the
    last is expected, and only when it differs from what that user's tray last was."""
    states: dict[str, TrayState | None] = dict.fromkeys(USERS)
    published: dict[str, Put | None] = dict.fromkeys(USERS)
    emitted: list[Any] = []
    for minute, messages in batches:
        last: dict[str, Any] = {}
        for m in messages:
            states[m.user_id], outputs = trays.handle(
                states[m.user_id], m, Ctx(now=at(minute), policy=POLICY)
            )
            last.update((output.key, output) for output in outputs)
        for user, output in last.items():
            now = output if isinstance(output, Put) else None
            if now != published[user]:
                published[user] = now
                emitted.append(output)
    return emitted, states


@settings(max_examples=80, deadline=None)
@given(_steps)
def test_stored_marks_give_what_whole_states_give(
    tmp_path_factory: Any, steps: list[tuple[list[Any], int]]
) -> None:
    batches = _batches(steps)
    emitted, cores, marks, due = _run_stored(tmp_path_factory.mktemp("trays"), batches)
    expected, states = _one_at_a_time(batches)
    assert _by_user(emitted) == _by_user(expected)
    end = at(batches[-1][0])
    for user in USERS:
        state = states[user]
        live = {s.story_id: s.keep_until for s in state.seen} if state else {}
        # what the sweep left: the marks still in force at the end, as the reference has them
        assert marks[user] == {s: t for s, t in live.items() if t > end}
        # the value: the reference's state but for the marks (flags and all)
        core = replace(state, seen=()) if state is not None else None
        assert cores[user] == (None if core is None or core.is_empty else core)
    # every mark has its index entry, at its time, and there is no other entry
    assert due == {
        SEEN_DUE.key(until, f"{user}\0{story}")
        for user in USERS
        for story, until in marks[user].items()
    }


def _by_user(outputs: list[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for output in outputs:
        grouped[output.key].append(output)
    return dict(grouped)


def _apply(store: PartitionStore, engine: _Engine, minute: float, messages: list[Any]) -> None:
    pctx = _context(engine, store, at(minute))
    apply_trays(pctx, _records(messages, iter(range(10_000))))
    pctx.store.keep_run()  # the run succeeded, as the driver would say


def test_a_view_outside_the_tray_writes_one_mark_whatever_was_seen_before(tmp_path: Path) -> None:
    store, engine = PartitionStore(tmp_path / "p0"), _Engine()
    _apply(store, engine, 0, [added("bob", "ann", "s1")])
    _apply(store, engine, 1, [seen("bob", f"other-{i}", 1) for i in range(2_000)])
    store.flush()
    tray_value = store.get(TRAYS.key("bob"))
    assert tray_value is not None and len(tray_value) < 500  # no marks in it
    _apply(store, engine, 2, [seen("bob", "one-more", 2)])
    written = {k for k, v in store.dirty.items() if v is not None}
    until = at(2) + POLICY.story_ttl + POLICY.expiry_grace
    assert written == {mark_key("bob", "one-more"), SEEN_DUE.key(until, "bob\0one-more")}
    store.close()


def test_a_tray_value_starts_with_its_earliest_expiry_and_its_story_ids(tmp_path: Path) -> None:
    store, engine = PartitionStore(tmp_path / "p0"), _Engine()
    _apply(store, engine, 0, [added("bob", "ann", "s1", 0), added("bob", "cid", "s2", -5)])
    value = store.get(TRAYS.key("bob"))
    assert value is not None
    earliest, ids, encoded = TRAYS.decode(value)
    assert (earliest, ids) == (millis(at(-5) + TTL), ("s1", "s2"))
    state = read_tray_state(store.get, "bob")
    assert state is not None and TRAY_STATE.decode(encoded) == state
    assert [s.story_id for s in state.stories] == ["s1", "s2"]
    assert TRAYS.decode(value) == TrayValue(earliest, ids, TRAY_STATE.encode(state))
    store.close()


def test_views_outside_the_tray_do_not_decode_it_and_views_inside_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, engine = PartitionStore(tmp_path / "p0"), _Engine()
    _apply(store, engine, 0, [added("bob", "ann", "s1", 0)])
    store.flush()
    decoded: list[bytes] = []
    decode = TRAY_STATE.decode

    def counted(data: bytes) -> TrayState:
        decoded.append(data)
        return decode(data)

    monkeypatch.setattr(TRAY_STATE, "decode", counted)
    _apply(store, engine, 1, [seen("bob", "s10", 1), seen("bob", "s", 1), seen("bob", "1", 1)])
    assert decoded == []  # "s10", "s" and "1" are not "s1"
    assert set(_stored_marks(store, "bob")) == {"s10", "s", "1"}  # (a reader decodes it)
    decoded.clear()
    _apply(store, engine, 2, [seen("bob", "s1", 2)])
    assert len(decoded) == 1
    (put,) = engine.emitted[1:]
    assert [e.has_unseen for e in put.value.entries] == [False]
    store.close()


def test_a_view_after_a_tray_story_expired_changes_the_tray(tmp_path: Path) -> None:
    store, engine = PartitionStore(tmp_path / "p0"), _Engine()
    short = timedelta(minutes=10)
    _apply(store, engine, 0, [added("bob", "ann", "s1", ttl=short), added("bob", "cid", "s2")])
    (before,) = engine.emitted  # one tray for the run's two stories
    _apply(store, engine, 11, [seen("bob", "x", 11)])  # s1 has expired: the tray is published
    (after,) = engine.emitted[1:]
    assert [e.author_id for e in before.value.entries] == ["ann", "cid"]
    assert [e.author_id for e in after.value.entries] == ["cid"]
    state = read_tray_state(store.get, "bob")
    assert state is not None and [s.story_id for s in state.stories] == ["s2"]
    store.close()


def test_a_seen_story_joining_the_tray_is_not_unseen(tmp_path: Path) -> None:
    store, engine = PartitionStore(tmp_path / "p0"), _Engine()
    _apply(store, engine, 0, [seen("bob", "s1", 0)])
    store.flush()
    _apply(store, engine, 1, [added("bob", "ann", "s1", 1)])
    (put,) = engine.emitted
    assert [e.has_unseen for e in put.value.entries] == [False]
    store.close()


def test_a_view_in_the_tray_writes_no_mark_until_the_story_leaves_it(tmp_path: Path) -> None:
    store, engine = PartitionStore(tmp_path / "p0"), _Engine()
    _apply(store, engine, 0, [added("bob", "ann", "s1")])
    store.flush()
    _apply(store, engine, 1, [seen("bob", "s1", 1)])
    assert set(store.dirty) == {TRAYS.key("bob")}  # the story's flag, and nothing else
    store.flush()
    # unfollowed: the viewed story is marked until it expires, so a re-follow finds it seen
    _apply(store, engine, 2, [removed("bob", "ann", "s1")])
    assert _stored_marks(store, "bob") == {"s1": at(0) + TTL}
    _apply(store, engine, 3, [added("bob", "ann", "s1")])
    assert [e.has_unseen for e in engine.emitted[-1].value.entries] == [False]
    store.close()


def test_the_sweep_deletes_marks_once_their_time_has_passed(tmp_path: Path) -> None:
    store, engine = PartitionStore(tmp_path / "p0"), _Engine()
    _apply(store, engine, 0, [seen("bob", "s1", 0), seen("ann", "s2", 30)])
    store.flush()  # the sweep reads committed entries (the batch's own are not due yet)
    first, second = at(0) + timedelta(minutes=70), at(30) + timedelta(minutes=70)
    assert sweep(store, first - timedelta(seconds=1)) == 0
    assert sweep(store, first) == 1
    assert _stored_marks(store, "bob") == {} and _stored_marks(store, "ann") == {"s2": second}
    assert sweep(store, second) == 1
    assert SEEN_DUE.due_entries(store, second + timedelta(days=1)) == []
    store.close()


def test_the_marks_index_is_derived_and_rebuilt_on_restore(tmp_path: Path) -> None:
    live, engine = PartitionStore(tmp_path / "live"), _Engine()
    restored = PartitionStore(tmp_path / "restored")
    batches = [
        (0, [added("bob", "ann", "s1"), seen("bob", "s1", 0), seen("bob", "x", 0)]),
        (5, [seen("bob", "y", 5), added("bob", "cid", "x", 5), removed("bob", "ann", "s1")]),
        (6, [removed("bob", "cid", "x")]),  # x's mark moves later: to when x expires
    ]
    for minute, messages in batches:
        _apply(live, engine, minute, messages)
        changed = dict(live.dirty)
        live.flush()
        assert any(k.startswith(MarkIndexKeys.prefixes) for k in changed)
        for key, value in changed.items():  # what the changelog carries: keys not derived
            if not key.startswith(MarkIndexKeys.prefixes):
                MarkIndexKeys.rebuild(restored, key, restored.get_committed(key), value)
                restored.apply_restored(key, value)
    far = at(0) + timedelta(days=30)
    entries = SEEN_DUE.due_entries(live, far)
    assert SEEN_DUE.due_entries(restored, far) == entries
    assert [name for _, name in entries] == ["bob\0y", "bob\0s1", "bob\0x"]  # by time
    live.close()
    restored.close()
