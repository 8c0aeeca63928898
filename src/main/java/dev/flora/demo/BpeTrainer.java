package dev.flora.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Trains a small byte-fallback BPE tokenizer in Llama-2's tokenizer.json layout (spaces become
 * "▁", a "▁" is prepended, unknown characters fall back to byte tokens, BOS added), so the demo
 * needs no download. Deterministic: ties between pairs break by the pair's text.
 */
public final class BpeTrainer {
    private static final String SPACE = "\u2581";

    private BpeTrainer() {
    }

    /** A tokenizer.json for this corpus with at most {@code vocabSize} entries. */
    public static ObjectNode train(String corpus, int vocabSize) {
        Map<List<String>, Integer> words = new HashMap<>();
        for (String line : corpus.split("\n", -1)) {
            if (line.isEmpty()) {
                continue;
            }
            String normalized = SPACE + line.replace(" ", SPACE) + "\n";
            int start = 0;
            for (int i = 1; i <= normalized.length(); i++) {
                if (i == normalized.length() || normalized.startsWith(SPACE, i)) {
                    words.merge(symbols(normalized.substring(start, i)), 1, Integer::sum);
                    start = i;
                }
            }
        }
        Map<String, Integer> vocab = new LinkedHashMap<>();
        vocab.put("<unk>", 0);
        vocab.put("<s>", 1);
        vocab.put("</s>", 2);
        for (int b = 0; b < 256; b++) {
            vocab.put(String.format("<0x%02X>", b), vocab.size());
        }
        TreeSet<String> alphabet = new TreeSet<>();
        for (int c = 0x21; c < 0x7f; c++) {
            alphabet.add(Character.toString(c));
        }
        alphabet.add(SPACE);
        alphabet.add("\n");
        alphabet.add("\t");
        words.keySet().forEach(alphabet::addAll);
        for (String s : alphabet) {
            vocab.putIfAbsent(s, vocab.size());
        }
        List<String[]> merges = new ArrayList<>();
        Map<List<String>, Integer> current = words;
        while (vocab.size() < vocabSize) {
            String[] best = bestPair(current);
            if (best == null) {
                break;
            }
            merges.add(best);
            vocab.putIfAbsent(best[0] + best[1], vocab.size());
            current = apply(current, best);
        }
        return tokenizerJson(vocab, merges);
    }

    private static List<String> symbols(String word) {
        List<String> out = new ArrayList<>();
        word.codePoints().forEach(cp -> out.add(Character.toString(cp)));
        return out;
    }

    private static String[] bestPair(Map<List<String>, Integer> words) {
        Map<String, Integer> counts = new HashMap<>();
        for (var e : words.entrySet()) {
            List<String> w = e.getKey();
            for (int i = 0; i + 1 < w.size(); i++) {
                counts.merge(w.get(i) + "\u0000" + w.get(i + 1), e.getValue(), Integer::sum);
            }
        }
        String best = null;
        int bestCount = 1;
        for (var e : counts.entrySet()) {
            if (e.getValue() > bestCount || (e.getValue() == bestCount && best != null && e.getKey().compareTo(best) < 0)) {
                best = e.getKey();
                bestCount = e.getValue();
            }
        }
        return best == null ? null : best.split("\u0000", 2);
    }

    private static Map<List<String>, Integer> apply(Map<List<String>, Integer> words, String[] pair) {
        Map<List<String>, Integer> out = new HashMap<>();
        for (var e : words.entrySet()) {
            List<String> w = e.getKey();
            List<String> merged = new ArrayList<>(w.size());
            for (int i = 0; i < w.size(); i++) {
                if (i + 1 < w.size() && w.get(i).equals(pair[0]) && w.get(i + 1).equals(pair[1])) {
                    merged.add(pair[0] + pair[1]);
                    i++;
                } else {
                    merged.add(w.get(i));
                }
            }
            out.merge(merged, e.getValue(), Integer::sum);
        }
        return out;
    }

    private static ObjectNode tokenizerJson(Map<String, Integer> vocab, List<String[]> merges) {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        String[] specials = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < specials.length; i++) {
            ObjectNode t = added.addObject();
            t.put("id", i).put("content", specials[i]).put("single_word", false).put("lstrip", false)
                    .put("rstrip", false).put("normalized", false).put("special", true);
        }
        ObjectNode normalizer = root.putObject("normalizer").put("type", "Sequence");
        ArrayNode norms = normalizer.putArray("normalizers");
        norms.addObject().put("type", "Prepend").put("prepend", SPACE);
        ObjectNode replace = norms.addObject().put("type", "Replace");
        replace.putObject("pattern").put("String", " ");
        replace.put("content", SPACE);
        root.putNull("pre_tokenizer");
        ObjectNode post = root.putObject("post_processor").put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        single.addObject().putObject("SpecialToken").put("id", "<s>").put("type_id", 0);
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        ArrayNode pair = post.putArray("pair");
        pair.addObject().putObject("SpecialToken").put("id", "<s>").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        pair.addObject().putObject("SpecialToken").put("id", "<s>").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 0);
        ObjectNode bos = post.putObject("special_tokens").putObject("<s>");
        bos.put("id", "<s>");
        bos.putArray("ids").add(1);
        bos.putArray("tokens").add("<s>");
        ObjectNode decoder = root.putObject("decoder").put("type", "Sequence");
        ArrayNode decoders = decoder.putArray("decoders");
        ObjectNode space = decoders.addObject().put("type", "Replace");
        space.putObject("pattern").put("String", SPACE);
        space.put("content", " ");
        decoders.addObject().put("type", "ByteFallback");
        decoders.addObject().put("type", "Fuse");
        decoders.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE").putNull("dropout");
        model.put("unk_token", "<unk>").putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", true).put("byte_fallback", true).put("ignore_merges", false);
        ObjectNode v = model.putObject("vocab");
        vocab.forEach(v::put);
        ArrayNode m = model.putArray("merges");
        for (String[] merge : merges) {
            m.addArray().add(merge[0]).add(merge[1]);
        }
        return root;
    }
}
