package dev.flora.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.backend.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SafetensorsFileTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private Path fixture() throws Exception {
        return Path.of(getClass().getResource("/fixtures/llama-tiny/model/model.safetensors").toURI());
    }

    // ---------------------------------------------------------------- fixture

    @Test
    void opensTheFixtureCheckpoint() throws Exception {
        Path path = fixture();
        SafetensorsFile file = SafetensorsFile.open(path);

        assertThat(file.path()).isEqualTo(path);
        assertThat(file.describe()).isEqualTo(path.toString());
        assertThat(file.metadata()).containsEntry("format", "pt");
        // 3 layers x 9 tensors + embeddings + final norm + lm_head
        assertThat(file.names()).hasSize(3 * 9 + 3)
                .contains("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                        "model.layers.2.self_attn.k_proj.weight", "model.layers.0.mlp.down_proj.weight");

        TensorView embed = file.get("model.embed_tokens.weight");
        assertThat(embed.dtype()).isEqualTo(DType.F32);
        assertThat(embed.shape()).containsExactly(700, 64);
        assertThat(embed.numel()).isEqualTo(700 * 64);
        assertThat(embed.rank()).isEqualTo(2);
        assertThat(embed.data().byteSize()).isEqualTo(700L * 64 * 4);
        assertThat(embed.name()).isEqualTo("model.embed_tokens.weight");
        assertThat(embed.file()).isEqualTo(path);

        assertThat(file.get("model.layers.1.self_attn.k_proj.weight").shape()).containsExactly(32, 64);
        assertThat(file.get("model.layers.1.mlp.down_proj.weight").shape()).containsExactly(64, 160);
        assertThat(file.get("model.norm.weight").shape()).containsExactly(64);
        assertThat(file.get("model.embed_tokens.weight", 700, 64)).isSameAs(embed);

        for (String name : file.names()) {
            TensorView t = file.get(name);
            assertThat(t.dtype()).as(name).isEqualTo(DType.F32);
            assertThat(t.data().byteSize()).as(name).isEqualTo(t.numel() * 4);
            float[] values = t.toFloatArray();
            assertThat(values).as(name).hasSize((int) t.numel());
            boolean anyNonZero = false;
            for (int i = 0; i < values.length; i++) {
                assertThat(Float.isFinite(values[i])).as("%s[%d] = %s", name, i, values[i]).isTrue();
                anyNonZero |= values[i] != 0;
                if (i % 97 == 0) {
                    assertThat(t.getFloat(i)).isEqualTo(values[i]);
                }
            }
            assertThat(anyNonZero).as(name + " is not all zeros").isTrue();
        }
    }

    @Test
    void fixtureValuesMatchTheRawBytes() throws Exception {
        Path path = fixture();
        byte[] raw = Files.readAllBytes(path);
        long headerLength = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        var header = JSON.readTree(new String(raw, 8, (int) headerLength, StandardCharsets.UTF_8));
        var info = header.get("model.norm.weight");
        int begin = info.get("data_offsets").get(0).asInt();
        SafetensorsFile file = SafetensorsFile.open(path);
        float[] values = file.get("model.norm.weight").toFloatArray();
        ByteBuffer data = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < values.length; i++) {
            assertThat(values[i]).isEqualTo(data.getFloat(8 + (int) headerLength + begin + 4 * i));
        }
    }

    @Test
    void missingTensorNamesItAndTheFile() throws Exception {
        SafetensorsFile file = SafetensorsFile.open(fixture());
        assertThat(file.find("nope")).isEmpty();
        assertThat(file.contains("nope")).isFalse();
        assertThat(file.contains("lm_head.weight")).isTrue();
        assertThatThrownBy(() -> file.get("nope"))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("'nope'")
                .hasMessageContaining(fixture().toString());
        assertThatThrownBy(() -> file.get("lm_head.weight", 64, 700))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("lm_head.weight")
                .hasMessageContaining("[700, 64]")
                .hasMessageContaining("[64, 700]");
    }

    // ---------------------------------------------------------------- writer round trip

    private static float[] randomValues(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            double scale = Math.pow(10, rnd.nextInt(-6, 5));
            v[i] = (float) ((rnd.nextDouble() * 2 - 1) * scale);
        }
        return v;
    }

    /** bf16 by round-to-nearest-even, computed independently of the writer (via BigDecimal-free bit math on doubles). */
    private static float bf16Reference(float v) {
        if (Float.isNaN(v) || Float.isInfinite(v) || v == 0) {
            return v;
        }
        // Candidates: truncate toward zero and the next bf16 away from zero; pick the nearer, ties to even.
        int bits = Float.floatToRawIntBits(v);
        int low = bits & 0xffff0000;
        int high = low + 0x10000;
        double lowValue = Float.intBitsToFloat(low);
        double highValue = (high & 0x7f800000) == 0x7f800000 && (high & 0x007fffff) == 0
                ? Math.copySign(Math.pow(2, 128), v) // the "value" of the overflow candidate (inf)
                : Float.intBitsToFloat(high);
        double dLow = Math.abs(v - lowValue);
        double dHigh = Math.abs(highValue - v);
        int chosen;
        if (dLow < dHigh) {
            chosen = low;
        } else if (dHigh < dLow) {
            chosen = high;
        } else {
            chosen = ((low >>> 16) & 1) == 0 ? low : high;
        }
        return Float.intBitsToFloat(chosen);
    }

    @Test
    void bf16ReferenceSanity() {
        // 1 + 2^-8 lies exactly between bf16 1.0 and 1 + 2^-7: ties to even gives 1.0
        assertThat(bf16Reference(1f + 0x1p-8f)).isEqualTo(1f);
        // 1 + 3*2^-8 lies between 1 + 2^-7 (odd) and 1 + 2^-6 (even): ties to even gives 1 + 2^-6
        assertThat(bf16Reference(1f + 3 * 0x1p-8f)).isEqualTo(1f + 0x1p-6f);
        assertThat(bf16Reference(1f + 0x1p-8f + 0x1p-20f)).isEqualTo(1f + 0x1p-7f);
        assertThat(bf16Reference(-1f - 0x1p-8f - 0x1p-20f)).isEqualTo(-1f - 0x1p-7f);
    }

    @Test
    void writerRoundTripsF32F16AndBf16() throws IOException {
        SplittableRandom rnd = new SplittableRandom(42);
        float[] a = randomValues(rnd, 3 * 5 * 7);
        float[] b = randomValues(rnd, 33);
        float[] c = randomValues(rnd, 4 * 9);
        // exact ties and special values
        float[] special = {0f, -0f, 1f, -2.5f, 1f + 0x1p-8f, 1f + 3 * 0x1p-8f, 65504f, 70000f, 1e-8f, 6.1e-5f,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE, Float.MAX_VALUE, 3.3895314e38f, 1f + 0x1p-11f};
        Path path = dir.resolve("rt.safetensors");
        new SafetensorsWriter()
                .add("a", DType.F32, new long[] {3, 5, 7}, a)
                .add("b", DType.F16, new long[] {33}, b)
                .add("c", DType.BF16, new long[] {4, 9}, c)
                .add("sf16", DType.F16, new long[] {special.length}, special)
                .add("sbf16", DType.BF16, new long[] {2, special.length / 2}, special)
                .add("scalar", DType.F32, new long[] {}, new float[] {7.25f})
                .add("empty", DType.F32, new long[] {0, 4}, new float[0])
                .metadata("format", "pt")
                .metadata("note", "round trip")
                .write(path);

        assertThat(dir.resolve("rt.safetensors.tmp")).doesNotExist();
        byte[] raw = Files.readAllBytes(path);
        long headerLength = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertThat(headerLength % 8).isZero();
        long expectedData = a.length * 4L + b.length * 2L + c.length * 2L + special.length * 2L * 2 + 4;
        assertThat(raw.length).isEqualTo(8 + headerLength + expectedData);

        SafetensorsFile file = SafetensorsFile.open(path);
        assertThat(file.metadata()).containsExactly(
                java.util.Map.entry("format", "pt"), java.util.Map.entry("note", "round trip"));
        assertThat(file.names()).containsExactly("a", "b", "c", "sf16", "sbf16", "scalar", "empty");

        TensorView ta = file.get("a");
        assertThat(ta.dtype()).isEqualTo(DType.F32);
        assertThat(ta.shape()).containsExactly(3, 5, 7);
        assertThat(ta.toFloatArray()).containsExactly(a);

        TensorView tb = file.get("b");
        assertThat(tb.dtype()).isEqualTo(DType.F16);
        assertThat(tb.data().byteSize()).isEqualTo(33 * 2);
        float[] gotB = tb.toFloatArray();
        for (int i = 0; i < b.length; i++) {
            float expected = Float.float16ToFloat(Float.floatToFloat16(b[i]));
            assertThat(gotB[i]).as("b[%d] from %s", i, b[i]).isEqualTo(expected);
            assertThat(tb.getFloat(i)).isEqualTo(expected);
        }

        TensorView tc = file.get("c");
        assertThat(tc.dtype()).isEqualTo(DType.BF16);
        assertThat(tc.shape()).containsExactly(4, 9);
        float[] gotC = tc.toFloatArray();
        boolean someRounded = false;
        for (int i = 0; i < c.length; i++) {
            assertThat(gotC[i]).as("c[%d] from %s", i, c[i]).isEqualTo(bf16Reference(c[i]));
            someRounded |= gotC[i] != c[i];
        }
        assertThat(someRounded).as("bf16 actually loses precision").isTrue();

        float[] gotSf16 = file.get("sf16").toFloatArray();
        float[] gotSbf16 = file.get("sbf16").toFloatArray();
        for (int i = 0; i < special.length; i++) {
            assertThat(Float.floatToIntBits(gotSf16[i])).as("f16 of %s", special[i])
                    .isEqualTo(Float.floatToIntBits(Float.float16ToFloat(Float.floatToFloat16(special[i]))));
            assertThat(Float.floatToIntBits(gotSbf16[i])).as("bf16 of %s", special[i])
                    .isEqualTo(Float.floatToIntBits(bf16Reference(special[i])));
        }
        // spot checks of the references themselves
        assertThat(gotSbf16[4]).isEqualTo(1f);               // tie 1 + 2^-8 -> even (1.0)
        assertThat(gotSbf16[5]).isEqualTo(1f + 0x1p-6f);     // tie 1 + 3*2^-8 -> even
        assertThat(gotSbf16[13]).isEqualTo(Float.POSITIVE_INFINITY); // MAX_VALUE rounds up to inf
        assertThat(gotSf16[7]).isEqualTo(Float.POSITIVE_INFINITY);   // 70000 overflows f16
        assertThat(gotSf16[15]).isEqualTo(1f);               // tie 1 + 2^-11 -> even in f16
        assertThat(Float.floatToIntBits(gotSf16[1])).isEqualTo(Float.floatToIntBits(-0f));

        TensorView scalar = file.get("scalar");
        assertThat(scalar.shape()).isEmpty();
        assertThat(scalar.numel()).isEqualTo(1);
        assertThat(scalar.getFloat(0)).isEqualTo(7.25f);
        TensorView empty = file.get("empty");
        assertThat(empty.numel()).isZero();
        assertThat(empty.toFloatArray()).isEmpty();
    }

    @Test
    void bf16NaNStaysNaN() throws IOException {
        Path path = dir.resolve("nan.safetensors");
        new SafetensorsWriter().add("n", DType.BF16, new long[] {2}, new float[] {Float.NaN, Float.intBitsToFloat(0x7f800001)})
                .add("h", DType.F16, new long[] {1}, new float[] {Float.NaN})
                .write(path);
        SafetensorsFile file = SafetensorsFile.open(path);
        float[] n = file.get("n").toFloatArray();
        assertThat(Float.isNaN(n[0])).isTrue();
        assertThat(Float.isNaN(n[1])).isTrue();
        assertThat(file.get("h").getFloat(0)).isNaN();
    }

    @Test
    void headerIsPaddedToAMultipleOfEightForEveryLength() throws IOException {
        // names of growing length move the JSON length through every residue mod 8
        java.util.Set<Long> residues = new java.util.HashSet<>();
        for (int n = 1; n <= 8; n++) {
            Path path = dir.resolve("pad" + n + ".safetensors");
            new SafetensorsWriter().add("x".repeat(n), DType.F32, new long[] {2}, new float[] {1, 2}).write(path);
            byte[] raw = Files.readAllBytes(path);
            long headerLength = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            assertThat(headerLength % 8).isZero();
            String header = new String(raw, 8, (int) headerLength, StandardCharsets.UTF_8);
            residues.add((long) header.strip().length() % 8);
            assertThat(header.stripTrailing()).endsWith("}");
            assertThat(SafetensorsFile.open(path).get("x".repeat(n)).toFloatArray()).containsExactly(1, 2);
        }
        assertThat(residues).hasSize(8);
    }

    @Test
    void writerRejectsAMismatchedShapeOrIntegerType() {
        assertThatThrownBy(() -> new SafetensorsWriter().add("w", DType.F32, new long[] {2, 3}, new float[5]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("w");
        assertThatThrownBy(() -> new SafetensorsWriter().add("w", DType.I32, new long[] {1}, new float[1]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("I32");
    }

    // ---------------------------------------------------------------- hand-built files

    /** 8-byte little-endian header length, header bytes, then data. */
    static byte[] raw(byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header).put(data);
        return b.array();
    }

    static byte[] raw(String header, int dataBytes) {
        return raw(header.getBytes(StandardCharsets.UTF_8), new byte[dataBytes]);
    }

    private Path write(String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    @Test
    void integerAndBoolDtypesOpen() throws IOException {
        ObjectNode h = JSON.createObjectNode();
        h.putObject("__metadata__").put("k", "v");
        long off = 0;
        Object[][] specs = {
                {"ints", "I32", new long[] {2, 3}, 4},
                {"longs", "I64", new long[] {5}, 8},
                {"bytes", "U8", new long[] {3, 1, 2}, 1},
                {"mask", "BOOL", new long[] {7}, 1},
                {"shorts", "I16", new long[] {1, 1}, 2},
                {"doubles", "F64", new long[] {2}, 8},
        };
        for (Object[] s : specs) {
            long[] shape = (long[]) s[2];
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            long bytes = n * (int) s[3];
            ObjectNode t = h.putObject((String) s[0]);
            t.put("dtype", (String) s[1]);
            var arr = t.putArray("shape");
            for (long d : shape) {
                arr.add(d);
            }
            t.putArray("data_offsets").add(off).add(off + bytes);
            off += bytes;
        }
        ByteBuffer data = ByteBuffer.allocate((int) off).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 6; i++) {
            data.putInt(-3 + i * 1000);
        }
        for (int i = 0; i < 5; i++) {
            data.putLong(Long.MAX_VALUE - i);
        }
        for (int i = 0; i < 6; i++) {
            data.put((byte) (250 + i));
        }
        for (int i = 0; i < 7; i++) {
            data.put((byte) (i % 2));
        }
        data.putShort((short) -7);
        data.putDouble(Math.PI).putDouble(-1e300);
        Path p = write("ints.safetensors", raw(JSON.writeValueAsBytes(h), data.array()));

        SafetensorsFile file = SafetensorsFile.open(p);
        assertThat(file.metadata()).containsEntry("k", "v");
        TensorView ints = file.get("ints");
        assertThat(ints.dtype()).isEqualTo(DType.I32);
        assertThat(ints.shape()).containsExactly(2, 3);
        assertThat(ints.data().byteSize()).isEqualTo(24);
        assertThat(ints.data().getAtIndex(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 5)).isEqualTo(4997);
        TensorView longs = file.get("longs");
        assertThat(longs.dtype()).isEqualTo(DType.I64);
        assertThat(longs.shape()).containsExactly(5);
        assertThat(longs.data().byteSize()).isEqualTo(40);
        assertThat(longs.data().getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4)).isEqualTo(Long.MAX_VALUE - 4);
        TensorView bytes = file.get("bytes");
        assertThat(bytes.dtype()).isEqualTo(DType.U8);
        assertThat(bytes.shape()).containsExactly(3, 1, 2);
        assertThat(bytes.data().byteSize()).isEqualTo(6);
        assertThat(bytes.data().get(ValueLayout.JAVA_BYTE, 0) & 0xff).isEqualTo(250);
        TensorView mask = file.get("mask");
        assertThat(mask.dtype()).isEqualTo(DType.BOOL);
        assertThat(mask.data().byteSize()).isEqualTo(7);
        assertThat(mask.data().get(ValueLayout.JAVA_BYTE, 5)).isEqualTo((byte) 1);
        assertThat(file.get("shorts").dtype()).isEqualTo(DType.I16);
        TensorView doubles = file.get("doubles");
        assertThat(doubles.dtype()).isEqualTo(DType.F64);
        assertThat(doubles.toFloatArray()).containsExactly((float) Math.PI, Float.NEGATIVE_INFINITY);

        // integer tensors are not floating: widening refuses, and shape-checked get refuses
        assertThatThrownBy(() -> ints.getFloat(0)).isInstanceOf(IllegalStateException.class).hasMessageContaining("ints");
        assertThatThrownBy(() -> file.get("ints", 2, 3)).isInstanceOf(FloraException.class)
                .hasMessageContaining("ints").hasMessageContaining("I32");
    }

    // ---------------------------------------------------------------- bad files

    private void assertBad(Path p, String... fragments) {
        assertThatThrownBy(() -> SafetensorsFile.open(p))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContainingAll(fragments);
    }

    @Test
    void fileShorterThanEightBytes() throws IOException {
        assertBad(write("short.safetensors", new byte[] {1, 0, 0}), "3 bytes");
    }

    @Test
    void emptyFile() throws IOException {
        assertBad(write("empty.safetensors", new byte[0]), "0 bytes");
    }

    @Test
    void headerLengthLargerThanTheFile() throws IOException {
        byte[] b = raw("{}", 0);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1000);
        assertBad(write("long.safetensors", b), "1000");
    }

    @Test
    void absurdHeaderLength() throws IOException {
        byte[] b = raw("{}", 64);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40);
        assertBad(write("absurd.safetensors", b), Long.toString(1L << 40));
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L);
        assertBad(write("negative.safetensors", b), "not sane");
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 0L);
        assertBad(write("zero.safetensors", b), "not sane");
    }

    @Test
    void headerNotJson() throws IOException {
        assertBad(write("notjson.safetensors", raw("{\"a\": [1, 2", 0)), "JSON");
        assertBad(write("garbage.safetensors", raw("PK\u0003\u0004 zip?", 16)), "JSON");
    }

    @Test
    void headerJsonButNotAnObject() throws IOException {
        assertBad(write("array.safetensors", raw("[1, 2, 3]", 0)), "not a JSON object");
        assertBad(write("string.safetensors", raw("\"hello\"", 0)), "not a JSON object");
    }

    @Test
    void metadataNotAnObject() throws IOException {
        assertBad(write("meta.safetensors", raw("{\"__metadata__\": [1]}", 0)), "__metadata__");
    }

    @Test
    void tensorEntryNotAnObject() throws IOException {
        assertBad(write("entry.safetensors", raw("{\"w\": 5}", 0)), "'w'");
    }

    @Test
    void unknownDtype() throws IOException {
        assertBad(write("dtype.safetensors",
                raw("{\"weight.q\": {\"dtype\": \"F8_E4M3X\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 2)),
                "'weight.q'", "F8_E4M3X");
        assertBad(write("nodtype.safetensors",
                raw("{\"weight.q\": {\"shape\": [2], \"data_offsets\": [0, 2]}}", 2)),
                "'weight.q'", "dtype");
        // dtype names are case-sensitive as in the reference implementation
        assertBad(write("lower.safetensors",
                raw("{\"weight.q\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4)),
                "'weight.q'", "f32");
    }

    @Test
    void shapeNotAListOrNegative() throws IOException {
        assertBad(write("shape1.safetensors",
                raw("{\"w.shape\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 16)),
                "'w.shape'", "shape");
        assertBad(write("shape2.safetensors",
                raw("{\"w.shape\": {\"dtype\": \"F32\", \"data_offsets\": [0, 16]}}", 16)),
                "'w.shape'", "shape");
        assertBad(write("shape3.safetensors",
                raw("{\"w.neg\": {\"dtype\": \"F32\", \"shape\": [-2, -2], \"data_offsets\": [0, 16]}}", 16)),
                "'w.neg'", "[-2,-2]");
        assertBad(write("shape4.safetensors",
                raw("{\"w.frac\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 10]}}", 10)),
                "'w.frac'", "shape");
        assertBad(write("shape5.safetensors",
                raw("{\"w.str\": {\"dtype\": \"F32\", \"shape\": [\"4\"], \"data_offsets\": [0, 16]}}", 16)),
                "'w.str'", "shape");
    }

    @Test
    void dataOffsetsMalformed() throws IOException {
        assertBad(write("off1.safetensors",
                raw("{\"w.off\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4)),
                "'w.off'", "data_offsets");
        assertBad(write("off2.safetensors",
                raw("{\"w.off\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4)),
                "'w.off'", "data_offsets");
        assertBad(write("off3.safetensors",
                raw("{\"w.off\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", \"4\"]}}", 4)),
                "'w.off'", "data_offsets");
        assertBad(write("off4.safetensors",
                raw("{\"w.off\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4)),
                "'w.off'", "data_offsets");
    }

    @Test
    void truncatedFileRunsPastTheEnd() throws IOException {
        Path p = dir.resolve("trunc.safetensors");
        new SafetensorsWriter()
                .add("first", DType.F32, new long[] {4}, new float[] {1, 2, 3, 4})
                .add("last.weight", DType.F32, new long[] {2, 2}, new float[] {5, 6, 7, 8})
                .write(p);
        assertThat(SafetensorsFile.open(p).get("last.weight").toFloatArray()).containsExactly(5, 6, 7, 8);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(f.length() - 3);
        }
        assertBad(p, "'last.weight'", "truncated", "[16, 32]");
    }

    @Test
    void dataOffsetsEndBeforeBegin() throws IOException {
        assertBad(write("rev.safetensors",
                raw("{\"w.rev\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8)),
                "'w.rev'", "[8, 4]");
    }

    @Test
    void dtypeTimesShapeDiffersFromBytes() throws IOException {
        assertBad(write("size.safetensors",
                raw("{\"w.size\": {\"dtype\": \"BF16\", \"shape\": [3, 2], \"data_offsets\": [0, 24]}}", 24)),
                "'w.size'", "12 bytes", "24");
        assertBad(write("size2.safetensors",
                raw("{\"w.size\": {\"dtype\": \"F32\", \"shape\": [3, 2], \"data_offsets\": [0, 20]}}", 24)),
                "'w.size'", "24 bytes", "20");
    }

    @Test
    void shapeOverflowIsAFloraException() throws IOException {
        long big = 1L << 40;
        assertBad(write("overflow.safetensors",
                raw("{\"w.huge\": {\"dtype\": \"F32\", \"shape\": [" + big + ", " + big + "], \"data_offsets\": [0, 4]}}", 4)),
                "'w.huge'", "too large");
        // numel fits in a long but numel * 4 bytes does not
        assertBad(write("overflow2.safetensors",
                raw("{\"w.bytes\": {\"dtype\": \"F32\", \"shape\": [" + (1L << 62) + "], \"data_offsets\": [0, 4]}}", 4)),
                "'w.bytes'", "too large");
    }

    @Test
    void overlappingTensors() throws IOException {
        String h = "{\"a.w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                + " \"b.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [12, 20]}}";
        assertThatThrownBy(() -> SafetensorsFile.open(write("overlap.safetensors", raw(h, 20))))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve("overlap.safetensors").toString())
                .hasMessageContaining("overlaps")
                .hasMessageContaining("a.w")
                .hasMessageContaining("b.w");
        // same ranges, listed in the other order
        String h2 = "{\"b.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [12, 20]},"
                + " \"a.w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}";
        assertBad(write("overlap2.safetensors", raw(h2, 20)), "overlaps", "a.w", "b.w");
        // identical ranges overlap too
        String h3 = "{\"a.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                + " \"c.w\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}";
        assertBad(write("overlap3.safetensors", raw(h3, 8)), "overlaps");
    }

    @Test
    void adjacentAndEmptyTensorsDoNotOverlap() throws IOException {
        String h = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                + " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]},"
                + " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}";
        SafetensorsFile f = SafetensorsFile.open(write("adjacent.safetensors", raw(h, 12)));
        assertThat(f.names()).containsExactly("a", "e", "b");
        assertThat(f.get("e").numel()).isZero();
    }

    @Test
    void nonexistentPath() {
        Path p = dir.resolve("does-not-exist.safetensors");
        assertBad(p, "no such file");
    }

    @Test
    void directoryInsteadOfFile() {
        assertThatThrownBy(() -> SafetensorsFile.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.toString());
    }
}
