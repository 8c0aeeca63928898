package dev.flora.engine;

import dev.flora.Fixtures;
import dev.flora.cpu.CpuBackend;
import dev.flora.model.PretrainedModel;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A result must not depend on how warm the JVM is: the first request of a fresh JVM runs partly in
 * the interpreter, later ones in compiled code, where some library math (Math.exp, the Vector API's
 * reduceLanes) may round differently. Checked in a child JVM that starts cold.
 */
class WarmupInvarianceTest {
    /** Runs the same request repeatedly; exits 1 at the first run that differs from the first. */
    public static void main(String[] args) {
        try (PretrainedModel model = PretrainedModel.load(Path.of(args[0]), new CpuBackend())) {
            int[] prompt = Fixtures.llamaTinyExpected().getFirst().tokens();
            double[] first = null;
            int[] firstTokens = null;
            for (int run = 0; run < 25; run++) {
                Result r = new Engine(model.model(), EngineConfig.DEFAULT, model.eosTokenIds())
                        .run(List.of(new Request("warm", prompt, SamplingParams.greedy(4, true), true)), new Engine.Listener() { })
                        .getFirst();
                if (first == null) {
                    first = r.promptLogprobs();
                    firstTokens = r.generated();
                } else if (!Arrays.equals(first, r.promptLogprobs()) || !Arrays.equals(firstTokens, r.generated())) {
                    System.out.println("run " + run + " differs from the first");
                    System.exit(1);
                }
            }
        }
        System.out.println("identical");
        System.exit(0);
    }

    @Test
    void theFirstRunOfAColdJvmEqualsLaterRuns() throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), WarmupInvarianceTest.class.getName(), Fixtures.llamaTinyModel().toString()));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor()).as(out).isZero();
        assertThat(out).contains("identical");
    }
}
