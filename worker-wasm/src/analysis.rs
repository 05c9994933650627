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
