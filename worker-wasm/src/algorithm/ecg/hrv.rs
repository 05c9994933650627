//! From beat times to NN intervals (ectopic and artefact rejection) and the time-domain HRV
//! figures computed on them with the plain textbook formulas.

use super::filter::median;
use super::{HrvTime, NnSeries, RejectReason, RejectedBeat};

/// Physiologically possible RR range (240 bpm down to 24 bpm).
const MIN_RR_MS: f64 = 250.0;
const MAX_RR_MS: f64 = 2500.0;
/// RR intervals on each side that form an interval's local reference.
const REFERENCE_NEIGHBOURS: usize = 5;
/// Malik's rule: an interval more than 20 % away from its reference is not sinus-to-sinus.
const ECTOPIC_TOLERANCE: f64 = 0.20;
/// Beyond these ratios to the reference an interval is not an ectopic beat's but a detection
/// error: about twice the reference is a missed beat, under half is an extra detection.
const ARTEFACT_SHORT_RATIO: f64 = 0.5;
const ARTEFACT_LONG_RATIO: f64 = 1.75;

/// See [`super::nn_intervals`].
pub fn nn_intervals(beat_times_s: &[f64]) -> NnSeries {
    let rr_ms: Vec<f64> = beat_times_s
        .windows(2)
        .map(|w| (w[1] - w[0]) * 1000.0)
        .collect();
    let plausible = |rr: f64| rr.is_finite() && (MIN_RR_MS..=MAX_RR_MS).contains(&rr);

    let mut reasons: Vec<Option<RejectReason>> = vec![None; rr_ms.len()];
    let mut ratios: Vec<f64> = vec![1.0; rr_ms.len()];
    let mut references: Vec<f64> = rr_ms.clone();
    for (i, &rr) in rr_ms.iter().enumerate() {
        if !plausible(rr) {
            reasons[i] = Some(RejectReason::Artifact);
            // Only "short" matters below: an impossibly short interval ends on a spurious beat.
            ratios[i] = if rr < MIN_RR_MS { 0.0 } else { f64::INFINITY };
            continue;
        }
        let lo = i.saturating_sub(REFERENCE_NEIGHBOURS);
        let hi = (i + REFERENCE_NEIGHBOURS + 1).min(rr_ms.len());
        let mut neighbours: Vec<f64> = (lo..hi)
            .filter(|&j| j != i && plausible(rr_ms[j]))
            .map(|j| rr_ms[j])
            .collect();
        // With no plausible neighbour there is nothing to compare against: keep the interval.
        let Some(reference) = median(&mut neighbours) else {
            continue;
        };
        let ratio = rr / reference;
        ratios[i] = ratio;
        references[i] = reference;
        reasons[i] = if !(ARTEFACT_SHORT_RATIO..=ARTEFACT_LONG_RATIO).contains(&ratio) {
            Some(RejectReason::Artifact)
        } else if (ratio - 1.0).abs() > ECTOPIC_TOLERANCE {
            Some(RejectReason::Ectopic)
        } else {
            None
        };
    }
    // A short rejected interval ends on a premature beat; the interval that starts on that beat
    // (the compensatory pause, or whatever follows) is not normal-to-normal either. Exception:
    // two short intervals that add up to a normal one were split by a spurious beat, and the beat
    // ending the second is normal. Decided on the ratios alone, so flags do not chain.
    let own = reasons.clone();
    let short = |i: usize| own[i].is_some() && ratios[i] < 1.0;
    for i in 0..rr_ms.len().saturating_sub(1) {
        if !short(i) || own[i + 1].is_some() {
            continue;
        }
        let split = i > 0
            && short(i - 1)
            && ((rr_ms[i - 1] + rr_ms[i]) / references[i] - 1.0).abs() <= ECTOPIC_TOLERANCE;
        if !split {
            reasons[i + 1] = Some(RejectReason::Ectopic);
        }
    }

    let mut nn_ms = Vec::with_capacity(rr_ms.len());
    let mut rejected = Vec::new();
    for (i, (&rr, reason)) in rr_ms.iter().zip(reasons).enumerate() {
        match reason {
            None => nn_ms.push(rr),
            Some(reason) => rejected.push(RejectedBeat {
                index: i,
                time_s: beat_times_s[i + 1],
                reason,
            }),
        }
    }
    NnSeries {
        rr_ms,
        nn_ms,
        rejected,
    }
}

/// See [`super::hrv_time`].
pub fn hrv_time(nn_ms: &[f64]) -> Option<HrvTime> {
    let n = nn_ms.len();
    if n < 2 || nn_ms.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mean = nn_ms.iter().sum::<f64>() / n as f64;
    if mean <= 0.0 {
        return None;
    }
    let variance = nn_ms.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    let diffs: Vec<f64> = nn_ms.windows(2).map(|w| w[1] - w[0]).collect();
    let mean_square_diff = diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64;
    let over_50 = diffs.iter().filter(|d| d.abs() > 50.0).count();
    Some(HrvTime {
        nn_count: n,
        mean_nn_ms: mean,
        mean_hr_bpm: 60_000.0 / mean,
        sdnn_ms: variance.sqrt(),
        rmssd_ms: mean_square_diff.sqrt(),
        pnn50_pct: 100.0 * over_50 as f64 / diffs.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(rr_ms: &[f64]) -> Vec<f64> {
        let mut t = vec![0.0];
        for rr in rr_ms {
            let last = t[t.len() - 1];
            t.push(last + rr / 1000.0);
        }
        t
    }

    #[test]
    fn steady_rhythm_keeps_every_interval() {
        let rr = [800.0, 810.0, 790.0, 805.0, 795.0, 800.0];
        let series = nn_intervals(&times(&rr));
        assert_eq!(series.rr_ms.len(), 6);
        assert_eq!(series.nn_ms.len(), 6);
        assert!(series.rejected.is_empty());
    }

    #[test]
    fn premature_beat_and_its_compensatory_pause_are_ectopic() {
        let rr = [
            800.0, 800.0, 800.0, 800.0, 520.0, 1080.0, 800.0, 800.0, 800.0, 800.0,
        ];
        let series = nn_intervals(&times(&rr));
        let flagged: Vec<(usize, RejectReason)> = series
            .rejected
            .iter()
            .map(|r| (r.index, r.reason))
            .collect();
        assert_eq!(
            flagged,
            vec![(4, RejectReason::Ectopic), (5, RejectReason::Ectopic)]
        );
        assert_eq!(series.nn_ms.len(), 8);
        assert!(series.nn_ms.iter().all(|nn| (nn - 800.0).abs() < 1e-6));
        assert!(
            (series.rejected[0].time_s - 3.72).abs() < 1e-9,
            "time of the premature beat"
        );
    }

    #[test]
    fn missed_beats_and_impossible_intervals_are_artifacts() {
        let rr = [
            800.0, 800.0, 800.0, 1600.0, 800.0, 800.0, 200.0, 600.0, 800.0, 800.0,
        ];
        let series = nn_intervals(&times(&rr));
        let flagged: Vec<(usize, RejectReason)> = series
            .rejected
            .iter()
            .map(|r| (r.index, r.reason))
            .collect();
        assert_eq!(
            flagged,
            vec![
                (3, RejectReason::Artifact),
                (6, RejectReason::Artifact),
                (7, RejectReason::Ectopic),
            ]
        );
    }

    #[test]
    fn fewer_than_two_beats_give_an_empty_series() {
        let series = nn_intervals(&[1.0]);
        assert!(series.rr_ms.is_empty() && series.nn_ms.is_empty() && series.rejected.is_empty());
    }

    #[test]
    fn time_domain_figures_follow_the_plain_formulas() {
        let h = hrv_time(&[1000.0, 900.0, 1000.0, 960.0, 900.0]).expect("five intervals");
        assert_eq!(h.nn_count, 5);
        assert!((h.mean_nn_ms - 952.0).abs() < 1e-12);
        assert!((h.mean_hr_bpm - 60_000.0 / 952.0).abs() < 1e-12);
        // deviations 48, -52, 48, 8, -52: sum of squares 10_080 over n - 1 = 4
        assert!((h.sdnn_ms - 2520.0_f64.sqrt()).abs() < 1e-12);
        // diffs -100, 100, -40, -60: mean square 25_200 / 4; three of the four exceed 50 ms
        assert!((h.rmssd_ms - 6300.0_f64.sqrt()).abs() < 1e-12);
        assert!((h.pnn50_pct - 75.0).abs() < 1e-12);
    }

    #[test]
    fn time_domain_needs_two_finite_intervals() {
        assert_eq!(hrv_time(&[]), None);
        assert_eq!(hrv_time(&[800.0]), None);
        assert_eq!(hrv_time(&[800.0, f64::NAN]), None);
        assert!(hrv_time(&[800.0, 820.0]).is_some());
    }
}
