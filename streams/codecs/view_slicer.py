"""The view firehose's records, read by slicing: a `StoryViewed` of the current schema becomes a
`View` without a general Avro reader.

A StoryViewed is `event_id, type, story_id, viewer_id, viewed_at` (checked against the schema
when this module is imported). A record the slicer does not expect (another schema id, an id
of 64 characters or more, a time outside years 1-9999, anything malformed) goes through the
codec's general reader, which decodes it or says why it cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processors.views import View
from schemas.avro import current_schemas
from schemas.types import MAX_MILLIS, MIN_MILLIS
from streams.codecs.avro import AvroCodec
from streams.codecs.binary import read_varint


def _check_layout() -> None:
    """The StoryViewed fields the slicer reads are as it expects."""
    viewed = [(f["name"], f["type"]) for f in current_schemas()["StoryViewed"]["fields"]]
    names = [name for name, _ in viewed]
    if names != ["event_id", "type", "story_id", "viewer_id", "viewed_at"]:
        raise TypeError(f"StoryViewed fields changed ({names}): update the view slicer")
    enum = viewed[1][1]
    if not isinstance(enum, dict) or enum.get("symbols") != ["story_viewed"]:
        raise TypeError("StoryViewed.type is no longer a one-symbol enum: update the view slicer")
    time = viewed[4][1]
    if [viewed[i][1] for i in (0, 2, 3)] != ["string"] * 3 or (
        not isinstance(time, dict) or time.get("type") != "long"
    ):
        raise TypeError("StoryViewed's field types changed: update the view slicer")


_check_layout()  # on import, so a worker built against other schemas does not start


def view_reader(codec: AvroCodec) -> Callable[[bytes | None], View]:
    """A function reading a `StoryViewed` record (wire format) into a View.

    Raises what `codec.decode_dict` raises (CodecError) for a record it cannot decode.
    """
    header = codec.header
    start = len(header)

    def sliced(data: bytes, _new: Any = tuple.__new__) -> View | None:
        """The view, or None if the record is not laid out as expected (IndexError if short).
        A string of fewer than 64 bytes is one even length byte, then its bytes."""
        n = data[start]
        if n > 127 or n & 1:
            return None
        enum = start + 1 + (n >> 1)
        if data[enum] != 0:  # the type: the enum's one symbol
            return None
        story = enum + 1
        n = data[story]
        viewer = story + 1 + (n >> 1)
        m = data[viewer]
        time = viewer + 1 + (m >> 1)
        if n > 127 or n & 1 or m > 127 or m & 1:
            return None
        if len(data) - time == 6:  # six varint bytes (times of 1900-2039 but near 1970): unrolled
            b0, b1, b2, b3, b4, b5 = data[time:]
            if b0 < 128 or b1 < 128 or b2 < 128 or b3 < 128 or b4 < 128 or b5 > 127:
                return None
            z = (
                (b0 & 127)
                | (b1 & 127) << 7
                | (b2 & 127) << 14
                | (b3 & 127) << 21
                | (b4 & 127) << 28
                | b5 << 35
            )
            at = (z >> 1) ^ -(z & 1)
        else:
            at, end = read_varint(data, time)
            if end != len(data):
                return None
        if not MIN_MILLIS <= at <= MAX_MILLIS:
            return None  # a time past years 1-9999 is no datetime: the general reader says so
        view: View = _new(
            View,
            (
                data[story + 1 : viewer].decode(),
                data[viewer + 1 : time].decode(),
                data[start + 1 : enum].decode(),
                at,
            ),
        )
        return view

    def read(data: bytes | None) -> View:
        if data is not None and data.startswith(header):
            try:
                view = sliced(data)
            except (IndexError, ValueError):  # UnicodeDecodeError, an overlong varint
                view = None  # the general reader says what is wrong
            if view is not None:
                return view
        return View.of(codec.decode_dict(data))

    return read
