package dev.flora.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;

import static dev.flora.cuda.Native.INT;
import static dev.flora.cuda.Native.PTR;
import static dev.flora.cuda.Native.SIZE_T;

/** NVRTC through FFM: compiles CUDA C source to a cubin for one architecture at run time. */
final class Nvrtc {
    private final MethodHandle nvrtcVersion, nvrtcCreateProgram, nvrtcCompileProgram, nvrtcDestroyProgram;
    private final MethodHandle nvrtcGetProgramLogSize, nvrtcGetProgramLog, nvrtcGetCUBINSize, nvrtcGetCUBIN, nvrtcGetErrorString;

    Nvrtc() {
        Native n = new Native(CudaLibraries.nvrtc(), "libnvrtc");
        nvrtcVersion = n.status("nvrtcVersion", PTR, PTR);
        nvrtcCreateProgram = n.status("nvrtcCreateProgram", PTR, PTR, PTR, INT, PTR, PTR);
        nvrtcCompileProgram = n.status("nvrtcCompileProgram", PTR, INT, PTR);
        nvrtcDestroyProgram = n.status("nvrtcDestroyProgram", PTR);
        nvrtcGetProgramLogSize = n.status("nvrtcGetProgramLogSize", PTR, PTR);
        nvrtcGetProgramLog = n.status("nvrtcGetProgramLog", PTR, PTR);
        nvrtcGetCUBINSize = n.status("nvrtcGetCUBINSize", PTR, PTR);
        nvrtcGetCUBIN = n.status("nvrtcGetCUBIN", PTR, PTR);
        nvrtcGetErrorString = n.function("nvrtcGetErrorString", java.lang.foreign.FunctionDescriptor.of(PTR, INT));
    }

    String version() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment major = arena.allocate(INT);
            MemorySegment minor = arena.allocate(INT);
            check("nvrtcVersion", Native.call(nvrtcVersion, major, minor));
            return major.get(INT, 0) + "." + minor.get(INT, 0);
        }
    }

    /** The cubin of {@code source} compiled with {@code options}; the compiler's log on failure. */
    byte[] compile(String source, String name, List<String> options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment prog = arena.allocate(PTR);
            check("nvrtcCreateProgram", Native.call(nvrtcCreateProgram, prog, arena.allocateFrom(source), arena.allocateFrom(name), 0,
                    MemorySegment.NULL, MemorySegment.NULL));
            MemorySegment program = prog.get(PTR, 0);
            try {
                MemorySegment opts = arena.allocate(PTR, options.size());
                for (int i = 0; i < options.size(); i++) {
                    opts.setAtIndex(PTR, i, arena.allocateFrom(options.get(i)));
                }
                int status = (Integer) Native.call(nvrtcCompileProgram, program, options.size(), opts);
                if (status != 0) {
                    throw new CudaException("NVRTC could not compile " + name + " (" + errorText(status) + "):\n" + log(arena, program));
                }
                MemorySegment size = arena.allocate(SIZE_T);
                check("nvrtcGetCUBINSize", Native.call(nvrtcGetCUBINSize, program, size));
                MemorySegment cubin = arena.allocate(size.get(SIZE_T, 0));
                check("nvrtcGetCUBIN", Native.call(nvrtcGetCUBIN, program, cubin));
                return cubin.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            } finally {
                Native.call(nvrtcDestroyProgram, prog);
            }
        }
    }

    private String log(Arena arena, MemorySegment program) {
        MemorySegment size = arena.allocate(SIZE_T);
        Native.call(nvrtcGetProgramLogSize, program, size);
        MemorySegment log = arena.allocate(Math.max(1, size.get(SIZE_T, 0)));
        Native.call(nvrtcGetProgramLog, program, log);
        return log.getString(0);
    }

    private void check(String what, Object status) {
        int code = (Integer) status;
        if (code != 0) {
            throw new CudaException(what + " failed: " + errorText(code));
        }
    }

    private String errorText(int code) {
        MemorySegment s = (MemorySegment) Native.call(nvrtcGetErrorString, code);
        return s.reinterpret(256).getString(0) + " (" + code + ")";
    }
}
