package dev.flora.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.backend.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class CheckpointTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SHARD1 = "model-00001-of-00002.safetensors";
    private static final String SHARD2 = "model-00002-of-00002.safetensors";

    @TempDir
    Path dir;

    private static float[] random(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    /** Writes two shards and returns every tensor's values by name. */
    private Map<String, float[]> writeShards() throws IOException {
        SplittableRandom rnd = new SplittableRandom(7);
        Map<String, float[]> values = new LinkedHashMap<>();
        values.put("model.embed_tokens.weight", random(rnd, 10 * 4));
        values.put("model.layers.0.self_attn.q_proj.weight", random(rnd, 4 * 4));
        values.put("model.layers.0.input_layernorm.weight", random(rnd, 4));
        values.put("model.norm.weight", random(rnd, 4));
        values.put("lm_head.weight", random(rnd, 10 * 4));
        // the same names in both shards would be a trap: shard 2 also carries a decoy copy of
        // the norm under a name the index does not map, and shard 1 a decoy for lm_head's name
        new SafetensorsWriter()
                .add("model.embed_tokens.weight", DType.F32, new long[] {10, 4}, values.get("model.embed_tokens.weight"))
                .add("model.layers.0.self_attn.q_proj.weight", DType.F32, new long[] {4, 4}, values.get("model.layers.0.self_attn.q_proj.weight"))
                .add("model.layers.0.input_layernorm.weight", DType.F32, new long[] {4}, values.get("model.layers.0.input_layernorm.weight"))
                .add("lm_head.weight", DType.F32, new long[] {10, 4}, new float[40]) // decoy: zeros
                .write(dir.resolve(SHARD1));
        new SafetensorsWriter()
                .add("model.norm.weight", DType.F32, new long[] {4}, values.get("model.norm.weight"))
                .add("lm_head.weight", DType.F32, new long[] {10, 4}, values.get("lm_head.weight"))
                .add("unmapped.extra", DType.F32, new long[] {1}, new float[] {9})
                .write(dir.resolve(SHARD2));
        return values;
    }

    private void writeIndex(Map<String, String> weightMap) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.putObject("metadata").put("total_size", 123);
        ObjectNode map = root.putObject("weight_map");
        weightMap.forEach(map::put);
        Files.writeString(dir.resolve(Checkpoint.INDEX), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root));
    }

    private static Map<String, String> standardMap() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("model.embed_tokens.weight", SHARD1);
        m.put("model.layers.0.self_attn.q_proj.weight", SHARD1);
        m.put("model.layers.0.input_layernorm.weight", SHARD1);
        m.put("model.norm.weight", SHARD2);
        m.put("lm_head.weight", SHARD2);
        return m;
    }

    @Test
    void shardedCheckpointFindsEveryTensorInItsShard() throws IOException {
        Map<String, float[]> values = writeShards();
        writeIndex(standardMap());

        assertThat(Checkpoint.present(dir)).isTrue();
        Checkpoint ckpt = Checkpoint.open(dir);
        assertThat(ckpt.describe()).isEqualTo(dir.toString());
        assertThat(ckpt.names()).containsExactlyInAnyOrderElementsOf(values.keySet());
        assertThat(ckpt.contains("unmapped.extra")).isFalse();

        for (var e : values.entrySet()) {
            TensorView t = ckpt.get(e.getKey());
            assertThat(t.dtype()).isEqualTo(DType.F32);
            assertThat(t.toFloatArray()).as(e.getKey()).containsExactly(e.getValue());
            String expectedShard = standardMap().get(e.getKey());
            assertThat(t.file().getFileName().toString()).as(e.getKey()).isEqualTo(expectedShard);
        }
        // lm_head comes from shard 2, not the zero decoy in shard 1
        assertThat(ckpt.get("lm_head.weight", 10, 4).toFloatArray()).containsExactly(values.get("lm_head.weight"));
        assertThat(ckpt.get("lm_head.weight").toFloatArray()).isNotEqualTo(new float[40]);
        assertThat(ckpt.get("model.embed_tokens.weight").shape()).containsExactly(10, 4);
    }

    @Test
    void indexTakesPrecedenceOverASingleFile() throws IOException {
        Map<String, float[]> values = writeShards();
        writeIndex(standardMap());
        new SafetensorsWriter().add("other", DType.F32, new long[] {1}, new float[] {1}).write(dir.resolve(Checkpoint.SINGLE));
        Checkpoint ckpt = Checkpoint.open(dir);
        assertThat(ckpt.names()).containsExactlyInAnyOrderElementsOf(values.keySet());
    }

    @Test
    void singleFileCheckpoint() throws IOException {
        float[] w = {1, 2, 3, 4, 5, 6};
        new SafetensorsWriter().add("w", DType.BF16, new long[] {2, 3}, w).add("b", DType.F32, new long[] {2}, new float[] {7, 8})
                .write(dir.resolve(Checkpoint.SINGLE));
        assertThat(Checkpoint.present(dir)).isTrue();
        Checkpoint ckpt = Checkpoint.open(dir);
        assertThat(ckpt.names()).containsExactly("w", "b");
        assertThat(ckpt.get("w", 2, 3).toFloatArray()).containsExactly(w);
        assertThat(ckpt.get("b").toFloatArray()).containsExactly(7, 8);
    }

    @Test
    void fixtureDirectoryOpens() throws Exception {
        Path model = Path.of(getClass().getResource("/fixtures/llama-tiny/model/config.json").toURI()).getParent();
        Checkpoint ckpt = Checkpoint.open(model);
        assertThat(ckpt.names()).hasSize(30);
        assertThat(ckpt.get("model.embed_tokens.weight", 700, 64).dtype()).isEqualTo(DType.F32);
    }

    // ---------------------------------------------------------------- errors

    @Test
    void indexNamingAMissingShardFile() throws IOException {
        writeShards();
        Map<String, String> m = standardMap();
        m.put("model.norm.weight", "model-00003-of-00003.safetensors");
        writeIndex(m);
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("model-00003-of-00003.safetensors")
                .hasMessageContaining("no such file");
    }

    @Test
    void indexPlacingATensorInAShardThatLacksIt() throws IOException {
        writeShards();
        Map<String, String> m = standardMap();
        m.put("model.norm.weight", SHARD1);
        writeIndex(m);
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(SHARD1)
                .hasMessageContaining("'model.norm.weight'")
                .hasMessageContaining(Checkpoint.INDEX);
    }

    @Test
    void indexThatIsNotJson() throws IOException {
        writeShards();
        Files.writeString(dir.resolve(Checkpoint.INDEX), "{\"weight_map\": {\"a\": ");
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve(Checkpoint.INDEX).toString())
                .hasMessageContaining("not valid JSON");
    }

    @Test
    void indexWithoutAWeightMap() throws IOException {
        writeShards();
        Files.writeString(dir.resolve(Checkpoint.INDEX), "{\"metadata\": {}, \"weight_map\": [1]}");
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(Checkpoint.INDEX)
                .hasMessageContaining("weight_map");
        Files.writeString(dir.resolve(Checkpoint.INDEX), "[]");
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("weight_map");
    }

    @Test
    void noWeightsAtAll() throws IOException {
        Files.writeString(dir.resolve("config.json"), "{}");
        assertThat(Checkpoint.present(dir)).isFalse();
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.toString())
                .hasMessageContaining(Checkpoint.SINGLE)
                .hasMessageContaining(Checkpoint.INDEX);
    }

    @Test
    void onlyPytorchBinPresent() throws IOException {
        Files.write(dir.resolve("pytorch_model.bin"), new byte[] {0x50, 0x4b, 3, 4});
        assertThat(Checkpoint.present(dir)).isFalse();
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.toString())
                .hasMessageContaining("pytorch_model.bin")
                .hasMessageContaining("safetensors");
    }

    @Test
    void onlyShardedPytorchBinPresent() throws IOException {
        Files.writeString(dir.resolve("pytorch_model.bin.index.json"), "{\"weight_map\": {}}");
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("safetensors");
    }

    @Test
    void shardPathEscapingTheDirectory() throws IOException {
        Path model = Files.createDirectory(dir.resolve("model"));
        // a perfectly valid file outside the model directory must still be refused
        new SafetensorsWriter().add("w", DType.F32, new long[] {1}, new float[] {1}).write(dir.resolve("x.safetensors"));
        ObjectNode root = JSON.createObjectNode();
        root.putObject("metadata");
        root.putObject("weight_map").put("w", "../x.safetensors");
        Files.writeString(model.resolve(Checkpoint.INDEX), root.toString());
        assertThatThrownBy(() -> Checkpoint.open(model))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("../x.safetensors")
                .hasMessageContaining("outside the model directory")
                .hasMessageContaining("'w'");
    }

    @Test
    void absoluteShardPathIsRefused() throws IOException {
        Path model = Files.createDirectory(dir.resolve("model"));
        Path outside = dir.resolve("abs.safetensors");
        new SafetensorsWriter().add("w", DType.F32, new long[] {1}, new float[] {1}).write(outside);
        ObjectNode root = JSON.createObjectNode();
        root.putObject("weight_map").put("w", outside.toAbsolutePath().toString());
        Files.writeString(model.resolve(Checkpoint.INDEX), root.toString());
        assertThatThrownBy(() -> Checkpoint.open(model))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("outside the model directory");
    }

    @Test
    void emptyShardNameIsRefused() throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.putObject("weight_map").put("w", "");
        Files.writeString(dir.resolve(Checkpoint.INDEX), root.toString());
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("'w'");
    }

    @Test
    void corruptShardNamesTheShard() throws IOException {
        writeShards();
        writeIndex(standardMap());
        Files.write(dir.resolve(SHARD2), new byte[] {1, 2});
        assertThatThrownBy(() -> Checkpoint.open(dir))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining(dir.resolve(SHARD2).toString());
    }

    @Test
    void getOfAMissingTensorNamesIt() throws IOException {
        writeShards();
        writeIndex(standardMap());
        Checkpoint ckpt = Checkpoint.open(dir);
        assertThat(ckpt.find("model.layers.7.mlp.up_proj.weight")).isEmpty();
        assertThatThrownBy(() -> ckpt.get("model.layers.7.mlp.up_proj.weight"))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("'model.layers.7.mlp.up_proj.weight'")
                .hasMessageContaining(dir.toString());
        assertThatThrownBy(() -> ckpt.get("model.layers.7.mlp.up_proj.weight", 4, 4))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("'model.layers.7.mlp.up_proj.weight'");
    }

    @Test
    void getWithAWrongShapeNamesBothShapes() throws IOException {
        writeShards();
        writeIndex(standardMap());
        Checkpoint ckpt = Checkpoint.open(dir);
        assertThatThrownBy(() -> ckpt.get("lm_head.weight", 4, 10))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("'lm_head.weight'")
                .hasMessageContaining("[10, 4]")
                .hasMessageContaining("[4, 10]");
        assertThatThrownBy(() -> ckpt.get("model.norm.weight", 4, 1))
                .isInstanceOf(FloraException.class)
                .hasMessageContaining("[4]")
                .hasMessageContaining("[4, 1]");
    }
}
