"""The state codec's cost: encode and decode time and size of typical stored values.

    python -m bench.state_codec [--number 20000]

For each kind of value the stages store, the one codec (`streams.stages.state`: typed
MessagePack by msgspec) is timed against candidates and against the encodings it replaced, in
the same run: msgspec's typed JSON, pydantic's JSON (a TypeAdapter, the former `Table`), pickle
(the former untyped `Table`, parking and the follow graph) and, where a value had one, its
former hand-made byte layout. Figures are CPU microseconds of this thread, the fastest of five
rounds of `--number` calls (other work on the machine slows a round, never speeds it up).
"""

from __future__ import annotations

import argparse
import functools
import json
import pickle
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import datasketches
import msgspec
from pydantic import TypeAdapter

from processors.reactions import ReactionState, Reply
from processors.stories import HighlightMark, Story
from processors.story_info import StoryInfo
from processors.trays import SeenStory, TrayState, TrayStory
from processors.views import HLL_TYPE, ViewState
from schemas.events import Rendition
from schemas.types import from_millis, millis
from streams.stages.state import Codec

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
_HEADER = struct.Struct(">QQQ")
_TIME = struct.Struct(">Q")
_BIAS = 1 << 63


def _sketch(viewers: int) -> bytes:
    sketch = datasketches.hll_sketch(12, HLL_TYPE)
    for i in range(viewers):
        sketch.update(f"user-{i}")
    return bytes(sketch.serialize_compact())


def samples() -> dict[str, tuple[Any, Any]]:
    """(value, its type) of each kind of stored value, sized as in a busy partition."""
    later = T0 + timedelta(hours=24)
    renditions = tuple(
        Rendition(
            name=n, url=f"http://s3/media/m1/{n}.mp4", width=w, height=w, content_type="video/mp4"
        )
        for n, w in (("360", 360), ("720", 720), ("1080", 1080))
    )
    story = Story(
        "story-1", "author-1", T0, later, "followers", "active", "m1", "video", renditions,
        highlights=(HighlightMark("h1", True, T0, "ev-1"),), seen=frozenset({"ev-1"}),
    )  # fmt: skip
    tray = TrayState(
        "user-1",
        tuple(TrayStory(f"author-{i}", f"story-{i}", T0, later, i % 2 == 0) for i in range(20)),
        tuple(SeenStory(f"seen-{i}", later) for i in range(10)),
        frozenset({"celebrity-1"}),
        "0123456789abcdef0123456789abcdef",
    )
    replies = tuple(Reply(f"user-{i}", "love", "so good " * 5, T0, f"ev-{i}") for i in range(50))
    return {
        "view state (2 KiB sketch)": (ViewState(5000, _sketch(5000), 4987, 4990), ViewState),
        "viewer index entry": ((millis(T0), ("ev-123456",)), tuple[int, tuple[str, ...]]),
        "story info": (StoryInfo("story-1", "author-1", later, "live"), StoryInfo),
        "story": (story, Story),
        "tray (20 stories)": (tray, TrayState),
        "reactions (50 replies)": (
            ReactionState((("like", 40), ("love", 60)), 100, replies),
            ReactionState,
        ),
        "tray mark": (millis(later), int),
    }


# The hand-made layouts the codec replaced, for the values that had one.
def _view_state(value: ViewState) -> tuple[Callable[[], bytes], Callable[[bytes], Any]]:
    def encode() -> bytes:
        return _HEADER.pack(value.total_views, value.unique_viewers, value.viewers) + value.sketch

    def decode(data: bytes) -> ViewState:
        total, unique, viewers = _HEADER.unpack_from(data)
        return ViewState(total, data[_HEADER.size :], unique, viewers)

    return encode, decode


def _index_entry(
    value: tuple[int, tuple[str, ...]],
) -> tuple[Callable[[], bytes], Callable[[bytes], Any]]:
    def encode() -> bytes:
        parts = [_TIME.pack(value[0] + _BIAS)]
        for event_id in value[1]:
            data = event_id.encode()
            parts += [bytes((len(data),)), data]
        return b"".join(parts)

    def decode(data: bytes) -> tuple[int, tuple[str, ...]]:
        ms, ids, pos = _TIME.unpack_from(data)[0] - _BIAS, [], _TIME.size
        while pos < len(data):
            end = pos + 1 + data[pos]
            ids.append(data[pos + 1 : end].decode())
            pos = end
        return ms, tuple(ids)

    return encode, decode


def _story_info(value: StoryInfo) -> tuple[Callable[[], bytes], Callable[[bytes], Any]]:
    def encode() -> bytes:
        fields = [value.story_id, value.author_id, millis(value.expires_at), value.phase]
        return json.dumps(fields, separators=(",", ":")).encode()

    def decode(data: bytes) -> StoryInfo:
        story_id, author_id, expires_ms, phase = json.loads(data)
        return StoryInfo(story_id, author_id, from_millis(expires_ms), phase)

    return encode, decode


def _reactions(value: ReactionState) -> tuple[Callable[[], bytes], Callable[[bytes], Any]]:
    def encode() -> bytes:
        replies = [
            [r.user_id, r.reaction, r.text, millis(r.reacted_at), r.event_id] for r in value.replies
        ]
        return json.dumps(
            [value.counts, value.total, replies], ensure_ascii=False, separators=(",", ":")
        ).encode()

    def decode(data: bytes) -> ReactionState:
        counts, total, replies = json.loads(data)
        return ReactionState(
            tuple((str(r), int(c)) for r, c in counts),
            int(total),
            tuple(Reply(u, r, t, from_millis(at), e) for u, r, t, at, e in replies),
        )

    return encode, decode


def _mark(value: int) -> tuple[Callable[[], bytes], Callable[[bytes], Any]]:
    millis_format = struct.Struct(">q")
    return (lambda: millis_format.pack(value)), (lambda data: millis_format.unpack(data)[0])


HAND_MADE: dict[str, Callable[[Any], tuple[Callable[[], bytes], Callable[[bytes], Any]]]] = {
    "view state (2 KiB sketch)": _view_state,
    "viewer index entry": _index_entry,
    "story info": _story_info,
    "reactions (50 replies)": _reactions,
    "tray mark": _mark,
}


def timed(call: Callable[[], Any], number: int) -> float:
    """CPU microseconds of one call: the fastest of five rounds."""
    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        for _ in range(number):
            call()
        best = min(best, time.thread_time() - started)
    return best / number * 1e6


def candidates(
    value: Any, kind: Any
) -> dict[str, tuple[Callable[[], bytes], Callable[[bytes], Any]]]:
    codec: Codec[Any] = Codec(kind)
    json_decoder = msgspec.json.Decoder(kind)
    json_encoder = msgspec.json.Encoder()
    adapter: TypeAdapter[Any] = TypeAdapter(kind)
    return {
        "msgpack (the codec)": (lambda: codec.encode(value), codec.decode),
        "msgspec json": (lambda: json_encoder.encode(value), json_decoder.decode),
        "pydantic json": (lambda: adapter.dump_json(value), adapter.validate_json),
        "pickle": (
            lambda: pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL),
            pickle.loads,  # noqa: S301 - our own bytes
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{'value':<27} {'encoding':<22} {'encode us':>10} {'decode us':>10} {'bytes':>7}")
    for name, (value, kind) in samples().items():
        rows = candidates(value, kind)
        if name in HAND_MADE:
            rows["hand-made (before)"] = HAND_MADE[name](value)
        for label, (encode, decode) in rows.items():
            try:
                data = encode()
                assert decode(data) == value, "does not read back equal"
            except Exception as exc:  # a candidate that cannot store this value
                print(f"{name:<27} {label:<22} {'cannot: ' + str(exc)[:40]:>29}")
                continue
            number = max(args.number // (1 + len(data) // 1024), 200)
            encoding = timed(encode, number)
            decoding = timed(functools.partial(decode, data), number)
            print(f"{name:<27} {label:<22} {encoding:>10.2f} {decoding:>10.2f} {len(data):>7,}")
        print()


if __name__ == "__main__":
    main()
