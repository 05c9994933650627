//! `vitals-summary` and `trend` (together: `signal-summary`): per-signal running statistics
//! (Welford), exact percentiles from a sparse histogram, time in the normal range, and a bucketed
//! trend for charts; computed per segment and merged across segments into the clinician's summary.
//!
//! Percentiles use the nearest-rank method on values quantised to the signal's resolution: the
//! p-th percentile of n values is the value of rank ⌈p·n/100⌉ (at least 1) in ascending order.
//! Histograms add exactly, so merged percentiles equal those of one pass.

use std::collections::BTreeMap;

use super::{MergeError, SegmentResult};
use crate::analysis::{
    Analysis, LastSample, Percentiles, RangeBand, RunningStats, SignalDistribution, SignalSegment,
    SignalSummary, TimeInRange, Trend, TrendBucket,
};
use crate::processor::{DataProcessor, ValueSink};
use crate::template::Template;

/// Index of the trend bucket holding `time_s`; buckets start at time 0 for the whole recording.
pub fn bucket_index(time_s: f64, trend_bucket_s: f64) -> i64 {
    // `as` saturates, so absurd times land in the extreme buckets instead of wrapping.
    (time_s / trend_bucket_s).floor() as i64
}

/// Histogram key of `value` at `resolution`.
pub fn histogram_key(value: f64, resolution: f64) -> i64 {
    (value / resolution).round() as i64
}

/// The value a histogram key stands for. Dividing by the integer 1/resolution (10 for 0.1) gives
/// the correctly rounded decimal (72.5, not 72.50000000000001).
pub fn key_value(key: i64, resolution: f64) -> f64 {
    let inverse = (1.0 / resolution).round();
    if resolution < 1.0 && (inverse * resolution - 1.0).abs() < 1e-12 {
        key as f64 / inverse
    } else {
        key as f64 * resolution
    }
}

/// Nearest-rank percentile `p` (0 < p ≤ 100, whole percent) of a sorted sparse histogram.
pub fn percentile(histogram: &[(i64, u64)], p: u64, resolution: f64) -> Option<f64> {
    let n: u64 = histogram.iter().map(|(_, count)| count).sum();
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).max(1);
    let mut seen = 0;
    histogram.iter().find_map(|&(key, count)| {
        seen += count;
        (seen >= rank).then(|| key_value(key, resolution))
    })
}

/// Milliseconds a sample counts for: until the next sample, capped at `max_gap_s`. Whole
/// milliseconds make the sums exact in any grouping of segments.
pub fn interval_ms(from_s: f64, to_s: f64, max_gap_s: Option<f64>) -> u64 {
    let span = to_s - from_s;
    let span = max_gap_s.map_or(span, |cap| span.min(cap));
    (span * 1000.0).round().max(0.0) as u64
}

fn add_time(distribution: &mut SignalDistribution, band: RangeBand, ms: u64) {
    match band {
        RangeBand::Below => distribution.below_ms += ms,
        RangeBand::In => distribution.in_ms += ms,
        RangeBand::Above => distribution.above_ms += ms,
    }
}

/// Accumulates one segment; values arrive in time order, so each signal's current bucket is the
/// last one in its list.
#[derive(Debug, Clone)]
pub struct SignalSummaryRun {
    trend_bucket_s: f64,
    with_trend: bool,
    with_distribution: bool,
    max_gap_s: Option<f64>,
    bands: Vec<(Option<f64>, Option<f64>, f64)>,
    stats: Vec<RunningStats>,
    trends: Vec<Vec<TrendBucket>>,
    histograms: Vec<BTreeMap<i64, u64>>,
    distributions: Vec<SignalDistribution>,
}

impl SignalSummaryRun {
    pub fn new(processor: &DataProcessor, with_trend: bool, with_distribution: bool) -> Self {
        let signals = processor.signals();
        Self {
            trend_bucket_s: processor.trend_bucket_s(),
            with_trend,
            with_distribution,
            max_gap_s: processor.max_gap_s(),
            bands: signals
                .iter()
                .map(|t| (t.normal_low, t.normal_high, t.resolution))
                .collect(),
            stats: vec![RunningStats::EMPTY; signals.len()],
            trends: vec![Vec::new(); signals.len()],
            histograms: vec![BTreeMap::new(); signals.len()],
            distributions: signals
                .iter()
                .map(|t| SignalDistribution {
                    resolution: t.resolution,
                    histogram: Vec::new(),
                    below_ms: 0,
                    in_ms: 0,
                    above_ms: 0,
                    first_time_s: None,
                    last: None,
                })
                .collect(),
        }
    }

    /// Per-signal segment results. Fields mean:
    /// - `signals`: the template's signals that the task carries, in template order, each with stats
    ///   (zeros when `n == 0`) and trend buckets in ascending index order.
    pub fn finish(self, processor: &DataProcessor) -> Vec<SignalSegment> {
        processor
            .signals()
            .iter()
            .zip(self.stats)
            .zip(self.trends)
            .zip(self.histograms.into_iter().zip(self.distributions))
            .map(|(((tally, stats), trend), (histogram, mut distribution))| {
                distribution.histogram = histogram.into_iter().collect();
                SignalSegment {
                    name: tally.name.clone(),
                    stats,
                    out_of_range: tally.out_of_range,
                    missing: tally.missing,
                    trend,
                    derived: tally.derived,
                    distribution: self.with_distribution.then_some(distribution),
                }
            })
            .collect()
    }
}

impl ValueSink for SignalSummaryRun {
    fn valid_value(&mut self, signal: usize, time_s: f64, value: f64) {
        let (Some(stats), Some(trend)) = (self.stats.get_mut(signal), self.trends.get_mut(signal))
        else {
            return;
        };
        stats.push(value);
        if self.with_trend {
            let index = bucket_index(time_s, self.trend_bucket_s);
            match trend.last_mut() {
                Some(bucket) if bucket.index == index => bucket.push(value),
                _ => trend.push(TrendBucket::single(index, value)),
            }
        }
        if self.with_distribution {
            let (low, high, resolution) = self.bands[signal];
            *self.histograms[signal]
                .entry(histogram_key(value, resolution))
                .or_insert(0) += 1;
            let band = match (low, high) {
                (Some(low), _) if value < low => RangeBand::Below,
                (_, Some(high)) if value > high => RangeBand::Above,
                _ => RangeBand::In,
            };
            let distribution = &mut self.distributions[signal];
            if let Some(last) = distribution.last {
                add_time(
                    distribution,
                    last.band,
                    interval_ms(last.time_s, time_s, self.max_gap_s),
                );
            }
            distribution.first_time_s.get_or_insert(time_s);
            distribution.last = Some(LastSample { time_s, band });
        }
    }
}

/// Merges the per-signal parts of segments (the caller has checked names and bucket width).
pub(super) fn merge_signals(
    template: &Template,
    segments: &[SegmentResult],
    trend_bucket_s: f64,
) -> Result<Vec<SignalSummary>, MergeError> {
    for segment in segments {
        if let Some(unknown) = segment
            .signals
            .iter()
            .find(|s| template.signal(&s.name).is_none())
        {
            return Err(MergeError::UnknownSignal(unknown.name.clone()));
        }
    }
    let max_gap_s = template.max_gap_s.filter(|g| g.is_finite() && *g > 0.0);
    Ok(template
        .signals
        .iter()
        .filter(|rule| {
            segments
                .iter()
                .any(|seg| seg.signals.iter().any(|s| s.name == rule.name))
        })
        .map(|rule| {
            let mut stats = RunningStats::EMPTY;
            let (mut out_of_range, mut missing, mut derived) = (0, 0, 0);
            // BTreeMap: segments may share a boundary bucket, and iteration comes out in index order.
            let mut buckets: BTreeMap<i64, TrendBucket> = BTreeMap::new();
            let mut histogram: BTreeMap<i64, u64> = BTreeMap::new();
            let mut times = [0u64; 3];
            let mut pending: Option<LastSample> = None;
            let mut resolution = rule.resolution;
            let mut with_distribution = false;
            for part in segments
                .iter()
                .flat_map(|seg| seg.signals.iter().filter(|s| s.name == rule.name))
            {
                stats = stats.merge(&part.stats);
                out_of_range += part.out_of_range;
                missing += part.missing;
                derived += part.derived;
                for bucket in &part.trend {
                    buckets
                        .entry(bucket.index)
                        .and_modify(|merged| merged.absorb(bucket))
                        .or_insert(*bucket);
                }
                if let Some(distribution) = &part.distribution {
                    with_distribution = true;
                    resolution = distribution.resolution;
                    for &(key, count) in &distribution.histogram {
                        *histogram.entry(key).or_insert(0) += count;
                    }
                    let slot = |band| match band {
                        RangeBand::Below => 0,
                        RangeBand::In => 1,
                        RangeBand::Above => 2,
                    };
                    if let (Some(open), Some(first)) = (pending, distribution.first_time_s) {
                        times[slot(open.band)] += interval_ms(open.time_s, first, max_gap_s);
                    }
                    times[0] += distribution.below_ms;
                    times[1] += distribution.in_ms;
                    times[2] += distribution.above_ms;
                    if distribution.last.is_some() {
                        pending = distribution.last;
                    }
                }
            }
            let mut trend = Trend::default();
            for bucket in buckets.values() {
                trend.time_s.push(bucket.index as f64 * trend_bucket_s);
                trend.min.push(bucket.min);
                trend.mean.push(bucket.sum / bucket.n as f64);
                trend.max.push(bucket.max);
            }
            let histogram: Vec<(i64, u64)> = histogram.into_iter().collect();
            let percentiles = (|| {
                Some(Percentiles {
                    p5: percentile(&histogram, 5, resolution)?,
                    median: percentile(&histogram, 50, resolution)?,
                    p95: percentile(&histogram, 95, resolution)?,
                })
            })();
            let seen = stats.n > 0;
            SignalSummary {
                name: rule.name.clone(),
                unit: rule.unit.clone(),
                n: stats.n,
                mean: seen.then_some(stats.mean),
                sd: stats.sample_sd(),
                min: seen.then_some(stats.min),
                max: seen.then_some(stats.max),
                out_of_range,
                missing,
                trend,
                derived,
                percentiles,
                time_in_range: (with_distribution && seen).then(|| TimeInRange {
                    normal_low: rule.normal_low,
                    normal_high: rule.normal_high,
                    below_s: times[0] as f64 / 1000.0,
                    in_s: times[1] as f64 / 1000.0,
                    above_s: times[2] as f64 / 1000.0,
                }),
            }
        })
        .collect())
}

/// The base of every analysis: counts, duration and the per-signal summaries.
pub(super) fn merge(
    template: &Template,
    segments: &[SegmentResult],
    trend_bucket_s: f64,
) -> Result<Analysis, MergeError> {
    let signals = merge_signals(template, segments, trend_bucket_s)?;
    let with_rows = || segments.iter().filter(|seg| seg.rows > 0);
    let first = with_rows().map(|seg| seg.first_time_s).reduce(f64::min);
    let last = with_rows().map(|seg| seg.last_time_s).reduce(f64::max);
    Ok(Analysis {
        algorithm: segments
            .first()
            .map(|seg| seg.algorithm.clone())
            .unwrap_or_default(),
        segments: u32::try_from(segments.len()).unwrap_or(u32::MAX),
        rows: segments.iter().map(|seg| seg.rows).sum(),
        duplicates_removed: segments.iter().map(|seg| seg.duplicates_removed).sum(),
        out_of_order: segments.iter().map(|seg| seg.out_of_order).sum(),
        duration_s: match (first, last) {
            (Some(first), Some(last)) => last - first,
            _ => 0.0,
        },
        signals,
        quality: None,
        alerts: None,
        news2: None,
        ecg: None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::algorithm::{self, AlgorithmRun};
    use crate::protocol::{SignalColumn, TaskData};
    use crate::template::{SIGNAL_SUMMARY, builtin_templates};

    const BUCKET_S: f64 = 10.0;

    fn vitals() -> Template {
        builtin_templates().remove(0)
    }

    fn summarise(data: TaskData) -> SegmentResult {
        let template = vitals();
        let mut processor = DataProcessor::new(data, &template).expect("valid data");
        let mut run = AlgorithmRun::start(SIGNAL_SUMMARY, &processor).expect("known algorithm");
        processor.process(usize::MAX, &mut run);
        run.finish(&processor)
    }

    fn task(
        time_s: &[f64],
        hr: &[Option<f64>],
        spo2: &[Option<f64>],
        core: std::ops::Range<usize>,
    ) -> TaskData {
        TaskData {
            time_s: time_s.to_vec(),
            signals: vec![
                SignalColumn {
                    name: "spo2".into(),
                    values: spo2.to_vec(),
                },
                SignalColumn {
                    name: "hr".into(),
                    values: hr.to_vec(),
                },
            ],
            core_start: core.start,
            core_end: core.end,
            trend_bucket_s: BUCKET_S,
            reordered_rows: 0,
        }
    }

    #[test]
    fn summary_reports_stats_and_ascending_buckets() {
        let times = [0.0, 5.0, 10.0, 25.0];
        let hr = [Some(60.0), Some(80.0), Some(70.0), Some(0.0)];
        let result = summarise(task(&times, &hr, &[None; 4], 0..4));
        let names: Vec<&str> = result.signals.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["hr", "spo2"]);
        let hr = &result.signals[0];
        assert_eq!(
            (hr.stats.n, hr.stats.min, hr.stats.max, hr.stats.mean),
            (3, 60.0, 80.0, 70.0)
        );
        assert_eq!(hr.out_of_range, 1);
        let indices: Vec<(i64, u64)> = hr.trend.iter().map(|b| (b.index, b.n)).collect();
        assert_eq!(indices, vec![(0, 2), (1, 1)]);
        let spo2 = &result.signals[1];
        assert_eq!((spo2.stats, spo2.missing), (RunningStats::EMPTY, 4));
        assert_eq!(
            (result.first_time_s, result.last_time_s, result.rows),
            (0.0, 25.0, 4)
        );
    }

    #[test]
    fn segments_sharing_a_boundary_bucket_merge_into_one_bucket() {
        let left = summarise(task(
            &[0.0, 4.0],
            &[Some(60.0), Some(70.0)],
            &[None; 2],
            0..2,
        ));
        let right = summarise(task(
            &[4.0, 6.0],
            &[Some(70.0), Some(90.0)],
            &[None; 2],
            1..2,
        ));
        let analysis = algorithm::merge(&vitals(), &[left, right], BUCKET_S).expect("merges");
        let hr = &analysis.signals[0];
        assert_eq!(hr.trend.time_s, vec![0.0]);
        assert_eq!((hr.trend.min[0], hr.trend.max[0]), (60.0, 90.0));
        assert_eq!((hr.n, hr.unit.as_str(), analysis.segments), (3, "bpm", 2));
        assert_eq!(analysis.duration_s, 6.0);
        let spo2 = &analysis.signals[1];
        assert_eq!((spo2.mean, spo2.sd, spo2.min), (None, None, None));
    }

    #[test]
    fn mixed_algorithms_are_not_merged() {
        let one = summarise(task(&[0.0], &[Some(60.0)], &[None], 0..1));
        let mut other = one.clone();
        other.algorithm = "qrs-detect".into();
        let error = algorithm::merge(&vitals(), &[one, other], BUCKET_S).expect_err("must refuse");
        assert!(matches!(error, MergeError::MixedAlgorithms(..)));
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12,
            (None, None) => true,
            _ => false,
        }
    }

    /// A value: mostly plausible heart rates at 0.1 resolution, sometimes empty or out of range.
    fn cell() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            8 => (300u32..2500).prop_map(|tenths| Some(f64::from(tenths) / 10.0)),
            1 => Just(None),
            1 => Just(Some(0.0)),
        ]
    }

    proptest! {
        #[test]
        fn merging_split_segments_matches_one_pass(
            rows in prop::collection::vec((prop_oneof![Just(0.0), Just(0.5), Just(1.0), Just(7.25)], cell(), cell()), 1..300),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut time = 0.0;
            let times: Vec<f64> = rows.iter().map(|(step, _, _)| { time += step; time }).collect();
            let hr: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
            let spo2: Vec<Option<f64>> = rows.iter().map(|r| r.2.map(|v| v.min(100.0))).collect();
            let whole = algorithm::merge(&vitals(), &[summarise(task(&times, &hr, &spo2, 0..times.len()))], BUCKET_S)
                .expect("merges");

            let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(times.len())).collect();
            bounds.extend([0, times.len()]);
            bounds.sort_unstable();
            bounds.dedup();
            // Each segment after the first carries the previous row as overlap, as the server does,
            // so a duplicate straddling a cut is still recognised.
            let segments: Vec<SegmentResult> = bounds
                .windows(2)
                .map(|w| {
                    let from = w[0].saturating_sub(1);
                    summarise(task(&times[from..w[1]], &hr[from..w[1]], &spo2[from..w[1]], (w[0] - from)..(w[1] - from)))
                })
                .collect();
            let merged = algorithm::merge(&vitals(), &segments, BUCKET_S).expect("merges");

            prop_assert_eq!(merged.rows, whole.rows);
            prop_assert_eq!(merged.duplicates_removed, whole.duplicates_removed);
            prop_assert_eq!(merged.duration_s, whole.duration_s);
            prop_assert_eq!(merged.signals.len(), whole.signals.len());
            for (m, w) in merged.signals.iter().zip(&whole.signals) {
                prop_assert_eq!((m.n, m.min, m.max, m.missing, m.out_of_range), (w.n, w.min, w.max, w.missing, w.out_of_range));
                prop_assert!(close(m.mean, w.mean), "mean {:?} vs {:?}", m.mean, w.mean);
                prop_assert!(close(m.sd, w.sd), "sd {:?} vs {:?}", m.sd, w.sd);
                prop_assert_eq!(&m.trend.time_s, &w.trend.time_s);
                prop_assert_eq!(&m.trend.min, &w.trend.min);
                prop_assert_eq!(&m.trend.max, &w.trend.max);
                for (a, b) in m.trend.mean.iter().zip(&w.trend.mean) {
                    prop_assert!(close(Some(*a), Some(*b)));
                }
            }
        }
    }
}

#[cfg(test)]
mod percentile_tests {
    use super::*;

    #[test]
    fn nearest_rank_percentile_takes_the_value_of_rank_ceiling_p_n_over_100() {
        // Values 1..=20 at resolution 1.
        let histogram: Vec<(i64, u64)> = (1..=20).map(|k| (k, 1)).collect();
        assert_eq!(percentile(&histogram, 5, 1.0), Some(1.0)); // rank ⌈1⌉ = 1
        assert_eq!(percentile(&histogram, 50, 1.0), Some(10.0)); // rank 10
        assert_eq!(percentile(&histogram, 95, 1.0), Some(19.0)); // rank 19
        assert_eq!(percentile(&histogram, 100, 1.0), Some(20.0));
        // Three values: the median is the second; p5 and p95 are the first and third.
        let three = [(700, 1), (725, 1), (900, 1)];
        assert_eq!(percentile(&three, 50, 0.1), Some(72.5));
        assert_eq!(percentile(&three, 5, 0.1), Some(70.0));
        assert_eq!(percentile(&three, 95, 0.1), Some(90.0));
        assert_eq!(percentile(&[], 50, 0.1), None);
    }

    #[test]
    fn histogram_keys_quantise_to_the_resolution() {
        assert_eq!(histogram_key(72.54, 0.1), 725);
        assert_eq!(histogram_key(-0.0004, 0.001), 0);
        assert_eq!(key_value(725, 0.1), 72.5);
        assert_eq!(key_value(-1234, 0.001), -1.234);
        assert_eq!(key_value(7, 5.0), 35.0);
    }

    #[test]
    fn a_sample_counts_until_the_next_one_capped_at_the_maximum_gap() {
        assert_eq!(interval_ms(10.0, 11.0, Some(60.0)), 1000);
        assert_eq!(interval_ms(10.0, 200.0, Some(60.0)), 60_000);
        assert_eq!(interval_ms(10.0, 200.0, None), 190_000);
    }
}
