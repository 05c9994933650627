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
    /// Buckets in ascending `index` order.
    pub trend: Vec<TrendBucket>,
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
}

/// Chart series, column-wise for uPlot: bucket start times and per-bucket min/mean/max.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Trend {
    pub time_s: Vec<f64>,
    pub min: Vec<f64>,
    pub mean: Vec<f64>,
    pub max: Vec<f64>,
}
