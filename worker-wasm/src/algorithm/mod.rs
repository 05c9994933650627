//! Algorithms a worker can run on a segment, chosen by the name in the task packet, and the merge
//! of their per-segment results into one [`Analysis`] (done by the server).
//!
//! Every algorithm name stands for a set of [`Components`]; a composite (`vitals-report`,
//! `ecg-report`) simply switches several on. Each component is a pure per-segment accumulator
//! plus a merge that, given segments in order, equals one pass over the whole recording.

pub mod alerts;
pub mod beats;
pub mod ecg;
pub mod news2;
pub mod quality;
pub mod summary;

use thiserror::Error;

use crate::analysis::Analysis;
pub use crate::analysis::SegmentResult;
use crate::processor::{DataProcessor, ValueSink};
use crate::template::{
    ALERTS, ECG_BEATS, ECG_REPORT, HRV_TIME, NEWS2, SIGNAL_SUMMARY, TREND, Template, VITALS_REPORT,
    VITALS_SUMMARY,
};

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

/// The parts an algorithm is made of. Data quality is always reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Components {
    /// Percentiles and time in range per signal (`vitals-summary`).
    pub summary: bool,
    pub trend: bool,
    pub alerts: bool,
    pub news2: bool,
    /// R peaks (`ecg-beats`).
    pub beats: bool,
    /// HRV time domain (`hrv-time`; needs beats).
    pub hrv: bool,
}

impl Components {
    /// The components of a named algorithm; `None` when this worker does not know it.
    pub fn of(name: &str) -> Option<Self> {
        let none = Self::default();
        Some(match name {
            SIGNAL_SUMMARY => Self {
                summary: true,
                trend: true,
                ..none
            },
            VITALS_SUMMARY => Self {
                summary: true,
                ..none
            },
            TREND => Self {
                trend: true,
                ..none
            },
            ALERTS => Self {
                alerts: true,
                ..none
            },
            NEWS2 => Self {
                news2: true,
                ..none
            },
            VITALS_REPORT => Self {
                summary: true,
                trend: true,
                alerts: true,
                news2: true,
                ..none
            },
            ECG_BEATS => Self {
                beats: true,
                ..none
            },
            HRV_TIME => Self {
                beats: true,
                hrv: true,
                ..none
            },
            ECG_REPORT => Self {
                summary: true,
                trend: true,
                beats: true,
                hrv: true,
                ..none
            },
            _ => return None,
        })
    }
}

/// True when this worker can run `name`.
pub fn is_implemented(name: &str) -> bool {
    Components::of(name).is_some()
}

/// One algorithm at work on one segment: receives valid values from the [`DataProcessor`].
#[derive(Debug, Clone)]
pub struct AlgorithmRun {
    name: String,
    components: Components,
    summary: summary::SignalSummaryRun,
    alerts: Option<alerts::AlertsRun>,
    news2: Option<news2::News2Run>,
}

impl AlgorithmRun {
    /// Starts `name` for the signals `processor` selected; `None` when the algorithm is unknown.
    pub fn start(name: &str, processor: &DataProcessor) -> Option<Self> {
        let components = Components::of(name)?;
        Some(Self {
            name: name.to_owned(),
            components,
            summary: summary::SignalSummaryRun::new(
                processor,
                components.trend,
                components.summary,
            ),
            alerts: components.alerts.then(|| alerts::AlertsRun::new(processor)),
            news2: components.news2.then(|| news2::News2Run::new(processor)),
        })
    }

    /// The segment's result once `processor` has visited every row. Fields mean:
    /// - `rows`: core rows received, duplicates included; `duplicates_removed` and `out_of_order`
    ///   count core rows only (see `processor` for the exact definitions);
    /// - `first_time_s`/`last_time_s`: earliest and latest core time, both 0 when there is no core row.
    pub fn finish(self, processor: &DataProcessor) -> SegmentResult {
        let counts = processor.counts();
        SegmentResult {
            algorithm: self.name,
            rows: counts.rows,
            duplicates_removed: counts.duplicates_removed,
            out_of_order: counts.out_of_order,
            first_time_s: counts.first_time_s.unwrap_or(0.0),
            last_time_s: counts.last_time_s.unwrap_or(0.0),
            signals: self.summary.finish(processor),
            quality: Some(quality::segment(processor)),
            alerts: self.alerts.map(|run| run.finish(processor)),
            news2: self.news2.map(news2::News2Run::finish),
            ecg: self
                .components
                .beats
                .then(|| beats::segment(processor))
                .flatten(),
        }
    }
}

impl ValueSink for AlgorithmRun {
    fn valid_value(&mut self, signal: usize, time_s: f64, value: f64) {
        self.summary.valid_value(signal, time_s, value);
        if let Some(run) = &mut self.alerts {
            run.valid_value(signal, time_s, value);
        }
        if let Some(run) = &mut self.news2 {
            run.valid_value(signal, time_s, value);
        }
    }

    fn valid_values(&mut self, signal: usize, times_s: &[f64], values: &[f64]) {
        self.summary.valid_values(signal, times_s, values);
        if let Some(run) = &mut self.alerts {
            run.valid_values(signal, times_s, values);
        }
        if let Some(run) = &mut self.news2 {
            run.valid_values(signal, times_s, values);
        }
    }
}

/// A job's analysis, folded from its segments' results one at a time in segment order (the order
/// fixes the floating-point rounding, so the same segments always give the same bits). The server
/// holds one segment's result and the running merge, never all of a job's results at once.
pub struct JobMerge<'t> {
    template: &'t Template,
    /// The bucket width the job's tasks were cut with.
    trend_bucket_s: f64,
    /// The first segment's algorithm and its components; every later segment must match it.
    algorithm: Option<(String, Components)>,
    summary: summary::SummaryMerge,
    quality: quality::QualityMerge,
    alerts: alerts::AlertsMerge,
    news2: news2::News2Merge,
    beats: beats::BeatsMerge,
}

impl<'t> JobMerge<'t> {
    pub fn new(template: &'t Template, trend_bucket_s: f64) -> Result<Self, MergeError> {
        if !(trend_bucket_s.is_finite() && trend_bucket_s > 0.0) {
            return Err(MergeError::BadBucketWidth(trend_bucket_s));
        }
        Ok(Self {
            template,
            trend_bucket_s,
            algorithm: None,
            summary: summary::SummaryMerge::new(template),
            quality: quality::QualityMerge::default(),
            alerts: alerts::AlertsMerge::new(template),
            news2: news2::News2Merge::default(),
            beats: beats::BeatsMerge::new(),
        })
    }

    /// Folds in the job's next segment.
    pub fn add(&mut self, segment: &SegmentResult) -> Result<(), MergeError> {
        let components = match &self.algorithm {
            Some((first, _)) if *first != segment.algorithm => {
                return Err(MergeError::MixedAlgorithms(
                    first.clone(),
                    segment.algorithm.clone(),
                ));
            }
            Some((_, components)) => *components,
            None => {
                let components = Components::of(&segment.algorithm)
                    .ok_or_else(|| MergeError::UnknownAlgorithm(segment.algorithm.clone()))?;
                self.algorithm = Some((segment.algorithm.clone(), components));
                components
            }
        };
        let template = self.template;
        self.summary.add(template, segment)?;
        self.quality.add(template, segment);
        if components.alerts {
            self.alerts.add(template, segment);
        }
        if components.news2 {
            self.news2.add(template, segment);
        }
        if components.beats {
            self.beats.add(template, segment);
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Analysis, MergeError> {
        let (algorithm, components) = self.algorithm.ok_or(MergeError::NoSegments)?;
        let template = self.template;
        let mut analysis = self
            .summary
            .finish(template, algorithm, self.trend_bucket_s);
        analysis.quality = Some(self.quality.finish(template, &analysis));
        if components.alerts {
            analysis.alerts = Some(self.alerts.finish(template));
        }
        if components.news2 {
            analysis.news2 = Some(self.news2.finish(template, self.trend_bucket_s));
        }
        if components.beats {
            analysis.ecg = self.beats.finish(template, components.hrv);
        }
        Ok(analysis)
    }
}

/// Merges the results of a job's segments, given in segment order (see [`JobMerge`]).
pub fn merge(
    template: &Template,
    segments: &[SegmentResult],
    trend_bucket_s: f64,
) -> Result<Analysis, MergeError> {
    let mut merged = JobMerge::new(template, trend_bucket_s)?;
    for segment in segments {
        merged.add(segment)?;
    }
    merged.finish()
}
