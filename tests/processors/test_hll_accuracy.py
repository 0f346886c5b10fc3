"""The HLL sketches: accuracy at scale, mergeability, and hashing compatible with Java's."""

from __future__ import annotations

import datasketches
import pytest

from processors.views import HLL_TYPE
from schemas.records import ViewCount
from tests.processors.factories_views import ViewsStore, puts_of, viewed

_M64 = (1 << 64) - 1


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def murmur3_x64_128(data: bytes, seed: int) -> tuple[int, int]:
    """MurmurHash3_x64_128, the hash every DataSketches implementation uses (reference code)."""
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed
    blocks = len(data) // 16
    for i in range(blocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        h1 ^= (_rotl((k1 * c1) & _M64, 31) * c2) & _M64
        h1 = (_rotl(h1, 27) + h2) & _M64
        h1 = (h1 * 5 + 0x52DCE729) & _M64
        h2 ^= (_rotl((k2 * c2) & _M64, 33) * c1) & _M64
        h2 = (_rotl(h2, 31) + h1) & _M64
        h2 = (h2 * 5 + 0x38495AB5) & _M64
    tail = data[16 * blocks :]
    if len(tail) > 8:
        h2 ^= (_rotl((int.from_bytes(tail[8:], "little") * c2) & _M64, 33) * c1) & _M64
    if tail:
        h1 ^= (_rotl((int.from_bytes(tail[:8], "little") * c1) & _M64, 31) * c2) & _M64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _M64
    return h1, (h2 + h1) & _M64


def test_reference_murmur3_matches_the_published_vector() -> None:
    assert murmur3_x64_128(b"hello", 0) == (0xCBD8A7B341BD9B02, 0x5B1E906A48AE1D19)


@pytest.mark.parametrize("text", ["u1", "viewer_42-x", "é", "👍🏽", "x" * 40])
def test_a_str_is_hashed_as_its_utf8_bytes(text: str) -> None:
    # Java's HllSketch.update(String) hashes datum.getBytes(UTF_8) with seed 9001, exactly like
    # update(byte[]) of those bytes. The Python binding has no update(bytes), so the coupon a
    # str produces is checked against MurmurHash3 of its UTF-8 bytes: address = low 26 bits of
    # h1, value = leading zeros of h2 + 1 (a one-item sketch serializes that coupon after its
    # 8-byte preamble).
    sketch = datasketches.hll_sketch(12, HLL_TYPE)
    sketch.update(text)
    h1, h2 = murmur3_x64_128(text.encode("utf-8"), 9001)
    expected = (min(64 - h2.bit_length(), 62) + 1) << 26 | (h1 & ((1 << 26) - 1))
    assert int.from_bytes(sketch.serialize_compact()[8:12], "little") == expected


def test_a_million_distinct_viewers_within_two_percent() -> None:
    sketch = datasketches.hll_sketch(12, HLL_TYPE)
    update = sketch.update
    for i in range(1_000_000):
        update(f"viewer-{i}")
    restored = datasketches.hll_sketch.deserialize(sketch.serialize_compact())
    assert restored.get_estimate() == pytest.approx(1_000_000, rel=0.02)


def test_a_published_sketch_merges_with_an_independent_one() -> None:
    # given a story's ViewCount over viewers 0..29999
    store = ViewsStore()
    views = [viewed(f"viewer-{i}", i % 600, event_id=f"e{i}") for i in range(30_000)]
    for start in range(0, len(views), 1000):
        store.apply(views[start : start + 1000])
    count = puts_of(store.outputs, ViewCount)[-1].value
    assert isinstance(count, ViewCount)
    # and a sketch built elsewhere over viewers 20000..49999
    other = datasketches.hll_sketch(12, datasketches.tgt_hll_type.HLL_8)
    for i in range(20_000, 50_000):
        other.update(f"viewer-{i}")
    # when they are merged
    union = datasketches.hll_union(12)
    union.update(datasketches.hll_sketch.deserialize(count.sketch))
    union.update(other)
    # then the union estimates the 50000 distinct viewers
    assert union.get_estimate() == pytest.approx(50_000, rel=3 * 0.0163)
    assert union.get_result().get_estimate() == pytest.approx(union.get_estimate())
