package dev.flora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.flora.FloraException;
import dev.flora.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code flora tokenize}: ids of texts as transformers' tokenizer gives them. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = {"Tokenise texts as Hugging Face tokenizers does.",
                "Input lines {\"text\"} become {\"text\", \"ids\", \"ids_no_special\", \"decoded\"}: ids with the post-processor's "
                        + "special tokens, ids without them, and decode(ids) keeping special tokens."})
final class TokenizeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--tokenizer", required = true, paramLabel = "tokenizer.json", description = "A Hugging Face tokenizer.json (or a directory holding one).")
    Path tokenizer;

    @Option(names = "--input", paramLabel = "IN.jsonl", description = "Input lines (default: stdin).")
    Path input;

    @Option(names = "--output", paramLabel = "OUT.jsonl", description = "Output lines (default: stdout).")
    Path output;

    @Override
    public Integer call() {
        Path file = java.nio.file.Files.isDirectory(tokenizer) ? tokenizer.resolve("tokenizer.json") : tokenizer;
        List<JsonLines.Line> lines = JsonLines.read(input);
        try (Tokenizer tok = Tokenizer.load(file)) {
            List<ObjectNode> out = new ArrayList<>();
            for (JsonLines.Line line : lines) {
                JsonNode text = line.value().get("text");
                if (text == null || !text.isTextual()) {
                    throw new FloraException((input == null ? "<stdin>" : input) + " line " + line.number() + ": \"text\" must be a string");
                }
                int[] ids = tok.encode(text.asText(), true);
                ObjectNode o = JsonLines.JSON.createObjectNode();
                o.put("text", text.asText());
                var a = o.putArray("ids");
                for (int id : ids) {
                    a.add(id);
                }
                var b = o.putArray("ids_no_special");
                for (int id : tok.encode(text.asText(), false)) {
                    b.add(id);
                }
                o.put("decoded", tok.decode(ids, false));
                out.add(o);
            }
            JsonLines.write(output, out, spec.commandLine().getOut());
        }
        return 0;
    }
}
