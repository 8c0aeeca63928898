package dev.flora;

import dev.flora.cli.Main;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class FlagsTest {
    @Test
    void theKnownFlagsAreTheOnesTheSourcesRead() throws IOException {
        Pattern read = Pattern.compile("\"(flora\\.[A-Za-z.]+)\"");
        Set<String> found = new TreeSet<>();
        try (Stream<Path> files = Files.walk(Path.of("src/main/java"))) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java") && !p.endsWith("Flags.java")).toList()) {
                Matcher m = read.matcher(Files.readString(f));
                while (m.find()) {
                    found.add(m.group(1));
                }
            }
        }
        assertThat(found).as("every flora.* name a source reads, against Flags.KNOWN").containsExactlyInAnyOrderElementsOf(Flags.KNOWN);
    }

    @Test
    void aRetiredOrMisspeltFlagIsRefusedByName() {
        Properties p = new Properties();
        p.setProperty("java.version", "25");
        p.setProperty("flora.cuda.attention", "v2");
        assertThatCode(() -> Flags.checkKnown(p)).doesNotThrowAnyException();
        p.setProperty("flora.cuda.attentionHeads", "2");
        assertThatThrownBy(() -> Flags.checkKnown(p)).isInstanceOf(FloraException.class)
                .hasMessageStartingWith("-Dflora.cuda.attentionHeads is not a Flora flag")
                .hasMessageContaining("-Dflora.cuda.attention,");
    }

    @Test
    void theCliRefusesItBeforeRunningAnything() {
        System.setProperty("flora.cuda.loraBatchedLoads", "true");
        try {
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            int code = Main.execute(new String[] {"--version"}, new PrintWriter(out, true), new PrintWriter(err, true));
            assertThat(code).isEqualTo(2);
            assertThat(out.toString()).isEmpty();
            assertThat(err.toString()).startsWith("error: -Dflora.cuda.loraBatchedLoads is not a Flora flag");
        } finally {
            System.clearProperty("flora.cuda.loraBatchedLoads");
        }
    }
}
