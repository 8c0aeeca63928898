package dev.flora.cuda;

import dev.flora.backend.DType;
import dev.flora.backend.Tensor;

/**
 * A {@link LoraStack}'s passes on the GPU: the stacked factors (lora_stack_rows, lora_stack_columns),
 * the two dense cuBLAS products and the mask between them (lora_stack_mask). x and v are rounded to
 * the factors' types as a run's own products round them (CudaLoraRuns.apply), except that v is scaled
 * before its rounding (LoraStack says why).
 */
final class CudaLoraStack {
    private CudaLoraStack() {
    }

    static void apply(CudaBackend gpu, CudaTensor x, LoraStack stack, Tensor[] a, Tensor[] b, Tensor[] outs) {
        int in = x.cols();
        Cublas cublas = gpu.cublas();
        for (LoraStack.Pass p : stack.passes()) {
            int columns = p.columns();
            int rows = p.rows();
            DType aType = p.aType();
            DType bType = p.bType();
            long[] aRow = new long[columns]; // column k's row of its group's A
            for (int k = 0; k < columns; k++) {
                int g = p.columnGroup()[k];
                aRow[k] = CudaTensor.of(a[g]).pointer + (long) (k - p.groupColumn()[g]) * in * aType.bytes();
            }
            long[] d = gpu.packed(x, aRow, p.rowOf(), p.columnClass(), p.columnGroup(), p.columnScale(), p.classRuns(), p.runFirst(), p.runEnd(),
                    p.runGroup());
            CudaTensor aStacked = gpu.allocateTyped(aType, columns, in);
            gpu.launchRows("lora_stack_rows", columns, d[0], aStacked.pointer, in);
            CudaTensor input = gpu.rounded(x, aType);
            CudaTensor v = gpu.allocateTyped(DType.F32, rows, columns);
            long start = gpu.profiling ? gpu.begin() : 0;
            for (int s = 0, at = 0; s < p.segmentFrom().length; s++) { // v = x[segment] A_s^T, segment after segment
                int from = p.segmentFrom()[s];
                int n = p.segmentTo()[s] - from;
                cublas.linearStrided(input.pointer + (long) from * in * aType.bytes(), in, aStacked.pointer, v.pointer + (long) at * columns * Float.BYTES,
                        columns, n, in, columns, CudaBackend.cublasType(aType), 1f, false);
                at += n;
            }
            if (gpu.profiling) {
                gpu.end("cublas lora stack shrink", start);
            }
            CudaTensor kept = gpu.allocateTyped(bType, rows, columns);
            gpu.launchRows("lora_stack_mask", rows, v.pointer, kept.pointer, columns, d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8],
                    p.classes().length, bType == DType.BF16 ? 1 : 0);
            for (LoraStack.OutputClass c : p.classes()) {
                int width = c.to() - c.from();
                CudaTensor o = CudaTensor.of(outs[c.group()]);
                long[] bColumn = new long[width]; // column k of the class's B_c: column (k - its group's first) of its group's B
                int[] stride = new int[width];
                for (int k = c.from(); k < c.to(); k++) {
                    int g = p.columnGroup()[k];
                    bColumn[k - c.from()] = CudaTensor.of(b[g]).pointer + (long) (k - p.groupColumn()[g]) * bType.bytes();
                    stride[k - c.from()] = a[g].rows();
                }
                long[] e = gpu.packed(x, bColumn, stride);
                CudaTensor bStacked = gpu.allocateTyped(bType, o.cols(), width);
                gpu.launchRows("lora_stack_columns", o.cols(), e[0], e[1], bStacked.pointer, o.cols(), width);
                start = gpu.profiling ? gpu.begin() : 0;
                for (int s = 0, at = 0; s < p.segmentFrom().length; s++) { // out[segment] += (scale · v)[:, class] B_c^T
                    int from = p.segmentFrom()[s];
                    int n = p.segmentTo()[s] - from;
                    cublas.linearStrided(kept.pointer + ((long) at * columns + c.from()) * bType.bytes(), columns, bStacked.pointer,
                            o.pointer + (long) from * o.cols() * Float.BYTES, o.cols(), n, width, o.cols(), CudaBackend.cublasType(bType), 1f, true);
                    at += n;
                }
                if (gpu.profiling) {
                    gpu.end("cublas lora stack expand", start);
                }
            }
        }
    }
}
