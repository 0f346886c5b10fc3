package storystream.bench;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;
import storystream.bench.Records.StoryInfo;
import storystream.bench.Records.View;

/** The viewer list, first view wins, with de-duplication by event id, as storystream's views
 * stage keeps it: per story/viewer the first view's time and the ids of the viewer's applied
 * views (the INLINE_EVENT_IDS smallest; the others are keys of their own in `view-events`). */
final class FirstViewWins implements FixedKeyProcessor<String, FirstViewWins.Joined, FirstViewWins.Outcome> {
    static final String VIEWERS = "viewers";
    static final String VIEW_EVENTS = "view-events";
    static final int INLINE_EVENT_IDS = 32;

    /** A view record (still encoded) with its story's info, null for a story not known. */
    record Joined(byte[] data, StoryInfo info) {}

    enum Kind { NEW, MOVED, REPEAT, DUPLICATE }

    /** What a view did: `firstAt` is its viewer's first view time after it. */
    record Outcome(Kind kind, String storyId, String viewerId, long firstAt) {}

    private final Progress progress;
    private final int viewedSchemaId;
    private FixedKeyProcessorContext<String, Outcome> context;
    private KeyValueStore<String, byte[]> viewers;
    private KeyValueStore<String, byte[]> viewEvents;

    FirstViewWins(Progress progress, int viewedSchemaId) {
        this.progress = progress;
        this.viewedSchemaId = viewedSchemaId;
    }

    @Override
    public void init(FixedKeyProcessorContext<String, Outcome> context) {
        this.context = context;
        this.viewers = context.getStateStore(VIEWERS);
        this.viewEvents = context.getStateStore(VIEW_EVENTS);
    }

    @Override
    public void process(FixedKeyRecord<String, Joined> record) {
        progress.begin();
        View view = View.decode(record.value().data(), viewedSchemaId);
        StoryInfo info = record.value().info();
        if (view == null || !view.storyId().equals(record.key())) {
            progress.invalid.increment();
        } else if (info == null) {
            progress.unknownStory.increment(); // storystream parks these for 30 s instead
        } else if (view.viewerId().equals(info.authorId()) || view.viewedAt() > info.expiresAt()) {
            progress.skipped.increment();
        } else {
            apply(record, view);
        }
        // The record's effects are all applied now: forward() ran the aggregate and the sinks.
        context.recordMetadata().ifPresent(m -> progress.processed(m.partition(), m.offset()));
    }

    private void apply(FixedKeyRecord<String, Joined> record, View view) {
        String key = view.storyId() + "/" + view.viewerId();
        byte[] entry = viewers.get(key);
        if (entry == null) {
            viewers.put(key, encode(view.viewedAt(), List.of(view.eventId())));
            emit(record, Kind.NEW, view, view.viewedAt());
            return;
        }
        ByteBuffer buffer = ByteBuffer.wrap(entry);
        long first = buffer.getLong();
        List<String> ids = new ArrayList<>(INLINE_EVENT_IDS + 1);
        while (buffer.hasRemaining()) {
            int n = buffer.get();
            ids.add(new String(entry, buffer.position(), n, StandardCharsets.ISO_8859_1));
            buffer.position(buffer.position() + n);
        }
        String eventId = view.eventId();
        if (ids.contains(eventId) || (ids.size() >= INLINE_EVENT_IDS
                && viewEvents.get(view.storyId() + "/" + eventId) != null)) {
            emit(record, Kind.DUPLICATE, view, first); // republished as it is: idempotent
            return;
        }
        ids.add(eventId);
        Collections.sort(ids); // the same views give the same entry in any order
        while (ids.size() > INLINE_EVENT_IDS) {
            viewEvents.put(view.storyId() + "/" + ids.remove(ids.size() - 1), new byte[0]);
        }
        long at = view.viewedAt();
        viewers.put(key, encode(Math.min(first, at), ids));
        emit(record, at < first ? Kind.MOVED : Kind.REPEAT, view, Math.min(first, at));
    }

    private void emit(FixedKeyRecord<String, Joined> record, Kind kind, View view, long firstAt) {
        context.forward(record.withValue(new Outcome(kind, view.storyId(), view.viewerId(), firstAt)));
    }

    private static byte[] encode(long first, List<String> ids) {
        int size = 8;
        for (String id : ids) {
            size += 1 + id.length();
        }
        ByteBuffer out = ByteBuffer.allocate(size).putLong(first);
        for (String id : ids) {
            out.put((byte) id.length()).put(id.getBytes(StandardCharsets.ISO_8859_1));
        }
        return out.array();
    }
}
