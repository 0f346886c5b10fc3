"""The partitioner agrees with Kafka's: murmur2 as the Java client computes it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.kafka.partitioning import murmur2, partition_for

# From the Java client's own tests (org.apache.kafka.common.utils.UtilsTest.testMurmur2).
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS.items())
def test_murmur2_matches_the_java_client(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def _bytewise_murmur2(data: bytes) -> int:
    """The reference algorithm, a byte at a time (as the Java client writes it)."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    end = len(data) - len(data) % 4
    for i in range(0, end, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    for shift, byte in reversed(list(enumerate(data[end:]))):
        h ^= byte << (8 * shift)
    if len(data) % 4:
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@given(st.binary(max_size=300))
def test_murmur2_equals_the_bytewise_algorithm_for_any_key(data: bytes) -> None:
    assert murmur2(data) == _bytewise_murmur2(data)


def test_a_key_is_partitioned_as_its_utf8_bytes() -> None:
    assert (
        partition_for("foobar", 7) == partition_for(b"foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7
    )
