//! ECG analysis core as pure functions: R-peak detection with a signal-quality figure, RR/NN
//! intervals with ectopic and artefact rejection, and time-domain HRV.
//!
//! Every function is deterministic: no clocks, no randomness, no hash-map iteration, and the only
//! transcendental function (`tan`, for filter coefficients) comes from `libm`, so native and
//! wasm32 builds give the same bits (checked on the three ECG recordings in shared/data/real:
//! peaks, quality, NN series and HRV identical bit for bit between x86-64 and wasm32 in Node).
//!
//! Segmenting: a decision about a candidate beat looks at most ±2 s (plus ~0.5 s of filter
//! settling) around it, so running [`detect_r_peaks_at`] on a window with ≥ 3 s of context on each
//! side of a core range gives the same peaks inside the core as one pass over the whole record.

mod filter;
mod hrv;
mod qrs;
mod quality;

use serde::{Deserialize, Serialize};

/// R-peak detection result for a run of samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatDetection {
    /// Indices into `samples` of the R peaks, ascending, refined to the local extremum of the raw signal.
    pub r_peaks: Vec<usize>,
    /// 0..=1: share of the record's samples covered by intervals of at most 2.5 s between two
    /// consecutive clean beats (and the partial intervals at either end, up to 2.5 s). A beat is
    /// clean when its QRS complex (±100 ms, filtered 1–40 Hz) correlates at r ≥ 0.8 with that of at
    /// least one of the four beats on either side: artefacts rarely repeat, so they score low,
    /// while frequent ectopic beats of one shape match each other. Flat, saturated or QRS-free
    /// stretches have no beats and so are not covered. With fewer than two beats it is 0.
    pub signal_quality: f64,
}

/// Detects R peaks in a single-lead ECG sampled at `fs_hz` (100 Hz..2 kHz), in mV (or any scale: must be scale-invariant; V vs mV must give the same peaks).
///
/// Pan–Tompkins with local (±2 s) adaptive thresholds; see the `qrs` module for the stages. Non-
/// finite samples hold the last finite value. Returns no peaks for records shorter than 1 s, for
/// `fs_hz` below 50 Hz or not finite, and for flat signals.
pub fn detect_r_peaks(samples: &[f64], fs_hz: f64) -> BeatDetection {
    qrs::detect(samples, fs_hz, 0)
}

/// [`detect_r_peaks`] on a stretch of a longer record whose first sample is sample
/// `first_sample` of the record. Above about 375 Hz the detector works on means of blocks of
/// samples; aligning the blocks to the record's sample index gives a segment the record's block
/// means, so its decisions rest on the same numbers as one pass over the record. (Unaligned
/// blocks find the same peaks on the test recordings too, but only by margin, not by design.)
pub fn detect_r_peaks_at(samples: &[f64], fs_hz: f64, first_sample: i64) -> BeatDetection {
    qrs::detect(samples, fs_hz, first_sample)
}

/// One RR interval left out of the NN series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedBeat {
    /// Position in the RR list (`NnSeries::rr_ms`).
    pub index: usize,
    /// Time of the beat that ends the interval (for an ectopic interval, the ectopic beat).
    pub time_s: f64,
    pub reason: RejectReason,
}

/// Why an RR interval is not normal-to-normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// More than 20 % away from the local median (a premature beat), or the interval that follows
    /// such a premature interval (the compensatory pause).
    Ectopic,
    /// Physiologically impossible RR (< 250 ms or > 2500 ms), or so far from the local median
    /// (under 0.5× or over 1.75×) that a beat was probably missed or falsely detected.
    Artifact,
}

/// RR intervals and what remains of them after rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NnSeries {
    /// Every interval between consecutive beats, in ms.
    pub rr_ms: Vec<f64>,
    /// The intervals not rejected, in order. Intervals on either side of a rejected one become
    /// neighbours here (no interpolation), as in most HRV tools.
    pub nn_ms: Vec<f64>,
    /// The rejected intervals, ascending by `index`.
    pub rejected: Vec<RejectedBeat>,
}

/// RR intervals from beat times, and NN intervals after ectopic/artifact rejection.
///
/// Rule (Malik's 20 % rule: Malik M et al., Eur Heart J 1989;10:1060–1074, applied against a
/// local median instead of the previous interval so that one ectopic beat does not also condemn
/// the next normal interval): each interval is compared with the median of the plausible
/// intervals among the 5 before and 5 after it. Outside 250–2500 ms, or under 0.5× / over 1.75×
/// the median, it is an [`RejectReason::Artifact`]; otherwise more than 20 % from the median is
/// [`RejectReason::Ectopic`]. The interval after a rejected short one starts on the premature
/// beat, so it is rejected as ectopic too (the compensatory interval).
pub fn nn_intervals(beat_times_s: &[f64]) -> NnSeries {
    hrv::nn_intervals(beat_times_s)
}

/// Time-domain HRV of an NN series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HrvTime {
    pub nn_count: usize,
    pub mean_nn_ms: f64,
    pub mean_hr_bpm: f64,
    pub sdnn_ms: f64,
    pub rmssd_ms: f64,
    pub pnn50_pct: f64,
}

/// Plain formulas (REFERENCE.md "Conventions"): HR = 60000 / mean(NN); SDNN = std(NN, ddof=1); RMSSD = sqrt(mean(diff(NN)^2)); pNN50 = 100 * mean(|diff(NN)| > 50 ms). `None` below 2 intervals.
///
/// pNN50's denominator is the number of successive differences (n − 1), as REFERENCE.md's plain
/// formula; neurokit2 divides by n. Also `None` when a value is not finite or the mean is not
/// positive.
pub fn hrv_time(nn_ms: &[f64]) -> Option<HrvTime> {
    hrv::hrv_time(nn_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise for tests (xorshift), uniform in [-1, 1).
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// A sum-of-Gaussians ECG (P, Q, R, S, T waves; McSharry et al. 2003 in spirit) with beats at
    /// `beats_s`, plus 0.3 Hz baseline wander and white noise.
    fn synthetic_ecg(beats_s: &[f64], fs: f64, seconds: f64, noise_mv: f64) -> Vec<f64> {
        let waves = [
            // (offset s, width s, amplitude mV)
            (-0.20, 0.025, 0.15),
            (-0.03, 0.010, -0.12),
            (0.00, 0.012, 1.20),
            (0.03, 0.010, -0.25),
            (0.28, 0.050, 0.35),
        ];
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
        let n = (seconds * fs) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                let mut v = 0.2 * libm::sin(2.0 * core::f64::consts::PI * 0.3 * t);
                for &beat in beats_s {
                    if (t - beat).abs() < 0.6 {
                        for &(offset, width, amp) in &waves {
                            let z = (t - beat - offset) / width;
                            v += amp * libm::exp(-0.5 * z * z);
                        }
                    }
                }
                v + noise_mv * noise.next()
            })
            .collect()
    }

    /// Beat times with a slowly varying rhythm (about 60–95 bpm) starting at 0.5 s.
    fn beat_times(until_s: f64) -> Vec<f64> {
        let mut t = 0.5;
        let mut beats = Vec::new();
        let mut k = 0.0_f64;
        while t < until_s {
            beats.push(t);
            t += 0.8 + 0.15 * libm::sin(k / 5.0) + 0.02 * libm::cos(k * 1.7);
            k += 1.0;
        }
        beats
    }

    #[test]
    fn synthetic_ecg_at_250_hz_finds_every_beat_within_one_sample() {
        let fs = 250.0;
        let beats = beat_times(59.0);
        let ecg = synthetic_ecg(&beats, fs, 60.0, 0.05);
        let found = detect_r_peaks(&ecg, fs);
        assert_eq!(found.r_peaks.len(), beats.len(), "{:?}", found.r_peaks);
        for (&peak, &beat) in found.r_peaks.iter().zip(&beats) {
            let expected = beat * fs;
            assert!(
                // The noise can move the maximum by one sample off the rounded true time.
                (peak as f64 - expected).abs() <= 1.5,
                "peak {peak} vs {expected}"
            );
        }
        assert!(found.signal_quality > 0.95, "{}", found.signal_quality);
    }

    #[test]
    fn every_supported_sampling_rate_finds_every_beat() {
        for fs in [100.0, 360.0, 1000.0, 2000.0] {
            let beats = beat_times(29.0);
            let ecg = synthetic_ecg(&beats, fs, 30.0, 0.05);
            let found = detect_r_peaks(&ecg, fs);
            assert_eq!(found.r_peaks.len(), beats.len(), "at {fs} Hz");
            for (&peak, &beat) in found.r_peaks.iter().zip(&beats) {
                // Within 4 ms, or one sample and a half at low rates.
                let tolerance = (0.004 * fs).max(1.5);
                assert!(
                    (peak as f64 - beat * fs).abs() <= tolerance,
                    "at {fs} Hz: peak {peak} vs {}",
                    beat * fs
                );
            }
        }
    }

    #[test]
    fn inverted_lead_is_refined_to_the_minimum() {
        let fs = 250.0;
        let beats = beat_times(29.0);
        let ecg: Vec<f64> = synthetic_ecg(&beats, fs, 30.0, 0.02)
            .iter()
            .map(|v| -v)
            .collect();
        let found = detect_r_peaks(&ecg, fs);
        let expected: Vec<usize> = beats.iter().map(|b| (b * fs).round() as usize).collect();
        assert_eq!(
            found.r_peaks.len(),
            beats.len(),
            "{:?}\n{:?}",
            found.r_peaks,
            expected
        );
        for (&peak, &beat) in found.r_peaks.iter().zip(&beats) {
            assert!((peak as f64 - beat * fs).abs() <= 1.5);
        }
    }

    #[test]
    fn volts_and_millivolts_give_the_same_peaks() {
        let fs = 250.0;
        let millivolts = synthetic_ecg(&beat_times(39.0), fs, 40.0, 0.05);
        let volts: Vec<f64> = millivolts.iter().map(|v| v / 1000.0).collect();
        let a = detect_r_peaks(&millivolts, fs);
        let b = detect_r_peaks(&volts, fs);
        assert_eq!(a.r_peaks, b.r_peaks);
        assert!((a.signal_quality - b.signal_quality).abs() < 1e-12);
    }

    #[test]
    fn noise_only_record_has_low_quality() {
        let mut noise = Noise(7);
        let x: Vec<f64> = (0..250 * 30).map(|_| noise.next()).collect();
        let found = detect_r_peaks(&x, 250.0);
        assert!(found.signal_quality < 0.5, "{}", found.signal_quality);
    }

    #[test]
    fn reject_reason_serialises_in_snake_case() {
        let json = serde_json::to_string(&RejectReason::Artifact).expect("serialises");
        assert_eq!(json, "\"artifact\"");
    }
}
