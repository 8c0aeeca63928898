package dev.flora.cli;

import dev.flora.FloraException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** The {@code flora} command line. */
@Command(name = "flora",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "Serve one foundation model to many users, each request with its own low-rank adapter.",
        subcommands = {
                DemoCommand.class,
                ScoreCommand.class,
                ServeCommand.class,
                LoadgenCommand.class,
                GenerateCommand.class,
                TokenizeCommand.class,
                AdaptersCommand.class,
                BenchCommand.class,
                CalibrateCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static void main(String[] args) {
        System.exit(execute(args, new PrintWriter(new java.io.OutputStreamWriter(System.out, java.nio.charset.StandardCharsets.UTF_8), true),
                new PrintWriter(new java.io.OutputStreamWriter(System.err, java.nio.charset.StandardCharsets.UTF_8), true)));
    }

    /** Runs the CLI with the given streams; returns the exit code (0 ok, 1 error, 2 usage). */
    public static int execute(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cli = new CommandLine(new Main());
        cli.setOut(out);
        cli.setErr(err);
        cli.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            commandLine.getErr().println("error: " + describe(e));
            if (System.getenv("FLORA_DEBUG") != null) {
                e.printStackTrace(commandLine.getErr());
            }
            return 1;
        });
        cli.setParameterExceptionHandler((e, a) -> {
            CommandLine c = e.getCommandLine();
            c.getErr().println("error: " + e.getMessage());
            c.getErr().println("Try '" + c.getCommandSpec().qualifiedName() + " --help' for more information.");
            return 2;
        });
        try {
            dev.flora.Flags.checkKnown(System.getProperties());
        } catch (FloraException e) {
            err.println("error: " + e.getMessage());
            err.flush();
            return 2;
        }
        int code = outOfMemoryAsError(() -> cli.execute(args), err);
        out.flush();
        err.flush();
        return code;
    }

    /**
     * Runs the CLI, an OutOfMemoryError as one "error:" line and exit code 1: picocli hands Errors on
     * rather than to the execution handler, so they would end the JVM with a stack trace.
     */
    static int outOfMemoryAsError(java.util.function.IntSupplier cli, PrintWriter err) {
        try {
            return cli.getAsInt();
        } catch (OutOfMemoryError e) {
            err.println("error: " + describe(e));
            return 1;
        }
    }

    /** One line for the user: the message of a FloraException, or what went wrong inside. */
    static String describe(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof FloraException) {
                return t.getMessage();
            }
        }
        if (e instanceof OutOfMemoryError) {
            return "out of Java heap memory; give Java more (JAVA_OPTS=-Xmx...), or ask for less (--kv-cache-memory, smaller batches, fewer adapters)";
        }
        String message = e.getMessage() == null ? "" : ": " + e.getMessage().lines().findFirst().orElse("");
        return "internal error (" + e.getClass().getSimpleName() + message + "); set FLORA_DEBUG=1 for the stack trace";
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"flora " + (v == null ? "(development build)" : v)};
        }
    }
}
