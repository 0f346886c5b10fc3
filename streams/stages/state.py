"""The one encoding of stored state values: typed MessagePack (msgspec), zlib over 64 KiB.

Every value a stage stores goes through a `Codec` of its type, so a value read back from the
changelog is checked against that type (unlike a pickle, it runs no code). Keys are bytes laid
out by the stage modules; a `Table` is a key prefix with the codec of its values.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from pydantic import BaseModel

T = TypeVar("T")

# A value larger than this is stored compressed: a tray of a user following thousands of active
# authors is over a megabyte (more than a changelog record takes by default) and compresses well.
COMPRESS_ABOVE = 64 * 1024
_COMPRESSED = 0xC1  # the one byte MessagePack never uses: no plain value starts with it


class StateError(ValueError):
    """Stored bytes that are not a value of the expected type."""


class Store(Protocol):
    """What a table needs of a partition store (PartitionStore is one)."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


def _enc_hook(value: Any) -> Any:
    # Event models kept in state (a story's renditions, events held for an unknown story) are
    # stored as their fields and validated again on the way back.
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise NotImplementedError(f"{type(value).__name__} is not a state value type")


def model_hook(kind: type, value: Any) -> Any:
    """msgspec's `dec_hook` for the event models a value or message carries (a story's
    renditions): validated by their model."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind.model_validate(value)
    raise NotImplementedError(f"{kind} is not a state value type")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


class Codec(Generic[T]):
    """Encodes and decodes values of one type (a frozen dataclass, a NamedTuple, a tuple...)."""

    def __init__(self, kind: Any, where: str = "") -> None:
        self.name = getattr(kind, "__name__", str(kind))
        self._where = f"{where}: " if where else ""  # for errors: which values these are
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(
            kind, dec_hook=model_hook
        )
        self._decode: Callable[[bytes], T] = self._decoder.decode
        # `encode` without the size check, for values bounded far below COMPRESS_ABOVE (a hot
        # path's small entries); any value its type holds, a tuple for a NamedTuple say.
        self.encode_small: Callable[[Any], bytes] = _ENCODER.encode

    def encode(self, value: T) -> bytes:
        data = _ENCODER.encode(value)
        if len(data) > COMPRESS_ABOVE:
            return bytes((_COMPRESSED,)) + zlib.compress(data, 1)
        return data

    def decode(self, data: bytes) -> T:
        """The value `encode` wrote; StateError for anything else."""
        try:
            if data[0] == _COMPRESSED:
                data = zlib.decompress(data[1:])
            return self._decode(data)
        except (msgspec.DecodeError, zlib.error, IndexError, ValueError) as exc:
            raise StateError(f"{self._where}not a stored {self.name}: {exc}") from exc


class Table(Codec[T]):
    """Values of one type under one key prefix: `name` and 0x01, then the key."""

    def __init__(self, name: str, kind: Any) -> None:
        super().__init__(kind, f"table {name}")
        self.prefix = name.encode() + b"\x01"

    def key(self, key: str) -> bytes:
        return self.prefix + key.encode()

    def get(self, store: Store, key: str) -> T | None:
        return self.read(store.get, key)

    def read(self, get: Callable[[bytes], bytes | None], key: str) -> T | None:
        """The value under `key` as `get` sees it (a store's `get_committed`, for readers on
        other threads than the engine's)."""
        data = get(self.prefix + key.encode())
        return None if data is None else self.decode(data)

    def put(self, store: Store, key: str, value: T) -> None:
        store.put(self.prefix + key.encode(), self.encode(value))

    def delete(self, store: Store, key: str) -> None:
        store.delete(self.prefix + key.encode())

    def set(self, store: Store, key: str, value: T | None) -> None:
        """`put`, or `delete` for None."""
        if value is None:
            self.delete(store, key)
        else:
            self.put(store, key, value)
