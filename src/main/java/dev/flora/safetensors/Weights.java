package dev.flora.safetensors;

import dev.flora.FloraException;

import java.util.Optional;
import java.util.Set;

/** Named tensors from one safetensors file or a sharded checkpoint. */
public interface Weights {
    Optional<TensorView> find(String name);

    Set<String> names();

    /** Where the tensors come from, for messages. */
    String describe();

    default boolean contains(String name) {
        return find(name).isPresent();
    }

    /** The tensor, or an error naming it and the checkpoint. */
    default TensorView get(String name) {
        return find(name).orElseThrow(() -> new FloraException(describe() + ": missing tensor '" + name + "'"));
    }

    /** The tensor, checked to have exactly this shape. */
    default TensorView get(String name, long... shape) {
        TensorView t = get(name);
        if (!java.util.Arrays.equals(t.shape(), shape)) {
            throw new FloraException(describe() + ": tensor '" + name + "' has shape " + t.shapeString()
                    + ", expected " + java.util.Arrays.toString(shape) + " from config.json");
        }
        if (!t.dtype().isFloating()) {
            throw new FloraException(describe() + ": tensor '" + name + "' is " + t.dtype() + ", expected a floating type");
        }
        return t;
    }
}
