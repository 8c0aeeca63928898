package dev.flora.cuda;

import dev.flora.FloraException;

/** A CUDA call that failed, with the library's own name and text for the status. */
public final class CudaException extends FloraException {
    public CudaException(String message) {
        super(message);
    }
}
