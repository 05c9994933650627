//! The ECG report through the public API: beats found per segment (with overlap context, as the
//! server cuts ECG) merge into the same beats, HRV and strip as one pass.

use vitalgrid_worker::algorithm::{AlgorithmRun, SegmentResult, merge};
use vitalgrid_worker::analysis::Analysis;
use vitalgrid_worker::processor::DataProcessor;
use vitalgrid_worker::protocol::{SignalColumn, TaskData};
use vitalgrid_worker::template::{ECG_REPORT, Template, builtin_templates};

fn ecg_template() -> Template {
    builtin_templates().remove(1)
}

/// A crude single-lead ECG: narrow R waves on a wandering baseline, RR alternating 780/820 ms.
fn synthetic_ecg(seconds: f64, fs: f64) -> (Vec<f64>, Vec<f64>) {
    let n = (seconds * fs) as usize;
    let time_s: Vec<f64> = (0..n).map(|i| i as f64 / fs).collect();
    let mut beats = Vec::new();
    let mut t = 0.5;
    let mut k = 0;
    while t < seconds {
        beats.push(t);
        t += if k % 2 == 0 { 0.78 } else { 0.82 };
        k += 1;
    }
    let values = time_s
        .iter()
        .map(|&t| {
            let r: f64 = beats
                .iter()
                .map(|b| {
                    let d = (t - b) / 0.012;
                    1.2 * (-0.5 * d * d).exp()
                })
                .sum();
            r + 0.05 * (t * 0.3 * std::f64::consts::TAU).sin()
        })
        .collect();
    (time_s, values)
}

fn task(time_s: &[f64], values: &[f64], core: std::ops::Range<usize>, overlap: usize) -> TaskData {
    let from = core.start.saturating_sub(overlap);
    let to = (core.end + overlap).min(time_s.len());
    TaskData {
        time_s: time_s[from..to].to_vec(),
        signals: vec![SignalColumn {
            name: "ecg".into(),
            values: values[from..to].iter().map(|v| Some(*v)).collect(),
        }],
        core_start: core.start - from,
        core_end: core.end - from,
        trend_bucket_s: 1.0,
        reordered_rows: 0,
    }
}

fn analyse(time_s: &[f64], values: &[f64], rows_per_task: usize, fs: f64) -> Analysis {
    let template = ecg_template();
    let overlap = (3.5 * fs) as usize;
    let segments: Vec<SegmentResult> = (0..time_s.len())
        .step_by(rows_per_task)
        .map(|start| {
            let core = start..(start + rows_per_task).min(time_s.len());
            let mut processor =
                DataProcessor::new(task(time_s, values, core, overlap), &template).expect("valid");
            let mut run = AlgorithmRun::start(ECG_REPORT, &processor).expect("known algorithm");
            processor.process(usize::MAX, &mut run);
            run.finish(&processor)
        })
        .collect();
    merge(&template, &segments, 1.0).expect("merges")
}

#[test]
fn ecg_report_of_segments_equals_one_pass() {
    let (time_s, values) = synthetic_ecg(60.0, 250.0);
    let whole = analyse(&time_s, &values, time_s.len(), 250.0);
    let ecg = whole.ecg.clone().expect("ecg section");
    assert!(ecg.beats >= 70, "{} beats", ecg.beats);
    let hrv = ecg.hrv.expect("hrv");
    assert!((hrv.mean_nn_ms - 800.0).abs() < 5.0, "{hrv:?}");
    assert!(!ecg.strip.time_s.is_empty() && ecg.strip.time_s.len() <= 2500);
    assert!(ecg.strip.time_s.iter().all(|t| *t < 10.0));
    assert!(!ecg.strip.beat_times_s.is_empty());
    for rows_per_task in [2_500, 3_333, 5_000] {
        let split = analyse(&time_s, &values, rows_per_task, 250.0);
        let merged = split.ecg.expect("ecg section");
        assert_eq!(merged.beats, ecg.beats, "{rows_per_task} rows per task");
        assert_eq!(merged.hrv, ecg.hrv);
        assert_eq!(merged.rejected, ecg.rejected);
        assert_eq!(merged.strip, ecg.strip);
        let p = split.signals[0].percentiles.expect("percentiles");
        assert_eq!(Some(p), whole.signals[0].percentiles);
    }
}

#[test]
fn ecg_report_at_1_khz_of_segments_cut_between_the_detectors_blocks_equals_one_pass() {
    // At 1 kHz the detector works on means of 4 samples; these cuts start segments mid-block.
    let (time_s, values) = synthetic_ecg(40.0, 1000.0);
    let whole = analyse(&time_s, &values, time_s.len(), 1000.0);
    let ecg = whole.ecg.expect("ecg section");
    assert!(ecg.beats >= 45, "{} beats", ecg.beats);
    for rows_per_task in [9_999, 13_331] {
        let merged = analyse(&time_s, &values, rows_per_task, 1000.0)
            .ecg
            .expect("ecg section");
        assert_eq!(merged.beats, ecg.beats, "{rows_per_task} rows per task");
        assert_eq!(merged.hrv, ecg.hrv);
        assert_eq!(merged.strip.beat_times_s, ecg.strip.beat_times_s);
    }
}
