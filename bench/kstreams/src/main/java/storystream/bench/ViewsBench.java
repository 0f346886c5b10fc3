package storystream.bench;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;
import storystream.bench.FirstViewWins.Joined;
import storystream.bench.FirstViewWins.Kind;
import storystream.bench.FirstViewWins.Outcome;
import storystream.bench.Records.StoryInfo;

/** storystream's views topology in Kafka Streams, run in passes (each a fresh application id and
 * state) in one JVM, each pass's figures printed as one JSON line.
 *
 * <p>story-posted becomes a table of story info; each view is joined with it (author, end of life),
 * goes through the first-view-wins viewer list (de-duplicated by event id), and updates its story's
 * count and HLL in a cached aggregate, which emits one ViewCount per story per commit (Kafka
 * Streams' record cache, flushed before each commit). A story's new or moved viewer makes a
 * StoryViewer record, a new viewer a StorySeen. */
public final class ViewsBench {
    private ViewsBench() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        Config config = new Config(args);
        createOutputTopics(config);
        String[] passes = config.passes.split(",");
        for (int i = 0; i < passes.length; i++) {
            Map<String, Object> result = runPass(config, i + 1, Integer.parseInt(passes[i].trim()));
            System.out.println(json(result));
            System.out.flush();
            if (!"ok".equals(result.get("status"))) {
                System.exit(1);
            }
        }
    }

    /** The command line: --broker, --expected, --passes (thread counts, e.g. 1,1,2), and the rest
     * with defaults. */
    static final class Config {
        final String broker;
        final long expected;
        final String passes;
        final String viewsTopic;
        final String postsTopic;
        final String outputPrefix;
        final String appPrefix;
        final Path stateDir;
        final int partitions;
        final int commitMs;
        final long cacheBytes;
        final int viewedId;
        final int postedId;
        final int viewerId;
        final int countId;
        final double capSeconds;

        Config(Map<String, String> a) {
            broker = required(a, "broker");
            expected = Long.parseLong(required(a, "expected"));
            passes = a.getOrDefault("passes", "1");
            viewsTopic = a.getOrDefault("views-topic", "story-viewed");
            postsTopic = a.getOrDefault("posts-topic", "story-posted");
            outputPrefix = a.getOrDefault("output-prefix", "kstreams-");
            appPrefix = a.getOrDefault("app-id", "bench-kstreams");
            stateDir = Path.of(required(a, "state-dir"));
            partitions = Integer.parseInt(a.getOrDefault("partitions", "4"));
            commitMs = Integer.parseInt(a.getOrDefault("commit-ms", "1000"));
            cacheBytes = Long.parseLong(a.getOrDefault("cache-bytes", String.valueOf(64L << 20)));
            viewedId = Integer.parseInt(required(a, "viewed-schema-id"));
            postedId = Integer.parseInt(required(a, "posted-schema-id"));
            viewerId = Integer.parseInt(required(a, "viewer-schema-id"));
            countId = Integer.parseInt(required(a, "count-schema-id"));
            capSeconds = Double.parseDouble(a.getOrDefault("cap-seconds", "120"));
        }

        private static String required(Map<String, String> a, String name) {
            String value = a.get(name);
            if (value == null) {
                throw new IllegalArgumentException("missing --" + name);
            }
            return value;
        }
    }

    static Topology topology(Config config, Progress progress) {
        StreamsBuilder builder = new StreamsBuilder();
        Serde<String> strings = Serdes.String();
        Serde<byte[]> bytes = Serdes.ByteArray();
        KTable<String, StoryInfo> stories = builder
                .stream(config.postsTopic, Consumed.with(strings, bytes))
                .mapValues(value -> StoryInfo.ofPosted(value, config.postedId))
                .filter((key, info) -> info != null)
                .toTable(Materialized.<String, StoryInfo, KeyValueStore<Bytes, byte[]>>as("stories")
                        .withKeySerde(strings).withValueSerde(StoryInfo.SERDE));
        builder.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(FirstViewWins.VIEWERS), strings, bytes).withCachingEnabled());
        builder.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(FirstViewWins.VIEW_EVENTS), strings, bytes).withCachingEnabled());
        KStream<String, Outcome> outcomes = builder
                .stream(config.viewsTopic, Consumed.with(strings, bytes))
                .leftJoin(stories, Joined::new)
                .processValues(() -> new FirstViewWins(progress, config.viewedId),
                        FirstViewWins.VIEWERS, FirstViewWins.VIEW_EVENTS);

        LongAdderMap out = new LongAdderMap(progress);
        outcomes.filter((story, o) -> o.kind() != Kind.REPEAT)
                .map((story, o) -> {
                    out.add("viewers");
                    return KeyValue.pair(story + "/" + o.viewerId(), storyViewer(o, config.viewerId));
                })
                .to(config.outputPrefix + "viewers", Produced.with(strings, bytes));
        outcomes.filter((story, o) -> o.kind() == Kind.NEW || o.kind() == Kind.DUPLICATE)
                .map((story, o) -> {
                    out.add("seen");
                    return KeyValue.pair(o.viewerId(), storySeen(o));
                })
                .to(config.outputPrefix + "seen", Produced.with(strings, bytes));
        outcomes.groupByKey(Grouped.with(strings, unusedSerde()))
                .aggregate(Counts::initial, (story, outcome, agg) -> Counts.apply(outcome, agg),
                        Materialized.<String, byte[], KeyValueStore<Bytes, byte[]>>as("counts")
                                .withKeySerde(strings).withValueSerde(bytes))
                .toStream()
                .mapValues((story, agg) -> {
                    out.add("view-counts");
                    return Counts.viewCount(story, agg, config.countId);
                })
                .to(config.outputPrefix + "view-counts", Produced.with(strings, bytes));
        return builder.build();
    }

    /** Counts one output of a kind. */
    private record LongAdderMap(Progress progress) {
        void add(String kind) {
            progress.outputs.get(kind).increment();
        }
    }

    /** The outcomes are grouped by the key they came with: no repartition, so no serde is used. */
    private static <T> Serde<T> unusedSerde() {
        return Serdes.serdeFrom(
                (topic, value) -> {
                    throw new IllegalStateException("no repartition expected");
                },
                (topic, data) -> {
                    throw new IllegalStateException("no repartition expected");
                });
    }

    /** A StoryViewer record: Confluent header, Avro story_id, viewer_id, first_viewed_at. */
    static byte[] storyViewer(Outcome o, int schemaId) {
        return new Wire.Writer(64).header(schemaId).writeString(o.storyId()).writeString(o.viewerId())
                .writeLong(o.firstAt()).toByteArray();
    }

    /** A StorySeen for the viewer's tray (Avro: kind enum, user_id, story_id, at; no header). */
    static byte[] storySeen(Outcome o) {
        return new Wire.Writer(64).writeLong(0).writeString(o.viewerId()).writeString(o.storyId())
                .writeLong(o.firstAt()).toByteArray();
    }

    static Properties properties(Config config, String appId, int threads) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, config.broker);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, config.commitMs);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, config.cacheBytes);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, config.stateDir.toString());
        // At the start, wait for the posts' partitions to be fetched before joining views with
        // them (their lag is unknown until then; later it is known and nothing waits).
        p.put(StreamsConfig.MAX_TASK_IDLE_MS_CONFIG, 1000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        // As storystream's clients: fetches wait at most 50 ms; batches up to librdkafka's
        // default 1 MB (Java's 16 KiB holds 8 ViewCounts of an HLL-mode story), 5 ms linger.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG), 50);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 1_000_000);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        return p;
    }

    static Map<String, Object> runPass(Config config, int pass, int threads) throws InterruptedException {
        String appId = config.appPrefix + "-p" + pass;
        Progress progress = new Progress(config.expected, config.partitions, appId);
        KafkaStreams streams = new KafkaStreams(topology(config, progress), properties(config, appId, threads));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        streams.setUncaughtExceptionHandler(e -> {
            failure.set(e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        long launched = System.nanoTime();
        streams.start();
        String status = "ok";
        Progress.Snapshot committed = null;
        try {
            while (progress.count.get() < config.expected) {
                if (failure.get() != null) {
                    status = "failed: " + failure.get();
                    break;
                }
                Progress.Snapshot first = progress.first;
                long waited = System.nanoTime() - (first != null ? first.nanos() : launched);
                if (waited > config.capSeconds * 1e9) {
                    status = first != null ? "capped" : "no view within " + config.capSeconds + "s";
                    break;
                }
                Thread.sleep(20); // the clocks are read by the stream threads, not here
            }
            if (status.equals("ok")) {
                committed = waitCommitted(config, appId, progress, failure);
                if (committed == null) {
                    status = "offsets not committed within 60s";
                }
            }
        } finally {
            streams.close(Duration.ofSeconds(60));
            streams.cleanUp();
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("pass", pass);
        result.put("threads", threads);
        result.put("status", status);
        result.put("count", progress.count.get());
        result.put("expected", config.expected);
        Progress.Snapshot first = progress.first;
        Progress.Snapshot last = progress.last;
        if (first != null) {
            result.put("first_after_launch", (first.nanos() - launched) / 1e9);
        }
        if (first != null && last != null) {
            result.put("seconds", (last.nanos() - first.nanos()) / 1e9);
            result.put("process_cpu", last.processCpu() - first.processCpu());
            result.put("stream_threads_cpu", last.streamThreadsCpu() - first.streamThreadsCpu());
        }
        if (first != null && committed != null) {
            result.put("seconds_committed", (committed.nanos() - first.nanos()) / 1e9);
            result.put("process_cpu_committed", committed.processCpu() - first.processCpu());
            result.put("stream_threads_cpu_committed", committed.streamThreadsCpu() - first.streamThreadsCpu());
            Map<String, Object> byThread = new LinkedHashMap<>();
            committed.threads().forEach((name, cpu) -> {
                double delta = cpu - first.threads().getOrDefault(name, 0.0);
                if (delta >= 0.05) {
                    byThread.put(name, delta);
                }
            });
            result.put("cpu_by_thread", byThread);
        }
        result.put("invalid", progress.invalid.sum());
        result.put("unknown_story", progress.unknownStory.sum());
        result.put("skipped", progress.skipped.sum());
        Map<String, Object> outputs = new LinkedHashMap<>();
        progress.outputs.forEach((kind, adder) -> outputs.put(kind, adder.sum()));
        result.put("outputs", outputs);
        return result;
    }

    /** When the application's committed offsets of the views topic cover every view processed
     * (outputs and changelogs flushed first, as at_least_once commits), or null after 60 s. */
    static Progress.Snapshot waitCommitted(Config config, String appId, Progress progress,
            AtomicReference<Throwable> failure) throws InterruptedException {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, config.broker);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, appId);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        try (KafkaConsumer<byte[], byte[]> offsets =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            Set<TopicPartition> partitions = new java.util.HashSet<>();
            for (int i = 0; i < config.partitions; i++) {
                partitions.add(new TopicPartition(config.viewsTopic, i));
            }
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (System.nanoTime() < deadline && failure.get() == null) {
                Map<TopicPartition, OffsetAndMetadata> done = offsets.committed(partitions, Duration.ofSeconds(10));
                boolean all = true;
                for (TopicPartition tp : partitions) {
                    OffsetAndMetadata at = done.get(tp);
                    if (at == null ? progress.nextOffsets.get(tp.partition()) > 0
                            : at.offset() < progress.nextOffsets.get(tp.partition())) {
                        all = false;
                        break;
                    }
                }
                if (all) {
                    return Progress.Snapshot.take(appId);
                }
                Thread.sleep(2);
            }
        }
        return null;
    }

    static void createOutputTopics(Config config) throws InterruptedException, ExecutionException {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, config.broker);
        try (Admin admin = Admin.create(p)) {
            List<NewTopic> topics = new ArrayList<>();
            for (String name : new String[] {"view-counts", "viewers", "seen"}) {
                topics.add(new NewTopic(config.outputPrefix + name, config.partitions, (short) 1));
            }
            for (var future : admin.createTopics(topics).values().values()) {
                try {
                    future.get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        }
    }

    /** A flat JSON object of numbers, strings and one level of nested maps. */
    static String json(Map<String, Object> map) {
        StringBuilder out = new StringBuilder("{");
        for (var entry : map.entrySet()) {
            if (out.length() > 1) {
                out.append(", ");
            }
            out.append('"').append(entry.getKey()).append("\": ");
            Object value = entry.getValue();
            if (value instanceof Map<?, ?> nested) {
                @SuppressWarnings("unchecked")
                Map<String, Object> inner = (Map<String, Object>) nested;
                out.append(json(inner));
            } else if (value instanceof Number number) {
                out.append(number instanceof Double d ? String.format(Locale.ROOT, "%.6f", d) : number.toString());
            } else {
                out.append('"').append(String.valueOf(value).replace("\\", "\\\\").replace("\"", "\\\"")
                        .replace("\n", " ")).append('"');
            }
        }
        return out.append('}').toString();
    }

}
