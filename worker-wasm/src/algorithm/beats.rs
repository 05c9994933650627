//! `ecg-beats` and `hrv-time`: runs the ECG core (`algorithm::ecg`, pure functions) on a segment
//! and merges the beats of all segments into one beat list, so HRV over segments equals one pass.
//!
//! Per segment the detector sees the whole task window (core plus the ≥ 3 s of overlap context the
//! server sends on each side), told where the window starts in the record (its first time × the
//! sampling rate) so its reduced-rate blocks line up with the record's, and only peaks whose
//! sample lies in the core are kept. The merge
//! concatenates beat times in segment order (dropping a repeated time at a boundary) and runs
//! `nn_intervals` and `hrv_time` on the whole list.

use super::ecg::{self, RejectReason};
use crate::analysis::{
    EcgReport, EcgSegment, EcgStrip, HrvTable, RejectedBeatView, RejectedReason, SegmentResult,
};
use crate::processor::DataProcessor;
use crate::template::Template;

/// The ECG section of one segment; `None` when the task has no `ecg` column.
pub fn segment(processor: &DataProcessor) -> Option<EcgSegment> {
    let data = processor.data();
    let tally = processor.signals().iter().find(|t| t.name == "ecg")?;
    let column = &data.signals.iter().find(|c| c.name == "ecg")?.values;
    let trace = Trace::of(processor);
    // An unusable cell holds the previous usable value, so the detector sees a continuous trace.
    let mut held = 0.0;
    let mut hold = |cell: &Option<f64>| {
        if let Some(value) = cell.filter(|v| tally.accepts(*v)) {
            held = value;
        }
        held
    };
    let samples: Vec<f64> = match &trace {
        Trace::AsSent(_) => column.iter().map(&mut hold).collect(),
        Trace::Rows(rows) => rows.iter().map(|&row| hold(&column[row])).collect(),
    };
    let time_at = |position: usize| data.time_s[trace.row(position)];
    let len = trace.len();
    let fs_hz = if len > 1 && time_at(len - 1) > time_at(0) {
        (len - 1) as f64 / (time_at(len - 1) - time_at(0))
    } else {
        0.0
    };
    let core = data.core_start..data.core_end;
    // The first sample's index in the whole record, so the detector's blocks line up across
    // segments; times count from the start of the record.
    let first_sample = if len > 0 {
        (time_at(0) * fs_hz).round() as i64
    } else {
        0
    };
    let detection = ecg::detect_r_peaks_at(&samples, fs_hz, first_sample);
    let beat_times_s = detection
        .r_peaks
        .iter()
        .filter(|&&position| position < len)
        .map(|&position| trace.row(position))
        .filter(|row| core.contains(row))
        .map(|row| data.time_s[row])
        .collect();
    let params = &processor.params().ecg;
    let step = params.strip_s / f64::from(params.strip_max_points.max(1));
    let mut strip: Vec<(f64, f64)> = Vec::new();
    let mut last_bucket = None;
    for (position, &value) in samples.iter().enumerate() {
        let (row, time) = (trace.row(position), time_at(position));
        // Positions are in time order, so nothing later can fall inside the strip.
        if time >= params.strip_s {
            break;
        }
        if !core.contains(&row) || time < 0.0 {
            continue;
        }
        let bucket = (time / step).floor() as i64;
        if last_bucket != Some(bucket) {
            last_bucket = Some(bucket);
            strip.push((time, value));
        }
    }
    let samples_in_core = match &trace {
        Trace::AsSent(_) => core.len(),
        Trace::Rows(rows) => rows.iter().filter(|row| core.contains(row)).count(),
    };
    Some(EcgSegment {
        fs_hz,
        samples: samples_in_core as u64,
        signal_quality: detection.signal_quality,
        beat_times_s,
        strip,
    })
}

/// The rows the detector sees, in time order, one per distinct time (the first row sent wins).
enum Trace {
    /// Times strictly increase through the packet (the common case), so every row is used as sent;
    /// the count of rows.
    AsSent(usize),
    /// Rows reordered by time and with repeated times dropped.
    Rows(Vec<usize>),
}

impl Trace {
    fn of(processor: &DataProcessor) -> Self {
        let time_s = &processor.data().time_s;
        if processor.time_survey().strictly_increasing {
            return Self::AsSent(time_s.len());
        }
        let mut rows: Vec<usize> = Vec::with_capacity(time_s.len());
        for row in processor.rows_in_time_order() {
            if rows.last().is_none_or(|&last| time_s[last] != time_s[row]) {
                rows.push(row);
            }
        }
        Self::Rows(rows)
    }

    fn len(&self) -> usize {
        match self {
            Self::AsSent(len) => *len,
            Self::Rows(rows) => rows.len(),
        }
    }

    /// The packet row at `position` in time order.
    fn row(&self, position: usize) -> usize {
        match self {
            Self::AsSent(_) => position,
            Self::Rows(rows) => rows[position],
        }
    }
}

/// A job's beats, folded from its segments one at a time (in time order); HRV is computed at the
/// end. No report when no segment had ECG.
#[derive(Debug, Default)]
pub struct BeatsMerge {
    /// Whether any segment had an ECG section.
    any: bool,
    beats: Vec<f64>,
    strip: EcgStrip,
    /// The strip bucket of the last point kept (one point per bucket).
    last_bucket: Option<i64>,
    samples: u64,
    /// Σ signal quality × samples. Starts at −0.0, as `Iterator::sum` does, so that the mean comes
    /// out bit for bit as a sum over the segments would give it.
    weighted_quality: f64,
    /// The sampling rate of the first segment with samples.
    fs_hz: Option<f64>,
}

impl BeatsMerge {
    pub fn new() -> Self {
        Self {
            weighted_quality: -0.0,
            ..Self::default()
        }
    }

    pub fn add(&mut self, template: &Template, segment: &SegmentResult) {
        let Some(part) = &segment.ecg else {
            return;
        };
        self.any = true;
        let params = &template.params.ecg;
        let step = params.strip_s / f64::from(params.strip_max_points.max(1));
        for &time in &part.beat_times_s {
            if self.beats.last().is_none_or(|&last| time > last) {
                self.beats.push(time);
            }
        }
        for &(time, value) in &part.strip {
            let bucket = (time / step).floor() as i64;
            if self.last_bucket.is_none_or(|last| bucket > last) {
                self.last_bucket = Some(bucket);
                self.strip.time_s.push(time);
                self.strip.values.push(value);
            }
        }
        self.samples += part.samples;
        self.weighted_quality += part.signal_quality * part.samples as f64;
        if self.fs_hz.is_none() && part.samples > 0 {
            self.fs_hz = Some(part.fs_hz);
        }
    }

    /// The ECG report; HRV only when `with_hrv`.
    pub fn finish(self, template: &Template, with_hrv: bool) -> Option<EcgReport> {
        self.any.then(|| report(template, self, with_hrv))
    }
}

fn report(template: &Template, merged: BeatsMerge, with_hrv: bool) -> EcgReport {
    let params = &template.params.ecg;
    let BeatsMerge {
        beats,
        mut strip,
        samples,
        weighted_quality,
        fs_hz,
        ..
    } = merged;
    let series = ecg::nn_intervals(&beats);
    let signal_quality = if samples == 0 {
        0.0
    } else {
        weighted_quality / samples as f64
    };
    strip.beat_times_s = beats
        .iter()
        .copied()
        .filter(|t| *t < params.strip_s)
        .collect();
    strip.rejected_times_s = series
        .rejected
        .iter()
        .map(|r| r.time_s)
        .filter(|t| *t < params.strip_s)
        .collect();
    let hrv = with_hrv
        .then(|| ecg::hrv_time(&series.nn_ms))
        .flatten()
        .map(|h| HrvTable {
            nn_count: h.nn_count as u64,
            mean_nn_ms: h.mean_nn_ms,
            mean_hr_bpm: h.mean_hr_bpm,
            sdnn_ms: h.sdnn_ms,
            rmssd_ms: h.rmssd_ms,
            pnn50_pct: h.pnn50_pct,
        });
    EcgReport {
        fs_hz: fs_hz.unwrap_or(0.0),
        beats: beats.len() as u64,
        rejected_beats: series.rejected.len() as u64,
        rejected: series
            .rejected
            .iter()
            .take(EcgReport::REJECTED_LIST_MAX)
            .map(|r| RejectedBeatView {
                time_s: r.time_s,
                reason: match r.reason {
                    RejectReason::Ectopic => RejectedReason::Ectopic,
                    RejectReason::Artifact => RejectedReason::Artifact,
                },
            })
            .collect(),
        hrv,
        signal_quality,
        strip,
    }
}
