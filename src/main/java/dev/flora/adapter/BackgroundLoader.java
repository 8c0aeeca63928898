package dev.flora.adapter;

import dev.flora.FloraException;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Reads adapters the host tier dropped from disk again, one at a time and in the order asked, on
 * its own thread: the engine's step never waits on a disk. A reload must find the content the
 * version was registered with (its hash); otherwise only the requests for it fail.
 */
final class BackgroundLoader {
    static final String THREAD_NAME = "flora-adapter-loader";

    private final AdapterReader reader;
    /** One daemon thread, started on demand and ended after a quiet while. */
    private final ThreadPoolExecutor executor = new ThreadPoolExecutor(1, 1, 10, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
            task -> Thread.ofPlatform().name(THREAD_NAME).daemon().unstarted(task));

    BackgroundLoader(AdapterReader reader) {
        this.reader = reader;
        executor.allowCoreThreadTimeOut(true);
    }

    void submit(AdapterVersion version, AdapterRegistry registry) {
        executor.execute(() -> load(version, registry));
    }

    private void load(AdapterVersion version, AdapterRegistry registry) {
        Adapter adapter = null;
        FloraException failure = null;
        try {
            if (registry.stillWanted(version)) { // else the request went away meanwhile: skip the read
                adapter = reader.read(version.name(), version.dir());
                if (!version.contentHash().equals(adapter.contentHash())) {
                    adapter = null;
                    failure = new FloraException("adapter '" + version.name() + "': its files in " + version.dir()
                            + " changed since it was loaded; load it again (load_inplace) to serve the new version");
                }
            }
        } catch (FloraException e) {
            failure = unreadable(version, e.getMessage());
        } catch (RuntimeException e) {
            failure = unreadable(version, e.toString());
        } finally {
            registry.loaded(version, adapter, failure);
        }
    }

    private static FloraException unreadable(AdapterVersion version, String why) {
        return new FloraException("adapter '" + version.name() + "' was dropped from host memory and cannot be read again: " + why);
    }
}
