package dev.flora.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;
import dev.flora.backend.DType;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A safetensors file, memory-mapped through FFM: an 8-byte little-endian header length, a JSON
 * header, then the raw tensor bytes. The header is validated before any tensor is handed out,
 * so a corrupt file fails with a message naming the file and the tensor instead of reading
 * garbage.
 */
public final class SafetensorsFile implements Weights {
    /** The reference implementation's limit on the header. */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final Map<String, TensorView> tensors;
    private final Map<String, String> metadata;
    /** The whole mapped file: header and data, as the tensor views see it. */
    private final MemorySegment whole;

    private SafetensorsFile(Path path, Map<String, TensorView> tensors, Map<String, String> metadata, MemorySegment whole) {
        this.path = path;
        this.tensors = tensors;
        this.metadata = metadata;
        this.whole = whole;
    }

    public static SafetensorsFile open(Path path) {
        long size;
        MemorySegment whole;
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            size = channel.size();
            if (size < 8) {
                throw bad(path, "file is " + size + " bytes, too short for a safetensors header");
            }
            // An automatic arena: the mapping lives as long as some tensor view refers to it.
            whole = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, Arena.ofAuto());
        } catch (NoSuchFileException e) {
            throw new FloraException(path + ": no such file");
        } catch (IOException e) {
            throw new FloraException(path + ": cannot read (" + e.getMessage() + ")", e);
        }
        long headerLength = whole.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES) {
            throw bad(path, "header length " + Long.toUnsignedString(headerLength) + " is not sane (file truncated or not safetensors?)");
        }
        if (8 + headerLength > size) {
            throw bad(path, "header length " + headerLength + " runs past the end of the " + size + "-byte file (truncated?)");
        }
        byte[] headerBytes = whole.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
        JsonNode header;
        try {
            header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw bad(path, "header is not valid JSON (" + e.getOriginalMessage() + ")");
        }
        if (header == null || !header.isObject()) {
            throw bad(path, "header is not a JSON object");
        }
        MemorySegment data = whole.asSlice(8 + headerLength);
        return parse(path, header, data, whole);
    }

    private static SafetensorsFile parse(Path path, JsonNode header, MemorySegment data, MemorySegment whole) {
        Map<String, TensorView> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        List<long[]> ranges = new ArrayList<>();
        List<String> rangeNames = new ArrayList<>();
        for (Map.Entry<String, JsonNode> entry : header.properties()) {
            String name = entry.getKey();
            JsonNode info = entry.getValue();
            if (name.equals("__metadata__")) {
                if (!info.isObject()) {
                    throw bad(path, "__metadata__ is not an object");
                }
                info.properties().forEach(m -> metadata.put(m.getKey(), m.getValue().asText()));
                continue;
            }
            if (!info.isObject()) {
                throw badTensor(path, name, "entry is not an object");
            }
            String dtypeName = info.path("dtype").asText("");
            DType dtype = DType.fromSafetensorsName(dtypeName)
                    .orElseThrow(() -> badTensor(path, name, "unknown dtype '" + info.path("dtype").asText("(missing)") + "'"));
            JsonNode shapeNode = info.get("shape");
            if (shapeNode == null || !shapeNode.isArray()) {
                throw badTensor(path, name, "shape is missing or not a list");
            }
            long[] shape = new long[shapeNode.size()];
            long numel = 1;
            for (int i = 0; i < shape.length; i++) {
                JsonNode d = shapeNode.get(i);
                if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0) {
                    throw badTensor(path, name, "shape " + shapeNode + " is not a list of non-negative integers");
                }
                shape[i] = d.asLong();
                numel = multiply(path, name, shapeNode, numel, shape[i]);
            }
            JsonNode offsets = info.get("data_offsets");
            if (offsets == null || !offsets.isArray() || offsets.size() != 2
                    || !offsets.get(0).isIntegralNumber() || !offsets.get(1).isIntegralNumber()) {
                throw badTensor(path, name, "data_offsets must be two integers");
            }
            long begin = offsets.get(0).asLong();
            long end = offsets.get(1).asLong();
            if (begin < 0 || end < begin) {
                throw badTensor(path, name, "data_offsets [" + begin + ", " + end + "] are not an increasing pair");
            }
            if (end > data.byteSize()) {
                throw badTensor(path, name, "data_offsets [" + begin + ", " + end + "] run past the "
                        + data.byteSize() + " data bytes (file truncated?)");
            }
            long expected = multiply(path, name, shapeNode, numel, dtype.bytes());
            if (end - begin != expected) {
                throw badTensor(path, name, dtype + " " + shapeNode + " needs " + expected + " bytes but data_offsets span " + (end - begin));
            }
            ranges.add(new long[] {begin, end});
            rangeNames.add(name);
            tensors.put(name, new TensorView(name, dtype, shape, data.asSlice(begin, end - begin), path));
        }
        checkNoOverlap(path, ranges, rangeNames);
        return new SafetensorsFile(path, Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata), whole);
    }

    private static long multiply(Path path, String name, JsonNode shapeNode, long a, long b) {
        try {
            return Math.multiplyExact(a, b);
        } catch (ArithmeticException e) {
            throw badTensor(path, name, "shape " + shapeNode + " is too large");
        }
    }

    private static void checkNoOverlap(Path path, List<long[]> ranges, List<String> names) {
        Integer[] order = new Integer[ranges.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, Comparator.comparingLong((Integer i) -> ranges.get(i)[0]).thenComparingLong(i -> ranges.get(i)[1]));
        for (int k = 1; k < order.length; k++) {
            long[] prev = ranges.get(order[k - 1]);
            long[] cur = ranges.get(order[k]);
            boolean empty = cur[0] == cur[1] || prev[0] == prev[1];
            if (!empty && cur[0] < prev[1]) {
                throw badTensor(path, names.get(order[k]), "data overlaps tensor '" + names.get(order[k - 1]) + "'");
            }
        }
    }

    private static FloraException bad(Path path, String what) {
        return new FloraException(path + ": not a valid safetensors file: " + what);
    }

    private static FloraException badTensor(Path path, String tensor, String what) {
        return new FloraException(path + ": tensor '" + tensor + "': " + what);
    }

    public Path path() {
        return path;
    }

    /** Feeds every byte of the file, as mapped (the bytes the tensors are read from), to a digest. */
    public void digest(java.security.MessageDigest digest) {
        for (long at = 0; at < whole.byteSize(); at += Integer.MAX_VALUE) {
            digest.update(whole.asSlice(at, Math.min(Integer.MAX_VALUE, whole.byteSize() - at)).asByteBuffer());
        }
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    @Override
    public Optional<TensorView> find(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    @Override
    public java.util.Set<String> names() {
        return tensors.keySet();
    }

    @Override
    public String describe() {
        return path.toString();
    }
}
