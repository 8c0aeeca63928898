package dev.flora.cli;

import dev.flora.FloraException;
import dev.flora.bench.BaseReport;
import dev.flora.bench.BenchLines;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** {@code flora bench report}: markdown tables and PNG plots from the base benchmark's JSON lines. */
@Command(name = "report", mixinStandardHelpOptions = true,
        description = {"Tables and plots of the base benchmark (tools/gpu/bench-base.sh): Flora's 'bench decode --json' lines "
                + "against the transformers peer's (tools/peer/transformers_bench.py), per workload (batch, prompt tokens), "
                + "with every run, their medians and the goals.",
                "Writes DIR/base-SHAPE.md and DIR/base-SHAPE.png for each model shape in the input. A line of another kind, "
                        + "or one missing a field, is an error naming its file and line (exit code 2)."})
final class BenchReportCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--in", required = true, arity = "1..*", paramLabel = "FILE", description = "JSON-lines files, Flora's and the peer's.")
    List<Path> in;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory for the reports (made if needed).")
    Path out;

    @Override
    public Integer call() {
        try {
            report();
            return 0;
        } catch (FloraException e) {
            spec.commandLine().getErr().println("error: " + e.getMessage());
            return 2;
        }
    }

    private void report() {
        BenchLines lines = new BenchLines();
        for (Path file : in) {
            for (JsonLines.Line line : JsonLines.read(file)) {
                lines.add(file + " line " + line.number(), line.value());
            }
        }
        if (lines.shapes().isEmpty()) {
            throw new FloraException(in.stream().map(Path::toString).collect(Collectors.joining(", ")) + ": no benchmark lines");
        }
        try {
            Files.createDirectories(out);
            for (String shape : lines.shapes()) {
                BaseReport report = new BaseReport(shape, lines.flora(), lines.peer());
                Path md = out.resolve("base-" + shape + ".md");
                Path png = out.resolve("base-" + shape + ".png");
                Files.writeString(md, report.markdown(command(), png.getFileName().toString()), StandardCharsets.UTF_8);
                try {
                    report.plot(png);
                } catch (RuntimeException | Error e) {
                    // Java's text drawing needs fontconfig and a font; a bare GPU machine's runtime has neither.
                    throw new FloraException("wrote " + md + ", but cannot draw " + png + ": this Java runtime finds no fonts ("
                            + e.getMessage() + "); run the same command where fonts are installed (fontconfig and, say, DejaVu)");
                }
                spec.commandLine().getOut().println("wrote " + md + " and " + png);
            }
        } catch (IOException e) {
            throw new FloraException(out + ": cannot write (" + e.getMessage() + ")");
        }
    }

    /** This command line, as a user would type it. */
    private String command() {
        return Stream.concat(Stream.of("flora", "bench", "report", "--in"),
                        Stream.concat(in.stream().map(Path::toString), Stream.of("--out", out.toString())))
                .map(BenchReportCommand::quoted).collect(Collectors.joining(" "));
    }

    private static String quoted(String arg) {
        return arg.matches("[A-Za-z0-9_./:=+,@%-]+") ? arg : "'" + arg.replace("'", "'\\''") + "'";
    }
}
