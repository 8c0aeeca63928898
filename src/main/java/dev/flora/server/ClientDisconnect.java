package dev.flora.server;

import org.eclipse.jetty.io.AbstractEndPoint;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CancellationException;
import java.util.concurrent.TimeoutException;

/**
 * Notices a client that closes its connection while its request is still running. Jetty reads
 * nothing from an HTTP/1.1 connection while a handler runs, so a closed connection would go unseen
 * until the response is written: this watch asks the connection's endpoint to report readability
 * meanwhile, and the end of the stream (or a reset) means the client is gone. A client may send
 * nothing more before the response to a POST (RFC 9112: no pipelining of non-idempotent requests);
 * if one does anyway, the byte read is lost, so the connection is closed after this response.
 * {@link #stop()} must run before the response completes, so that Jetty can read the next request.
 */
final class ClientDisconnect implements Callback {
    private final EndPoint endPoint;
    private final Runnable onGone;
    private boolean registered;
    private boolean stopped;
    private volatile boolean mustClose;

    private ClientDisconnect(EndPoint endPoint, Runnable onGone) {
        this.endPoint = endPoint;
        this.onGone = onGone;
    }

    /** Starts watching the connection of a request whose body has been read; {@code onGone} runs once if the client goes. */
    static ClientDisconnect watch(Request request, Runnable onGone) {
        ClientDisconnect watch = new ClientDisconnect(request.getConnectionMetaData().getConnection().getEndPoint(), onGone);
        watch.register();
        return watch;
    }

    private synchronized void register() {
        if (!stopped && !registered && endPoint instanceof AbstractEndPoint) {
            registered = endPoint.tryFillInterested(this);
        }
    }

    /** The connection is readable: the client closed it, reset it, or (wrongly) sent more. */
    @Override
    public void succeeded() {
        synchronized (this) {
            registered = false;
            if (stopped) {
                return;
            }
            ByteBuffer one = BufferUtil.allocate(1);
            try {
                int n = endPoint.fill(one);
                if (n == 0) {
                    register();
                    return;
                }
                if (n > 0) {
                    mustClose = true;
                    return;
                }
            } catch (IOException e) {
                // a reset connection: the client is gone
            }
        }
        onGone.run();
    }

    @Override
    public void failed(Throwable cause) {
        synchronized (this) {
            registered = false;
            if (stopped) {
                return;
            }
            if (cause instanceof TimeoutException) {
                register(); // an idle connection is not a closed one: a long generation writes nothing for a while
                return;
            }
        }
        onGone.run();
    }

    /** Stops watching; after this the connection belongs to Jetty again. */
    synchronized void stop() {
        stopped = true;
        if (registered && endPoint instanceof AbstractEndPoint ep) {
            registered = false;
            ep.getFillInterest().onFail(new CancellationException("request done"));
        }
    }

    /** The client sent bytes it should not have: close the connection after the response. */
    boolean mustClose() {
        return mustClose;
    }
}
