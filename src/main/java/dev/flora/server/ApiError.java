package dev.flora.server;

/** An error answered as OpenAI does: an HTTP status and {"error": {"message", "type", "param", "code"}}. */
final class ApiError extends RuntimeException {
    final int status;
    final String type;
    final String param;

    ApiError(int status, String type, String param, String message) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
    }

    static ApiError badRequest(String param, String message) {
        return new ApiError(400, "invalid_request_error", param, message);
    }

    static ApiError notFound(String param, String message) {
        return new ApiError(404, "NotFoundError", param, message);
    }
}
