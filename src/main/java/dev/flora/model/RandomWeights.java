package dev.flora.model;

import dev.flora.FloraException;
import dev.flora.backend.DType;
import dev.flora.safetensors.TensorView;
import dev.flora.safetensors.Weights;

import java.util.Optional;
import java.util.Set;

/**
 * Weights for a directory that has only config.json ({@code --random-weights}): every tensor the
 * model asks for, of the shape config.json implies, seeded by its name and made by the backend
 * where it lives (on the GPU for the CUDA backend). For speed measurements of large shapes.
 */
public record RandomWeights(DType dtype) implements Weights {
    public RandomWeights {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new FloraException("random weights are float32, bfloat16 or float16, not " + dtype);
        }
    }

    /** The type config.json names ("dtype" or "torch_dtype"), bfloat16 when it names none. */
    public static RandomWeights forConfig(ConfigReader config) {
        String name = config.stringOr("dtype", config.stringOr("torch_dtype", "bfloat16"));
        return new RandomWeights(switch (name) {
            case "float32" -> DType.F32;
            case "float16" -> DType.F16;
            case "bfloat16" -> DType.BF16;
            default -> throw config.error("dtype '" + name + "' cannot be made at random (float32, float16 or bfloat16)");
        });
    }

    @Override
    public Optional<TensorView> find(String name) {
        return Optional.empty();
    }

    @Override
    public TensorView get(String name, long... shape) {
        return TensorView.random(name, dtype, shape);
    }

    @Override
    public Set<String> names() {
        return Set.of();
    }

    @Override
    public String describe() {
        return "random " + dtype + " weights";
    }
}
