package dev.flora.server;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

class StopStringsTest {
    static String feed(StopStrings s, String... pieces) {
        StringBuilder out = new StringBuilder();
        for (String p : pieces) {
            out.append(s.add(p));
        }
        return out.append(s.finish()).toString();
    }

    @Test
    void aStopStringSpanningPiecesEndsTheText() {
        StopStrings s = new StopStrings(List.of("END"), false);
        assertThat(s.add("hello E")).isEqualTo("hello "); // "E" could start END: held back
        assertThat(s.add("N")).isEmpty();
        assertThat(s.add("D and more")).isEmpty();
        assertThat(s.stopped()).isTrue();
        assertThat(s.matched()).isEqualTo("END");
        assertThat(s.finish()).isEmpty();
    }

    @Test
    void heldTextIsReleasedWhenItCannotBecomeAStop() {
        StopStrings s = new StopStrings(List.of("END"), false);
        assertThat(s.add("E")).isEmpty();
        assertThat(s.add("X")).isEqualTo("EX");
        assertThat(feed(new StopStrings(List.of("END"), false), "a", "E", "N")).isEqualTo("aEN");
    }

    @Test
    void includeKeepsTheStopAndTheEarliestStopWins() {
        assertThat(feed(new StopStrings(List.of("END"), true), "x E", "ND y")).isEqualTo("x END");
        assertThat(feed(new StopStrings(List.of("world", "lo"), false), "hello world")).isEqualTo("hel");
        assertThat(feed(new StopStrings(List.of(), false), "anything", " at all")).isEqualTo("anything at all");
    }
}
