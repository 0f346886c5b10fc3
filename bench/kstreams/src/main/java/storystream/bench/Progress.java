package storystream.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

/** One pass's counts and clocks: wall time and CPU (the process's from /proc/self/stat, the
 * stream threads' from the JVM) at its first view and at its last view processed. */
final class Progress {
    final long expected;
    final String threadPrefix;
    final AtomicLong count = new AtomicLong();
    final AtomicLongArray nextOffsets;
    final LongAdder invalid = new LongAdder();
    final LongAdder unknownStory = new LongAdder();
    final LongAdder skipped = new LongAdder();
    final Map<String, LongAdder> outputs = new LinkedHashMap<>();
    private final AtomicBoolean started = new AtomicBoolean();
    volatile Snapshot first;
    volatile Snapshot last;

    Progress(long expected, int partitions, String threadPrefix) {
        this.expected = expected;
        this.threadPrefix = threadPrefix;
        this.nextOffsets = new AtomicLongArray(partitions);
        for (String name : new String[] {"view-counts", "viewers", "seen"}) {
            outputs.put(name, new LongAdder());
        }
    }

    /** Called with every view record before it is processed. */
    void begin() {
        if (first == null && started.compareAndSet(false, true)) {
            first = Snapshot.take(threadPrefix);
        }
    }

    /** Called once each view record is processed. */
    void processed(int partition, long offset) {
        nextOffsets.accumulateAndGet(partition, offset + 1, Math::max);
        if (count.incrementAndGet() == expected) {
            last = Snapshot.take(threadPrefix);
        }
    }

    /** Wall clock (nanoTime) and CPU seconds at one moment. */
    record Snapshot(long nanos, double processCpu, double streamThreadsCpu, Map<String, Double> threads) {
        private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
        private static final double TICK = 0.01; // USER_HZ: /proc's clock ticks are 1/100 s on Linux

        static Snapshot take(String threadPrefix) {
            long now = System.nanoTime();
            double threads = 0;
            for (Thread thread : Thread.getAllStackTraces().keySet()) {
                String name = thread.getName();
                if (name.startsWith(threadPrefix) && name.contains("-StreamThread-")) {
                    long cpu = THREADS.getThreadCpuTime(thread.getId());
                    threads += cpu > 0 ? cpu / 1e9 : 0;
                }
            }
            return new Snapshot(now, readProcessCpu(), threads, byThread(threadPrefix));
        }

        /** CPU seconds by thread kind: Java threads by name (ids and numbers dropped), the
         * others (GC, JIT compilers, RocksDB's) by their /proc name. */
        static Map<String, Double> byThread(String threadPrefix) {
            Map<String, Double> out = new TreeMap<>();
            double java = 0;
            for (Thread thread : Thread.getAllStackTraces().keySet()) {
                long cpu = THREADS.getThreadCpuTime(thread.getId());
                if (cpu > 0) {
                    String name = thread.getName().replace(threadPrefix, "")
                            .replaceAll("-?[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-?", "")
                            .replaceAll("(#|-)[0-9]+", "$1N");
                    out.merge("java:" + name, cpu / 1e9, Double::sum);
                    java += cpu / 1e9;
                }
            }
            double javaAgain = 0; // /proc's view of the same Java threads, to leave them out below
            try (var tasks = Files.list(Path.of("/proc/self/task"))) {
                for (Path task : (Iterable<Path>) tasks::iterator) {
                    String stat = Files.readString(task.resolve("stat"));
                    String comm = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
                    String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                    double cpu = (Long.parseLong(fields[11]) + Long.parseLong(fields[12])) * TICK;
                    if (NATIVE.matcher(comm).find()) {
                        out.merge("vm:" + comm.replaceAll("#[0-9]+$", "#N"), cpu, Double::sum);
                    } else {
                        javaAgain += cpu;
                    }
                }
            } catch (IOException | RuntimeException e) {
                out.put("unreadable /proc/self/task", Double.NaN);
            }
            out.put("java threads (total)", java);
            out.put("java threads by /proc", javaAgain);
            return out;
        }

        private static final Pattern NATIVE =
                Pattern.compile("^(GC |G1 |C1 |C2 |VM |rocksdb|Sweeper|Common-Cleaner|Notification|Service Thread|Monitor)");

        /** utime + stime of this process (all its threads, native ones too). */
        static double readProcessCpu() {
            try {
                String stat = Files.readString(Path.of("/proc/self/stat"));
                String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                return (Long.parseLong(fields[11]) + Long.parseLong(fields[12])) * TICK;
            } catch (IOException | RuntimeException e) {
                return Double.NaN;
            }
        }
    }
}
