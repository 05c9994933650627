//! Zero-phase Butterworth filtering, block-mean decimation and the small signal helpers the QRS
//! detector is built from, written with `libm` so the coefficients (and so every result) are the
//! same bits in wasm32.

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
    /// A section that passes its input through unchanged (where a cascade has nothing to do).
    pub fn pass_through() -> Self {
        Self {
            b0: 1.0,
            b1: 0.0,
            b2: 0.0,
            a1: 0.0,
            a2: 0.0,
        }
    }

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
}

/// A section's last two inputs and outputs (direct form I).
#[derive(Debug, Clone, Copy)]
struct Memory {
    x1: f64,
    x2: f64,
    y1: f64,
    y2: f64,
}

/// Filters `xa` through the cascade `a` and `xb` through `b`, in place, in the direction given,
/// each starting from the steady state that a constant input equal to its first sample visited
/// would have reached (as scipy's `lfilter_zi` does), so a step at the start does not ring.
///
/// All sections of both cascades run in one loop, so their recurrences overlap instead of each
/// making its own pass; and direct form I with the feedback term `a1 * y[n-1]` subtracted last
/// keeps the chain from one output to the next at one multiply and one subtraction (transposed
/// direct form II needs two more operations on it). In f64 the two forms agree to rounding for
/// these second-order sections.
fn run_cascade_pair<const N: usize>(
    (a, xa): (&[Biquad; N], &mut [f64]),
    (b, xb): (&[Biquad; N], &mut [f64]),
    forward: bool,
) {
    let len = xa.len().min(xb.len());
    if len == 0 {
        return;
    }
    let first = if forward { 0 } else { len - 1 };
    let (mut memory_a, mut memory_b) = (steady_state(a, xa[first]), steady_state(b, xb[first]));
    let pairs = xa[..len].iter_mut().zip(xb[..len].iter_mut());
    // Two plain loops rather than one closure called from both: in the wasm build that closure
    // stayed a function call per sample.
    if forward {
        for (va, vb) in pairs {
            *va = cascade_step(a, &mut memory_a, *va);
            *vb = cascade_step(b, &mut memory_b, *vb);
        }
    } else {
        for (va, vb) in pairs.rev() {
            *va = cascade_step(a, &mut memory_a, *va);
            *vb = cascade_step(b, &mut memory_b, *vb);
        }
    }
}

/// The sections' memories as a constant input `start` would have left them.
fn steady_state<const N: usize>(sections: &[Biquad; N], start: f64) -> [Memory; N] {
    let mut input = start;
    sections.map(|s| {
        let output = s.dc_gain() * input;
        let m = Memory {
            x1: input,
            x2: input,
            y1: output,
            y2: output,
        };
        input = output;
        m
    })
}

/// One sample through the cascade.
#[inline]
fn cascade_step<const N: usize>(sections: &[Biquad; N], memory: &mut [Memory; N], x: f64) -> f64 {
    let mut value = x;
    for (s, m) in sections.iter().zip(memory.iter_mut()) {
        let y = (s.b0 * value + s.b1 * m.x1 + s.b2 * m.x2 - s.a2 * m.y2) - s.a1 * m.y1;
        m.x2 = m.x1;
        m.x1 = value;
        m.y2 = m.y1;
        m.y1 = y;
        value = y;
    }
    value
}

/// `tan(pi * f / fs)`, the bilinear transform's frequency warping; `f` is kept below Nyquist so a
/// misconfigured cut-off cannot produce an unstable section.
fn prewarp(cutoff_hz: f64, fs_hz: f64) -> f64 {
    let ratio = (cutoff_hz / fs_hz).clamp(1e-6, 0.49);
    libm::tan(core::f64::consts::PI * ratio)
}

/// Runs the cascades `a` and `b` each forwards and then backwards over `x` (zero phase, squared
/// magnitude), after extending both ends by an odd reflection of up to `pad` samples, as scipy's
/// `filtfilt` does, so the ends are not distorted by the filters' start-up. Two cascades at once
/// (the detector's band and the quality check's band of one ECG) take about the time of one.
pub fn filtfilt_pair<const N: usize>(
    a: &[Biquad; N],
    b: &[Biquad; N],
    x: &[f64],
    pad: usize,
) -> (Vec<f64>, Vec<f64>) {
    let Some(mut ext_a) = odd_extension(x, pad) else {
        return (Vec::new(), Vec::new());
    };
    let mut ext_b = ext_a.clone();
    run_cascade_pair((a, &mut ext_a), (b, &mut ext_b), true);
    run_cascade_pair((a, &mut ext_a), (b, &mut ext_b), false);
    (unextend(ext_a, x.len(), pad), unextend(ext_b, x.len(), pad))
}

/// `x` extended at both ends by an odd reflection of up to `pad` samples, as scipy's `filtfilt`
/// does, so the ends are not distorted by the filters' start-up; `None` for an empty `x`.
fn odd_extension(x: &[f64], pad: usize) -> Option<Vec<f64>> {
    let n = x.len();
    let (&first, &last) = (x.first()?, x.last()?);
    let pad = pad.min(n - 1);
    let mut ext = Vec::with_capacity(n + 2 * pad);
    ext.extend((1..=pad).rev().map(|k| 2.0 * first - x[k]));
    ext.extend_from_slice(x);
    ext.extend((1..=pad).map(|k| 2.0 * last - x[n - 1 - k]));
    Some(ext)
}

/// The `n` samples of an extended signal that correspond to the original.
fn unextend(mut ext: Vec<f64>, n: usize, pad: usize) -> Vec<f64> {
    ext.drain(..pad.min(n.saturating_sub(1)));
    ext.truncate(n);
    ext
}

/// A signal reduced to the means of blocks of `factor` consecutive samples. Blocks are aligned to
/// multiples of `factor` in the record's absolute sample index, so a segment cut anywhere from a
/// record holds the same blocks as the record (only a partial block at either end differs).
#[derive(Debug, Clone, PartialEq)]
pub struct Decimated {
    /// One mean per block, in order.
    pub values: Vec<f64>,
    factor: usize,
    /// Samples of the first block that lie before the signal: its first sample's absolute index
    /// modulo `factor`.
    offset: usize,
    /// Length of the original signal.
    len: usize,
}

impl Decimated {
    /// Block means of `x`, whose first sample has index `first_sample` in the whole record.
    /// `factor` 0 is taken as 1.
    pub fn new(x: &[f64], factor: usize, first_sample: i64) -> Self {
        let factor = factor.max(1);
        let offset = first_sample.rem_euclid(factor as i64) as usize;
        let head = if offset == 0 {
            0
        } else {
            (factor - offset).min(x.len())
        };
        let (first, rest) = x.split_at(head);
        let mean = |block: &[f64]| block.iter().sum::<f64>() / block.len() as f64;
        let mut values = Vec::with_capacity(x.len() / factor + 2);
        if !first.is_empty() {
            values.push(mean(first));
        }
        values.extend(rest.chunks(factor).map(mean));
        Self {
            values,
            factor,
            offset,
            len: x.len(),
        }
    }

    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Length of the original signal.
    pub fn source_len(&self) -> usize {
        self.len
    }

    /// The block holding sample `index` of the original signal.
    pub fn block_of(&self, index: usize) -> usize {
        (index + self.offset) / self.factor
    }

    /// The original sample at the middle of `block` (clamped to the signal).
    pub fn centre_of(&self, block: usize) -> usize {
        (block * self.factor + self.factor / 2)
            .saturating_sub(self.offset)
            .min(self.len.saturating_sub(1))
    }
}

/// Centred moving average over `2 * half + 1` samples (shorter at the ends, where only the samples
/// that exist are averaged). The running sum is recomputed from scratch every window length so
/// rounding error cannot build up over a long record, and after a huge artefact the sum cannot
/// leave a residue that would swamp the small values that follow.
///
/// The running sum takes the difference of the entering and the leaving sample in one addition,
/// and a fresh sum is added up in four partial sums, so the chain of dependent additions from one
/// output to the next is about one addition long rather than three.
pub fn centred_moving_average(x: &[f64], half: usize) -> Vec<f64> {
    let n = x.len();
    let width = 2 * half + 1;
    let mut out = Vec::with_capacity(n);
    let mut sum = 0.0;
    // Counts down to the next fresh sum, every `width` samples from the first.
    let mut until_fresh = 0;
    for i in 0..n {
        let lo = i.saturating_sub(half);
        let hi = (i + half).min(n - 1);
        if until_fresh == 0 {
            sum = partial_sums(&x[lo..=hi]);
            until_fresh = width;
        } else {
            let entering = if hi == i + half { x[hi] } else { 0.0 };
            let leaving = if lo > 0 { x[lo - 1] } else { 0.0 };
            sum += entering - leaving;
        }
        until_fresh -= 1;
        // Sums of squares are never negative; cancellation may leave a tiny negative residue. (A
        // comparison: `f64::max` is a call into libm on wasm32.)
        let clamped = if sum > 0.0 { sum } else { 0.0 };
        out.push(clamped / (hi - lo + 1) as f64);
    }
    out
}

/// Sum of `x` in four interleaved partial sums, added up in a fixed order: independent chains of
/// additions, and the same bits on every machine.
fn partial_sums(x: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let chunks = x.chunks_exact(4);
    for (lane, &v) in chunks.remainder().iter().enumerate() {
        lanes[lane] = v;
    }
    for chunk in chunks {
        for (sum, &v) in lanes.iter_mut().zip(chunk) {
            *sum += v;
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
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
        let filtfilt = |x: &[f64]| {
            let (a, b) = filtfilt_pair(&bank, &bank, x, 500);
            assert_eq!(a, b, "the same cascade twice gives the same numbers twice");
            a
        };
        let pass = filtfilt(&sine(10.0, fs, 5000));
        let wander = filtfilt(&sine(0.3, fs, 5000));
        let mains = filtfilt(&sine(50.0, fs, 5000));
        let mid = 1000..4000;
        assert!(rms(&pass[mid.clone()]) > 0.5, "10 Hz kept");
        assert!(rms(&wander[mid.clone()]) < 0.01, "0.3 Hz removed");
        assert!(rms(&mains[mid]) < 0.01, "50 Hz removed");
    }

    #[test]
    fn lowpass_cutoff_is_minus_six_db_after_forward_and_backward_passes() {
        // One pass is -3 dB at the cut-off, so the zero-phase pair is -6 dB (gain 0.5).
        let fs = 1000.0;
        let low_pass = [Biquad::butterworth_lowpass(15.0, fs)];
        let (y, _) = filtfilt_pair(&low_pass, &low_pass, &sine(15.0, fs, 20_000), 1000);
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
    fn decimation_blocks_follow_the_absolute_sample_index() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let aligned = Decimated::new(&x, 4, 8);
        assert_eq!(aligned.values, vec![1.5, 5.5, 8.5]);
        assert_eq!((aligned.block_of(5), aligned.centre_of(1)), (1, 6));
        // Starting at absolute index 3: the first block holds only sample 3 (x[0]).
        let shifted = Decimated::new(&x, 4, 3);
        assert_eq!(shifted.values, vec![0.0, 2.5, 6.5, 9.0]);
        assert_eq!((shifted.block_of(0), shifted.block_of(1)), (0, 1));
        assert_eq!((shifted.centre_of(0), shifted.centre_of(1)), (0, 3));
        // A segment of the record starting at sample 5 shares the record's full blocks.
        let record: Vec<f64> = (0..40).map(|i| f64::from(i * i % 7)).collect();
        let whole = Decimated::new(&record, 4, 0);
        let part = Decimated::new(&record[5..], 4, 5);
        assert_eq!(part.values[1..], whole.values[2..]);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
