"""Kafka's default partitioner (murmur2, as the Java client and librdkafka's murmur2_random):
every producer and the API's request forwarding agree on which partition owns a key."""

from __future__ import annotations

import struct
from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS = [struct.Struct(f"<{n}I") for n in range(33)]  # keys of up to 128 bytes


def murmur2(data: bytes, _m: int = _M, _mask: int = _MASK) -> int:
    """Kafka's murmur2 hash (seed 0x9747b28c), as a signed 32-bit integer.

    Called for every key not in `partition_for`'s cache (each new viewer's tray forward), so
    its constants are locals and each step masks once: (a*m & mask) ^ (b*m & mask) is
    (a*m ^ b*m) & mask."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    end = words << 2
    if words:  # the 4-byte little-endian words, unpacked in one call
        unpack = (_WORDS[words] if words < len(_WORDS) else struct.Struct(f"<{words}I")).unpack
        for k in unpack(data[:end]):
            k = (k * _m) & _mask
            k ^= k >> 24
            h = ((h * _m) ^ (k * _m)) & _mask
    rest = length & 3
    if rest:
        if rest == 3:
            h ^= data[end + 2] << 16
        if rest >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _m) & _mask
    h ^= h >> 13
    h = (h * _m) & _mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=1 << 16)
def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null key."""
    data = key.encode() if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions
