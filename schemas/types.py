"""Field types shared by the event and record models: identifiers, UTC times, reactions."""

from __future__ import annotations

import base64
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
)

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
IDENTIFIER = re.compile(IDENTIFIER_PATTERN)  # the one compiled; `fullmatch` it
IDENTIFIER_RULE = "must be 1-64 characters of [A-Za-z0-9_-]"
NAMED_REACTIONS = frozenset({"like", "love", "laugh", "wow", "sad", "fire"})
MAX_REPLY_CHARS = 1000
DEFAULT_STORY_TTL = timedelta(hours=24)

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]

# Avro's integers are 32-bit (`int`) and 64-bit (`long`) signed: a larger value has no encoding
# (a writer wraps it, a reader refuses it).
AVRO_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(1 << 31), (1 << 31) - 1),
    "long": (-(1 << 63), (1 << 63) - 1),
}


def avro_integer(avro_type: str, ge: int | None = None) -> Any:
    """The bounds of a field of Avro type `int` or `long` (narrowed by `ge`), as one pydantic
    Field: one constraint of each kind, so none overrides another."""
    low, high = AVRO_INTEGER_RANGES[avro_type]
    return Field(ge=low if ge is None else max(low, ge), le=high)


AvroInt = Annotated[int, avro_integer("int")]
AvroLong = Annotated[int, avro_integer("long")]


# Bytes in JSON (`storystream consume`, the API) are standard base64 (RFC 4648 section 4, with
# padding), what `base64 -d`, Java's Base64.getDecoder() and Python's b64decode read; pydantic's
# own "base64" is the URL-safe alphabet, which those reject or misread.
def _standard_base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


Base64Bytes = Annotated[bytes, PlainSerializer(_standard_base64, return_type=str, when_used="json")]


def to_utc_millis(value: datetime) -> datetime:
    """Reject non-UTC offsets; normalise to `UTC` at millisecond precision (Avro's)."""
    offset = value.utcoffset()
    if offset is None or offset != timedelta(0):
        raise ValueError("time must be in UTC (suffix Z or +00:00)")
    return value.replace(tzinfo=UTC, microsecond=value.microsecond // 1000 * 1000)


# ISO-8601 as the contract writes times: date, `T`, time to the second, an optional fraction,
# and an offset (which `to_utc_millis` then requires to be UTC).
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:\d\d)")


def check_time_text(value: Any, info: ValidationInfo) -> Any:
    """In JSON, a time must be written as the contract says; on its own pydantic also takes a
    number (epoch seconds or millis), a space for the `T`, `z` and `-00:00`. (Times built in
    Python, and a default the model derives, are datetimes: not checked here.)"""
    if info.mode == "json" and not isinstance(value, datetime):
        if type(value) is not str or not _ISO_TIME.fullmatch(value):
            raise ValueError("time must be ISO-8601 as YYYY-MM-DDTHH:MM:SS[.fff]Z (or +00:00)")
        if value.endswith("-00:00"):  # ISO-8601 has no negative zero offset
            raise ValueError("time must be in UTC (suffix Z or +00:00)")
    return value


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLI = timedelta(milliseconds=1)


def millis(value: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact integer arithmetic)."""
    return (value - EPOCH) // _MILLI


def from_millis(value: int) -> datetime:
    """The UTC datetime of milliseconds since the epoch."""
    return EPOCH + value * _MILLI


# A `timestamp-millis` must also be a Python datetime (years 1-9999): the readers refuse others.
MIN_MILLIS = millis(datetime.min.replace(tzinfo=UTC))
MAX_MILLIS = millis(datetime.max.replace(tzinfo=UTC))

UtcDatetime = Annotated[
    AwareDatetime, BeforeValidator(check_time_text), AfterValidator(to_utc_millis)
]

_ZWJ = "\u200d"
_EMOJI_MODIFIERS = {"\ufe0f", "\ufe0e", "\u20e3"}  # presentation selectors, keycap
_REGIONAL_INDICATORS = ("\U0001f1e6", "\U0001f1ff")  # two of them make a flag


def is_emoji(text: str) -> bool:
    """True for one emoji: a pictograph, with skin tone or presentation modifiers, pictographs
    joined by zero-width joiners (one emoji: a family, a profession), or a flag."""
    if not text or len(text) > 16:
        return False
    pictographs = joiners = flag_letters = 0
    for char in text:
        if char == _ZWJ:
            joiners += 1
        elif _REGIONAL_INDICATORS[0] <= char <= _REGIONAL_INDICATORS[1]:
            flag_letters += 1
        elif unicodedata.category(char) == "So":
            pictographs += 1
        elif not (char in _EMOJI_MODIFIERS or "\U0001f3fb" <= char <= "\U0001f3ff"):
            return False
    if flag_letters:
        return flag_letters == 2 and pictographs == 0 and joiners == 0
    return pictographs > 0 and joiners == pictographs - 1


def check_reaction(value: str) -> str:
    if value in NAMED_REACTIONS or is_emoji(value):
        return value
    raise ValueError(f"reaction must be an emoji or one of {', '.join(sorted(NAMED_REACTIONS))}")


Reaction = Annotated[str, AfterValidator(check_reaction)]
