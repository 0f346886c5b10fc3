package storystream.bench;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Avro binary encoding by hand (zig-zag varints, length-prefixed strings) and the Confluent
 * wire format's 5-byte header (magic byte 0, 4-byte big-endian schema id). */
final class Wire {
    static final int HEADER = 5;

    private Wire() {}

    /** A cursor over one record's bytes; reads throw IllegalArgumentException past the end. */
    static final class Reader {
        private final byte[] data;
        int pos;

        Reader(byte[] data, int pos) {
            this.data = data;
            this.pos = pos;
        }

        long readLong() {
            long raw = 0;
            int shift = 0;
            while (true) {
                if (pos >= data.length) {
                    throw new IllegalArgumentException("varint past the end");
                }
                byte b = data[pos++];
                raw |= (long) (b & 0x7f) << shift;
                if ((b & 0x80) == 0) {
                    break;
                }
                shift += 7;
                if (shift > 63) {
                    throw new IllegalArgumentException("varint too long");
                }
            }
            return (raw >>> 1) ^ -(raw & 1);
        }

        /** A string that must be an identifier (1-64 of [A-Za-z0-9_-]), else null. */
        String readIdentifier() {
            long n = readLong();
            if (n < 1 || n > 64 || pos + n > data.length) {
                if (n < 0 || pos + n > data.length) {
                    throw new IllegalArgumentException("string past the end");
                }
                pos += (int) n;
                return null;
            }
            int start = pos;
            int end = pos + (int) n;
            pos = end;
            for (int i = start; i < end; i++) {
                byte c = data[i];
                boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                        || c == '_' || c == '-';
                if (!ok) {
                    return null;
                }
            }
            return new String(data, start, end - start, StandardCharsets.ISO_8859_1);
        }

        boolean atEnd() {
            return pos == data.length;
        }
    }

    /** True when `data` starts with the Confluent header of schema `id`. */
    static boolean hasHeader(byte[] data, int id) {
        return data != null && data.length > HEADER && data[0] == 0
                && ((data[1] & 0xff) << 24 | (data[2] & 0xff) << 16 | (data[3] & 0xff) << 8 | (data[4] & 0xff)) == id;
    }

    /** A growable Avro binary writer. */
    static final class Writer extends ByteArrayOutputStream {
        Writer(int size) {
            super(size);
        }

        Writer header(int id) {
            write(0);
            write(id >>> 24);
            write(id >>> 16);
            write(id >>> 8);
            write(id);
            return this;
        }

        Writer writeLong(long value) {
            long n = (value << 1) ^ (value >> 63);
            while ((n & ~0x7fL) != 0) {
                write((int) ((n & 0x7f) | 0x80));
                n >>>= 7;
            }
            write((int) n);
            return this;
        }

        Writer writeString(String value) {
            return writeBytes(value.getBytes(StandardCharsets.UTF_8), 0, -1);
        }

        Writer writeBytes(byte[] value, int offset, int length) {
            int n = length < 0 ? value.length - offset : length;
            writeLong(n);
            write(value, offset, n);
            return this;
        }
    }
}
