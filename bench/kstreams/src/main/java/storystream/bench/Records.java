package storystream.bench;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/** The input records as the topology reads them, decoded by hand from the Confluent wire format. */
final class Records {
    private Records() {}

    /** A StoryViewed (event_id, type, story_id, viewer_id, viewed_at), checked as storystream
     * checks one: its schema id, the enum's one symbol, three identifiers, nothing left over. */
    record View(String eventId, String storyId, String viewerId, long viewedAt) {
        /** The view, or null for a record that is not a valid StoryViewed of `schemaId`. */
        static View decode(byte[] data, int schemaId) {
            if (!Wire.hasHeader(data, schemaId)) {
                return null;
            }
            try {
                Wire.Reader in = new Wire.Reader(data, Wire.HEADER);
                String eventId = in.readIdentifier();
                if (in.readLong() != 0) {
                    return null;
                }
                String storyId = in.readIdentifier();
                String viewerId = in.readIdentifier();
                long at = in.readLong();
                if (eventId == null || storyId == null || viewerId == null || !in.atEnd()) {
                    return null;
                }
                return new View(eventId, storyId, viewerId, at);
            } catch (IllegalArgumentException e) {
                return null;
            }
        }
    }

    /** What the views path needs of a story: its author and end of life (StoryPosted's first
     * six fields are event_id, type, story_id, author_id, created_at, expires_at). */
    record StoryInfo(String authorId, long expiresAt) {
        static StoryInfo ofPosted(byte[] data, int schemaId) {
            if (!Wire.hasHeader(data, schemaId)) {
                return null;
            }
            try {
                Wire.Reader in = new Wire.Reader(data, Wire.HEADER);
                in.readIdentifier();
                in.readLong();
                in.readIdentifier();
                String author = in.readIdentifier();
                in.readLong();
                long expires = in.readLong();
                return author == null ? null : new StoryInfo(author, expires);
            } catch (IllegalArgumentException e) {
                return null;
            }
        }

        static final Serde<StoryInfo> SERDE = Serdes.serdeFrom(
                (Serializer<StoryInfo>) (topic, info) -> {
                    if (info == null) {
                        return null;
                    }
                    byte[] author = info.authorId.getBytes(StandardCharsets.UTF_8);
                    return ByteBuffer.allocate(8 + author.length).putLong(info.expiresAt).put(author).array();
                },
                (Deserializer<StoryInfo>) (topic, data) -> {
                    if (data == null) {
                        return null;
                    }
                    long expires = ByteBuffer.wrap(data).getLong();
                    return new StoryInfo(new String(data, 8, data.length - 8, StandardCharsets.UTF_8), expires);
                });
    }
}
