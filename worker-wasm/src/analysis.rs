//! The shapes of results: what one segment yields ([`SegmentResult`], sent back by a worker) and
//! what a whole job yields once the server has merged its segments ([`Analysis`], shown to the
//! clinician). Both are plain data; the functions that compute and merge them live in `algorithm`.

use serde::{Deserialize, Serialize};

/// Mergeable running statistics of one signal (Welford / Chan et al.).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunningStats {
    pub n: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

/// One chart bucket: `index` counts buckets of `trend_bucket_s` seconds from time 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrendBucket {
    pub index: i64,
    pub n: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

/// What a worker returns for one signal of one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalSegment {
    pub name: String,
    pub stats: RunningStats,
    /// Cells outside the template's plausible range, excluded from `stats` and `trend`.
    pub out_of_range: u64,
    /// Empty cells.
    pub missing: u64,
    /// Buckets in ascending `index` order (empty unless the algorithm includes `trend`).
    pub trend: Vec<TrendBucket>,
    /// Cells of a derived signal (MAP from SBP/DBP) that were computed rather than read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub derived: u64,
    /// Histogram and time-in-range pieces (algorithms that include `vitals-summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<SignalDistribution>,
}

/// Exactly mergeable distribution of one signal in one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalDistribution {
    /// Histogram bin width (the template's `resolution`): key = round(value / resolution), computed
    /// as round(value × 1/resolution) when 1/resolution is a whole number.
    pub resolution: f64,
    /// Sparse histogram `(key, count)`, keys ascending.
    pub histogram: Vec<(i64, u64)>,
    /// Time in milliseconds below / inside / above the normal range, for samples whose next
    /// sample lies in this segment (each sample counts until the next one, capped at `max_gap_s`).
    /// Integer milliseconds keep the sums exact in any grouping.
    pub below_ms: u64,
    pub in_ms: u64,
    pub above_ms: u64,
    /// Time of the first valid sample; the previous segment's last sample is credited up to it.
    pub first_time_s: Option<f64>,
    /// The last valid sample, whose interval ends in a later segment.
    pub last: Option<LastSample>,
}

/// A sample whose time-in-range interval is still open at the end of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LastSample {
    pub time_s: f64,
    pub band: RangeBand,
}

/// Where a value lies relative to a signal's normal range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeBand {
    Below,
    In,
    Above,
}

/// What a worker returns for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    pub algorithm: String,
    /// Core rows received (overlap rows are not counted).
    pub rows: u64,
    /// Rows dropped because their timestamp repeated the previous row's.
    pub duplicates_removed: u64,
    /// Rows whose timestamp went backwards; they were put back in order.
    pub out_of_order: u64,
    pub first_time_s: f64,
    pub last_time_s: f64,
    pub signals: Vec<SignalSegment>,
    /// Rule violations and gaps (every algorithm reports these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualitySegment>,
    /// Breach runs per alert rule, unfiltered at the segment edges so runs spanning a cut join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsSegment>,
    /// NEWS2 sub-score runs per parameter; the aggregate is computed in the merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub news2: Option<News2Segment>,
    /// Beats detected in the core of an ECG segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecg: Option<EcgSegment>,
}

// ----- segment-level sections (worker → server) -----

/// Data-quality findings of one segment (core rows only).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QualitySegment {
    /// One entry per (signal, rule) that was broken at least once, in template order.
    pub violations: Vec<RuleViolation>,
    /// Gaps between consecutive kept rows longer than the template's `max_gap_s`, ending in this
    /// segment's core (a gap across a cut with no overlap is found by the merge).
    pub gaps: Vec<Gap>,
}

// ----- merged sections (server → clinician) -----

/// The data-quality section of an analysis.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QualityReport {
    /// Rows received, duplicates included.
    pub rows: u64,
    pub duplicates_removed: u64,
    pub out_of_order: u64,
    /// MAP cells computed from SBP and DBP because the MAP column was absent or empty.
    pub derived_map: u64,
    /// Per (signal, rule), in template order; `examples` are the first few in time order.
    pub violations: Vec<RuleViolation>,
    /// The template's maximum gap; `None` when the template sets none (no gaps are listed).
    pub max_gap_s: Option<f64>,
    /// Gaps longer than `max_gap_s`, in time order, at most [`QualityReport::GAP_LIST_MAX`].
    pub gaps: Vec<Gap>,
    /// All gaps found, including those beyond the list's cap.
    pub gap_count: u64,
    /// Sum of the lengths of all gaps found.
    pub gap_total_s: f64,
}

impl QualityReport {
    pub const GAP_LIST_MAX: usize = 200;
}

/// One broken rule of one signal, e.g. "hr out of range [20, 300]: 3 rows, first at 10.0 s (0)".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleViolation {
    pub signal: String,
    pub rule: RuleKind,
    /// Human-readable rule, e.g. `hr out of range [20, 300]`.
    pub description: String,
    /// Rows that broke the rule (their cell was excluded).
    pub rows: u64,
    /// The first [`RuleViolation::EXAMPLES_MAX`] offending cells, in time order.
    pub examples: Vec<ViolationExample>,
}

impl RuleViolation {
    pub const EXAMPLES_MAX: usize = 5;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Outside the plausible range `[min, max]`, or not a finite number.
    OutOfRange,
    /// Empty cell in a column the template marks `required`.
    MissingRequired,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ViolationExample {
    pub time_s: f64,
    /// `None` for an empty cell; non-finite values are reported as `None` too (JSON has no NaN).
    pub value: Option<f64>,
}

/// A stretch without rows: `[start_s, start_s + length_s]` are the times of the rows on either side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub start_s: f64,
    pub length_s: f64,
}

/// Per-signal percentiles and time in range, added to [`SignalSummary`] by `vitals-summary`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Nearest-rank percentiles of the values quantised to the signal's resolution.
    pub p5: f64,
    pub median: f64,
    pub p95: f64,
}

/// Seconds spent below, inside and above a signal's normal range (each sample counts until the
/// next valid sample, capped at the template's `max_gap_s`; the last sample counts 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeInRange {
    pub normal_low: Option<f64>,
    pub normal_high: Option<f64>,
    pub below_s: f64,
    pub in_s: f64,
    pub above_s: f64,
}

/// Breach runs of one segment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertsSegment {
    /// Runs of every rule, grouped by rule in template order, each group in time order. The first
    /// and last run of each rule are kept whatever their length (they may join a neighbour's).
    pub runs: Vec<AlertRun>,
}

/// Consecutive breaching samples of one rule, no two further apart than the bridge time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertRun {
    /// Index of the rule in the template's `params.alerts`.
    pub rule: u32,
    pub start_s: f64,
    pub end_s: f64,
    pub worst_value: f64,
    pub worst_time_s: f64,
}

/// The alerts section: sustained breaches that lasted at least their rule's minimum duration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertsReport {
    /// In start-time order (ties in rule order).
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `tachycardia`, `bradycardia`, `hypoxaemia`, `hypotension`, `tachypnoea`, `fever`, `hypothermia`…
    pub kind: String,
    pub signal: String,
    pub condition: crate::template::Condition,
    pub threshold: f64,
    /// Times of the first and last breaching sample.
    pub start_s: f64,
    pub end_s: f64,
    pub duration_s: f64,
    /// Highest value for an `above` rule, lowest for a `below` rule, and when it was seen.
    pub worst_value: f64,
    pub worst_time_s: f64,
}

/// NEWS2 sub-score runs of one segment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct News2Segment {
    /// One entry per NEWS2 parameter the segment carries, in [`News2Parameter`] order.
    pub parameters: Vec<SubscoreRuns>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscoreRuns {
    pub parameter: News2Parameter,
    pub runs: Vec<SubscoreRun>,
}

/// Consecutive samples with the same sub-score, no two further apart than the NEWS2 window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubscoreRun {
    pub start_s: f64,
    pub last_s: f64,
    pub score: u8,
}

/// The NEWS2 parameters read from a vitals recording (consciousness is assumed Alert and the
/// patient on air unless a column says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum News2Parameter {
    RespirationRate,
    Spo2Scale1,
    SystolicBp,
    Pulse,
    Temperature,
}

/// NEWS2 clinical risk bands (RCP 2017).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum News2Band {
    /// Aggregate 0–4 with no single parameter scoring 3.
    Low,
    /// Aggregate 0–4 with a single parameter scoring 3 ("red score": urgent ward response).
    LowMedium,
    /// Aggregate 5–6.
    Medium,
    /// Aggregate 7 or more.
    High,
}

/// The NEWS2 section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct News2Report {
    /// A parameter's latest value is used for this long after it was measured.
    pub window_s: f64,
    /// A moment is scored when at least this many of the five parameters have a current value.
    pub min_parameters: u32,
    /// Seconds spent in each band, and unscored (too few current parameters).
    pub time_in_band: News2BandTimes,
    /// Highest aggregate score seen, and when it was first reached.
    pub max_score: Option<u32>,
    pub max_score_time_s: Option<f64>,
    /// Worst (highest) score per chart bucket, for a step chart; `None` where nothing was scored.
    pub series: News2Series,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct News2BandTimes {
    pub unscored_s: f64,
    pub low_s: f64,
    pub low_medium_s: f64,
    pub medium_s: f64,
    pub high_s: f64,
}

/// Column-wise for uPlot: bucket start times and the worst score and its band in each bucket.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct News2Series {
    pub time_s: Vec<f64>,
    pub score: Vec<Option<u32>>,
    pub band: Vec<Option<News2Band>>,
}

/// What an ECG segment yields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcgSegment {
    /// Sampling rate estimated from the task's time column.
    pub fs_hz: f64,
    /// Core samples analysed (weights `signal_quality` in the merge).
    pub samples: u64,
    /// Detector's signal quality, 0 (unusable) to 1 (clean), over the whole task window.
    pub signal_quality: f64,
    /// Times of the R peaks inside the core, ascending.
    pub beat_times_s: Vec<f64>,
    /// Downsampled core samples lying inside the chart strip (the recording's first `strip_s`).
    pub strip: Vec<(f64, f64)>,
}

/// The ECG section: beats, rejected beats, HRV (time domain), quality and a strip to chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcgReport {
    pub fs_hz: f64,
    pub beats: u64,
    /// Beats excluded from NN intervals (ectopic or artifact).
    pub rejected_beats: u64,
    /// The first [`EcgReport::REJECTED_LIST_MAX`] rejected beats.
    pub rejected: Vec<RejectedBeatView>,
    /// `None` when there are too few NN intervals.
    pub hrv: Option<HrvTable>,
    /// Sample-weighted mean of the segments' signal quality (0–1).
    pub signal_quality: f64,
    pub strip: EcgStrip,
}

impl EcgReport {
    pub const REJECTED_LIST_MAX: usize = 200;
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RejectedBeatView {
    pub time_s: f64,
    pub reason: RejectedReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedReason {
    Ectopic,
    Artifact,
}

/// HRV time-domain table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HrvTable {
    pub nn_count: u64,
    pub mean_nn_ms: f64,
    pub mean_hr_bpm: f64,
    pub sdnn_ms: f64,
    pub rmssd_ms: f64,
    pub pnn50_pct: f64,
}

/// The first seconds of the ECG (downsampled to ≤ `strip_max_points`) with the beats inside them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EcgStrip {
    pub time_s: Vec<f64>,
    pub values: Vec<f64>,
    pub beat_times_s: Vec<f64>,
    pub rejected_times_s: Vec<f64>,
}

/// The merged analysis of a whole recording, as stored and shown to the clinician.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub algorithm: String,
    pub segments: u32,
    pub rows: u64,
    pub duplicates_removed: u64,
    pub out_of_order: u64,
    pub duration_s: f64,
    pub signals: Vec<SignalSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub news2: Option<News2Report>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecg: Option<EcgReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalSummary {
    pub name: String,
    pub unit: String,
    pub n: u64,
    /// `None` when no valid value was seen.
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1); `None` below two values.
    pub sd: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub out_of_range: u64,
    pub missing: u64,
    pub trend: Trend,
    /// Cells computed from other signals (MAP from SBP/DBP).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub derived: u64,
    /// `None` unless the algorithm includes `vitals-summary`, or when no valid value was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentiles: Option<Percentiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_range: Option<TimeInRange>,
}

/// Chart series, column-wise for uPlot: bucket start times and per-bucket min/mean/max.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Trend {
    pub time_s: Vec<f64>,
    pub min: Vec<f64>,
    pub mean: Vec<f64>,
    pub max: Vec<f64>,
}

/// serde's `skip_serializing_if` passes the field by reference.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunningStats {
    /// No values yet. JSON cannot hold infinities, so an empty accumulator reports zeros and
    /// consumers look at `n` before trusting the other fields.
    pub const EMPTY: Self = Self {
        n: 0,
        mean: 0.0,
        m2: 0.0,
        min: 0.0,
        max: 0.0,
    };

    /// Adds one value (Welford's update, numerically stable for long recordings).
    pub fn push(&mut self, value: f64) {
        if self.n == 0 {
            *self = Self {
                n: 1,
                mean: value,
                m2: 0.0,
                min: value,
                max: value,
            };
            return;
        }
        self.n += 1;
        let delta = value - self.mean;
        // u64 → f64 is exact up to 2^53 rows, far beyond any recording.
        self.mean += delta / self.n as f64;
        self.m2 += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Combines the statistics of two disjoint sets of values (Chan et al.'s parallel formula).
    /// Deterministic for a given order of operands, so merging segments in segment order gives the
    /// same bits on every machine.
    pub fn merge(&self, other: &Self) -> Self {
        if other.n == 0 {
            return *self;
        }
        if self.n == 0 {
            return *other;
        }
        let n = self.n + other.n;
        let (na, nb, nf) = (self.n as f64, other.n as f64, n as f64);
        let delta = other.mean - self.mean;
        Self {
            n,
            mean: self.mean + delta * nb / nf,
            m2: self.m2 + other.m2 + delta * delta * na * nb / nf,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Sample standard deviation (n − 1), when there are at least two values.
    pub fn sample_sd(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }
}

impl Default for RunningStats {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl TrendBucket {
    /// A bucket holding one value.
    pub fn single(index: i64, value: f64) -> Self {
        Self {
            index,
            n: 1,
            min: value,
            max: value,
            sum: value,
        }
    }

    /// Adds one value to this bucket.
    pub fn push(&mut self, value: f64) {
        self.n += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
    }

    /// Folds another bucket with the same index into this one.
    pub fn absorb(&mut self, other: &Self) {
        self.n += other.n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_serialise_as_zeros_not_infinities() {
        let text = serde_json::to_string(&RunningStats::EMPTY).expect("serialises");
        assert_eq!(text, r#"{"n":0,"mean":0.0,"m2":0.0,"min":0.0,"max":0.0}"#);
    }

    #[test]
    fn merged_stats_equal_stats_of_all_values() {
        let values = [72.0, 75.0, 71.0, 90.0, 88.0, 60.0, 65.5];
        let mut whole = RunningStats::EMPTY;
        values.iter().for_each(|v| whole.push(*v));
        let (mut left, mut right) = (RunningStats::EMPTY, RunningStats::EMPTY);
        values[..3].iter().for_each(|v| left.push(*v));
        values[3..].iter().for_each(|v| right.push(*v));
        let merged = left.merge(&right);
        assert_eq!(
            (merged.n, merged.min, merged.max),
            (whole.n, whole.min, whole.max)
        );
        assert!((merged.mean - whole.mean).abs() < 1e-12);
        assert!((merged.m2 - whole.m2).abs() < 1e-9);
    }

    #[test]
    fn merging_with_empty_stats_changes_nothing() {
        let mut stats = RunningStats::EMPTY;
        stats.push(3.0);
        assert_eq!(stats.merge(&RunningStats::EMPTY), stats);
        assert_eq!(RunningStats::EMPTY.merge(&stats), stats);
    }
}
