"""The view firehose's records, read by slicing: a `StoryViewed` of the current schema becomes a
`View` without a general Avro reader, and carries the body of the `StoryViewer` record it makes.

A StoryViewed is `event_id, type, story_id, viewer_id, viewed_at`; a StoryViewer is `story_id,
viewer_id, first_viewed_at`, the same three fields with the same types. So the bytes of a view
from its story id on are, as they are, the StoryViewer body of a first view (checked against
the schemas when this module is imported). A record the slicer does not expect (another schema id,
an id of 64 characters or more, a time outside years 1-9999, anything malformed) goes through
the codec's general reader, which decodes it or says why it cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processors.views import View
from schemas.avro import current_schemas
from schemas.types import MAX_MILLIS, MIN_MILLIS
from streams.codecs.avro import AvroCodec
from streams.codecs.binary import read_varint

_SHARED = ("story_id", "viewer_id")


def _check_layouts() -> None:
    """The StoryViewed fields the slicer reads, and StoryViewer's shape, are as it expects."""
    viewed = [(f["name"], f["type"]) for f in current_schemas()["StoryViewed"]["fields"]]
    viewer = [(f["name"], f["type"]) for f in current_schemas()["StoryViewer"]["fields"]]
    names = [name for name, _ in viewed]
    if names != ["event_id", "type", *_SHARED, "viewed_at"]:
        raise TypeError(f"StoryViewed fields changed ({names}): update the view slicer")
    enum = viewed[1][1]
    if not isinstance(enum, dict) or enum.get("symbols") != ["story_viewed"]:
        raise TypeError("StoryViewed.type is no longer a one-symbol enum: update the view slicer")
    if [t for _, t in viewer] != [t for _, t in viewed[2:]] or viewer[:2] != viewed[2:4]:
        raise TypeError("a StoryViewer is no longer a StoryViewed's last three fields")


_check_layouts()  # on import, so a worker built against other schemas does not start


def view_reader(codec: AvroCodec) -> Callable[[bytes | None], View]:
    """A function reading a `StoryViewed` record (wire format) into a View with its `record`.

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
        at, end = read_varint(data, time)
        if end != len(data) or not MIN_MILLIS <= at <= MAX_MILLIS:
            return None  # a time past years 1-9999 is no datetime: the general reader says so
        view: View = _new(
            View,
            (
                data[story + 1 : viewer].decode(),
                data[viewer + 1 : time].decode(),
                data[start + 1 : enum].decode(),
                at,
                data[story:],  # the StoryViewer body of a first view
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
