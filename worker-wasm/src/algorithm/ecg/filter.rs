//! Zero-phase Butterworth filtering and the small signal helpers the QRS detector is built from,
//! written with `libm` so the coefficients (and so every result) are the same bits in wasm32.

/// One second-order section in transposed direct form II, normalised so `a0 == 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
}

impl Biquad {
    /// Second-order Butterworth low-pass at `cutoff_hz`, by the bilinear transform with the
    /// cut-off pre-warped so the -3 dB point lands exactly on `cutoff_hz`.
    pub fn butterworth_lowpass(cutoff_hz: f64, fs_hz: f64) -> Self {
        let k = prewarp(cutoff_hz, fs_hz);
        let k2 = k * k;
        let norm = 1.0 / (1.0 + core::f64::consts::SQRT_2 * k + k2);
        let b0 = k2 * norm;
        Self {
            b0,
            b1: 2.0 * b0,
            b2: b0,
            a1: 2.0 * (k2 - 1.0) * norm,
            a2: (1.0 - core::f64::consts::SQRT_2 * k + k2) * norm,
        }
    }

    /// Second-order Butterworth high-pass at `cutoff_hz` (bilinear transform, pre-warped).
    pub fn butterworth_highpass(cutoff_hz: f64, fs_hz: f64) -> Self {
        let k = prewarp(cutoff_hz, fs_hz);
        let k2 = k * k;
        let norm = 1.0 / (1.0 + core::f64::consts::SQRT_2 * k + k2);
        Self {
            b0: norm,
            b1: -2.0 * norm,
            b2: norm,
            a1: 2.0 * (k2 - 1.0) * norm,
            a2: (1.0 - core::f64::consts::SQRT_2 * k + k2) * norm,
        }
    }

    /// Gain at 0 Hz; used to start the filter in its steady state for the first sample.
    fn dc_gain(&self) -> f64 {
        (self.b0 + self.b1 + self.b2) / (1.0 + self.a1 + self.a2)
    }

    /// Filters `x` in place, in the direction given, starting from the steady state that a
    /// constant input equal to the first sample visited would have reached (as scipy's
    /// `lfilter_zi` does), so a step at the start does not ring.
    fn run(&self, x: &mut [f64], forward: bool) {
        let first = if forward { x.first() } else { x.last() };
        let Some(&u) = first else { return };
        let g = self.dc_gain();
        let mut z1 = (g - self.b0) * u;
        let mut z2 = (self.b2 - self.a2 * g) * u;
        let mut step = |v: &mut f64| {
            let input = *v;
            let y = self.b0 * input + z1;
            z1 = self.b1 * input - self.a1 * y + z2;
            z2 = self.b2 * input - self.a2 * y;
            *v = y;
        };
        if forward {
            x.iter_mut().for_each(&mut step);
        } else {
            x.iter_mut().rev().for_each(&mut step);
        }
    }
}

/// `tan(pi * f / fs)`, the bilinear transform's frequency warping; `f` is kept below Nyquist so a
/// misconfigured cut-off cannot produce an unstable section.
fn prewarp(cutoff_hz: f64, fs_hz: f64) -> f64 {
    let ratio = (cutoff_hz / fs_hz).clamp(1e-6, 0.49);
    libm::tan(core::f64::consts::PI * ratio)
}

/// Runs `sections` forwards and then backwards over `x` (zero phase, squared magnitude), after
/// extending both ends by an odd reflection of up to `pad` samples, as scipy's `filtfilt` does,
/// so the ends are not distorted by the filters' start-up.
pub fn filtfilt(sections: &[Biquad], x: &[f64], pad: usize) -> Vec<f64> {
    let n = x.len();
    let (Some(&first), Some(&last)) = (x.first(), x.last()) else {
        return Vec::new();
    };
    let pad = pad.min(n - 1);
    let mut ext = Vec::with_capacity(n + 2 * pad);
    ext.extend((1..=pad).rev().map(|k| 2.0 * first - x[k]));
    ext.extend_from_slice(x);
    ext.extend((1..=pad).map(|k| 2.0 * last - x[n - 1 - k]));
    for section in sections {
        section.run(&mut ext, true);
    }
    for section in sections {
        section.run(&mut ext, false);
    }
    ext.drain(..pad);
    ext.truncate(n);
    ext
}

/// Centred moving average over `2 * half + 1` samples (shorter at the ends, where only the samples
/// that exist are averaged). The running sum is recomputed from scratch every window length so
/// rounding error cannot build up over a long record, and after a huge artefact the sum cannot
/// leave a residue that would swamp the small values that follow.
pub fn centred_moving_average(x: &[f64], half: usize) -> Vec<f64> {
    let n = x.len();
    let width = 2 * half + 1;
    let mut out = Vec::with_capacity(n);
    let mut sum = 0.0;
    for i in 0..n {
        let lo = i.saturating_sub(half);
        let hi = (i + half).min(n - 1);
        if i % width == 0 {
            sum = x[lo..=hi].iter().sum();
        } else {
            if hi == i + half {
                sum += x[hi];
            }
            if lo > 0 {
                sum -= x[lo - 1];
            }
        }
        // Sums of squares are never negative; cancellation may leave a tiny negative residue.
        out.push(sum.max(0.0) / (hi - lo + 1) as f64);
    }
    out
}

/// Index of the largest value of `x[range]` (first one on ties), or `None` for an empty range.
pub fn argmax(x: &[f64], lo: usize, hi: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in lo..hi.min(x.len()) {
        if best.is_none_or(|b| x[i] > x[b]) {
            best = Some(i);
        }
    }
    best
}

/// Index of the smallest value of `x[range]` (first one on ties), or `None` for an empty range.
pub fn argmin(x: &[f64], lo: usize, hi: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in lo..hi.min(x.len()) {
        if best.is_none_or(|b| x[i] < x[b]) {
            best = Some(i);
        }
    }
    best
}

/// Median of `values` (mean of the two middle ones for an even count); `None` when empty. Sorting
/// with `total_cmp` keeps the result defined, and reproducible, even if a NaN slipped in.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq_hz: f64, fs_hz: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| libm::sin(2.0 * core::f64::consts::PI * freq_hz * i as f64 / fs_hz))
            .collect()
    }

    fn rms(x: &[f64]) -> f64 {
        (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn band_pass_keeps_the_qrs_band_and_removes_baseline_and_mains() {
        let fs = 500.0;
        let bank = [
            Biquad::butterworth_highpass(5.0, fs),
            Biquad::butterworth_lowpass(15.0, fs),
        ];
        let pass = filtfilt(&bank, &sine(10.0, fs, 5000), 500);
        let wander = filtfilt(&bank, &sine(0.3, fs, 5000), 500);
        let mains = filtfilt(&bank, &sine(50.0, fs, 5000), 500);
        let mid = 1000..4000;
        assert!(rms(&pass[mid.clone()]) > 0.5, "10 Hz kept");
        assert!(rms(&wander[mid.clone()]) < 0.01, "0.3 Hz removed");
        assert!(rms(&mains[mid]) < 0.01, "50 Hz removed");
    }

    #[test]
    fn lowpass_cutoff_is_minus_six_db_after_forward_and_backward_passes() {
        // One pass is -3 dB at the cut-off, so the zero-phase pair is -6 dB (gain 0.5).
        let fs = 1000.0;
        let y = filtfilt(
            &[Biquad::butterworth_lowpass(15.0, fs)],
            &sine(15.0, fs, 20_000),
            1000,
        );
        let gain = rms(&y[5000..15_000]) / core::f64::consts::FRAC_1_SQRT_2;
        assert!((gain - 0.5).abs() < 0.01, "gain {gain}");
    }

    #[test]
    fn moving_average_matches_direct_sums() {
        let x: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64).collect();
        let y = centred_moving_average(&x, 7);
        for i in [0_usize, 3, 7, 8, 500, 993, 999] {
            let lo = i.saturating_sub(7);
            let hi = (i + 7).min(999);
            let direct = x[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64;
            assert!((y[i] - direct).abs() < 1e-9, "at {i}: {} vs {direct}", y[i]);
        }
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
