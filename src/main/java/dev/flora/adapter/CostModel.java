package dev.flora.adapter;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.flora.FloraException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What adapted layers cost on this machine, measured by {@code flora calibrate}: the fLoRA
 * paper's eq. 7 constants (bmm LoRA c2·b·l·d² + 2·c1·b·l·d·r, fLoRA c2·r·b·l·d²) and the measured
 * time of every strategy over token counts and ranks, from which the engine picks, per adapted
 * layer and step, the cheapest strategy for each adapter kind.
 *
 * @param c2 microseconds per token·d² of a large product with W0
 * @param c1 microseconds per token·d·r of the batched small products
 */
public record CostModel(String machine, String kernels, int dim, double c1, double c2, List<Measurement> measurements) {

    /** One measured point: microseconds per call of a d × d layer with T tokens over S adapters of rank r. */
    public record Measurement(String strategy, int tokens, int rank, double micros) {
    }

    public static Path defaultFile() {
        String env = System.getenv("FLORA_CACHE");
        Path base = env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "flora");
        return base.resolve("calibration.json");
    }

    /** The stored calibration, or null when there is none. */
    public static CostModel loadIfPresent(Path file) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            return new ObjectMapper().readValue(file.toFile(), CostModel.class);
        } catch (IOException e) {
            throw new FloraException(file + ": not a Flora calibration (" + e.getMessage().lines().findFirst().orElse("") + "); run flora calibrate again");
        }
    }

    public void save(Path file) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(file.toFile(), this);
    }

    /** eq. 7, predicted microseconds of one layer for bmm LoRA. */
    public double predictBmm(int tokens, int rank) {
        return c2 * tokens * (double) dim * dim + 2 * c1 * tokens * (double) dim * rank;
    }

    /** eq. 7, predicted microseconds of one layer for fLoRA. */
    public double predictFlora(int tokens, int rank) {
        return c2 * rank * tokens * (double) dim * dim;
    }

    /**
     * The cheapest measured strategy for this kind near (tokens, rank): the measured point closest
     * in log tokens and log rank, then its fastest strategy among those that compute this kind.
     */
    public AdapterStrategy choose(AdapterKind kind, int tokens, int rank) {
        List<String> candidates = kind == AdapterKind.FLORA ? List.of("flora", "exact-flora") : List.of("gathered", "bmm", "exact-lora");
        double bestDistance = Double.MAX_VALUE;
        int nearTokens = tokens;
        int nearRank = rank;
        for (Measurement m : measurements) {
            double distance = Math.abs(Math.log((double) m.tokens() / tokens)) + Math.abs(Math.log((double) m.rank() / rank));
            if (distance < bestDistance) {
                bestDistance = distance;
                nearTokens = m.tokens();
                nearRank = m.rank();
            }
        }
        String best = null;
        double bestTime = Double.MAX_VALUE;
        for (Measurement m : measurements) {
            if (m.tokens() == nearTokens && m.rank() == nearRank && candidates.contains(m.strategy()) && m.micros() < bestTime) {
                bestTime = m.micros();
                best = m.strategy();
            }
        }
        if (best == null) {
            return kind == AdapterKind.FLORA ? AdapterStrategy.FLORA : AdapterStrategy.GATHERED;
        }
        return switch (best) {
            case "flora" -> AdapterStrategy.FLORA;
            case "exact-flora", "exact-lora" -> AdapterStrategy.EXACT;
            case "bmm" -> AdapterStrategy.BMM;
            default -> AdapterStrategy.GATHERED;
        };
    }
}
