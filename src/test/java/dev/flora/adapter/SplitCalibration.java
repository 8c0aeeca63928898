package dev.flora.adapter;

import java.util.ArrayList;
import java.util.List;

/** Test calibrations that send a mixed step's LoRA prompt tokens and decode tokens different ways. */
public final class SplitCalibration {
    private SplitCalibration() {
    }

    /**
     * A calibration of a [out, in] layer on which LoRA-bmm is the cheap one for prompts and gathered
     * for decodes, or the other way (then gathered's time grows steeply with its tokens, so that one
     * call for all costs more than the two parts apart).
     */
    public static CostModel model(int in, int out, boolean bmmPrompts) {
        List<Calibration.Measurement> ms = new ArrayList<>();
        for (int t : new int[] {1, 16, 512}) {
            for (int rank : new int[] {1, 8}) {
                ms.add(new Calibration.Measurement("gathered", in, out, t, rank, bmmPrompts ? 1000 : Math.pow(t, 2.5)));
                ms.add(new Calibration.Measurement("bmm", in, out, t, rank, bmmPrompts ? 1 : 1e9));
                ms.add(new Calibration.Measurement("gathered-decode", in, out, t, rank, bmmPrompts ? 1 : 1000));
                ms.add(new Calibration.Measurement("bmm-decode", in, out, t, rank, bmmPrompts ? 1000 : 1));
            }
        }
        return new CostModel(new Calibration("test", "split", in, 16, 0, 0, ms));
    }
}
