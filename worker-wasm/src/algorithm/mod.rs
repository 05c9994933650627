//! Algorithms a worker can run on a segment, chosen by the name in the task packet, and the merge
//! of their per-segment results into one [`Analysis`] (done by the server).

pub mod summary;

use thiserror::Error;

use crate::analysis::Analysis;
pub use crate::analysis::SegmentResult;
use crate::processor::{DataProcessor, ValueSink};
use crate::template::{SIGNAL_SUMMARY, Template};

/// Why segment results cannot be merged.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MergeError {
    #[error("no segments to merge")]
    NoSegments,
    #[error("segments come from different algorithms (`{0}` and `{1}`)")]
    MixedAlgorithms(String, String),
    #[error("algorithm `{0}` is not known")]
    UnknownAlgorithm(String),
    #[error("signal `{0}` is not in the template")]
    UnknownSignal(String),
    #[error("trend bucket width {0} is not a positive finite number of seconds")]
    BadBucketWidth(f64),
}

/// True when this worker can run `name`.
pub fn is_implemented(name: &str) -> bool {
    name == SIGNAL_SUMMARY
}

/// One algorithm at work on one segment: receives valid values from the [`DataProcessor`].
#[derive(Debug, Clone)]
pub enum AlgorithmRun {
    SignalSummary(summary::SignalSummaryRun),
}

impl AlgorithmRun {
    /// Starts `name` for the signals `processor` selected; `None` when the algorithm is unknown.
    pub fn start(name: &str, processor: &DataProcessor) -> Option<Self> {
        match name {
            SIGNAL_SUMMARY => Some(Self::SignalSummary(summary::SignalSummaryRun::new(
                processor.signals().len(),
                processor.trend_bucket_s(),
            ))),
            _ => None,
        }
    }

    /// The segment's result once `processor` has visited every row.
    pub fn finish(self, processor: &DataProcessor) -> SegmentResult {
        match self {
            Self::SignalSummary(run) => run.finish(processor),
        }
    }
}

impl ValueSink for AlgorithmRun {
    fn valid_value(&mut self, signal: usize, time_s: f64, value: f64) {
        match self {
            Self::SignalSummary(run) => run.valid_value(signal, time_s, value),
        }
    }
}

/// Merges the results of a job's segments, given in segment order (the order fixes the floating-
/// point rounding, so the same segments always give the same bits). `trend_bucket_s` is the
/// bucket width the job's tasks were cut with.
pub fn merge(
    template: &Template,
    segments: &[SegmentResult],
    trend_bucket_s: f64,
) -> Result<Analysis, MergeError> {
    let first = segments.first().ok_or(MergeError::NoSegments)?;
    if let Some(other) = segments.iter().find(|s| s.algorithm != first.algorithm) {
        return Err(MergeError::MixedAlgorithms(
            first.algorithm.clone(),
            other.algorithm.clone(),
        ));
    }
    if !(trend_bucket_s.is_finite() && trend_bucket_s > 0.0) {
        return Err(MergeError::BadBucketWidth(trend_bucket_s));
    }
    match first.algorithm.as_str() {
        SIGNAL_SUMMARY => summary::merge(template, segments, trend_bucket_s),
        other => Err(MergeError::UnknownAlgorithm(other.to_owned())),
    }
}
