//! Signal quality of a run of detected beats: the share of beats whose QRS complex looks like one
//! of its neighbours', in the spirit of template-matching quality indices (e.g. Orphanidou et al.,
//! IEEE J Biomed Health Inform 2015;19(3):832–838), made local so it needs no global template.

use super::filter::{Biquad, filtfilt};

/// Half-width of the compared stretch around each R peak: the QRS and a little of PR and ST.
const HALF_WINDOW_S: f64 = 0.100;
/// Beats compared on each side. Four covers bigeminy and trigeminy, where an ectopic beat's twin
/// is two or three beats away, so frequent ectopics count as clean; an artefact rarely repeats.
const NEIGHBOURS: usize = 4;
/// Correlation above which two complexes are taken for the same morphology.
const MIN_CORRELATION: f64 = 0.8;

/// Share (0..=1) of beats whose ±100 ms of ECG, filtered 1–40 Hz, correlates at ≥ 0.8 (Pearson)
/// with that of at least one of the 4 beats before or after it. Beats too close to either end for
/// a full window are not judged; with nothing to judge the quality is 0.
pub fn beat_agreement(raw: &[f64], peaks: &[usize], fs_hz: f64) -> f64 {
    let half = (HALF_WINDOW_S * fs_hz).round() as usize;
    let n = raw.len();
    if peaks.len() < 2 || half == 0 {
        return 0.0;
    }
    let pad = (fs_hz.round() as usize).min(n.saturating_sub(1));
    let mut sections = vec![Biquad::butterworth_highpass(1.0, fs_hz)];
    // At low sampling rates 40 Hz is at or above Nyquist and the low-pass would do nothing useful.
    if fs_hz > 100.0 {
        sections.push(Biquad::butterworth_lowpass(40.0, fs_hz));
    }
    let filtered = filtfilt(&sections, raw, pad);
    let windows: Vec<Option<Vec<f64>>> = peaks
        .iter()
        .map(|&p| (p >= half && p + half < n).then(|| centred(&filtered[p - half..=p + half])))
        .collect();
    let mut judged = 0usize;
    let mut clean = 0usize;
    for (k, own) in windows.iter().enumerate() {
        let Some(own) = own else { continue };
        judged += 1;
        let lo = k.saturating_sub(NEIGHBOURS);
        let hi = (k + NEIGHBOURS + 1).min(windows.len());
        let matched = (lo..hi)
            .filter(|&j| j != k)
            .filter_map(|j| windows[j].as_ref())
            .any(|other| correlation(own, other) >= MIN_CORRELATION);
        if matched {
            clean += 1;
        }
    }
    if judged == 0 {
        0.0
    } else {
        clean as f64 / judged as f64
    }
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
    use super::*;

    #[test]
    fn correlation_of_a_shape_with_itself_scaled_is_one_and_with_its_negative_minus_one() {
        let a = centred(&[0.0, 1.0, 3.0, 1.0, 0.0]);
        let b: Vec<f64> = a.iter().map(|v| 2.0 * v).collect();
        let c: Vec<f64> = a.iter().map(|v| -v).collect();
        assert!((correlation(&a, &b) - 1.0).abs() < 1e-12);
        assert!((correlation(&a, &c) + 1.0).abs() < 1e-12);
        assert_eq!(correlation(&a, &[0.0; 5]), 0.0);
    }

    #[test]
    fn too_few_beats_have_no_quality() {
        assert_eq!(beat_agreement(&[0.0; 1000], &[500], 250.0), 0.0);
    }
}
