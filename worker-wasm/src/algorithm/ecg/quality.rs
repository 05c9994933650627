//! Signal quality of a run of detected beats: the share of the record's time covered by plausible
//! intervals between beats whose QRS complex looks like a neighbour's. Beat agreement is in the
//! spirit of template-matching quality indices (e.g. Orphanidou et al., IEEE J Biomed Health
//! Inform 2015;19(3):832–838), made local so it needs no global template; weighting by time makes
//! drop-outs and QRS-free stretches count, which a share of beats alone would not see.

use super::filter::{Biquad, Decimated};

/// Half-width of the compared stretch around each R peak: the QRS and a little of PR and ST.
const HALF_WINDOW_S: f64 = 0.100;
/// Beats compared on each side. Four covers bigeminy and trigeminy, where an ectopic beat's twin
/// is two or three beats away, so frequent ectopics count as clean; an artefact rarely repeats.
const NEIGHBOURS: usize = 4;
/// Correlation above which two complexes are taken for the same morphology.
const MIN_CORRELATION: f64 = 0.8;
/// The longest interval that still counts as covered: the longest plausible RR.
const MAX_COVERED_S: f64 = 2.5;

/// Share (0..=1) of the record's samples lying between two consecutive clean beats at most
/// 2.5 s apart, or between an end of the record and a clean beat at most 2.5 s from it (the
/// record's first and last partial intervals). A beat is clean when its ±100 ms of ECG, filtered
/// 1–40 Hz, correlates at ≥ 0.8 (Pearson) with that of at least one of the 4 beats before or after
/// it; beats too close to an end for a full window cannot be judged and count as clean. With fewer
/// than two beats the quality is 0.
///
/// `peaks` index the record sampled at `fs_hz`; the complexes are compared in `filtered`: `coarse`,
/// the record at the detector's reduced rate (about 250 Hz), whose block means pass the 1–40 Hz
/// band nearly unchanged (at most 4 % lower at 40 Hz), filtered through [`band`] (the detector
/// does it alongside its own band, in one pass).
pub fn clean_share(coarse: &Decimated, filtered: &[f64], peaks: &[usize], fs_hz: f64) -> f64 {
    let n = coarse.source_len();
    if peaks.len() < 2 || n == 0 {
        return 0.0;
    }
    let coarse_peaks: Vec<usize> = peaks.iter().map(|&p| coarse.block_of(p)).collect();
    let clean = clean_beats(filtered, &coarse_peaks, fs_hz / coarse.factor() as f64);
    let longest = (MAX_COVERED_S * fs_hz).round() as usize;
    let mut covered = 0usize;
    if let (Some(&first), Some(&true)) = (peaks.first(), clean.first()) {
        if first <= longest {
            covered += first;
        }
    }
    for (pair, ok) in peaks.windows(2).zip(clean.windows(2)) {
        let span = pair[1] - pair[0];
        if ok[0] && ok[1] && span <= longest {
            covered += span;
        }
    }
    if let (Some(&last), Some(&true)) = (peaks.last(), clean.last()) {
        let tail = n.saturating_sub(last);
        if tail <= longest {
            covered += tail;
        }
    }
    (covered as f64 / n as f64).min(1.0)
}

/// The complexes' band at `coarse_hz`: 1–40 Hz, or from 1 Hz up where 40 Hz is at or above
/// Nyquist and a low-pass would do nothing useful.
pub fn band(coarse_hz: f64) -> [Biquad; 2] {
    let low_pass = if coarse_hz > 100.0 {
        Biquad::butterworth_lowpass(40.0, coarse_hz)
    } else {
        Biquad::pass_through()
    };
    [Biquad::butterworth_highpass(1.0, coarse_hz), low_pass]
}

/// The reflection at each end for filtering at `coarse_hz`: one second.
pub fn pad(coarse_hz: f64) -> usize {
    coarse_hz.round() as usize
}

/// Per beat: whether its complex matches a neighbour's (see [`clean_share`]); `peaks` index
/// `filtered`, the record in the complexes' band sampled at `fs_hz`.
fn clean_beats(filtered: &[f64], peaks: &[usize], fs_hz: f64) -> Vec<bool> {
    let half = (HALF_WINDOW_S * fs_hz).round() as usize;
    let n = filtered.len();
    let windows: Vec<Option<Vec<f64>>> = peaks
        .iter()
        .map(|&p| {
            (half > 0 && p >= half && p + half < n).then(|| centred(&filtered[p - half..=p + half]))
        })
        .collect();
    windows
        .iter()
        .enumerate()
        .map(|(k, own)| {
            let Some(own) = own else { return true };
            let lo = k.saturating_sub(NEIGHBOURS);
            let hi = (k + NEIGHBOURS + 1).min(windows.len());
            (lo..hi)
                .filter(|&j| j != k)
                .filter_map(|j| windows[j].as_ref())
                .any(|other| correlation(own, other) >= MIN_CORRELATION)
        })
        .collect()
}

/// `x` minus its mean.
fn centred(x: &[f64]) -> Vec<f64> {
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| v - mean).collect()
}

/// Pearson correlation of two mean-free stretches of equal length; 0 when either is flat.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    let denom = (aa * bb).sqrt();
    if denom > 0.0 { ab / denom } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::super::filter::filtfilt_pair;
    use super::*;

    /// Identical spikes every `every` samples from `first` to before `until`.
    fn spikes(len: usize, first: usize, every: usize, until: usize) -> (Vec<f64>, Vec<usize>) {
        let mut x = vec![0.0; len];
        let peaks: Vec<usize> = (first..until).step_by(every).collect();
        for &p in &peaks {
            for (offset, v) in [(-2_i64, 0.3), (-1, 0.7), (0, 1.0), (1, 0.7), (2, 0.3)] {
                x[(p as i64 + offset) as usize] = v;
            }
        }
        (x, peaks)
    }

    #[test]
    fn correlation_of_a_shape_with_itself_scaled_is_one_and_with_its_negative_minus_one() {
        let a = centred(&[0.0, 1.0, 3.0, 1.0, 0.0]);
        let b: Vec<f64> = a.iter().map(|v| 2.0 * v).collect();
        let c: Vec<f64> = a.iter().map(|v| -v).collect();
        assert!((correlation(&a, &b) - 1.0).abs() < 1e-12);
        assert!((correlation(&a, &c) + 1.0).abs() < 1e-12);
        assert_eq!(correlation(&a, &[0.0; 5]), 0.0);
    }

    /// [`clean_share`] of a record sampled at 250 Hz, filtered as the detector filters it.
    fn share(x: &[f64], peaks: &[usize]) -> f64 {
        let coarse = Decimated::new(x, 1, 0);
        let (filtered, _) = filtfilt_pair(&band(250.0), &band(250.0), &coarse.values, pad(250.0));
        clean_share(&coarse, &filtered, peaks, 250.0)
    }

    #[test]
    fn regular_identical_beats_cover_the_whole_record() {
        let (x, peaks) = spikes(2500, 100, 200, 2450);
        assert!((share(&x, &peaks) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_stretch_without_beats_is_not_covered() {
        // 10 s at 250 Hz with beats only in the first 4 s: the last 6 s are not covered.
        let (x, peaks) = spikes(2500, 100, 200, 1000);
        let share = share(&x, &peaks);
        assert!((share - 0.36).abs() < 1e-12, "{share}");
    }

    #[test]
    fn too_few_beats_have_no_quality() {
        assert_eq!(share(&[0.0; 1000], &[500]), 0.0);
    }
}
