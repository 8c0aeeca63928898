package dev.flora.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/** JSON Lines in and out: one object per line; blank lines skipped; errors name the line. */
final class JsonLines {
    static final ObjectMapper JSON = new ObjectMapper();

    /** A parsed line and where it came from. */
    record Line(int number, JsonNode value) {
    }

    private JsonLines() {
    }

    /** Reads a file, or standard input for "-" or null. */
    static List<Line> read(Path file) {
        String name = file == null || file.toString().equals("-") ? "<stdin>" : file.toString();
        try (BufferedReader reader = name.equals("<stdin>")
                ? new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
                : Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            List<Line> lines = new ArrayList<>();
            String text;
            int number = 0;
            while ((text = reader.readLine()) != null) {
                number++;
                if (text.isBlank()) {
                    continue;
                }
                JsonNode node;
                try {
                    node = JSON.readTree(text);
                } catch (JsonProcessingException e) {
                    throw new FloraException(name + " line " + number + ": not valid JSON (" + e.getOriginalMessage() + ")");
                }
                if (node == null || !node.isObject()) {
                    throw new FloraException(name + " line " + number + ": expected a JSON object");
                }
                lines.add(new Line(number, node));
            }
            return lines;
        } catch (NoSuchFileException e) {
            throw new FloraException(name + ": no such file");
        } catch (java.nio.charset.MalformedInputException e) {
            throw new FloraException(name + ": not UTF-8 text");
        } catch (IOException e) {
            throw new FloraException(name + ": cannot read (" + e.getMessage() + ")");
        }
    }

    /**
     * Fields added to a command's points after files of them were kept, and what an older line that lacks
     * one reads as (every other missing field is refused): bench throughput's forwardShare (session 13)
     * 0, and its bmmPromptShare and bmmDecodeShare (session 14) NaN, not measured, as a 0 would say auto
     * gave bmm none.
     */
    private static final java.util.Map<String, Double> ADDED_LATER = java.util.Map.of("forwardShare", 0.0, "bmmPromptShare", Double.NaN,
            "bmmDecodeShare", Double.NaN);

    /**
     * A file of lines a command printed with --json, back as its records (fields a line has beside
     * them ignored); a line that is not one names the file, the line and what is wrong.
     */
    static <T> List<T> readAs(Path file, Class<T> type, String what) {
        com.fasterxml.jackson.databind.ObjectReader reader = JSON.readerFor(type)
                .without(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .with(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES);
        List<T> values = new ArrayList<>();
        for (Line line : read(file)) {
            try {
                JsonNode node = line.value(); // read() parsed it for this call alone: filling it in place is safe
                if (node instanceof com.fasterxml.jackson.databind.node.ObjectNode object) {
                    ADDED_LATER.forEach((field, missing) -> {
                        if (!object.has(field)) {
                            object.put(field, missing);
                        }
                    });
                }
                values.add(reader.readValue(node));
            } catch (IOException e) {
                String why = e instanceof JsonProcessingException j ? j.getOriginalMessage() : e.getMessage();
                throw new FloraException(file + " line " + line.number() + ": not a line of " + what + " --json (" + why + ")");
            }
        }
        if (values.isEmpty()) {
            throw new FloraException(file + ": no lines of " + what + " --json");
        }
        return values;
    }

    /** Writes lines to a file (atomically: all or nothing), or to {@code stdout} for "-" or null. */
    static void write(Path file, List<? extends JsonNode> values, Writer stdout) {
        try {
            if (file == null || file.toString().equals("-")) {
                Writer out = stdout;
                for (JsonNode v : values) {
                    out.write(JSON.writeValueAsString(v));
                    out.write('\n');
                }
                out.flush();
                return;
            }
            Path parent = file.toAbsolutePath().getParent();
            Path tmp = Files.createTempFile(parent, file.getFileName().toString(), ".tmp");
            try (Writer out = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8)) {
                for (JsonNode v : values) {
                    out.write(JSON.writeValueAsString(v));
                    out.write('\n');
                }
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (NoSuchFileException e) {
            throw new FloraException(file + ": cannot write (no such directory)");
        } catch (IOException e) {
            throw new FloraException(file + ": cannot write (" + e.getMessage() + ")");
        }
    }
}
