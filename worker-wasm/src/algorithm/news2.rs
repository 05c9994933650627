//! `news2`: the National Early Warning Score 2 (Royal College of Physicians, 2017) over time.
//!
//! Scored parameters: respiration rate, SpO2 (scale 1), systolic BP, pulse and temperature;
//! consciousness is assumed Alert and the patient on air (both score 0). At every moment each
//! parameter contributes its latest value measured within the last `window_s` (default 5 min); a
//! moment is scored when at least `min_parameters` (default 3) are current, with the aggregate
//! of those present.
//!
//! Non-integer inputs: RR, SpO2, SBP and pulse are rounded to the nearest whole number (halves
//! away from zero) before banding, temperature to the nearest 0.1 °C — the resolutions of the
//! chart's bands — so 20.4 /min scores as 20 and 38.04 °C as 38.0.
//!
//! Bands: *high* at an aggregate ≥ 7, *medium* at 5–6, *low-medium* at 0–4 with any single
//! parameter scoring 3 (the "red score"), otherwise *low*.
//!
//! Mergeable: a segment sends, per parameter, runs of equal sub-scores (a run breaks when the score
//! changes or samples are more than the window apart); the merge joins runs across cuts with the
//! same rule and computes the aggregate as a step function in whole milliseconds, so band times
//! are exact sums.

use super::summary::round_to_i64;
use crate::analysis::{
    News2Band, News2BandTimes, News2Parameter, News2Report, News2Segment, News2Series,
    SegmentResult, SubscoreRun, SubscoreRuns,
};
use crate::processor::{DataProcessor, ValueSink};
use crate::template::Template;

impl News2Parameter {
    pub const ALL: [Self; 5] = [
        Self::RespirationRate,
        Self::Spo2Scale1,
        Self::SystolicBp,
        Self::Pulse,
        Self::Temperature,
    ];

    /// The template signal the parameter is read from.
    pub fn signal(self) -> &'static str {
        match self {
            Self::RespirationRate => "rr",
            Self::Spo2Scale1 => "spo2",
            Self::SystolicBp => "sbp",
            Self::Pulse => "hr",
            Self::Temperature => "temp",
        }
    }

    /// The parameter's NEWS2 sub-score (0–3) for a measured value. Inlined, so that a loop over
    /// one parameter's values matches on the parameter once (see `extend_block`).
    #[inline]
    pub fn score(self, value: f64) -> u8 {
        // `round_to_i64` rounds as `f64::round` does, without the call into libm that `round` is
        // on wasm32 (once per value of every vital sign).
        let whole = round_to_i64(value);
        match self {
            Self::RespirationRate => match whole {
                ..=8 => 3,
                9..=11 => 1,
                12..=20 => 0,
                21..=24 => 2,
                25.. => 3,
            },
            Self::Spo2Scale1 => match whole {
                ..=91 => 3,
                92..=93 => 2,
                94..=95 => 1,
                96.. => 0,
            },
            Self::SystolicBp => match whole {
                ..=90 => 3,
                91..=100 => 2,
                101..=110 => 1,
                111..=219 => 0,
                220.. => 3,
            },
            Self::Pulse => match whole {
                ..=40 => 3,
                41..=50 => 1,
                51..=90 => 0,
                91..=110 => 1,
                111..=130 => 2,
                131.. => 3,
            },
            Self::Temperature => match round_to_i64(value * 10.0) {
                ..=350 => 3,
                351..=360 => 1,
                361..=380 => 0,
                381..=390 => 1,
                391.. => 2,
            },
        }
    }

    /// The chart's bands as comparisons on the unrounded value: sub-score `scores[i]` below
    /// `bounds[i]` (and at or above the bound before it), `scores[bounds.len()]` from the last
    /// bound on. A bound is a whole number plus a half (a tenth of a degree plus a half for
    /// temperature, compared with the value × 10), where rounding half away from zero moves to
    /// the next whole number, so `value < bound` is `round(value) <= bound - 0.5` exactly.
    #[cfg(any(target_arch = "wasm32", test))]
    fn bands(self) -> (&'static [f64], &'static [u8]) {
        match self {
            Self::RespirationRate => (&[8.5, 11.5, 20.5, 24.5], &[3, 1, 0, 2, 3]),
            Self::Spo2Scale1 => (&[91.5, 93.5, 95.5], &[3, 2, 1, 0]),
            Self::SystolicBp => (&[90.5, 100.5, 110.5, 219.5], &[3, 2, 1, 0, 3]),
            Self::Pulse => (&[40.5, 50.5, 90.5, 110.5, 130.5], &[3, 1, 0, 1, 2, 3]),
            Self::Temperature => (&[350.5, 360.5, 380.5, 390.5], &[3, 1, 0, 1, 2]),
        }
    }
}

impl News2Band {
    /// The clinical risk band of an aggregate score, given whether any parameter scored 3.
    pub fn of(aggregate: u32, any_red: bool) -> Self {
        match aggregate {
            7.. => Self::High,
            5..=6 => Self::Medium,
            _ if any_red => Self::LowMedium,
            _ => Self::Low,
        }
    }
}

/// Accumulates the sub-score runs of one segment.
#[derive(Debug, Clone)]
pub struct News2Run {
    window_s: f64,
    /// NEWS2 parameter per processor signal.
    parameter_of: Vec<Option<News2Parameter>>,
    runs: Vec<SubscoreRuns>,
}

impl News2Run {
    pub fn new(processor: &DataProcessor) -> Self {
        let parameter_of: Vec<Option<News2Parameter>> = processor
            .signals()
            .iter()
            .map(|tally| {
                News2Parameter::ALL
                    .into_iter()
                    .find(|p| p.signal() == tally.name)
            })
            .collect();
        let mut present: Vec<News2Parameter> = parameter_of.iter().flatten().copied().collect();
        present.sort();
        Self {
            window_s: processor.params().news2.window_s,
            parameter_of,
            runs: present
                .into_iter()
                .map(|parameter| SubscoreRuns {
                    parameter,
                    runs: Vec::new(),
                })
                .collect(),
        }
    }

    pub fn finish(self) -> News2Segment {
        News2Segment {
            parameters: self.runs,
        }
    }
}

fn extend(runs: &mut Vec<SubscoreRun>, next: SubscoreRun, window_s: f64) {
    match runs.last_mut() {
        Some(open) if open.score == next.score && next.start_s - open.last_s <= window_s => {
            open.last_s = next.last_s;
        }
        _ => runs.push(next),
    }
}

impl ValueSink for News2Run {
    fn valid_value(&mut self, signal: usize, time_s: f64, value: f64) {
        let Some(Some(parameter)) = self.parameter_of.get(signal) else {
            return;
        };
        if let Some(entry) = self.runs.iter_mut().find(|r| r.parameter == *parameter) {
            let sample = SubscoreRun {
                start_s: time_s,
                last_s: time_s,
                score: parameter.score(value),
            };
            extend(&mut entry.runs, sample, self.window_s);
        }
    }

    /// [`ValueSink::valid_value`] for a block, with the parameter looked up once.
    fn valid_values(&mut self, signal: usize, times_s: &[f64], values: &[f64]) {
        let Some(Some(parameter)) = self.parameter_of.get(signal) else {
            return;
        };
        let Some(entry) = self.runs.iter_mut().find(|r| r.parameter == *parameter) else {
            return;
        };
        extend_block(&mut entry.runs, times_s, values, self.window_s, *parameter);
    }
}

/// Adds a block of one parameter's samples to its runs. One arm per parameter, so that each loop
/// scores with its parameter a constant.
#[cfg(not(target_arch = "wasm32"))]
fn extend_block(
    runs: &mut Vec<SubscoreRun>,
    times_s: &[f64],
    values: &[f64],
    window_s: f64,
    parameter: News2Parameter,
) {
    use News2Parameter as P;
    let (t, v) = (times_s, values);
    match parameter {
        P::RespirationRate => extend_scored(runs, t, v, window_s, |x| P::RespirationRate.score(x)),
        P::Spo2Scale1 => extend_scored(runs, t, v, window_s, |x| P::Spo2Scale1.score(x)),
        P::SystolicBp => extend_scored(runs, t, v, window_s, |x| P::SystolicBp.score(x)),
        P::Pulse => extend_scored(runs, t, v, window_s, |x| P::Pulse.score(x)),
        P::Temperature => extend_scored(runs, t, v, window_s, |x| P::Temperature.score(x)),
    }
}

/// Adds a block of one parameter's samples to its runs, `score` giving each sample's sub-score.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn extend_scored(
    runs: &mut Vec<SubscoreRun>,
    times_s: &[f64],
    values: &[f64],
    window_s: f64,
    score: impl Fn(f64) -> u8,
) {
    for (&time_s, &value) in times_s.iter().zip(values) {
        let sample = SubscoreRun {
            start_s: time_s,
            last_s: time_s,
            score: score(value),
        };
        extend(runs, sample, window_s);
    }
}

/// [`extend_block`] scoring a block's values first, in WebAssembly SIMD: V8 ran the rounding
/// (a checked 64-bit conversion per value) and the chain of band comparisons at about 1.4 times
/// the native time.
#[cfg(target_arch = "wasm32")]
fn extend_block(
    runs: &mut Vec<SubscoreRun>,
    times_s: &[f64],
    values: &[f64],
    window_s: f64,
    parameter: News2Parameter,
) {
    use crate::processor::VALUE_BLOCK;
    use News2Parameter as P;
    let mut scores = [0_u8; VALUE_BLOCK];
    for (times_s, values) in times_s.chunks(VALUE_BLOCK).zip(values.chunks(VALUE_BLOCK)) {
        let scores = &mut scores[..values.len()];
        // One arm per parameter, so that each loop compares with its bands as constants.
        match parameter {
            P::RespirationRate => simd128::score(P::RespirationRate, values, scores),
            P::Spo2Scale1 => simd128::score(P::Spo2Scale1, values, scores),
            P::SystolicBp => simd128::score(P::SystolicBp, values, scores),
            P::Pulse => simd128::score(P::Pulse, values, scores),
            P::Temperature => simd128::score(P::Temperature, values, scores),
        }
        for (&time_s, &score) in times_s.iter().zip(scores.iter()) {
            let sample = SubscoreRun {
                start_s: time_s,
                last_s: time_s,
                score,
            };
            extend(runs, sample, window_s);
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use core::arch::wasm32::{
        f64x2, f64x2_lt, f64x2_mul, f64x2_splat, i64x2_add, i64x2_extract_lane, i64x2_splat, v128,
        v128_and,
    };

    use crate::analysis::News2Parameter;

    /// The sub-scores of finite `values`, two at a time, as [`News2Parameter::score`] gives
    /// them: by [`News2Parameter::bands`], the last band's score plus, for every bound a value
    /// lies below, the step down to the band before it (the steps from the value's own band on
    /// add up to its score).
    #[inline(always)]
    pub(super) fn score(parameter: News2Parameter, values: &[f64], scores: &mut [u8]) {
        let (bounds, band_scores) = parameter.bands();
        let banded = |value: v128| match parameter {
            News2Parameter::Temperature => f64x2_mul(value, f64x2_splat(10.0)),
            _ => value,
        };
        let pairs = values.chunks_exact(2);
        let rest = pairs.remainder();
        let mut out = scores.chunks_exact_mut(2);
        for (pair, out) in pairs.zip(&mut out) {
            let value = banded(f64x2(pair[0], pair[1]));
            let mut score = i64x2_splat(i64::from(band_scores[bounds.len()]));
            for (band, &bound) in bounds.iter().enumerate() {
                let step = i64::from(band_scores[band]) - i64::from(band_scores[band + 1]);
                let below = f64x2_lt(value, f64x2_splat(bound));
                score = i64x2_add(score, v128_and(below, i64x2_splat(step)));
            }
            out[0] = i64x2_extract_lane::<0>(score) as u8;
            out[1] = i64x2_extract_lane::<1>(score) as u8;
        }
        for (&value, out) in rest.iter().zip(out.into_remainder()) {
            *out = parameter.score(value);
        }
    }
}

fn ms(time_s: f64) -> i64 {
    round_to_i64(time_s * 1000.0)
}

/// A parameter's sub-score on `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    from_ms: i64,
    to_ms: i64,
    score: u8,
}

/// A job's NEWS2 sub-score runs, folded from its segments one at a time (in time order); the band
/// times and the chart series are computed from them at the end.
#[derive(Debug, Default)]
pub struct News2Merge {
    /// Runs per parameter, in the order of [`News2Parameter::ALL`].
    runs: [Vec<SubscoreRun>; News2Parameter::ALL.len()],
}

impl News2Merge {
    pub fn add(&mut self, template: &Template, segment: &SegmentResult) {
        let window_s = template.params.news2.window_s;
        for entry in segment.news2.iter().flat_map(|section| &section.parameters) {
            let Some(index) = News2Parameter::ALL
                .iter()
                .position(|p| *p == entry.parameter)
            else {
                continue;
            };
            for run in &entry.runs {
                extend(&mut self.runs[index], *run, window_s);
            }
        }
    }

    pub fn finish(self, template: &Template, trend_bucket_s: f64) -> News2Report {
        band_times_and_series(template, self.runs, trend_bucket_s)
    }
}

/// Computes band times and the chart series from the job's runs per parameter.
fn band_times_and_series(
    template: &Template,
    runs: [Vec<SubscoreRun>; News2Parameter::ALL.len()],
    trend_bucket_s: f64,
) -> News2Report {
    let params = &template.params.news2;
    let window_ms = ms(params.window_s).max(0);
    let pieces: Vec<Vec<Piece>> = runs
        .into_iter()
        .map(|runs| {
            // A value holds until the window after its run's last sample, or the next run.
            let mut pieces: Vec<Piece> = Vec::with_capacity(runs.len());
            for (i, run) in runs.iter().enumerate() {
                let mut to_ms = ms(run.last_s) + window_ms;
                if let Some(next) = runs.get(i + 1) {
                    to_ms = to_ms.min(ms(next.start_s));
                }
                let from_ms = ms(run.start_s);
                if to_ms > from_ms {
                    pieces.push(Piece {
                        from_ms,
                        to_ms,
                        score: run.score,
                    });
                }
            }
            pieces
        })
        .collect();

    let mut boundaries: Vec<i64> = pieces
        .iter()
        .flatten()
        .flat_map(|p| [p.from_ms, p.to_ms])
        .collect();
    boundaries.sort_unstable();
    boundaries.dedup();

    let bucket_ms = ms(trend_bucket_s).max(1);
    let mut times_ms = [0i64; 5];
    let (mut max_score, mut max_score_time): (Option<u32>, Option<f64>) = (None, None);
    // Worst score per chart bucket, keyed by bucket index (buckets visited in ascending order).
    let mut buckets: Vec<(i64, Option<(u32, bool)>)> = Vec::new();
    let mut cursor = vec![0usize; pieces.len()];
    for span in boundaries.windows(2) {
        let (from, to) = (span[0], span[1]);
        let (mut current, mut aggregate, mut any_red) = (0u32, 0u32, false);
        for (parameter, list) in pieces.iter().enumerate() {
            while cursor[parameter] < list.len() && list[cursor[parameter]].to_ms <= from {
                cursor[parameter] += 1;
            }
            if let Some(piece) = list.get(cursor[parameter]) {
                if piece.from_ms <= from {
                    current += 1;
                    aggregate += u32::from(piece.score);
                    any_red |= piece.score == 3;
                }
            }
        }
        let scored = current >= params.min_parameters.max(1);
        let slot = if !scored {
            0
        } else {
            match News2Band::of(aggregate, any_red) {
                News2Band::Low => 1,
                News2Band::LowMedium => 2,
                News2Band::Medium => 3,
                News2Band::High => 4,
            }
        };
        times_ms[slot] += to - from;
        if scored && max_score.is_none_or(|max| aggregate > max) {
            max_score = Some(aggregate);
            max_score_time = Some(from as f64 / 1000.0);
        }
        let first_bucket = from.div_euclid(bucket_ms);
        let last_bucket = (to - 1).div_euclid(bucket_ms);
        for index in first_bucket..=last_bucket {
            let value = scored.then_some((aggregate, any_red));
            match buckets.last_mut() {
                Some((last, worst)) if *last == index => {
                    if let Some((score, red)) = value {
                        if worst.is_none_or(|(w, r)| (score, red) > (w, r)) {
                            *worst = Some((score, red));
                        }
                    }
                }
                _ => buckets.push((index, value)),
            }
        }
    }
    let mut series = News2Series::default();
    for (index, worst) in buckets {
        series.time_s.push(index as f64 * trend_bucket_s);
        series.score.push(worst.map(|(score, _)| score));
        series
            .band
            .push(worst.map(|(score, red)| News2Band::of(score, red)));
    }
    let seconds = |slot: usize| times_ms[slot] as f64 / 1000.0;
    News2Report {
        window_s: params.window_s,
        min_parameters: params.min_parameters,
        time_in_band: News2BandTimes {
            unscored_s: seconds(0),
            low_s: seconds(1),
            low_medium_s: seconds(2),
            medium_s: seconds(3),
            high_s: seconds(4),
        },
        max_score,
        max_score_time_s: max_score_time,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use News2Parameter::*;

    /// The bands the WebAssembly build scores by give every finite value the score `score` gives
    /// it: hundredths across each chart, values an ulp either side of each bound, and extremes.
    #[test]
    fn bands_score_every_value_as_the_chart_does() {
        for parameter in News2Parameter::ALL {
            let (bounds, band_scores) = parameter.bands();
            let by_bands = |value: f64| {
                let banded = match parameter {
                    Temperature => value * 10.0,
                    _ => value,
                };
                let band = bounds.iter().position(|&bound| banded < bound);
                band_scores[band.unwrap_or(bounds.len())]
            };
            let hundredths = (-1_000..50_000).map(|n| f64::from(n) / 100.0);
            let at_bounds = bounds.iter().flat_map(|&bound| {
                let bound = match parameter {
                    Temperature => bound / 10.0,
                    _ => bound,
                };
                let bits = bound.to_bits();
                [bits - 2, bits - 1, bits, bits + 1, bits + 2].map(f64::from_bits)
            });
            let extremes = [
                -1e300,
                -0.5,
                -0.0,
                0.0,
                0.5,
                1e15,
                1e300,
                f64::MAX,
                f64::MIN,
            ];
            for value in hundredths.chain(at_bounds).chain(extremes) {
                assert_eq!(
                    by_bands(value),
                    parameter.score(value),
                    "{parameter:?} at {value}"
                );
            }
        }
    }

    fn scores(parameter: News2Parameter, cases: &[(f64, u8)]) {
        for &(value, expected) in cases {
            assert_eq!(
                parameter.score(value),
                expected,
                "{parameter:?} at {value} should score {expected}"
            );
        }
    }

    #[test]
    fn respiration_rate_scores_every_band_edge_of_the_chart() {
        scores(
            RespirationRate,
            &[
                (8.0, 3),
                (9.0, 1),
                (11.0, 1),
                (12.0, 0),
                (20.0, 0),
                (21.0, 2),
                (24.0, 2),
                (25.0, 3),
            ],
        );
    }

    #[test]
    fn spo2_scale_1_scores_every_band_edge_of_the_chart() {
        scores(
            Spo2Scale1,
            &[
                (91.0, 3),
                (92.0, 2),
                (93.0, 2),
                (94.0, 1),
                (95.0, 1),
                (96.0, 0),
                (100.0, 0),
            ],
        );
    }

    #[test]
    fn systolic_bp_scores_every_band_edge_of_the_chart() {
        scores(
            SystolicBp,
            &[
                (90.0, 3),
                (91.0, 2),
                (100.0, 2),
                (101.0, 1),
                (110.0, 1),
                (111.0, 0),
                (219.0, 0),
                (220.0, 3),
            ],
        );
    }

    #[test]
    fn pulse_scores_every_band_edge_of_the_chart() {
        scores(
            Pulse,
            &[
                (40.0, 3),
                (41.0, 1),
                (50.0, 1),
                (51.0, 0),
                (90.0, 0),
                (91.0, 1),
                (110.0, 1),
                (111.0, 2),
                (130.0, 2),
                (131.0, 3),
            ],
        );
    }

    #[test]
    fn temperature_scores_every_band_edge_of_the_chart() {
        scores(
            Temperature,
            &[
                (35.0, 3),
                (35.1, 1),
                (36.0, 1),
                (36.1, 0),
                (38.0, 0),
                (38.1, 1),
                (39.0, 1),
                (39.1, 2),
            ],
        );
    }

    #[test]
    fn non_integer_inputs_are_rounded_to_the_chart_resolution_before_banding() {
        scores(RespirationRate, &[(20.4, 0), (20.6, 2), (8.4, 3), (8.6, 1)]);
        scores(Spo2Scale1, &[(95.4, 1), (95.6, 0)]);
        scores(SystolicBp, &[(90.4, 3), (90.6, 2), (219.4, 0), (219.6, 3)]);
        scores(Pulse, &[(90.4, 0), (90.6, 1), (130.4, 2), (130.6, 3)]);
        scores(
            Temperature,
            &[
                (35.04, 3),
                (35.06, 1),
                (38.04, 0),
                (38.06, 1),
                (39.04, 1),
                (39.06, 2),
            ],
        );
    }

    #[test]
    fn bands_follow_the_aggregate_and_the_red_score_rule() {
        assert_eq!(News2Band::of(0, false), News2Band::Low);
        assert_eq!(News2Band::of(4, false), News2Band::Low);
        assert_eq!(News2Band::of(3, true), News2Band::LowMedium);
        assert_eq!(News2Band::of(4, true), News2Band::LowMedium);
        assert_eq!(News2Band::of(5, false), News2Band::Medium);
        assert_eq!(News2Band::of(6, true), News2Band::Medium);
        assert_eq!(News2Band::of(7, false), News2Band::High);
        assert_eq!(News2Band::of(15, true), News2Band::High);
    }
}
