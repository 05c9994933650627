//! Accuracy of the ECG core (`algorithm::ecg`) against the figures established tools computed on
//! the real recordings in `shared/data/real/` (see REFERENCE.md there). Run with
//! `cargo test -p vitalgrid-worker --test ecg_accuracy -- --nocapture` to see the table.
//!
//! # Accuracy
//!
//! Figures printed by this suite (release build, 2-core x86-64), next to REFERENCE.md. "All RR" uses
//! every interval between detected peaks (how REFERENCE.md computes its rows); "NN" is after
//! `nn_intervals` rejection. pNN50 always divides by the number of successive differences.
//!
//! | record | figures | beats | HR bpm | SDNN ms | RMSSD ms | pNN50 % |
//! |---|---|---|---|---|---|---|
//! | bsnb_ecg_5min | ours, all RR = NN (0 rejected) | 386 | 77.25 | 41.49 | 23.24 | 3.12 |
//! | bsnb_ecg_5min | OpenSignals peaks, plain formulas | 386 | 77.25 | 41.51 | 23.37 | 3.12 |
//! | bsnb_ecg_5min | neurokit2 / heartpy | 385 / 386 | 77.23 / 77.25 | 41.41 / 41.43 | 23.17 / 23.24 | 2.86 / 3.12 |
//! | pyhrv_sample_ecg | ours, all RR = NN (0 rejected) | 29 | 77.69 | 41.17 | 24.85 | 7.41 |
//! | pyhrv_sample_ecg | neurokit2 | 29 | 77.69 | 41.19 | 24.82 | 7.14 |
//! | mitdb208_scipy_ecg | ours, all RR | 502 | 100.44 | 158.52 | 216.63 | 42.00 |
//! | mitdb208_scipy_ecg | ours, NN (55 ectopic + 4 artefact rejected) | 443 | 105.41 | 49.23 | 54.10 | 31.97 |
//! | mitdb208_scipy_ecg | neurokit2 / nk peaks only | 510 / 503 | 102.04 / 100.64 | | | |
//!
//! * `bsnb_ecg_5min` (1000 Hz, 5 min at rest): all 386 OpenSignals peaks matched one to one
//!   (Se = PPV = 1.0000; neurokit2 misses one, Se 0.9974). Our peaks sit on the raw maximum, on
//!   average 15.2 ms after OpenSignals', which README.md says are 14–17 ms early in every beat.
//!   That 14–17 ms jitter in the reference is why its RMSSD is 0.13 ms higher than ours; heartpy,
//!   which also takes the raw maximum, gets exactly our 23.24 ms. No interval is rejected.
//! * `pyhrv_sample_ecg` (1000 Hz, 22 s): the same 29 beats as neurokit2; SDNN and RMSSD within
//!   0.03 ms. pNN50 is 2 of 27 differences = 7.41 %; neurokit2 divides by 28 (7.14 %).
//! * `pyhrv_nsrdb_nni_short` / `_long`: `hrv_time` is the plain formula; it agrees with
//!   REFERENCE.md to its printed rounding (67.49 / 95.69 / 101.30 / 48.51 and
//!   78.08 / 85.36 / 60.52 / 28.57). pNN50 divides by the number of successive differences.
//! * `mitdb208_scipy_ecg` (360 Hz, frequent PVCs): 502 beats and 100.44 bpm against neurokit2's
//!   510 and 102.04 (−1.6 % each, inside the 2 % tolerance), and against 503 / 100.64 for
//!   neurokit2's detector without its correction step. The difference is four stretches (42.4–44.1,
//!   96.3–98.9, 208.9–211.2 and 212.0–213.6 s) where the trace jumps by 2–3 mV and decays slowly
//!   with no visible QRS complex (amplifier saturation or electrode motion): neurokit2's
//!   `signal_fixpeaks` interpolates beats into such gaps, we report none and `nn_intervals`
//!   marks the long intervals as artefacts. PVCs are detected as beats; 55 intervals around them
//!   are rejected as ectopic. The all-RR HRV measures ectopy rather than sinus variability and
//!   is not comparable between tools (REFERENCE.md's notes say the same).
//! * `signal_quality` (share of the record covered by plausible intervals between clean beats):
//!   1.000 for bsnb_ecg_5min and pyhrv_sample_ecg, 0.929 for mitdb208 (its QRS-free stretches
//!   and the noisy beats around them).
//! * Segmenting: cutting bsnb_ecg_5min and mitdb208 at several points and detecting in windows
//!   with 3 s of context gives exactly the one-pass peaks (0 disagreements), whether or not the
//!   windows tell the detector where they start in the record (`detect_r_peaks_at`, which aligns
//!   its 4-sample blocks at 1 kHz with the record's and so guarantees it).
//! * Speed: 300 000 samples (bsnb_ecg_5min) in about 2 ms in release on this 2-core machine
//!   (the detector runs at 250 Hz; it took about 11 ms at the full 1 kHz).

use std::path::PathBuf;
use std::time::Instant;

use vitalgrid_worker::algorithm::ecg::{
    BeatDetection, HrvTime, RejectReason, detect_r_peaks, detect_r_peaks_at, hrv_time, nn_intervals,
};

/// `shared/data/real/`, next to the repository. Missing data is a failure, not a skip: a suite
/// that silently passes without its data measures nothing.
fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real");
    assert!(
        dir.is_dir(),
        "ECG accuracy data not found at {}: these tests need the real recordings in \
         shared/data/real/ next to the repository (see shared/data/real/README.md)",
        dir.display()
    );
    dir
}

/// The columns `names` of a CSV file with a header row, as f64.
fn read_columns(file: &str, names: &[&str]) -> Vec<Vec<f64>> {
    let path = data_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let indices: Vec<usize> = names
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|h| h.trim() == *name)
                .unwrap_or_else(|| panic!("{file} has no column {name}"))
        })
        .collect();
    let mut columns = vec![Vec::new(); names.len()];
    for (row, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        for (column, &i) in columns.iter_mut().zip(&indices) {
            let value = cells[i]
                .trim()
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("{file} row {row}: {e}"));
            column.push(value);
        }
    }
    columns
}

fn read_column(file: &str, name: &str) -> Vec<f64> {
    read_columns(file, &[name]).remove(0)
}

/// One-to-one nearest matching within `tolerance` samples: pairs are taken closest first, each
/// peak used at most once. Returns the matched pairs (ours, reference).
fn match_peaks(ours: &[usize], reference: &[usize], tolerance: usize) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &a) in ours.iter().enumerate() {
        let lo = reference.partition_point(|&b| b + tolerance < a);
        for (j, &b) in reference.iter().enumerate().skip(lo) {
            if b > a + tolerance {
                break;
            }
            pairs.push((a.abs_diff(b), i, j));
        }
    }
    pairs.sort_unstable();
    let mut used_ours = vec![false; ours.len()];
    let mut used_ref = vec![false; reference.len()];
    let mut matched = Vec::new();
    for (_, i, j) in pairs {
        if !used_ours[i] && !used_ref[j] {
            used_ours[i] = true;
            used_ref[j] = true;
            matched.push((ours[i], reference[j]));
        }
    }
    matched.sort_unstable();
    matched
}

/// RR intervals in ms of peaks at `fs`.
fn rr_ms(peaks: &[usize], fs: f64) -> Vec<f64> {
    peaks
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 * 1000.0 / fs)
        .collect()
}

fn times_s(peaks: &[usize], fs: f64) -> Vec<f64> {
    peaks.iter().map(|&p| p as f64 / fs).collect()
}

/// Within `pct` percent or `abs` of the reference, whichever is looser.
fn close(value: f64, reference: f64, pct: f64, abs: f64) -> bool {
    (value - reference).abs() <= (reference.abs() * pct / 100.0).max(abs)
}

fn row(record: &str, what: &str, beats: usize, h: &HrvTime, extra: &str) {
    println!(
        "| {record:<22} | {what:<28} | {beats:>5} | {:>7.2} | {:>7.2} | {:>7.2} | {:>6.2} | {extra}",
        h.mean_hr_bpm, h.sdnn_ms, h.rmssd_ms, h.pnn50_pct
    );
}

fn hrv(intervals: &[f64]) -> HrvTime {
    hrv_time(intervals).expect("at least two intervals")
}

#[test]
fn bsnb_ecg_5min_matches_the_opensignals_peaks_and_hrv() {
    let fs = 1000.0;
    let ecg = read_column("bsnb_ecg_5min.csv", "ecg_mV");
    let reference: Vec<usize> = read_column("bsnb_ecg_5min_rpeaks_opensignals.csv", "sample_index")
        .iter()
        .map(|&v| v as usize)
        .collect();
    assert_eq!(reference.len(), 386, "reference peak list");

    // Best of three, so a busy machine (tests run in parallel) does not make the timing flaky.
    let mut elapsed = std::time::Duration::MAX;
    let mut found = detect_r_peaks(&ecg, fs);
    for _ in 0..3 {
        let started = Instant::now();
        found = detect_r_peaks(&ecg, fs);
        elapsed = elapsed.min(started.elapsed());
    }
    let peaks = &found.r_peaks;

    let matched = match_peaks(peaks, &reference, 150);
    let se = matched.len() as f64 / reference.len() as f64;
    let ppv = matched.len() as f64 / peaks.len() as f64;
    let offsets: Vec<f64> = matched.iter().map(|&(a, b)| a as f64 - b as f64).collect();
    let mean_offset = offsets.iter().sum::<f64>() / offsets.len() as f64;
    let all = hrv(&rr_ms(peaks, fs));
    let series = nn_intervals(&times_s(peaks, fs));
    let nn = hrv(&series.nn_ms);
    let theirs = hrv(&rr_ms(&reference, fs));
    row(
        "bsnb_ecg_5min",
        "OpenSignals peaks, all RR",
        reference.len(),
        &theirs,
        "ref 77.25 41.51 23.37 3.12",
    );
    row(
        "bsnb_ecg_5min",
        "ours, all RR",
        peaks.len(),
        &all,
        &format!(
            "Se {se:.4} PPV {ppv:.4}; ours − OpenSignals {mean_offset:+.1} ms; quality {:.3}; {} samples in {:.1} ms",
            found.signal_quality,
            ecg.len(),
            elapsed.as_secs_f64() * 1000.0
        ),
    );
    row(
        "bsnb_ecg_5min",
        "ours, NN after rejection",
        series.nn_ms.len() + 1,
        &nn,
        &format!("{} intervals rejected", series.rejected.len()),
    );

    assert!(se >= 0.995 && ppv >= 0.995, "Se {se} PPV {ppv}");
    assert!(
        peaks.len().abs_diff(386) <= 2,
        "{} beats vs 386",
        peaks.len()
    );
    assert!(
        close(all.mean_hr_bpm, 77.25, 0.0, 0.5),
        "HR {}",
        all.mean_hr_bpm
    );
    assert!(close(all.sdnn_ms, 41.51, 5.0, 2.0), "SDNN {}", all.sdnn_ms);
    assert!(
        close(all.rmssd_ms, 23.37, 5.0, 2.0),
        "RMSSD {}",
        all.rmssd_ms
    );
    assert!(
        close(nn.mean_hr_bpm, 77.25, 0.0, 0.5),
        "NN HR {}",
        nn.mean_hr_bpm
    );
    assert!(close(nn.sdnn_ms, 41.51, 5.0, 2.0), "NN SDNN {}", nn.sdnn_ms);
    assert!(
        close(nn.rmssd_ms, 23.37, 5.0, 2.0),
        "NN RMSSD {}",
        nn.rmssd_ms
    );
    assert!(
        found.signal_quality > 0.95,
        "quality {}",
        found.signal_quality
    );
    if !cfg!(debug_assertions) {
        assert!(
            elapsed.as_secs_f64() < 0.5,
            "300 000 samples took {elapsed:?}"
        );
    }
}

#[test]
fn pyhrv_sample_ecg_matches_neurokit2() {
    let fs = 1000.0;
    let ecg = read_column("pyhrv_sample_ecg.csv", "ecg_mV");
    let found = detect_r_peaks(&ecg, fs);
    let peaks = &found.r_peaks;
    let all = hrv(&rr_ms(peaks, fs));
    let series = nn_intervals(&times_s(peaks, fs));
    let nn = hrv(&series.nn_ms);
    row(
        "pyhrv_sample_ecg",
        "ours, all RR",
        peaks.len(),
        &all,
        &format!(
            "quality {:.3}; ref nk2 29 77.69 41.19 24.82 7.14",
            found.signal_quality
        ),
    );
    row(
        "pyhrv_sample_ecg",
        "ours, NN after rejection",
        series.nn_ms.len() + 1,
        &nn,
        &format!("{} intervals rejected", series.rejected.len()),
    );

    assert!(peaks.len().abs_diff(29) <= 1, "{} beats vs 29", peaks.len());
    assert!(
        close(nn.mean_hr_bpm, 77.69, 0.0, 0.5),
        "HR {}",
        nn.mean_hr_bpm
    );
    assert!(close(nn.sdnn_ms, 41.19, 5.0, 2.0), "SDNN {}", nn.sdnn_ms);
    assert!(close(nn.rmssd_ms, 24.82, 5.0, 2.0), "RMSSD {}", nn.rmssd_ms);
}

/// The plain formulas, written out independently of `hrv_time`.
fn plain_formulas(nn: &[f64]) -> (f64, f64, f64, f64) {
    let n = nn.len() as f64;
    let mean = nn.iter().sum::<f64>() / n;
    let sdnn = (nn.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let diffs: Vec<f64> = nn.windows(2).map(|w| w[1] - w[0]).collect();
    let rmssd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
    let pnn50 = 100.0 * diffs.iter().filter(|d| d.abs() > 50.0).count() as f64 / diffs.len() as f64;
    (60_000.0 / mean, sdnn, rmssd, pnn50)
}

fn check_nn_series(file: &str, intervals: usize, reference: (f64, f64, f64, f64)) {
    let nn = read_column(file, "nni_ms");
    assert_eq!(nn.len(), intervals, "{file} intervals");
    let h = hrv(&nn);
    let (hr, sdnn, rmssd, pnn50) = plain_formulas(&nn);
    row(
        file.trim_end_matches(".csv"),
        "hrv_time on the NN series",
        nn.len() + 1,
        &h,
        &format!(
            "ref {:.2} {:.2} {:.2} {:.2}",
            reference.0, reference.1, reference.2, reference.3
        ),
    );

    assert_eq!(h.nn_count, nn.len());
    for (ours, plain, printed, name) in [
        (h.mean_hr_bpm, hr, reference.0, "HR"),
        (h.sdnn_ms, sdnn, reference.1, "SDNN"),
        (h.rmssd_ms, rmssd, reference.2, "RMSSD"),
        (h.pnn50_pct, pnn50, reference.3, "pNN50"),
    ] {
        assert!(
            (ours - plain).abs() < 0.01,
            "{name}: {ours} vs plain formula {plain}"
        );
        // REFERENCE.md prints two decimals.
        assert!(
            (ours - printed).abs() <= 0.005 + 1e-9,
            "{name}: {ours} vs REFERENCE.md {printed}"
        );
    }
}

#[test]
fn nsrdb_short_nn_series_matches_the_plain_formulas() {
    check_nn_series(
        "pyhrv_nsrdb_nni_short.csv",
        337,
        (67.49, 95.69, 101.30, 48.51),
    );
}

#[test]
fn nsrdb_long_nn_series_matches_the_plain_formulas() {
    check_nn_series(
        "pyhrv_nsrdb_nni_long.csv",
        4684,
        (78.08, 85.36, 60.52, 28.57),
    );
}

#[test]
fn mitdb208_beat_count_and_rate_match_neurokit2_and_pvcs_are_rejected() {
    let fs = 360.0;
    let ecg = read_column("mitdb208_scipy_ecg.csv", "ecg_mV");
    let found = detect_r_peaks(&ecg, fs);
    let peaks = &found.r_peaks;
    let all = hrv(&rr_ms(peaks, fs));
    let series = nn_intervals(&times_s(peaks, fs));
    let nn = hrv(&series.nn_ms);
    let ectopic = series
        .rejected
        .iter()
        .filter(|r| r.reason == RejectReason::Ectopic)
        .count();
    let artifact = series.rejected.len() - ectopic;
    row(
        "mitdb208_scipy_ecg",
        "ours, all RR",
        peaks.len(),
        &all,
        &format!("quality {:.3}; ref nk2 510 102.04", found.signal_quality),
    );
    row(
        "mitdb208_scipy_ecg",
        "ours, NN after rejection",
        series.nn_ms.len() + 1,
        &nn,
        &format!("{ectopic} ectopic + {artifact} artifact intervals rejected"),
    );

    assert!(
        close(peaks.len() as f64, 510.0, 2.0, 0.0),
        "{} beats vs 510",
        peaks.len()
    );
    assert!(
        close(all.mean_hr_bpm, 102.04, 2.0, 0.0),
        "HR {}",
        all.mean_hr_bpm
    );
    assert!(ectopic > 50, "only {ectopic} ectopic intervals rejected");
    // The QRS-free stretches (about 8 s of 300) and the noisy beats around them show.
    assert!(
        (0.85..0.97).contains(&found.signal_quality),
        "quality {}",
        found.signal_quality
    );
}

#[test]
fn volts_and_millivolts_give_the_same_peaks_on_mitdb208() {
    let millivolts = read_column("mitdb208_scipy_ecg.csv", "ecg_mV");
    let volts: Vec<f64> = millivolts.iter().map(|v| v / 1000.0).collect();
    assert_eq!(
        detect_r_peaks(&millivolts, 360.0).r_peaks,
        detect_r_peaks(&volts, 360.0).r_peaks
    );
}

/// Runs detection the way the platform segments a record: each core range is analysed in a window
/// with `context_s` of context on both sides, and the peaks inside the core are kept. `detect`
/// gets the window and its first sample's index in the record.
fn segmented_peaks(
    ecg: &[f64],
    fs: f64,
    cuts_s: &[f64],
    context_s: f64,
    detect: impl Fn(&[f64], f64, i64) -> BeatDetection,
) -> Vec<usize> {
    let to_index = |s: f64| ((s * fs).round() as usize).min(ecg.len());
    let context = to_index(context_s);
    let mut bounds = vec![0];
    bounds.extend(cuts_s.iter().map(|&c| to_index(c)));
    bounds.push(ecg.len());
    let mut peaks = Vec::new();
    for core in bounds.windows(2) {
        let start = core[0].saturating_sub(context);
        let end = (core[1] + context).min(ecg.len());
        let found = detect(&ecg[start..end], fs, start as i64);
        peaks.extend(
            found
                .r_peaks
                .iter()
                .map(|&p| p + start)
                .filter(|&p| p >= core[0] && p < core[1]),
        );
    }
    peaks
}

/// Peaks of the two lists that are not within one sample of a peak of the other.
fn disagreements(a: &[usize], b: &[usize]) -> Vec<usize> {
    let near = |list: &[usize], p: usize| {
        let i = list.partition_point(|&q| q + 1 < p);
        list.get(i).is_some_and(|&q| q.abs_diff(p) <= 1)
    };
    let mut out: Vec<usize> = a.iter().copied().filter(|&p| !near(b, p)).collect();
    out.extend(b.iter().copied().filter(|&p| !near(a, p)));
    out.sort_unstable();
    out
}

#[test]
fn segmented_detection_on_bsnb_matches_one_pass_within_a_sample() {
    let fs = 1000.0;
    let ecg = read_column("bsnb_ecg_5min.csv", "ecg_mV");
    let whole = detect_r_peaks(&ecg, fs).r_peaks;
    let cuts = [17.3, 60.0, 123.456, 180.001, 241.7];
    let segmented = segmented_peaks(&ecg, fs, &cuts, 3.0, |x, fs, _| detect_r_peaks(x, fs));
    let differ = disagreements(&whole, &segmented);
    println!(
        "| bsnb_ecg_5min segmented at {cuts:?} with 3 s context: {} vs {} peaks, {} disagreements",
        segmented.len(),
        whole.len(),
        differ.len()
    );
    assert_eq!(segmented.len(), whole.len());
    assert!(differ.is_empty(), "peaks not within a sample: {differ:?}");
}

#[test]
fn segments_that_know_their_place_in_the_record_find_exactly_its_peaks() {
    let fs = 1000.0;
    let ecg = read_column("bsnb_ecg_5min.csv", "ecg_mV");
    let whole = detect_r_peaks(&ecg, fs).r_peaks;
    // Cut points off the 4-sample blocks the detector averages at 1 kHz.
    let cuts = [17.301, 60.002, 123.457, 180.003, 241.7];
    let segmented = segmented_peaks(&ecg, fs, &cuts, 3.0, detect_r_peaks_at);
    assert_eq!(segmented, whole);
}

#[test]
fn segmented_detection_on_mitdb208_matches_one_pass_within_a_sample() {
    let fs = 360.0;
    let ecg = read_column("mitdb208_scipy_ecg.csv", "ecg_mV");
    let whole = detect_r_peaks(&ecg, fs).r_peaks;
    let cuts = [31.0, 75.5, 140.25, 222.2];
    let segmented = segmented_peaks(&ecg, fs, &cuts, 3.0, |x, fs, _| detect_r_peaks(x, fs));
    let differ = disagreements(&whole, &segmented);
    println!(
        "| mitdb208 segmented at {cuts:?} with 3 s context: {} vs {} peaks, {} disagreements",
        segmented.len(),
        whole.len(),
        differ.len()
    );
    assert!(differ.is_empty(), "peaks not within a sample: {differ:?}");
}
