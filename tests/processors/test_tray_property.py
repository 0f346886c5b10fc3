"""Property: every tray, as the API serves it, equals a brute-force recomputation from history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors import authors, trays
from processors.authors import Author, AuthorInput
from processors.context import Ctx, Forward, Output, Policy, Put, Tombstone
from processors.messages import StoryClosed, StoryOpened, StorySeen
from processors.trays import TrayInput, TrayState
from schemas.events import Audience
from schemas.records import Tray, TrayEntry
from tests.processors.factories_social import (
    T0,
    followed,
    friend_added,
    friend_removed,
    unfollowed,
)

USERS = ("u0", "u1", "u2", "u3")
STORIES = ("s0", "s1", "s2", "s3", "s4")
TTL = timedelta(minutes=60)
GRACE = timedelta(minutes=10)

Step = tuple[Any, ...]
users = st.sampled_from(USERS)
story_ids = st.sampled_from(STORIES)
audiences: st.SearchStrategy[Audience] = st.sampled_from(["followers", "close_friends", "public"])
pairs = st.one_of(
    st.sampled_from([(a, b) for a in USERS for b in USERS if a != b]), st.tuples(users, users)
)
follows = st.tuples(st.just("follow"), pairs).map(lambda t: (t[0], *t[1]))
others = st.tuples(st.sampled_from(["unfollow", "cf_add", "cf_add", "cf_remove"]), pairs)
opens = st.tuples(
    st.just("open"), story_ids, users, audiences, st.integers(0, 10), st.integers(5, 60)
)
views = st.tuples(st.just("view"), users, story_ids)
# one_of picks uniformly among its branches: repeats weigh follows, opens and views more,
# so authors cross the celebrity threshold both ways and trays fill up.
steps: st.SearchStrategy[Step] = st.one_of(
    follows,
    follows,
    follows,
    others.map(lambda t: (t[0], *t[1])),
    opens,
    opens,
    st.tuples(st.just("close"), story_ids),
    views,
    views,
    st.tuples(st.just("tick"), st.integers(1, 30)),
)
histories = st.lists(steps, min_size=10, max_size=60)
# Small thresholds (an author has at most three followers) so authors cross them both ways.
thresholds = st.sampled_from([2, 3])


@dataclass
class History:
    """The whole history, kept plainly, for the brute-force recomputation."""

    follows: set[tuple[str, str]] = field(default_factory=set)  # (follower, author)
    close_friends: set[tuple[str, str]] = field(default_factory=set)  # (author, friend)
    opened: dict[str, StoryOpened] = field(default_factory=dict)  # ever opened
    closed: set[str] = field(default_factory=set)
    views: set[tuple[str, str]] = field(default_factory=set)  # (viewer, story)

    def tray(self, user: str, now: datetime) -> Tray:
        entries = []
        for author in USERS:
            if author == user or (user, author) not in self.follows:
                continue
            stories = sorted(
                (s.created_at, s.story_id)
                for s in self.opened.values()
                if s.author_id == author
                and s.story_id not in self.closed
                and s.expires_at > now
                and (s.audience != "close_friends" or (author, user) in self.close_friends)
            )
            if stories:
                entries.append(
                    TrayEntry(
                        author_id=author,
                        story_ids=tuple(story_id for _, story_id in stories),
                        latest_story_at=stories[-1][0],
                        has_unseen=any((user, sid) not in self.views for _, sid in stories),
                    )
                )
        entries.sort(key=lambda e: (not e.has_unseen, -e.latest_story_at.timestamp(), e.author_id))
        return Tray(user_id=user, entries=tuple(entries))


@dataclass
class World:
    """The author and tray stages with an in-test router; `twice` redelivers every input."""

    celebrity_followers: int = 3
    twice: bool = False
    now: datetime = T0
    authors: dict[str, Author] = field(default_factory=dict)
    trays: dict[str, TrayState] = field(default_factory=dict)
    topic: dict[str, Tray] = field(default_factory=dict)  # the compacted story-trays view
    inputs: list[tuple[str, AuthorInput | StorySeen]] = field(default_factory=list)

    def ctx(self) -> Ctx:
        policy = Policy(
            story_ttl=TTL, expiry_grace=GRACE, celebrity_followers=self.celebrity_followers
        )
        return Ctx(now=self.now, policy=policy)

    def to_author(self, key: str, item: AuthorInput) -> None:
        self.inputs.append((key, item))
        state, outputs = authors.handle(self.authors.get(key), item, self.ctx())
        if self.twice:
            again, repeated = authors.handle(state, item, self.ctx())
            assert repeated == [] and again == state
        self.authors[key] = state
        self.route(outputs)

    def to_tray(self, key: str, message: TrayInput) -> None:
        state, outputs = trays.handle(self.trays.get(key), message, self.ctx())
        if self.twice:
            again, repeated = trays.handle(state, message, self.ctx())
            assert repeated == [] and again == state
        self.trays[key] = state
        for output in outputs:
            if isinstance(output, Put):
                assert isinstance(output.value, Tray)
                self.topic[output.key] = output.value
            else:
                assert output == Tombstone(Tray, key)
                self.topic.pop(key, None)
        # The compacted topic always shows the tray as of this message.
        rendered = trays.render_tray(state, self.now)
        assert self.topic.get(key, Tray(user_id=key, entries=())) == rendered

    def seen(self, message: StorySeen) -> None:
        self.inputs.append((message.user_id, message))
        self.to_tray(message.user_id, message)

    def route(self, outputs: list[Output]) -> None:
        for output in outputs:
            assert isinstance(output, Forward) and output.stage == "tray"
            self.to_tray(output.key, output.message)

    def redeliver(self, start: int) -> None:
        """An at-least-once consumer resuming from an older offset, at the current time."""
        for key, item in self.inputs[start:]:
            if isinstance(item, StorySeen):
                self.to_tray(key, item)
            else:
                self.to_author(key, item)

    def served(self, user: str) -> Tray:
        """The tray exactly as the API serves it: tray state plus celebrities merged on read."""
        state = self.trays.get(user)
        celebrities = state.celebrities if state is not None else frozenset()
        followed_authors = [self.authors[a] for a in sorted(celebrities) if a in self.authors]
        return trays.read_tray(state, user, followed_authors, self.now)


def run(history: list[Step], world: World, crash: tuple[int, float] | None = None) -> History:
    """Drive `history` through the stages, checking every served tray after every step.

    `crash` (step, fraction): before that step, the inputs from that fraction of those
    processed so far are delivered again, as by a consumer resuming from an older offset
    whose state had already applied them (state and offsets are not committed atomically).
    """
    truth = History()
    for index, step in enumerate(history):
        if crash is not None and index == crash[0]:
            world.redeliver(int(crash[1] * len(world.inputs)))
        kind = step[0]
        at = world.now
        if kind in ("follow", "unfollow"):
            _, follower, author = step
            if follower != author:  # a self-follow is ignored (the author is never in their tray)
                (truth.follows.add if kind == "follow" else truth.follows.discard)(
                    (follower, author)
                )
            follow = (followed if kind == "follow" else unfollowed)(follower, author)
            world.to_author(author, follow.model_copy(update={"at": at}))
        elif kind in ("cf_add", "cf_remove"):
            _, author, friend = step
            if friend != author:
                (truth.close_friends.add if kind == "cf_add" else truth.close_friends.discard)(
                    (author, friend)
                )
            change = (friend_added if kind == "cf_add" else friend_removed)(author, friend)
            world.to_author(author, change.model_copy(update={"at": at}))
        elif kind == "open":
            _, story_id, author, audience, age, ttl = step
            known = truth.opened.get(story_id)
            if known is None:
                created = at - timedelta(minutes=age)
                known = StoryOpened(
                    story_id=story_id,
                    author_id=author,
                    created_at=created,
                    expires_at=created + timedelta(minutes=ttl),
                    audience=audience,
                )
                truth.opened[story_id] = known
            if story_id not in truth.closed:  # the story stage re-sends, never re-opens
                world.to_author(known.author_id, known)
        elif kind == "close":
            known = truth.opened.get(step[1])
            if known is not None and known.story_id not in truth.closed:
                truth.closed.add(known.story_id)
                closing = StoryClosed(story_id=known.story_id, author_id=known.author_id)
                world.to_author(known.author_id, closing)
        elif kind == "view":
            _, viewer, story_id = step
            if story_id in truth.opened:  # views of unknown stories are not applied
                truth.views.add((viewer, story_id))
                world.seen(StorySeen(user_id=viewer, story_id=story_id, at=at))
        else:
            world.now = at + timedelta(minutes=step[1])
        for user in USERS:
            assert world.served(user) == truth.tray(user, world.now), (user, step)
    return truth


@settings(max_examples=150, deadline=None)
@given(histories, thresholds)
def test_served_trays_equal_a_recomputation_from_the_whole_history(
    history: list[Step], threshold: int
) -> None:
    run(history, World(celebrity_followers=threshold))


@settings(max_examples=60, deadline=None)
@given(histories, thresholds)
def test_every_input_delivered_twice_changes_nothing_the_second_time(
    history: list[Step], threshold: int
) -> None:
    run(history, World(celebrity_followers=threshold, twice=True))


@settings(max_examples=100, deadline=None)
@given(histories, thresholds, st.data())
def test_redelivering_the_tail_of_what_was_processed_changes_nothing(
    history: list[Step], threshold: int, data: st.DataObject
) -> None:
    at_step = data.draw(st.integers(0, len(history)), label="crash before step")
    resume = data.draw(st.floats(0, 1), label="resume from this fraction of the inputs")
    world = World(celebrity_followers=threshold)
    truth = run(history, world, crash=(at_step, resume))
    world.redeliver(int(resume * len(world.inputs)))  # and once more at the very end
    for user in USERS:
        assert world.served(user) == truth.tray(user, world.now)
