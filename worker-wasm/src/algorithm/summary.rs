//! `vitals-summary` and `trend` (together: `signal-summary`): per-signal running statistics
//! (two-pass statistics of blocks of values, merged with Chan et al.'s formula), exact percentiles
//! from a histogram, time in the normal range, and a bucketed trend for charts; computed per
//! segment and merged across segments into the clinician's summary.
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
use crate::template::{SignalRule, Template};

/// Index of the trend bucket holding `time_s`; buckets start at time 0 for the whole recording.
pub fn bucket_index(time_s: f64, trend_bucket_s: f64) -> i64 {
    // `as` saturates, so absurd times land in the extreme buckets instead of wrapping.
    floor_to_i64(time_s / trend_bucket_s)
}

/// Histogram key of `value` at `resolution`.
pub fn histogram_key(value: f64, resolution: f64) -> i64 {
    Quantiser::new(resolution).key(value)
}

/// Turns values into histogram keys at one resolution. A resolution that is the reciprocal of a
/// whole number (1, 0.1, 0.001) multiplies by that number, which takes a cycle where a division takes
/// a dozen; the key only differs from the division's where a value lies within a rounding error of
/// halfway between two keys, and every build and every segment quantises the same way.
#[derive(Debug, Clone, Copy)]
struct Quantiser {
    resolution: f64,
    /// `1 / resolution` when that is a whole number.
    inverse: Option<f64>,
}

impl Quantiser {
    fn new(resolution: f64) -> Self {
        let inverse = (1.0 / resolution).round();
        Self {
            resolution,
            inverse: (resolution <= 1.0 && (inverse * resolution - 1.0).abs() < 1e-12)
                .then_some(inverse),
        }
    }

    fn key(self, value: f64) -> i64 {
        round_to_i64(self.scaled(value))
    }

    /// `value` in units of the resolution, before rounding; never decreases as `value` grows.
    fn scaled(self, value: f64) -> f64 {
        match self.inverse {
            Some(inverse) => value * inverse,
            None => value / self.resolution,
        }
    }

    /// Counts the keys of a block of values whose least and greatest are `extremes`. When every
    /// key fits an `i32` (the extremes tell, keys being monotonic), in a loop that keeps the dense
    /// run's base and bounds in registers: through `Histogram::add` they are read from memory again
    /// at every value, since the count it has just written might have changed them. Out of line:
    /// inlined into the fold, whose other loops then took the registers, the native loop reloaded
    /// the multiplier from the stack at every value (`perf`: the fold 13 % slower natively).
    #[inline(never)]
    fn count_keys(self, histogram: &mut Histogram, extremes: (f64, f64), values: &[f64]) {
        const SMALL: f64 = (1 << 30) as f64;
        let (low, high) = (self.scaled(extremes.0), self.scaled(extremes.1));
        if !(low.abs() < SMALL && high.abs() < SMALL) {
            for &value in values {
                histogram.add(self.key(value));
            }
            return;
        }
        let (base, dense) = (histogram.base, &mut histogram.dense[..]);
        let mut outside = Vec::new();
        for &value in values {
            // In 32 bits: the same key, as every scaled value is well within range.
            let key = i64::from(round_small_to_i32(self.scaled(value)));
            let slot = key
                .checked_sub(base)
                .and_then(|offset| usize::try_from(offset).ok())
                .and_then(|slot| dense.get_mut(slot));
            match slot {
                Some(count) => *count += 1,
                None => outside.push(key),
            }
        }
        for key in outside {
            histogram.add(key);
        }
    }
}

/// 2^52: from here on every f64 is a whole number.
const WHOLE_FROM: f64 = 4_503_599_627_370_496.0;

/// `x.round() as i64` without the call into libm that `round` and `floor` become on baseline
/// x86-64 (and `round` on wasm32), a call per value that cost a sixth of a summary: truncation to
/// an integer is one instruction, and the fraction it drops is exact.
pub(crate) fn round_to_i64(x: f64) -> i64 {
    if x.abs() < WHOLE_FROM {
        let whole = x as i64;
        let fraction = x - whole as f64;
        whole + i64::from(fraction >= 0.5) - i64::from(fraction <= -0.5)
    } else {
        // Already whole, infinite or NaN; `as` saturates.
        x.round() as i64
    }
}

/// [`round_to_i64`] in 32 bits, for `|x| < 2^30` (the same integer there): a narrower conversion
/// that vectorises, also in WebAssembly.
#[inline]
fn round_small_to_i32(x: f64) -> i32 {
    let whole = x as i32;
    let fraction = x - f64::from(whole);
    whole + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5)
}

/// `x.floor() as i64` the same way as [`round_to_i64`].
fn floor_to_i64(x: f64) -> i64 {
    if x.abs() < WHOLE_FROM {
        let whole = x as i64;
        whole - i64::from(whole as f64 > x)
    } else {
        x.floor() as i64
    }
}

/// The value a histogram key stands for. Dividing by the integer 1/resolution (10 for 0.1) gives
/// the correctly rounded decimal (72.5, not 72.50000000000001).
pub fn key_value(key: i64, resolution: f64) -> f64 {
    match Quantiser::new(resolution).inverse {
        Some(inverse) => key as f64 / inverse,
        None => key as f64 * resolution,
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
    span_ms(to_s - from_s, max_gap_s)
}

/// [`interval_ms`] of a span. Never decreases as the span grows.
fn span_ms(span: f64, max_gap_s: Option<f64>) -> u64 {
    // A comparison rather than `f64::min`, which is a call into libm on wasm32 (for its NaN rule;
    // the times here are finite, and a NaN span still gives the cap as `min` would).
    let span = max_gap_s.map_or(span, |cap| if span < cap { span } else { cap });
    let ms = span * 1000.0;
    if ms.abs() < WHOLE_FROM {
        round_to_i64(ms).max(0) as u64
    } else {
        ms.round().max(0.0) as u64
    }
}

/// Position of `band` in `[below, in, above]`.
fn slot(band: RangeBand) -> usize {
    match band {
        RangeBand::Below => 0,
        RangeBand::In => 1,
        RangeBand::Above => 2,
    }
}

/// Counts per histogram key: a dense run of keys around those seen so far, where nearly every value
/// of a signal falls, so that counting a value is an index and an increment rather than a search
/// of a sorted map (which took half the time of a 1 kHz ECG summary), and a sorted map for the rare
/// keys too far out to keep dense.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Key of `dense[0]`.
    base: i64,
    dense: Vec<u64>,
    /// Keys outside `base..base + dense.len()`.
    sparse: BTreeMap<i64, u64>,
}

impl Histogram {
    /// The most keys kept dense (512 KiB of counts): ±20 mV of ECG at 1 µV.
    const MAX_DENSE: i128 = 1 << 16;
    /// Keys a new dense run starts with around the first one.
    const FIRST_RUN: i128 = 64;

    fn add(&mut self, key: i64) {
        let slot = key
            .checked_sub(self.base)
            .and_then(|offset| usize::try_from(offset).ok())
            .and_then(|slot| self.dense.get_mut(slot));
        match slot {
            Some(count) => *count += 1,
            None => self.add_outside(key),
        }
    }

    /// Counts a key outside the dense run: widens the run to take it when the run stays within
    /// `MAX_DENSE` keys, with as much room again on that side so that a slowly widening range of
    /// values does not reallocate every time; otherwise counts it in the sparse map.
    #[cold]
    fn add_outside(&mut self, key: i64) {
        let wide = i128::from;
        let (lo, hi) = if self.dense.is_empty() {
            (
                wide(key) - Self::FIRST_RUN / 2,
                wide(key) + Self::FIRST_RUN / 2 - 1,
            )
        } else {
            let (base, end) = (wide(self.base), wide(self.base) + self.dense.len() as i128);
            let room = self.dense.len() as i128;
            if wide(key) < base {
                (wide(key) - room, end - 1)
            } else {
                (base, wide(key) + room)
            }
        };
        let keep = |k: i128| k.clamp(wide(i64::MIN), wide(i64::MAX));
        let (lo, hi) = (keep(lo), keep(hi));
        let (lo, hi) = if hi - lo < Self::MAX_DENSE {
            (lo, hi)
        } else if wide(key) < wide(self.base) {
            (hi + 1 - Self::MAX_DENSE, hi)
        } else {
            (lo, lo + Self::MAX_DENSE - 1)
        };
        if !(lo..=hi).contains(&wide(key)) {
            *self.sparse.entry(key).or_insert(0) += 1;
            return;
        }
        // Both ends lie within i64 (clamped, or between `key` and the old run).
        let (lo, hi) = (lo as i64, hi as i64);
        let mut dense = vec![0; (hi - lo) as usize + 1];
        if !self.dense.is_empty() {
            let at = (self.base - lo) as usize;
            dense[at..at + self.dense.len()].copy_from_slice(&self.dense);
        }
        let inside: Vec<i64> = self.sparse.range(lo..=hi).map(|(&k, _)| k).collect();
        for k in inside {
            if let Some(count) = self.sparse.remove(&k) {
                dense[(k - lo) as usize] += count;
            }
        }
        dense[(key - lo) as usize] += 1;
        self.base = lo;
        self.dense = dense;
    }

    /// `(key, count)` for every key counted, keys ascending.
    fn into_sorted(self) -> Vec<(i64, u64)> {
        let base = self.base;
        let mut sparse = self.sparse.into_iter().peekable();
        let mut out: Vec<(i64, u64)> = Vec::new();
        while let Some(entry) = sparse.next_if(|&(k, _)| k < base) {
            out.push(entry);
        }
        out.extend(
            self.dense
                .into_iter()
                .enumerate()
                .filter(|&(_, count)| count > 0)
                .map(|(slot, count)| (base + slot as i64, count)),
        );
        out.extend(sparse);
        out
    }
}

/// Count, mean, squared deviations (two passes, so no cancellation), minimum and maximum of
/// `values`; `None` when empty. Sums run in four interleaved partial sums, added up in a fixed
/// order, so they are independent chains yet the same bits everywhere.
fn block_stats(values: &[f64]) -> Option<RunningStats> {
    let (&first, _) = values.split_first()?;
    let lanes = FourLanes::of(values, first, first);
    let rest = values.chunks_exact(4).remainder();
    let n = values.len() as f64;
    let mean = lanes.sum() / n;
    let mut m2 = [0.0; 4];
    for chunk in values.chunks_exact(4) {
        for lane in 0..4 {
            let d = chunk[lane] - mean;
            m2[lane] += d * d;
        }
    }
    for (lane, &v) in rest.iter().enumerate() {
        m2[lane] += (v - mean) * (v - mean);
    }
    Some(RunningStats {
        n: values.len() as u64,
        mean,
        m2: (m2[0] + m2[1]) + (m2[2] + m2[3]),
        min: lanes.min(first),
        max: lanes.max(first),
    })
}

/// Running minima, maxima and sums of values in four interleaved lanes (value `i` goes to lane
/// `i % 4`): four independent chains where one would wait on the previous value at every step, and
/// the same additions in the same order in every build, so the same bits.
#[derive(Debug, Clone, Copy)]
struct FourLanes {
    min: [f64; 4],
    max: [f64; 4],
    sum: [f64; 4],
}

impl FourLanes {
    /// The lanes of `values`, minima starting at `min` and maxima at `max`, sums at zero.
    #[cfg(not(target_arch = "wasm32"))]
    #[inline]
    fn of(values: &[f64], min: f64, max: f64) -> Self {
        let mut lanes = Self {
            min: [min; 4],
            max: [max; 4],
            sum: [0.0; 4],
        };
        let chunks = values.chunks_exact(4);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (lane, &value) in chunk.iter().enumerate() {
                lanes.add(lane, value);
            }
        }
        lanes.add_rest(rest);
        lanes
    }

    /// [`FourLanes::of`] in WebAssembly SIMD, lanes 0–1 and 2–3 in one `f64x2` each: V8 ran the
    /// scalar loop (which LLVM leaves scalar for wasm32) at about twice the native time. `pmin(a, b)`
    /// is `b < a ? b : a` and `pmax(a, b)` is `a < b ? b : a`, the scalar comparisons exactly, and
    /// each lane adds its values in the same order, so every bit is the native one.
    #[cfg(target_arch = "wasm32")]
    #[inline]
    fn of(values: &[f64], min: f64, max: f64) -> Self {
        use core::arch::wasm32::{
            f64x2, f64x2_add, f64x2_extract_lane, f64x2_pmax, f64x2_pmin, f64x2_splat,
        };
        let (mut min01, mut min23) = (f64x2_splat(min), f64x2_splat(min));
        let (mut max01, mut max23) = (f64x2_splat(max), f64x2_splat(max));
        let (mut sum01, mut sum23) = (f64x2_splat(0.0), f64x2_splat(0.0));
        let chunks = values.chunks_exact(4);
        let rest = chunks.remainder();
        for chunk in chunks {
            let (low, high) = (f64x2(chunk[0], chunk[1]), f64x2(chunk[2], chunk[3]));
            min01 = f64x2_pmin(min01, low);
            min23 = f64x2_pmin(min23, high);
            max01 = f64x2_pmax(max01, low);
            max23 = f64x2_pmax(max23, high);
            sum01 = f64x2_add(sum01, low);
            sum23 = f64x2_add(sum23, high);
        }
        let split = |low, high| {
            [
                f64x2_extract_lane::<0>(low),
                f64x2_extract_lane::<1>(low),
                f64x2_extract_lane::<0>(high),
                f64x2_extract_lane::<1>(high),
            ]
        };
        let mut lanes = Self {
            min: split(min01, min23),
            max: split(max01, max23),
            sum: split(sum01, sum23),
        };
        lanes.add_rest(rest);
        lanes
    }

    /// Values are never NaN, so plain comparisons give what `f64::min`/`max` would (and are not
    /// calls into libm on wasm32).
    #[inline]
    fn add(&mut self, lane: usize, value: f64) {
        self.sum[lane] += value;
        if value < self.min[lane] {
            self.min[lane] = value;
        }
        if value > self.max[lane] {
            self.max[lane] = value;
        }
    }

    /// The fewer than four values after the last whole chunk, from lane 0 on.
    #[inline]
    fn add_rest(&mut self, rest: &[f64]) {
        for (lane, &value) in rest.iter().enumerate() {
            self.add(lane, value);
        }
    }

    fn sum(&self) -> f64 {
        (self.sum[0] + self.sum[1]) + (self.sum[2] + self.sum[3])
    }

    /// The least of `start` and the lanes' minima, compared in lane order.
    fn min(&self, start: f64) -> f64 {
        self.min
            .into_iter()
            .fold(start, |a, b| if b < a { b } else { a })
    }

    /// The greatest of `start` and the lanes' maxima, compared in lane order.
    fn max(&self, start: f64) -> f64 {
        self.max
            .into_iter()
            .fold(start, |a, b| if b > a { b } else { a })
    }
}

/// Accumulates one segment; values arrive in time order, so each signal's current bucket is the
/// last one in its list.
///
/// Values are collected per signal and folded in a block at a time: the loops over a block keep
/// their running state in registers, where a call per value spent most of its time loading and
/// storing it; and the statistics of a block come from independent partial sums (see
/// [`block_stats`]), where Welford's update for each value waits ~20 cycles on the previous mean.
#[derive(Debug, Clone)]
pub struct SignalSummaryRun {
    shape: FoldShape,
    signals: Vec<SignalRun>,
}

/// One signal's part of a [`SignalSummaryRun`].
#[derive(Debug, Clone)]
struct SignalRun {
    /// Normal low, normal high, histogram keys.
    band: (Option<f64>, Option<f64>, Quantiser),
    stats: RunningStats,
    trend: Vec<TrendBucket>,
    histogram: Histogram,
    distribution: SignalDistribution,
    /// Values received and not folded in yet, with their times.
    times: Vec<f64>,
    values: Vec<f64>,
}

/// Values per signal folded in at once: long enough to amortise the per-block work, short enough to
/// stay in the L1 cache; the size of the blocks the processor hands over.
const BLOCK: usize = crate::processor::VALUE_BLOCK;

impl SignalSummaryRun {
    pub fn new(processor: &DataProcessor, with_trend: bool, with_distribution: bool) -> Self {
        Self {
            shape: FoldShape {
                trend_bucket_s: processor.trend_bucket_s(),
                with_trend,
                with_distribution,
                max_gap_s: processor.max_gap_s(),
            },
            signals: processor
                .signals()
                .iter()
                .map(|t| SignalRun {
                    band: (t.normal_low, t.normal_high, Quantiser::new(t.resolution)),
                    stats: RunningStats::EMPTY,
                    trend: Vec::new(),
                    histogram: Histogram::default(),
                    distribution: SignalDistribution {
                        resolution: t.resolution,
                        histogram: Vec::new(),
                        below_ms: 0,
                        in_ms: 0,
                        above_ms: 0,
                        first_time_s: None,
                        last: None,
                    },
                    times: Vec::new(),
                    values: Vec::new(),
                })
                .collect(),
        }
    }

    /// Per-signal segment results. Fields mean:
    /// - `signals`: the template's signals that the task carries, in template order, each with stats
    ///   (zeros when `n == 0`) and trend buckets in ascending index order.
    pub fn finish(mut self, processor: &DataProcessor) -> Vec<SignalSegment> {
        for signal in 0..self.signals.len() {
            self.fold_pending(signal);
        }
        processor
            .signals()
            .iter()
            .zip(self.signals)
            .map(|(tally, run)| {
                let mut distribution = run.distribution;
                distribution.histogram = run.histogram.into_sorted();
                SignalSegment {
                    name: tally.name.clone(),
                    stats: run.stats,
                    out_of_range: tally.out_of_range,
                    missing: tally.missing,
                    trend: run.trend,
                    derived: tally.derived,
                    distribution: self.shape.with_distribution.then_some(distribution),
                }
            })
            .collect()
    }

    /// Folds the values collected for `signal` into its statistics, trend and distribution.
    fn fold_pending(&mut self, signal: usize) {
        let Some(run) = self.signals.get_mut(signal) else {
            return;
        };
        let (times, values) = (
            std::mem::take(&mut run.times),
            std::mem::take(&mut run.values),
        );
        self.shape.fold(run, &times, &values);
        (run.times, run.values) = (times, values);
        run.times.clear();
        run.values.clear();
    }
}

/// What a fold computes, the same for every signal of a run.
#[derive(Debug, Clone, Copy)]
struct FoldShape {
    trend_bucket_s: f64,
    with_trend: bool,
    with_distribution: bool,
    max_gap_s: Option<f64>,
}

impl FoldShape {
    /// Folds one block of at most `BLOCK` values (and their times, when anything reads them) into
    /// `run`. Each part is its own loop over the block, without calls or branches on the values that
    /// a processor could mispredict, so that most of them vectorise.
    fn fold(self, run: &mut SignalRun, times: &[f64], values: &[f64]) {
        let Some(block) = block_stats(values) else {
            return;
        };
        run.stats = run.stats.merge(&block);
        if self.with_trend {
            fold_trend(&mut run.trend, self.trend_bucket_s, times, values);
        }
        if self.with_distribution {
            let (low, high, quantiser) = run.band;
            quantiser.count_keys(&mut run.histogram, (block.min, block.max), values);
            fold_time_in_range(
                &mut run.distribution,
                (low, high),
                self.max_gap_s,
                times,
                values,
            );
        }
    }
}

/// Adds a block to the trend: the values of one bucket are one run (times ascend), each folded in
/// [`FourLanes`].
fn fold_trend(trend: &mut Vec<TrendBucket>, width: f64, times: &[f64], values: &[f64]) {
    let mut start = 0;
    while let Some(&first) = times.get(start) {
        let index = bucket_index(first, width);
        let end = start + 1 + bucket_run(&times[start + 1..], index, width);
        let (head, tail) = values[start..end].split_at(1);
        let mut bucket = match trend.last() {
            Some(last) if last.index == index => trend.pop(),
            _ => None,
        }
        .map_or_else(
            || TrendBucket::single(index, head[0]),
            |mut open| {
                open.push(head[0]);
                open
            },
        );
        let lanes = FourLanes::of(tail, bucket.min, bucket.max);
        bucket.n += tail.len() as u64;
        bucket.min = lanes.min(bucket.min);
        bucket.max = lanes.max(bucket.max);
        bucket.sum += lanes.sum();
        trend.push(bucket);
        start = end;
    }
}

/// How many of `times` (ascending, each in bucket `index` or a later one) lie in bucket `index`.
/// The next bucket starts near `(index + 1) × width`: bisection on that product needs no division
/// per probe, and `bucket_index` itself then settles the times within rounding of the edge, so
/// the count is exactly the times whose `bucket_index` is `index`.
fn bucket_run(times: &[f64], index: i64, width: f64) -> usize {
    let edge = index.saturating_add(1) as f64 * width;
    let mut end = times.partition_point(|&t| t < edge);
    while end > 0 && bucket_index(times[end - 1], width) != index {
        end -= 1;
    }
    while end < times.len() && bucket_index(times[end], width) == index {
        end += 1;
    }
    end
}

/// The shortest and the longest interval between consecutive `times` (infinite ones when there
/// are fewer than two), in four independent lanes like `block_stats`.
fn span_extremes(times: &[f64]) -> (f64, f64) {
    let (Some(earlier), Some(later)) = (times.get(..times.len().saturating_sub(1)), times.get(1..))
    else {
        return (f64::INFINITY, f64::NEG_INFINITY);
    };
    let (mut shortest, mut longest) = ([f64::INFINITY; 4], [f64::NEG_INFINITY; 4]);
    let mut widen = |lane: usize, span: f64| {
        if span < shortest[lane] {
            shortest[lane] = span;
        }
        if span > longest[lane] {
            longest[lane] = span;
        }
    };
    let (earlier4, later4) = (earlier.chunks_exact(4), later.chunks_exact(4));
    let rest = earlier4.remainder().iter().zip(later4.remainder());
    for (a, b) in earlier4.zip(later4) {
        for lane in 0..4 {
            widen(lane, b[lane] - a[lane]);
        }
    }
    for (lane, (a, b)) in rest.enumerate() {
        widen(lane, b - a);
    }
    let least = shortest
        .into_iter()
        .fold(f64::INFINITY, |a, b| if b < a { b } else { a });
    let most = longest
        .into_iter()
        .fold(f64::NEG_INFINITY, |a, b| if b > a { b } else { a });
    (least, most)
}

/// The milliseconds in all, below the normal range and above it, each sample counting its span:
/// sums of masked values rather than a branch on the band per sample.
#[inline]
fn banded_sums(
    spans_ms: impl Iterator<Item = u64>,
    values: &[f64],
    (low, high): (f64, f64),
) -> (u64, u64, u64) {
    let (mut total, mut below, mut above) = (0_u64, 0_u64, 0_u64);
    for (ms, &value) in spans_ms.zip(values) {
        total += ms;
        below += if value < low { ms } else { 0 };
        above += if value >= low && value > high { ms } else { 0 };
    }
    (total, below, above)
}

/// [`banded_sums`] of the spans between consecutive `times` capped at `cap_s`, each rounded to whole
/// milliseconds as [`span_ms`] does, for spans that [`whole_ms_fit_i32`] found within ±2^30 ms.
/// Two loops over slices (the whole milliseconds, then sums of masked values) rather than one over
/// windows of the times with a branch per sample: LLVM vectorises both.
#[cfg(not(target_arch = "wasm32"))]
fn jittered_banded_sums(
    times: &[f64],
    counted: &[f64],
    cap_s: f64,
    band: (f64, f64),
) -> (u64, u64, u64) {
    let mut whole_ms = [0_u32; BLOCK];
    let whole_ms = &mut whole_ms[..counted.len()];
    for ((ms, &earlier), &later) in whole_ms.iter_mut().zip(times).zip(&times[1..]) {
        *ms = span_ms_small(later - earlier, cap_s);
    }
    banded_sums(whole_ms.iter().map(|&ms| u64::from(ms)), counted, band)
}

/// [`jittered_banded_sums`] in WebAssembly SIMD, two samples at a time and without leaving `f64`:
/// LLVM's vector loops converted each span to an `i32` one lane at a time (V8 took the time in
/// range at about twice the native time). Truncation, the fraction and its comparisons with ±0.5
/// are those of [`round_small_to_i32`], so each span's whole milliseconds are the same; as `f64`
/// they are integers below 2^30, and a block's sums of them (below 2^39) are exact, so the same
/// integers in any order.
#[cfg(target_arch = "wasm32")]
fn jittered_banded_sums(
    times: &[f64],
    counted: &[f64],
    cap_s: f64,
    (low, high): (f64, f64),
) -> (u64, u64, u64) {
    use core::arch::wasm32::{
        f64x2, f64x2_add, f64x2_extract_lane, f64x2_ge, f64x2_gt, f64x2_le, f64x2_lt, f64x2_mul,
        f64x2_pmax, f64x2_pmin, f64x2_splat, f64x2_sub, f64x2_trunc, v128, v128_and,
    };
    let (cap, thousand, one, zero) = (
        f64x2_splat(cap_s),
        f64x2_splat(1000.0),
        f64x2_splat(1.0),
        f64x2_splat(0.0),
    );
    let (half, minus_half) = (f64x2_splat(0.5), f64x2_splat(-0.5));
    let (low_v, high_v) = (f64x2_splat(low), f64x2_splat(high));
    let (mut total, mut below, mut above) = (zero, zero, zero);
    let earlier = times.chunks_exact(2);
    let later = times[1..].chunks_exact(2);
    let values = counted.chunks_exact(2);
    let rest = values.remainder();
    for ((earlier, later), values) in earlier.zip(later).zip(values) {
        let span = f64x2_sub(f64x2(later[0], later[1]), f64x2(earlier[0], earlier[1]));
        // `pmin(cap, span)` is `span < cap ? span : cap`, the scalar cap.
        let ms = f64x2_mul(f64x2_pmin(cap, span), thousand);
        let whole = f64x2_trunc(ms);
        let fraction = f64x2_sub(ms, whole);
        let up = v128_and(f64x2_ge(fraction, half), one);
        let down = v128_and(f64x2_le(fraction, minus_half), one);
        // `pmax(0, x)` is `0 < x ? x : 0`: the scalar `.max(0)`, and a rounded −0 becomes +0.
        let ms = f64x2_pmax(zero, f64x2_sub(f64x2_add(whole, up), down));
        let value = f64x2(values[0], values[1]);
        let is_below = f64x2_lt(value, low_v);
        let is_above = v128_and(f64x2_ge(value, low_v), f64x2_gt(value, high_v));
        total = f64x2_add(total, ms);
        below = f64x2_add(below, v128_and(ms, is_below));
        above = f64x2_add(above, v128_and(ms, is_above));
    }
    let whole = |sum: v128| (f64x2_extract_lane::<0>(sum) + f64x2_extract_lane::<1>(sum)) as u64;
    let (total, below, above) = (whole(total), whole(below), whole(above));
    let done = counted.len() - rest.len();
    let spans_ms = times[done..]
        .windows(2)
        .map(|pair| u64::from(span_ms_small(pair[1] - pair[0], cap_s)));
    let (rest_total, rest_below, rest_above) = banded_sums(spans_ms, rest, (low, high));
    (total + rest_total, below + rest_below, above + rest_above)
}

/// [`span_ms`] of a span whose whole milliseconds, capped at `cap_s`, fit an `i32`.
#[inline]
fn span_ms_small(span: f64, cap_s: f64) -> u32 {
    let span_ms = (if span < cap_s { span } else { cap_s }) * 1000.0;
    round_small_to_i32(span_ms).max(0).unsigned_abs()
}

/// The cap on a span (`max_gap_s`, or infinity) when every span between `shortest` and `longest`
/// (finite), capped, is within ±2^30 ms, so its whole milliseconds fit an `i32`; else `None`.
fn whole_ms_fit_i32(shortest: f64, longest: f64, max_gap_s: Option<f64>) -> Option<f64> {
    const LIMIT_MS: f64 = (1 << 30) as f64;
    // Times are finite (the processor refuses a task with a non-finite time), so spans are finite
    // or, past f64's range, infinite and then beyond the limit; finite spans capped at infinity
    // are the spans themselves, as `span_ms` leaves them.
    let cap_s = max_gap_s.unwrap_or(f64::INFINITY);
    let capped = |span: f64| if span < cap_s { span } else { cap_s };
    (capped(shortest) * 1000.0 > -LIMIT_MS && capped(longest) * 1000.0 < LIMIT_MS).then_some(cap_s)
}

/// Credits each sample of a block with the time until the next one, in its band of the normal
/// range; the block's last sample stays open until the next block's first.
fn fold_time_in_range(
    distribution: &mut SignalDistribution,
    (low, high): (Option<f64>, Option<f64>),
    max_gap_s: Option<f64>,
    times: &[f64],
    values: &[f64],
) {
    // Values are finite, so an open end of the normal range never classifies one.
    let (low, high) = (
        low.unwrap_or(f64::NEG_INFINITY),
        high.unwrap_or(f64::INFINITY),
    );
    let band_of = |value: f64| {
        if value < low {
            RangeBand::Below
        } else if value > high {
            RangeBand::Above
        } else {
            RangeBand::In
        }
    };
    let (Some(&first), Some(&last), Some(&last_value)) =
        (times.first(), times.last(), values.last())
    else {
        return;
    };
    distribution.first_time_s.get_or_insert(first);
    let mut spans = [0_u64; 3];
    if let Some(open) = distribution.last {
        spans[slot(open.band)] += interval_ms(open.time_s, first, max_gap_s);
    }
    // A value below the range is not also above it, whatever the template says of low and high.
    // Every sample but the last counts until the next one. Regularly sampled data (nearly all of
    // it) gives every sample the same whole milliseconds: when the shortest and the longest span of
    // the block round to the same figure, all of them do (the rounding never decreases with the
    // span), and the sums are that figure times counts, which vectorise.
    let counted = &values[..values.len() - 1];
    let (shortest, longest) = span_extremes(times);
    // A signal without a normal range (an ECG lead) has every sample in it.
    let open_range = low == f64::NEG_INFINITY && high == f64::INFINITY;
    let (total, below, above) = if counted.is_empty() {
        (0, 0, 0)
    } else if span_ms(shortest, max_gap_s) == span_ms(longest, max_gap_s) {
        let ms = span_ms(shortest, max_gap_s);
        let (below, above) = if open_range {
            (0, 0)
        } else {
            let below = counted
                .iter()
                .map(|&value| u64::from(value < low))
                .sum::<u64>();
            let above = counted
                .iter()
                .map(|&value| u64::from(value >= low && value > high))
                .sum::<u64>();
            (below, above)
        };
        (ms * counted.len() as u64, ms * below, ms * above)
    } else if counted.len() <= BLOCK
        && let Some(cap_s) = whole_ms_fit_i32(shortest, longest, max_gap_s)
    {
        // Jittered sampling (a monitor's clock; nearly every vitals log): every span, capped, is
        // under 2^30 ms, so `span_ms` rounds in 32 bits — the same whole milliseconds, without
        // the 64-bit conversion and the out-of-range branch.
        jittered_banded_sums(times, counted, cap_s, (low, high))
    } else {
        let spans_ms = times
            .windows(2)
            .map(|pair| interval_ms(pair[0], pair[1], max_gap_s));
        banded_sums(spans_ms, counted, (low, high))
    };
    spans[0] += below;
    spans[1] += total - below - above;
    spans[2] += above;
    distribution.below_ms += spans[0];
    distribution.in_ms += spans[1];
    distribution.above_ms += spans[2];
    distribution.last = Some(LastSample {
        time_s: last,
        band: band_of(last_value),
    });
}

impl ValueSink for SignalSummaryRun {
    /// One value at a time, as a multi-signal row visit gives them: a push, and a fold when a block
    /// is full (the same blocks `valid_values` makes).
    fn valid_value(&mut self, signal: usize, time_s: f64, value: f64) {
        let needs_times = self.shape.with_trend || self.shape.with_distribution;
        let Some(run) = self.signals.get_mut(signal) else {
            return;
        };
        if needs_times {
            run.times.push(time_s);
        }
        run.values.push(value);
        if run.values.len() >= BLOCK {
            self.fold_pending(signal);
        }
    }

    /// Folds exactly every `BLOCK` values, wherever the blocks handed in begin and end: the
    /// statistics' last bits depend on the grouping, and a browser slices the work differently
    /// from a native run, whose results must be the same bytes. A whole block handed in while
    /// nothing is held is folded where it lies, without a copy.
    fn valid_values(&mut self, signal: usize, times_s: &[f64], values: &[f64]) {
        // Times are only read by the trend and the time in range; the statistics need values alone.
        let needs_times = self.shape.with_trend || self.shape.with_distribution;
        let mut start = 0;
        while start < values.len() {
            let Some(run) = self.signals.get_mut(signal) else {
                return;
            };
            if run.values.is_empty() && values.len() - start >= BLOCK {
                let end = start + BLOCK;
                let times = if needs_times {
                    &times_s[start..end]
                } else {
                    &[]
                };
                self.shape.fold(run, times, &values[start..end]);
                start = end;
                continue;
            }
            let end = values.len().min(start + BLOCK - run.values.len());
            if needs_times {
                run.times.extend_from_slice(&times_s[start..end]);
            }
            run.values.extend_from_slice(&values[start..end]);
            if run.values.len() >= BLOCK {
                self.fold_pending(signal);
            }
            start = end;
        }
    }
}

/// The base of a job's analysis — counts, duration and the per-signal summaries — folded from its
/// segments one at a time, in segment order (the caller has checked the bucket width).
pub(super) struct SummaryMerge {
    /// One per template signal, in template order.
    signals: Vec<SignalMerge>,
    segments: u32,
    rows: u64,
    duplicates_removed: u64,
    out_of_order: u64,
    /// First and last timestamps of the segments that had rows.
    span: Option<(f64, f64)>,
}

/// One signal's parts so far.
struct SignalMerge {
    /// Whether any segment reported the signal (only those are summarised).
    present: bool,
    stats: RunningStats,
    out_of_range: u64,
    missing: u64,
    derived: u64,
    /// BTreeMap: segments may share a boundary bucket, and iteration comes out in index order.
    buckets: BTreeMap<i64, TrendBucket>,
    histogram: BTreeMap<i64, u64>,
    with_distribution: bool,
    resolution: f64,
    /// Milliseconds below, in and above the normal range.
    times_ms: [u64; 3],
    /// The last sample so far, whose interval ends at the next segment's first sample.
    pending: Option<LastSample>,
}

impl SummaryMerge {
    pub(super) fn new(template: &Template) -> Self {
        Self {
            signals: template
                .signals
                .iter()
                .map(|rule| SignalMerge {
                    present: false,
                    stats: RunningStats::EMPTY,
                    out_of_range: 0,
                    missing: 0,
                    derived: 0,
                    buckets: BTreeMap::new(),
                    histogram: BTreeMap::new(),
                    with_distribution: false,
                    resolution: rule.resolution,
                    times_ms: [0; 3],
                    pending: None,
                })
                .collect(),
            segments: 0,
            rows: 0,
            duplicates_removed: 0,
            out_of_order: 0,
            span: None,
        }
    }

    /// Folds in the next segment. A signal the template does not know is refused before any of
    /// the segment is taken.
    pub(super) fn add(
        &mut self,
        template: &Template,
        segment: &SegmentResult,
    ) -> Result<(), MergeError> {
        let mut positions = Vec::with_capacity(segment.signals.len());
        for part in &segment.signals {
            let position = template
                .signals
                .iter()
                .position(|rule| rule.name == part.name)
                .ok_or_else(|| MergeError::UnknownSignal(part.name.clone()))?;
            positions.push(position);
        }
        let max_gap_s = template.gap_limit_s();
        for (part, position) in segment.signals.iter().zip(positions) {
            self.signals[position].add(part, max_gap_s);
        }
        self.segments = self.segments.saturating_add(1);
        self.rows += segment.rows;
        self.duplicates_removed += segment.duplicates_removed;
        self.out_of_order += segment.out_of_order;
        if segment.rows > 0 {
            self.span = Some(match self.span {
                Some((first, last)) => (
                    first.min(segment.first_time_s),
                    last.max(segment.last_time_s),
                ),
                None => (segment.first_time_s, segment.last_time_s),
            });
        }
        Ok(())
    }

    pub(super) fn finish(
        self,
        template: &Template,
        algorithm: String,
        trend_bucket_s: f64,
    ) -> Analysis {
        let signals = template
            .signals
            .iter()
            .zip(self.signals)
            .filter(|(_, merged)| merged.present)
            .map(|(rule, merged)| merged.finish(rule, trend_bucket_s))
            .collect();
        Analysis {
            algorithm,
            segments: self.segments,
            rows: self.rows,
            duplicates_removed: self.duplicates_removed,
            out_of_order: self.out_of_order,
            duration_s: self.span.map_or(0.0, |(first, last)| last - first),
            signals,
            quality: None,
            alerts: None,
            news2: None,
            ecg: None,
        }
    }
}

impl SignalMerge {
    fn add(&mut self, part: &SignalSegment, max_gap_s: Option<f64>) {
        self.present = true;
        self.stats = self.stats.merge(&part.stats);
        self.out_of_range += part.out_of_range;
        self.missing += part.missing;
        self.derived += part.derived;
        for bucket in &part.trend {
            self.buckets
                .entry(bucket.index)
                .and_modify(|merged| merged.absorb(bucket))
                .or_insert(*bucket);
        }
        if let Some(distribution) = &part.distribution {
            self.with_distribution = true;
            self.resolution = distribution.resolution;
            for &(key, count) in &distribution.histogram {
                *self.histogram.entry(key).or_insert(0) += count;
            }
            if let (Some(open), Some(first)) = (self.pending, distribution.first_time_s) {
                self.times_ms[slot(open.band)] += interval_ms(open.time_s, first, max_gap_s);
            }
            self.times_ms[0] += distribution.below_ms;
            self.times_ms[1] += distribution.in_ms;
            self.times_ms[2] += distribution.above_ms;
            if distribution.last.is_some() {
                self.pending = distribution.last;
            }
        }
    }

    fn finish(self, rule: &SignalRule, trend_bucket_s: f64) -> SignalSummary {
        let mut trend = Trend::default();
        for bucket in self.buckets.values() {
            trend.time_s.push(bucket.index as f64 * trend_bucket_s);
            trend.min.push(bucket.min);
            trend.mean.push(bucket.sum / bucket.n as f64);
            trend.max.push(bucket.max);
        }
        let histogram: Vec<(i64, u64)> = self.histogram.into_iter().collect();
        let resolution = self.resolution;
        let percentiles = (|| {
            Some(Percentiles {
                p5: percentile(&histogram, 5, resolution)?,
                median: percentile(&histogram, 50, resolution)?,
                p95: percentile(&histogram, 95, resolution)?,
            })
        })();
        let stats = self.stats;
        let seen = stats.n > 0;
        let times = self.times_ms;
        SignalSummary {
            name: rule.name.clone(),
            unit: rule.unit.clone(),
            n: stats.n,
            mean: seen.then_some(stats.mean),
            sd: stats.sample_sd(),
            min: seen.then_some(stats.min),
            max: seen.then_some(stats.max),
            out_of_range: self.out_of_range,
            missing: self.missing,
            trend,
            derived: self.derived,
            percentiles,
            time_in_range: (self.with_distribution && seen).then(|| TimeInRange {
                normal_low: rule.normal_low,
                normal_high: rule.normal_high,
                below_s: times[0] as f64 / 1000.0,
                in_s: times[1] as f64 / 1000.0,
                above_s: times[2] as f64 / 1000.0,
            }),
        }
    }
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
    use proptest::prelude::*;

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

    #[test]
    fn fast_round_and_floor_equal_the_standard_ones() {
        let tricky = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -2.5,
            0.499_999_999_999_999_94,
            -0.499_999_999_999_999_94,
            2.675,
            -7.000_000_000_000_001,
            1e-300,
            -1e-300,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            4_503_599_627_370_497.0,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let mut x = 0.123_f64;
        let steps = (0..2000).map(|_| {
            x = -x * 1.37 + 0.011;
            x
        });
        for v in tricky.into_iter().chain(steps) {
            assert_eq!(round_to_i64(v), v.round() as i64, "round {v}");
            assert_eq!(floor_to_i64(v), v.floor() as i64, "floor {v}");
        }
    }

    #[test]
    fn histogram_counts_like_a_sorted_map_near_and_far() {
        let mut histogram = Histogram::default();
        let mut reference: BTreeMap<i64, u64> = BTreeMap::new();
        let mut k: i64 = 7;
        let far = [i64::MIN, i64::MAX, -70_000, 70_000, 200_000, -5, 65_600];
        for step in 0..20_000_i64 {
            // A slow random walk that widens the run both ways, plus the odd far-out key.
            k += (step * 7919 % 13) - 6;
            let key = if step % 997 == 0 {
                far[(step / 997) as usize % far.len()]
            } else {
                k
            };
            histogram.add(key);
            *reference.entry(key).or_insert(0) += 1;
        }
        assert_eq!(
            histogram.into_sorted(),
            reference.into_iter().collect::<Vec<_>>()
        );
    }

    /// The distribution of a block as the per-value definitions give it: one key per value, each
    /// sample credited until the next one.
    fn distribution_by_definition(
        band: (Option<f64>, Option<f64>),
        resolution: f64,
        max_gap_s: Option<f64>,
        times: &[f64],
        values: &[f64],
    ) -> (Vec<(i64, u64)>, [u64; 3]) {
        let mut histogram: BTreeMap<i64, u64> = BTreeMap::new();
        for &value in values {
            *histogram
                .entry(histogram_key(value, resolution))
                .or_insert(0) += 1;
        }
        let mut spans = [0; 3];
        for (pair, &value) in times.windows(2).zip(values) {
            let in_band = if band.0.is_some_and(|low| value < low) {
                0
            } else if band.1.is_some_and(|high| value > high) {
                2
            } else {
                1
            };
            spans[in_band] += interval_ms(pair[0], pair[1], max_gap_s);
        }
        (histogram.into_iter().collect(), spans)
    }

    /// The distribution of a block as `FoldShape::fold` computes it.
    fn distribution_by_fold(
        band: (Option<f64>, Option<f64>),
        resolution: f64,
        max_gap_s: Option<f64>,
        times: &[f64],
        values: &[f64],
    ) -> (Vec<(i64, u64)>, [u64; 3]) {
        let shape = FoldShape {
            trend_bucket_s: 1.0,
            with_trend: false,
            with_distribution: true,
            max_gap_s,
        };
        let mut run = SignalRun {
            band: (band.0, band.1, Quantiser::new(resolution)),
            stats: RunningStats::EMPTY,
            trend: Vec::new(),
            histogram: Histogram::default(),
            distribution: SignalDistribution {
                resolution,
                histogram: Vec::new(),
                below_ms: 0,
                in_ms: 0,
                above_ms: 0,
                first_time_s: None,
                last: None,
            },
            times: Vec::new(),
            values: Vec::new(),
        };
        shape.fold(&mut run, times, values);
        let spans = [
            run.distribution.below_ms,
            run.distribution.in_ms,
            run.distribution.above_ms,
        ];
        (run.histogram.into_sorted(), spans)
    }

    proptest! {
        /// `bucket_run` finds where a bucket ends as a division per time would, also for times
        /// within rounding of a bucket's edge (multiples of the width, a step of an ulp apart).
        #[test]
        fn a_bucket_run_ends_where_the_bucket_index_changes(
            width in prop_oneof![Just(0.1), Just(0.3), Just(1.0 / 3.0), Just(86.4), 0.001..1000.0_f64],
            first_edge in 0_u32..100_000,
            offsets in prop::collection::vec((0_u32..4, -2_i32..3), 1..60),
        ) {
            // Times at or next to bucket edges, ascending.
            let mut times: Vec<f64> = offsets
                .iter()
                .scan(first_edge, |edge, &(step, ulps)| {
                    *edge += step;
                    let at = f64::from(*edge) * width;
                    let bits = at.to_bits() as i64 + i64::from(ulps);
                    Some(f64::from_bits(bits.max(0) as u64))
                })
                .collect();
            times.sort_by(f64::total_cmp);
            for start in 0..times.len() {
                let index = bucket_index(times[start], width);
                let rest = &times[start + 1..];
                let expected = rest.iter().take_while(|&&t| bucket_index(t, width) == index).count();
                prop_assert_eq!(bucket_run(rest, index, width), expected);
            }
        }
    }

    proptest! {
        /// The block fold's shortcuts (keys in 32 bits, equal spans counted at once) give exactly
        /// what the per-value definitions give: on regular sampling, where the shortcuts apply, and
        /// on jittered times and values too large for 32-bit keys, where they must not.
        #[test]
        fn a_folded_block_counts_as_the_definitions_do(
            start in 0.0..100_000.0_f64,
            period in prop_oneof![Just(0.001), Just(0.004), Just(1.0), Just(0.3)],
            jitter in prop::collection::vec(prop_oneof![3 => Just(0.0), 1 => -0.4..0.4_f64], 1..BLOCK),
            values in prop::collection::vec(prop_oneof![-5.0..5.0_f64, 40.0..200.0_f64, -1e13..1e13_f64], BLOCK),
            resolution in prop_oneof![Just(0.001), Just(0.1), Just(1.0), Just(0.25), Just(5.0)],
            band in (prop::option::of(-1.0..100.0_f64), prop::option::of(0.0..150.0_f64)),
            max_gap_s in prop::option::of(0.5..2.0_f64),
        ) {
            let times: Vec<f64> = jitter
                .iter()
                .enumerate()
                .scan(start, |time, (i, &jitter)| {
                    *time += if i == 0 { 0.0 } else { period * (1.0 + jitter) };
                    Some(*time)
                })
                .collect();
            let values = &values[..times.len()];
            prop_assert_eq!(
                distribution_by_fold(band, resolution, max_gap_s, &times, values),
                distribution_by_definition(band, resolution, max_gap_s, &times, values)
            );
        }
    }
}
