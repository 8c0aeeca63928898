package dev.flora.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.flora.FloraException;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.EofException;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;

import java.io.IOException;
import java.util.List;

/**
 * Answers one generation request over HTTP, whatever the endpoint's format: waits for the choices
 * (or streams them), watches the client meanwhile, and cancels the sequences, freeing their KV
 * blocks, the moment the client disconnects.
 */
final class Exchange {
    /** The endpoint's complete response from its finished choices. */
    interface Plain {
        JsonNode respond(List<Generation.Choice> choices);
    }

    /** The endpoint's event stream; returns the status to count (200, or 500 after an error event). */
    interface Streamed {
        int stream(SseStream out, Generation generation) throws IOException, InterruptedException;
    }

    private Exchange() {
    }

    static void answer(Generation generation, GenerationOptions options, RequestMetrics metrics, Request http, Response response, Callback callback,
                       Plain plain, Streamed streamed) {
        ClientDisconnect watch = ClientDisconnect.watch(http, generation::clientGone);
        try {
            if (!options.stream()) {
                JsonNode body = plain.respond(generation.awaitChoices(options.n()));
                watch.stop();
                if (watch.mustClose()) {
                    response.getHeaders().put(HttpHeader.CONNECTION, "close");
                }
                metrics.finish(200);
                Json.send(response, callback, 200, body);
                return;
            }
            SseStream out = new SseStream(response);
            int status = streamed.stream(out, generation);
            out.done();
            watch.stop();
            metrics.finish(status);
            callback.succeeded();
            out.close();
        } catch (Generation.ClientGone e) {
            watch.stop();
            metrics.finish(499);
            callback.failed(new EofException("the client disconnected"));
        } catch (IOException e) {
            // A write failed: the client went away. Free its blocks now.
            watch.stop();
            generation.cancel();
            metrics.finish(499);
            callback.failed(e);
        } catch (InterruptedException e) {
            watch.stop();
            generation.cancel();
            Thread.currentThread().interrupt();
            callback.failed(e);
        } catch (RuntimeException e) {
            // The engine refused or failed this request (never sent while streaming: errors are events there).
            watch.stop();
            generation.cancel();
            ApiError error = e instanceof ApiError a ? a : e instanceof FloraException
                    ? ApiError.badRequest(null, e.getMessage()) : new ApiError(500, "internal_error", null, "internal error: " + e);
            metrics.finish(error.status);
            Json.send(response, callback, error.status, Json.object().set("error", Json.error(error)));
        }
    }
}
