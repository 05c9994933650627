//! Splitting a recording into tasks: segments of bounded size, so a volunteer's tab finishes one in
//! seconds, with the overlap a windowed algorithm needs on either side.

use vitalgrid_worker::protocol::{SignalColumn, TaskData};

use super::Recording;

/// How to cut a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentPlan {
    /// Rows each segment owns (its core), at most.
    pub max_rows: usize,
    /// Context rows sent on each side of the core; read by windowed algorithms, never counted.
    pub overlap_rows: usize,
}

/// Chart bucket width giving at most `max_points` buckets over `duration_s`, rounded up to a width
/// a person reads easily on an axis (1, 2, 5 × 10ⁿ seconds, or whole minutes).
pub fn trend_bucket_for(duration_s: f64, max_points: usize) -> f64 {
    const NICE: [f64; 20] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0,
    ];
    let wanted = duration_s / max_points.max(1) as f64;
    NICE.iter()
        .copied()
        .find(|nice| *nice >= wanted)
        .unwrap_or_else(|| (wanted / 3600.0).ceil() * 3600.0)
}

/// Cuts `recording` into task payloads. Cut points never separate rows with the same timestamp, so
/// duplicate removal inside a segment sees every duplicate.
pub fn split_into_tasks(
    recording: &Recording,
    plan: SegmentPlan,
    trend_bucket_s: f64,
) -> Vec<TaskData> {
    let rows = recording.rows();
    let max_rows = plan.max_rows.max(1);
    let mut cuts = vec![0usize];
    let mut cut = 0usize;
    while cut < rows {
        let mut next = (cut + max_rows).min(rows);
        while next < rows && recording.time_s[next] == recording.time_s[next - 1] {
            next += 1;
        }
        cuts.push(next);
        cut = next;
    }
    cuts.windows(2)
        .map(|core| {
            let (core_start, core_end) = (core[0], core[1]);
            let from = core_start.saturating_sub(plan.overlap_rows);
            let to = (core_end + plan.overlap_rows).min(rows);
            TaskData {
                time_s: recording.time_s[from..to].to_vec(),
                signals: recording
                    .signals
                    .iter()
                    .map(|signal| SignalColumn {
                        name: signal.name.clone(),
                        values: signal.values[from..to].to_vec(),
                    })
                    .collect(),
                core_start: core_start - from,
                core_end: core_end - from,
                trend_bucket_s,
                reordered_rows: count_within(&recording.reordered_rows, core_start..core_end),
            }
        })
        .collect()
}

/// How many of the ascending `positions` lie in `range`.
fn count_within(positions: &[usize], range: std::ops::Range<usize>) -> u64 {
    let below = positions.partition_point(|&p| p < range.start);
    let to_end = positions.partition_point(|&p| p < range.end);
    (to_end - below) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(times: &[f64]) -> Recording {
        Recording {
            template_id: "bedside-vitals".into(),
            template_version: 1,
            time_s: times.to_vec(),
            signals: vec![SignalColumn {
                name: "hr".into(),
                values: times.iter().map(|t| Some(60.0 + t)).collect(),
            }],
            ignored_columns: vec![],
            reordered_rows: vec![],
        }
    }

    #[test]
    fn segments_cover_every_row_once_in_their_cores() {
        let times: Vec<f64> = (0..10).map(f64::from).collect();
        let tasks = split_into_tasks(
            &recording(&times),
            SegmentPlan {
                max_rows: 4,
                overlap_rows: 2,
            },
            1.0,
        );
        assert_eq!(tasks.len(), 3);
        let cores: Vec<f64> = tasks
            .iter()
            .flat_map(|task| task.time_s[task.core_start..task.core_end].to_vec())
            .collect();
        assert_eq!(cores, times);
        assert_eq!(
            tasks[1].time_s.first(),
            Some(&2.0),
            "overlap before the core"
        );
        assert_eq!(tasks[1].time_s.last(), Some(&9.0), "overlap after the core");
    }

    #[test]
    fn reordered_rows_are_counted_in_the_core_that_owns_them() {
        let mut sorted = recording(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        sorted.reordered_rows = vec![1, 2, 5];
        let tasks = split_into_tasks(
            &sorted,
            SegmentPlan {
                max_rows: 3,
                overlap_rows: 2,
            },
            1.0,
        );
        let counts: Vec<u64> = tasks.iter().map(|t| t.reordered_rows).collect();
        assert_eq!(counts, vec![2, 1], "overlap rows are not counted twice");
    }

    #[test]
    fn cut_points_keep_duplicate_timestamps_together() {
        let tasks = split_into_tasks(
            &recording(&[0.0, 1.0, 2.0, 2.0, 2.0, 3.0]),
            SegmentPlan {
                max_rows: 3,
                overlap_rows: 0,
            },
            1.0,
        );
        assert_eq!(tasks[0].time_s, vec![0.0, 1.0, 2.0, 2.0, 2.0]);
        assert_eq!(tasks[1].time_s, vec![3.0]);
    }

    #[test]
    fn trend_bucket_bounds_the_number_of_points() {
        assert_eq!(trend_bucket_for(300.0, 1000), 0.5);
        assert_eq!(trend_bucket_for(86_400.0, 1000), 120.0);
        assert_eq!(trend_bucket_for(0.0, 1000), 0.001);
        assert!(86_400.0 * 30.0 / trend_bucket_for(86_400.0 * 30.0, 1000) <= 1000.0);
    }
}
