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

/// What the scheduler has measured of one connected worker.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Track {
    /// Rows per second, smoothed; `None` until its first result.
    pub rows_per_s: Option<f64>,
    /// Milliseconds from sending a packet to its ACK, smoothed; `None` until its first ACK.
    pub ack_latency_ms: Option<f64>,
    pub tasks_done: u64,
    pub failures: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn track(rows_per_s: f64, ack_latency_ms: f64, tasks_done: u64, failures: u64) -> Track {
        Track {
            rows_per_s: Some(rows_per_s),
            ack_latency_ms: Some(ack_latency_ms),
            tasks_done,
            failures,
        }
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
