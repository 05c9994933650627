"""The neurokit2 yardstick for `cargo xtask bench pipeline`: how fast an established Python library
analyses the same ECG file, in the same run and on the same machine as the worker pipeline.

Times, on the signal already in memory (reading the CSV is not timed):
  peaks-only:  nk.ecg_peaks(nk.ecg_clean(x, fs), fs) + nk.hrv_time(peaks, fs)   (as in REFERENCE.md)
  ecg_process: nk.ecg_process(x, fs) + nk.hrv_time(peaks, fs)
Median (and least) of --runs runs after one warm-up, wall time (time.perf_counter) and this thread's CPU time
(time.thread_time). Prints one JSON line.

    python neurokit2_bench.py ../../shared/data/real/bsnb_ecg_5min.csv [--runs 5]
"""

import argparse
import json
import statistics
import sys
import time
import warnings

import neurokit2 as nk
import numpy as np
import pandas as pd


def timed(function, runs):
    function()  # warm-up: imports, caches, first-call costs
    wall, cpu = [], []
    result = None
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.thread_time()
        result = function()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(wall), min(wall), statistics.median(cpu), result


def peaks_only(x, fs):
    cleaned = nk.ecg_clean(x, sampling_rate=fs)
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs)
    hrv = nk.hrv_time(info["ECG_R_Peaks"], sampling_rate=fs)
    return len(info["ECG_R_Peaks"]), float(hrv["HRV_SDNN"].iloc[0])


def ecg_process(x, fs):
    _, info = nk.ecg_process(x, sampling_rate=fs)
    hrv = nk.hrv_time(info["ECG_R_Peaks"], sampling_rate=fs)
    return len(info["ECG_R_Peaks"]), float(hrv["HRV_SDNN"].iloc[0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("csv")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    frame = pd.read_csv(args.csv)
    x = frame["ecg_mV"].to_numpy(dtype=np.float64)
    t = frame["time_s"].to_numpy(dtype=np.float64)
    fs = int(round((len(t) - 1) / (t[-1] - t[0])))
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, function in [("peaks_only", peaks_only), ("ecg_process", ecg_process)]:
            wall, best, cpu, (beats, sdnn) = timed(lambda f=function: f(x, fs), max(1, args.runs))
            figures[name] = {
                "median_ms": wall * 1e3,
                "min_ms": best * 1e3,
                "cpu_median_ms": cpu * 1e3,
                "samples_per_s": len(x) / wall,
                "cpu_samples_per_s": len(x) / cpu if cpu > 0 else None,
                "beats": beats,
                "sdnn_ms": sdnn,
            }
            print(f"neurokit2 {name:<12} {wall * 1e3:8.1f} ms (cpu {cpu * 1e3:7.1f} ms) "
                  f"{len(x) / wall / 1e6:6.2f} M samples/s, {beats} beats", file=sys.stderr)
    print(json.dumps({
        "bench": "pipeline", "target": "neurokit2", "neurokit2": nk.__version__, "numpy": np.__version__,
        "samples": len(x), "fs": fs, "runs": args.runs, "figures": figures,
    }))


if __name__ == "__main__":
    main()
