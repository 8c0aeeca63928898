package dev.flora.cuda;

import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

/**
 * Everywhere (CI has no GPU): the CUDA kernels (those built since the GPU last checked any, and the
 * default decode step's, LoRA's and fLoRA's) run on the CPU through tools/kernels-emulate.sh (every
 * CUDA thread a host thread, under AddressSanitizer) against float64 and against the forms the H200
 * has checked; a check a test. The GPU tests (CudaKernelsTest)
 * remain the word on the kernels as NVRTC compiles them; this catches a wrong index, bound or
 * barrier in kernels.cu before any GPU time goes to it. Needs g++ 12 or newer (C++20).
 */
class KernelsOnCpuTest {
    private static final Pattern CHECK = Pattern.compile("^(ok  |FAIL)  (.*?)\\s+err (\\S+) \\(tol (\\S+)\\)$");
    private static final Pattern SUMMARY = Pattern.compile("^(\\d+) of (\\d+) checks failed$");

    @TestFactory
    List<DynamicTest> newKernelsMatchTheirReferencesOnTheCpu() throws IOException, InterruptedException {
        return emulated("", List.of());
    }

    /**
     * The tunables that are not the default (the decode attention's float64 lane sums, the default until
     * session 23, and its chunks of 128 positions without launch bounds, the default until session 24; float32 LoRA factors read 4 bytes a lane,
     * the default until session 25; rms_norm without its weight prefetch, the default until session 26), compiled in as
     * -Dflora.cuda.defines would, over the parts they touch.
     */
    @TestFactory
    List<DynamicTest> otherTunablesMatchTheirReferencesOnTheCpu() throws IOException, InterruptedException {
        return emulated("ATTN_LANE_SUMS=64 LORA_WIDE_LOADS=0 ATTN_CHUNK=128 ATTN_MIN_BLOCKS=1 RMS_PREFETCH=0", List.of("attention,lora,step"));
    }

    /** tools/kernels-emulate.sh with these DEFINES (blank: none) and arguments, a check a test. */
    private static List<DynamicTest> emulated(String defines, List<String> arguments) throws IOException, InterruptedException {
        Path script = Path.of("tools/kernels-emulate.sh");
        assertThat(script).as("run from the project's root").exists();
        Path log = Files.createTempFile("kernels-emulate", ".txt");
        String prefix = defines.isBlank() ? "" : "[" + defines + "] ";
        try {
            List<String> command = new ArrayList<>(List.of("bash", script.toString()));
            command.addAll(arguments);
            ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
            builder.environment().put("DEFINES", defines);
            Process run = builder.start();
            if (!run.waitFor(10, TimeUnit.MINUTES)) {
                run.destroyForcibly();
                fail("tools/kernels-emulate.sh ran past 10 minutes:\n" + Files.readString(log, StandardCharsets.UTF_8));
            }
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            String output = String.join("\n", lines);
            List<DynamicTest> checks = new ArrayList<>();
            int failed = -1;
            int total = -1;
            for (String line : lines) {
                Matcher c = CHECK.matcher(line);
                if (c.matches()) {
                    boolean ok = c.group(1).startsWith("ok");
                    String name = prefix + c.group(2);
                    String detail = "error " + c.group(3) + ", tolerance " + c.group(4);
                    checks.add(DynamicTest.dynamicTest(name, () -> assertThat(ok).as(name + ": " + detail).isTrue()));
                }
                Matcher s = SUMMARY.matcher(line);
                if (s.matches()) {
                    failed = Integer.parseInt(s.group(1));
                    total = Integer.parseInt(s.group(2));
                }
            }
            int exit = run.exitValue();
            int summaryFailed = failed;
            int summaryTotal = total;
            int seen = checks.size();
            // The run as a whole: it compiled, ended normally (no sanitizer report, no block stuck) and
            // printed every check it counted.
            checks.add(0, DynamicTest.dynamicTest(prefix + "the emulated run ends cleanly", () -> {
                assertThat(exit).as("tools/kernels-emulate.sh's exit status (output:\n%s\n)", output).isIn(0, 1);
                assertThat(summaryTotal).as("its summary line (output:\n%s\n)", output).isPositive();
                assertThat(seen).as("checks printed against checks counted").isEqualTo(summaryTotal);
                assertThat(summaryFailed == 0).isEqualTo(exit == 0);
            }));
            return checks;
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
