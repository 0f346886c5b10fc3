package storystream.bench;

import java.nio.ByteBuffer;
import org.apache.datasketches.hll.HllSketch;
import org.apache.datasketches.hll.TgtHllType;
import org.apache.datasketches.memory.Memory;
import storystream.bench.FirstViewWins.Kind;
import storystream.bench.FirstViewWins.Outcome;

/** A story's count as the aggregate holds it: 8 bytes of total views, then the compact
 * DataSketches HLL (lgK 12, HLL_4), as storystream keeps it (a few bytes a viewer while small,
 * about 2 KiB once in HLL mode). */
final class Counts {
    static final int LG_K = 12;
    static final TgtHllType TYPE = TgtHllType.HLL_4;
    private static final byte[] EMPTY = new HllSketch(LG_K, TYPE).toCompactByteArray();

    private Counts() {}

    static byte[] initial() {
        return withTotal(0, EMPTY);
    }

    /** The count after one view's outcome. A duplicate changes nothing (the unchanged count is
     * emitted again, as storystream republishes it). */
    static byte[] apply(Outcome outcome, byte[] agg) {
        if (outcome.kind() == Kind.DUPLICATE) {
            return agg;
        }
        long total = ByteBuffer.wrap(agg).getLong(0) + 1;
        if (outcome.kind() != Kind.NEW) { // a known viewer: the sketch cannot change
            byte[] next = agg.clone(); // never mutate what a store handed out
            ByteBuffer.wrap(next).putLong(0, total);
            return next;
        }
        HllSketch sketch = HllSketch.heapify(Memory.wrap(agg).region(8, agg.length - 8));
        // A String is hashed as its UTF-8 bytes, as storystream's (Python) update(str).
        sketch.update(outcome.viewerId());
        return withTotal(total, sketch.toCompactByteArray());
    }

    /** A ViewCount record (Confluent header of `schemaId`, Avro: story_id, unique_viewers,
     * total_views, sketch as the compact serialization). */
    static byte[] viewCount(String storyId, byte[] agg, int schemaId) {
        HllSketch sketch = HllSketch.wrap(Memory.wrap(agg).region(8, agg.length - 8));
        return new Wire.Writer(agg.length + 64)
                .header(schemaId)
                .writeString(storyId)
                .writeLong(Math.round(sketch.getEstimate()))
                .writeLong(ByteBuffer.wrap(agg).getLong(0))
                .writeBytes(agg, 8, agg.length - 8)
                .toByteArray();
    }

    private static byte[] withTotal(long total, byte[] compact) {
        return ByteBuffer.allocate(8 + compact.length).putLong(total).put(compact).array();
    }
}
