//! Choosing the worker: the free slot whose worker is expected to return a task soonest.
//!
//! Each connected worker is measured as it works: its speed (rows per second over its results,
//! smoothed), its ACK latency (how long a packet takes to reach it and be checked: the network and
//! how busy its machine is) and how many of its leases failed (no ACK, a refused packet, a broken
//! result). A task of `rows` rows is expected to come back after `latency + rows / speed`; a lease
//! fails with probability `p`, and then the task goes through all of that again elsewhere, so the
//! expected cost is divided by the chance of success, `1 − p`. A fast worker that often fails thus
//! ranks behind a reliable one that is a little slower, and a far-away one behind a near one.

/// The task size the ranking imagines: the default vitals task. Only the balance between latency
/// and speed depends on it, and tasks are cut to take a few seconds on a typical worker anyway.
pub const REFERENCE_TASK_ROWS: f64 = 3_600.0;

/// Weight of a new ACK latency in the smoothed figure.
const LATENCY_SMOOTHING: f64 = 0.2;

/// Weight of a new task's time in the smoothed figure.
const TASK_TIME_SMOOTHING: f64 = 0.3;

/// Most tasks reserved per slot, however fast the worker: reserved tasks are kept from every other
/// worker, so the depth only grows for tasks far shorter than a dispatch round.
pub const MAX_RESERVE_DEPTH: u32 = 8;

/// What the scheduler has measured of one connected worker.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Track {
    /// Rows per second, smoothed; `None` until its first result.
    pub rows_per_s: Option<f64>,
    /// Milliseconds from sending a packet to its ACK, smoothed; `None` until its first ACK.
    pub ack_latency_ms: Option<f64>,
    pub tasks_done: u64,
    pub failures: u64,
    /// Milliseconds from sending a task to its result, smoothed; `None` until its first result.
    pub task_ms: Option<f64>,
}

impl Track {
    /// Folds one ACK's latency into the smoothed figure.
    pub fn record_ack(&mut self, latency_ms: f64) {
        let latency_ms = latency_ms.max(0.0);
        self.ack_latency_ms = Some(match self.ack_latency_ms {
            Some(previous) => previous + LATENCY_SMOOTHING * (latency_ms - previous),
            None => latency_ms,
        });
    }

    /// Folds one task's time, from sending it to its result, into the smoothed figure.
    pub fn record_task_time(&mut self, task_ms: f64) {
        let task_ms = task_ms.max(0.0);
        self.task_ms = Some(match self.task_ms {
            Some(previous) => previous + TASK_TIME_SMOOTHING * (task_ms - previous),
            None => task_ms,
        });
    }

    /// Expected seconds until a task of `rows` rows comes back from this worker. A worker not yet
    /// measured has no estimate (infinity): measured workers go first, the others take what is left.
    pub fn expected_s(&self, rows: f64) -> f64 {
        let Some(speed) = self.rows_per_s.filter(|s| s.is_finite() && *s > 0.0) else {
            return f64::INFINITY;
        };
        let latency_s = self.ack_latency_ms.unwrap_or(0.0) / 1000.0;
        // Laplace's rule of succession: a worker with few leases is neither perfect nor hopeless.
        let success =
            (self.tasks_done as f64 + 1.0) / ((self.tasks_done + self.failures) as f64 + 2.0);
        (latency_s + rows / speed) / success
    }
}

/// Tasks to reserve per slot of a worker: enough to cover the time a dispatch round takes to refill
/// the reserve (`round_ms`) at the pace the worker answers (`task_ms`), so that a worker faster
/// than a round does not wait for one after each task; never fewer than configured, never more than
/// `MAX_RESERVE_DEPTH`, and none when reserves are off (`configured` 0). Until both are measured,
/// the configured depth.
pub fn reserve_depth(configured: u32, round_ms: Option<f64>, task_ms: Option<f64>) -> u32 {
    if configured == 0 {
        return 0;
    }
    match (round_ms, task_ms) {
        (Some(round_ms), Some(task_ms)) if round_ms.is_finite() && task_ms > 0.0 => {
            let covering = (round_ms / task_ms)
                .ceil()
                .min(f64::from(MAX_RESERVE_DEPTH)) as u32;
            covering.clamp(configured.min(MAX_RESERVE_DEPTH), MAX_RESERVE_DEPTH)
        }
        _ => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(rows_per_s: f64, ack_latency_ms: f64, tasks_done: u64, failures: u64) -> Track {
        Track {
            rows_per_s: Some(rows_per_s),
            ack_latency_ms: Some(ack_latency_ms),
            tasks_done,
            failures,
            task_ms: None,
        }
    }

    #[test]
    fn a_worker_slower_than_a_dispatch_round_keeps_the_configured_reserve() {
        assert_eq!(reserve_depth(1, Some(1.5), Some(2_000.0)), 1);
        assert_eq!(reserve_depth(2, Some(1.5), Some(2_000.0)), 2);
    }

    #[test]
    fn a_worker_faster_than_a_dispatch_round_reserves_enough_to_cover_one() {
        assert_eq!(reserve_depth(1, Some(1.5), Some(0.5)), 3);
        assert_eq!(reserve_depth(1, Some(1.5), Some(0.25)), 6);
    }

    #[test]
    fn the_reserve_depth_is_bounded_and_off_stays_off() {
        assert_eq!(reserve_depth(1, Some(50.0), Some(0.1)), MAX_RESERVE_DEPTH);
        assert_eq!(reserve_depth(20, Some(1.5), Some(0.1)), MAX_RESERVE_DEPTH);
        assert_eq!(reserve_depth(0, Some(50.0), Some(0.1)), 0);
    }

    #[test]
    fn an_unmeasured_worker_or_round_keeps_the_configured_reserve() {
        assert_eq!(reserve_depth(1, None, Some(0.1)), 1);
        assert_eq!(reserve_depth(1, Some(1.5), None), 1);
        assert_eq!(reserve_depth(1, Some(1.5), Some(0.0)), 1);
    }

    #[test]
    fn task_time_is_smoothed() {
        let mut t = Track::default();
        t.record_task_time(10.0);
        assert_eq!(t.task_ms, Some(10.0));
        t.record_task_time(20.0);
        assert_eq!(t.task_ms, Some(13.0));
    }

    #[test]
    fn the_faster_of_two_reliable_nearby_workers_goes_first() {
        let fast = track(20_000.0, 5.0, 50, 0);
        let slow = track(5_000.0, 5.0, 50, 0);
        assert!(fast.expected_s(REFERENCE_TASK_ROWS) < slow.expected_s(REFERENCE_TASK_ROWS));
    }

    #[test]
    fn a_fast_worker_that_often_fails_goes_after_a_reliable_one_a_little_slower() {
        let flaky = track(20_000.0, 5.0, 10, 10);
        let steady = track(15_000.0, 5.0, 20, 0);
        assert!(steady.expected_s(REFERENCE_TASK_ROWS) < flaky.expected_s(REFERENCE_TASK_ROWS));
    }

    #[test]
    fn latency_decides_between_equally_fast_workers() {
        let near = track(10_000.0, 10.0, 20, 0);
        let far = track(10_000.0, 900.0, 20, 0);
        assert!(near.expected_s(REFERENCE_TASK_ROWS) < far.expected_s(REFERENCE_TASK_ROWS));
    }

    #[test]
    fn an_unmeasured_worker_has_no_estimate() {
        assert_eq!(
            Track::default().expected_s(REFERENCE_TASK_ROWS),
            f64::INFINITY
        );
    }

    #[test]
    fn ack_latency_is_smoothed() {
        let mut t = Track::default();
        t.record_ack(100.0);
        assert_eq!(t.ack_latency_ms, Some(100.0));
        t.record_ack(200.0);
        assert_eq!(t.ack_latency_ms, Some(120.0));
    }
}
