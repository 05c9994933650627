//! R-peak detection: Pan–Tompkins (1985) pre-processing and decision rules, with the adaptive
//! signal level taken from a sliding ±2 s window instead of a running average, so that every
//! decision depends only on nearby signal and a segment with 3 s of context finds the same peaks
//! as one pass over the whole record.
//!
//! Stages (Pan J, Tompkins WJ. A real-time QRS detection algorithm. IEEE Trans Biomed Eng
//! 1985;32(3):230–236):
//! 0. above about 375 Hz, the record is reduced to about 250 Hz by means of blocks of whole samples
//!    (4 at 1 kHz), aligned to the record's sample index; stages 1–5 run at that rate, which
//!    holds everything they look at (≤ 40 Hz) and costs a fraction of the full rate;
//! 1. band-pass 5–15 Hz (2nd-order Butterworth high- and low-pass, run forwards and backwards,
//!    so there is no group delay to compensate);
//! 2. five-point derivative, squaring, and a centred 150 ms moving-window integration (MWI);
//! 3. candidates: MWI maxima that are the highest point within ±200 ms (the refractory period);
//! 4. a candidate is a QRS when its height exceeds `THRESHOLD_FRACTION` of the local signal
//!    level, the second-highest candidate within ±2 s (the second rather than the first, so one
//!    artefact spike cannot silence its neighbours); within 360 ms of the previous QRS it must also
//!    have at least half that QRS's maximum slope, or it is taken for a T wave;
//! 5. search-back: where an RR interval exceeds 1.66 × the local median RR, the highest candidate
//!    in the gap above half the threshold is added (the lower of Pan–Tompkins' two thresholds);
//! 6. each QRS is moved to the extremum of the raw, full-rate signal within ±75 ms. The polarity
//!    (maximum or minimum) is voted by the QRS complexes within ±2 s, weighted by amplitude, so
//!    that biphasic complexes do not flip between the R and the S wave from one beat to the next.

use std::borrow::Cow;

use super::BeatDetection;
use super::filter::{
    Biquad, Decimated, argmax, argmin, centred_moving_average, filtfilt_pair, median,
};
use super::quality;

const BAND_LOW_HZ: f64 = 5.0;
const BAND_HIGH_HZ: f64 = 15.0;
const INTEGRATION_S: f64 = 0.150;
const REFRACTORY_S: f64 = 0.200;
const T_WAVE_S: f64 = 0.360;
/// Half-width of the window over which the signal level, the RR reference and the polarity vote
/// are taken. It bounds how far a decision can look, so it must stay below the segment context
/// (3 s) minus the filters' settling time.
const LEVEL_HALF_WINDOW_S: f64 = 2.0;
/// Pan–Tompkins' THRESHOLD I1 = NPKI + 0.25 (SPKI − NPKI) with the noise peaks somewhat below the
/// signal peaks; expressed against the signal level alone because the noise level of a 4 s window
/// is not well defined when it holds two or three beats.
const THRESHOLD_FRACTION: f64 = 0.25;
const SEARCH_BACK_RR_FACTOR: f64 = 1.66;
const REFINE_HALF_WINDOW_S: f64 = 0.075;
/// The rate the detector runs at (Pan–Tompkins designed it for 200 Hz): higher rates are reduced
/// to about this by block means before filtering; only the final refinement sees every sample.
const DETECTOR_FS_HZ: f64 = 250.0;
/// The lowest sampling rate at which a 15 Hz low-pass still makes sense.
const MIN_FS_HZ: f64 = 50.0;

/// One MWI maximum that may be a QRS complex.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// Sample index of the MWI maximum (centred integration, so it sits on the QRS).
    at: usize,
    height: f64,
    /// Largest |derivative| within ±75 ms: the QRS slope Pan–Tompkins compare T waves against.
    slope: f64,
    /// Detection threshold from the local signal level.
    threshold: f64,
}

/// See [`super::detect_r_peaks_at`].
pub fn detect(samples: &[f64], fs_hz: f64, first_sample: i64) -> BeatDetection {
    let empty = BeatDetection {
        r_peaks: Vec::new(),
        signal_quality: 0.0,
    };
    if !(fs_hz.is_finite() && fs_hz >= MIN_FS_HZ) {
        return empty;
    }
    let Some(raw) = finite_samples(samples) else {
        return empty;
    };
    if raw.len() < (fs_hz).round() as usize {
        return empty;
    }

    let coarse = Decimated::new(&raw, decimation_factor(fs_hz), first_sample);
    let coarse_hz = fs_hz / coarse.factor() as f64;
    let seconds = |s: f64| (s * coarse_hz).round() as usize;
    // The detector's band and the quality check's, filtered together (one pass, two chains);
    // both reflect one second at the ends.
    let (band, quality_band) = filtfilt_pair(
        &[
            Biquad::butterworth_highpass(BAND_LOW_HZ, coarse_hz),
            Biquad::butterworth_lowpass(BAND_HIGH_HZ, coarse_hz),
        ],
        &quality::band(coarse_hz),
        &coarse.values,
        quality::pad(coarse_hz),
    );
    let slope = five_point_derivative(&band);
    let energy: Vec<f64> = slope.iter().map(|d| d * d).collect();
    let integrated = centred_moving_average(&energy, seconds(INTEGRATION_S / 2.0));

    let mut candidates =
        find_candidates(&integrated, &slope, seconds(REFRACTORY_S), seconds(0.075));
    set_thresholds(
        &mut candidates,
        seconds(LEVEL_HALF_WINDOW_S),
        coarse.values.len(),
    );
    let first_pass = classify(&candidates, seconds(REFRACTORY_S), seconds(T_WAVE_S));
    let qrs = search_back(
        &candidates,
        &first_pass,
        seconds(REFRACTORY_S),
        seconds(T_WAVE_S),
        seconds(LEVEL_HALF_WINDOW_S),
    );
    let centres: Vec<usize> = qrs.iter().map(|&c| candidates[c].at).collect();
    let upright = polarity(
        &band,
        &centres,
        seconds(REFINE_HALF_WINDOW_S),
        seconds(LEVEL_HALF_WINDOW_S),
    );
    let full_rate = |s: f64| (s * fs_hz).round() as usize;
    let r_peaks = refine(
        &raw,
        centres.iter().map(|&c| coarse.centre_of(c)).zip(upright),
        full_rate(REFINE_HALF_WINDOW_S),
        full_rate(REFRACTORY_S),
    );
    let signal_quality = quality::clean_share(&coarse, &quality_band, &r_peaks, fs_hz);
    BeatDetection {
        r_peaks,
        signal_quality,
    }
}

/// Samples per block for the detector's reduced rate: the rate closest to `DETECTOR_FS_HZ`
/// that divides `fs_hz` by a whole number (never below 1). Rounding, rather than flooring, keeps
/// the factor stable when `fs_hz` is estimated from timestamps and lands a hair under 1000 Hz.
fn decimation_factor(fs_hz: f64) -> usize {
    (fs_hz / DETECTOR_FS_HZ).round().max(1.0) as usize
}

/// The samples with each non-finite value replaced by the last finite one (the first finite
/// value before that), so a dropped sample is a flat step rather than a NaN that would poison the
/// filters; `None` when nothing is finite. Borrowed when every sample is finite (the usual case).
fn finite_samples(samples: &[f64]) -> Option<Cow<'_, [f64]>> {
    // A fold rather than `all`, so the check has no early exit and compiles to a vector loop.
    if samples.iter().fold(true, |ok, v| ok & v.is_finite()) {
        return (!samples.is_empty()).then_some(Cow::Borrowed(samples));
    }
    let mut last = *samples.iter().find(|v| v.is_finite())?;
    Some(Cow::Owned(
        samples
            .iter()
            .map(|&v| {
                if v.is_finite() {
                    last = v;
                }
                last
            })
            .collect(),
    ))
}

/// Pan–Tompkins' derivative (2x[n+2] + x[n+1] − x[n−1] − 2x[n−2]) / 8, centred so it adds no
/// delay; the two samples at each end, which lack neighbours, are 0.
fn five_point_derivative(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut d = vec![0.0; n];
    for i in 2..n.saturating_sub(2) {
        d[i] = (2.0 * x[i + 2] + x[i + 1] - x[i - 1] - 2.0 * x[i - 2]) / 8.0;
    }
    d
}

/// Strict local maxima of the MWI that are also its highest point within ±`refractory`.
fn find_candidates(
    integrated: &[f64],
    slope: &[f64],
    refractory: usize,
    slope_half: usize,
) -> Vec<Candidate> {
    let n = integrated.len();
    // The few strict local maxima are checked against their surroundings directly (a comparison
    // usually fails within a few samples), which is cheaper than a running maximum of every sample.
    let highest_around = |i: usize, h: f64| {
        let lo = i.saturating_sub(refractory);
        let hi = (i + refractory + 1).min(n);
        !integrated[i + 1..hi].iter().any(|&v| v > h) && !integrated[lo..i].iter().any(|&v| v > h)
    };
    let mut out = Vec::new();
    for i in 1..n.saturating_sub(1) {
        let h = integrated[i];
        if h > 0.0 && h > integrated[i - 1] && h >= integrated[i + 1] && highest_around(i, h) {
            let lo = i.saturating_sub(slope_half);
            let hi = (i + slope_half + 1).min(n);
            let steepest = slope[lo..hi].iter().fold(0.0_f64, |m, d| m.max(d.abs()));
            out.push(Candidate {
                at: i,
                height: h,
                slope: steepest,
                threshold: 0.0,
            });
        }
    }
    out
}

/// Sets each candidate's threshold from the second-highest candidate within ±`half_window`. Near
/// either end of the `len` samples the window is shifted inwards to keep its full length, so an
/// edge candidate is still weighed against a few beats rather than against itself.
fn set_thresholds(candidates: &mut [Candidate], half_window: usize, len: usize) {
    let mut lo = 0;
    let mut hi = 0;
    for c in 0..candidates.len() {
        let at = candidates[c].at;
        let start = at
            .saturating_sub(half_window)
            .min(len.saturating_sub(2 * half_window + 1));
        let end = start + 2 * half_window;
        while candidates[lo].at < start {
            lo += 1;
        }
        while hi < candidates.len() && candidates[hi].at <= end {
            hi += 1;
        }
        let (mut first, mut second) = (0.0_f64, 0.0_f64);
        for other in &candidates[lo..hi] {
            if other.height > first {
                second = first;
                first = other.height;
            } else if other.height > second {
                second = other.height;
            }
        }
        // A lone candidate in 4 s is measured against itself.
        let level = if second > 0.0 { second } else { first };
        candidates[c].threshold = THRESHOLD_FRACTION * level;
    }
}

/// First pass: candidates above threshold, minus refractory hits and T waves. Returns indices into
/// `candidates`, ascending.
fn classify(candidates: &[Candidate], refractory: usize, t_wave: usize) -> Vec<usize> {
    let mut qrs: Vec<usize> = Vec::new();
    for (c, cand) in candidates.iter().enumerate() {
        if cand.height < cand.threshold {
            continue;
        }
        if let Some(&p) = qrs.last() {
            if !follows_as_qrs(&candidates[p], cand, refractory, t_wave) {
                continue;
            }
        }
        qrs.push(c);
    }
    qrs
}

/// Whether `next` may be a QRS after the QRS `prev`: outside the refractory period, and if within
/// the T-wave window, at least half as steep.
fn follows_as_qrs(prev: &Candidate, next: &Candidate, refractory: usize, t_wave: usize) -> bool {
    let gap = next.at - prev.at;
    gap >= refractory && (gap >= t_wave || next.slope >= 0.5 * prev.slope)
}

/// Adds, in every RR gap longer than 1.66 × the local median RR, the highest candidate that clears
/// half its threshold and could follow the beat before it; repeats inside the two halves of a
/// split gap. The local median is of the first-pass RR intervals lying within ±`half_window` of
/// the gap, so it never depends on beats found by search-back.
fn search_back(
    candidates: &[Candidate],
    first_pass: &[usize],
    refractory: usize,
    t_wave: usize,
    half_window: usize,
) -> Vec<usize> {
    let beats: Vec<usize> = first_pass.iter().map(|&c| candidates[c].at).collect();
    let mut out = Vec::with_capacity(first_pass.len());
    for (k, pair) in first_pass.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        out.push(a);
        let (start, end) = (beats[k], beats[k + 1]);
        // RR interval j runs from beats[j] to beats[j + 1]; both ends ascend, so the intervals
        // inside the window form one run of indices.
        let first = beats.partition_point(|&s| s + half_window < start);
        let past = beats.partition_point(|&e| e <= end + half_window);
        let mut rrs: Vec<f64> = (first..past.saturating_sub(1))
            .filter(|&j| j != k)
            .map(|j| (beats[j + 1] - beats[j]) as f64)
            .collect();
        let Some(reference) = median(&mut rrs) else {
            continue;
        };
        let limit = SEARCH_BACK_RR_FACTOR * reference;
        // Gaps to fill, as (beat before, beat after); the found beats come out in time order
        // because the left half is always examined before the right one.
        let mut stack = vec![(a, b)];
        let mut found = Vec::new();
        while let Some((left, right)) = stack.pop() {
            if ((candidates[right].at - candidates[left].at) as f64) <= limit {
                continue;
            }
            let best = (left + 1..right)
                .filter(|&j| {
                    let cand = &candidates[j];
                    cand.height >= 0.5 * cand.threshold
                        && candidates[right].at - cand.at >= refractory
                        && follows_as_qrs(&candidates[left], cand, refractory, t_wave)
                })
                .fold(None::<usize>, |best, j| match best {
                    Some(b) if candidates[b].height >= candidates[j].height => Some(b),
                    _ => Some(j),
                });
            if let Some(j) = best {
                found.push(j);
                stack.push((j, right));
                stack.push((left, j));
            }
        }
        found.sort_unstable();
        out.extend(found);
    }
    if let Some(&last) = first_pass.last() {
        out.push(last);
    }
    out
}

/// Per QRS centre (indices into `band`): whether its R wave points up. Each complex votes with the
/// band-passed signal's positive minus negative excursion within ±`half` samples; a QRS follows
/// the sum of the votes within ±`vote_half` samples, so that biphasic complexes do not flip
/// between the R and the S wave from one beat to the next.
fn polarity(band: &[f64], centres: &[usize], half: usize, vote_half: usize) -> Vec<bool> {
    let n = band.len();
    let votes: Vec<f64> = centres
        .iter()
        .map(|&c| {
            let (mut top, mut bottom) = (0.0_f64, 0.0_f64);
            for &v in &band[c.saturating_sub(half)..(c + half + 1).min(n)] {
                top = top.max(v);
                bottom = bottom.min(v);
            }
            top + bottom
        })
        .collect();
    let mut lo_vote = 0;
    let mut hi_vote = 0;
    centres
        .iter()
        .map(|&c| {
            while centres[lo_vote] + vote_half < c {
                lo_vote += 1;
            }
            while hi_vote < centres.len() && centres[hi_vote] <= c + vote_half {
                hi_vote += 1;
            }
            votes[lo_vote..hi_vote].iter().sum::<f64>() >= 0.0
        })
        .collect()
}

/// Moves each QRS, given as (sample index, upright), to the raw signal's maximum (upright) or
/// minimum within ±`half` samples, at the full sampling rate. Peaks closer than `refractory` to
/// the previous one (two complexes refined onto one wave) are dropped.
fn refine(
    raw: &[f64],
    qrs: impl Iterator<Item = (usize, bool)>,
    half: usize,
    refractory: usize,
) -> Vec<usize> {
    let mut peaks: Vec<usize> = Vec::with_capacity(qrs.size_hint().0);
    for (c, upright) in qrs {
        let (lo, hi) = (c.saturating_sub(half), c + half + 1);
        let found = if upright {
            argmax(raw, lo, hi)
        } else {
            argmin(raw, lo, hi)
        };
        let Some(peak) = found else { continue };
        if peaks.last().is_none_or(|&p| peak >= p + refractory) {
            peaks.push(peak);
        }
    }
    peaks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_local_maxima_unbeaten_within_the_refractory_period() {
        let integrated = [0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0];
        let found = find_candidates(&integrated, &[0.0; 10], 2, 1);
        let at: Vec<usize> = found.iter().map(|c| c.at).collect();
        assert_eq!(at, vec![3, 7]);
    }

    #[test]
    fn non_finite_samples_hold_the_last_finite_value() {
        let x = finite_samples(&[f64::NAN, 1.0, f64::INFINITY, 2.0]);
        assert_eq!(x.as_deref(), Some(&[1.0, 1.0, 1.0, 2.0][..]));
        assert_eq!(finite_samples(&[f64::NAN]), None);
        assert!(matches!(
            finite_samples(&[1.0, 2.0]),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn flat_short_or_badly_sampled_input_gives_no_beats() {
        assert!(detect(&vec![0.5; 5000], 500.0, 0).r_peaks.is_empty());
        assert!(detect(&[1.0, 2.0, 3.0], 500.0, 0).r_peaks.is_empty());
        assert!(detect(&vec![0.5; 5000], f64::NAN, 0).r_peaks.is_empty());
        assert!(detect(&[], 500.0, 0).r_peaks.is_empty());
    }
}
