//! The in-worker scheduler: runs the pipeline in slices of a few milliseconds so that a Stop, a
//! ping or a new task is answered within one slice, and rests between slices in proportion to the
//! volunteer's CPU share (rest = busy × (1 − share) / share).
//!
//! Plain Rust over a [`Clock`], so native tests drive it with a fake clock and the browser with
//! `performance.now()`. The number of rows per chunk adapts to the measured speed (rows/ms of the
//! previous chunks), so a slice overruns its budget by at most one chunk.

/// Milliseconds from an arbitrary origin, non-decreasing.
pub trait Clock {
    fn now_ms(&self) -> f64;
}

/// What one slice did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceReport {
    pub rows: usize,
    pub busy_ms: f64,
    /// How long the caller should rest before the next slice, for the CPU share.
    pub rest_ms: f64,
    /// True when the work ran out before the budget did.
    pub exhausted: bool,
}

/// Decides chunk sizes and rest times.
#[derive(Debug, Clone, PartialEq)]
pub struct Slicer {
    budget_ms: f64,
    cpu_share: f64,
    /// Measured speed; starts low so the first chunk of a slice cannot blow the budget.
    rows_per_ms: f64,
}

impl Slicer {
    /// Smallest chunk: amortises the per-call overhead.
    pub const MIN_CHUNK: usize = 16;
    /// Largest chunk, whatever the measured speed (bounds the overrun on a clock that jumps).
    pub const MAX_CHUNK: usize = 1 << 16;
    const START_ROWS_PER_MS: f64 = 50.0;

    /// `budget_ms` per slice (clamped to 0.5–100 ms) and a CPU share (clamped to 5–100 %).
    pub fn new(budget_ms: f64, cpu_share: f64) -> Self {
        let mut slicer = Self {
            budget_ms: 8.0,
            cpu_share: 1.0,
            rows_per_ms: Self::START_ROWS_PER_MS,
        };
        slicer.set_budget_ms(budget_ms);
        slicer.set_cpu_share(cpu_share);
        slicer
    }

    pub fn set_budget_ms(&mut self, budget_ms: f64) {
        if budget_ms.is_finite() {
            self.budget_ms = budget_ms.clamp(0.5, 100.0);
        }
    }

    pub fn set_cpu_share(&mut self, share: f64) {
        if share.is_finite() {
            self.cpu_share = share.clamp(0.05, 1.0);
        }
    }

    pub fn budget_ms(&self) -> f64 {
        self.budget_ms
    }

    pub fn cpu_share(&self) -> f64 {
        self.cpu_share
    }

    /// Rest after `busy_ms` of work so that work takes `cpu_share` of the time.
    pub fn rest_ms(&self, busy_ms: f64) -> f64 {
        busy_ms * (1.0 - self.cpu_share) / self.cpu_share
    }

    /// Rows to ask for when `remaining_ms` of the budget is left.
    fn chunk(&self, remaining_ms: f64) -> usize {
        let rows = (self.rows_per_ms * remaining_ms).floor();
        // Saturating float → int conversion; then clamp to the chunk bounds.
        (rows as usize).clamp(Self::MIN_CHUNK, Self::MAX_CHUNK)
    }

    /// Runs `work(max_rows) -> rows done` in chunks until the budget is spent or `work` returns 0.
    pub fn run_slice(
        &mut self,
        clock: &impl Clock,
        mut work: impl FnMut(usize) -> usize,
    ) -> SliceReport {
        let start = clock.now_ms();
        let mut rows = 0;
        let mut exhausted = false;
        let mut now = start;
        while now - start < self.budget_ms {
            let asked = self.chunk(self.budget_ms - (now - start));
            let before = now;
            let done = work(asked);
            now = clock.now_ms();
            rows += done;
            if done == 0 {
                exhausted = true;
                break;
            }
            let took = now - before;
            if took > 0.0 {
                // Smoothed, so one slow chunk (a garbage collection) does not halve the next.
                let measured = done as f64 / took;
                self.rows_per_ms = 0.5 * self.rows_per_ms + 0.5 * measured;
            } else {
                // Faster than the clock resolves: grow until a chunk is measurable.
                self.rows_per_ms *= 2.0;
            }
            self.rows_per_ms = self.rows_per_ms.clamp(0.01, Self::MAX_CHUNK as f64);
            if done < asked {
                exhausted = true;
                break;
            }
        }
        let busy_ms = (now - start).max(0.0);
        SliceReport {
            rows,
            busy_ms,
            rest_ms: self.rest_ms(busy_ms),
            exhausted,
        }
    }
}

impl Default for Slicer {
    /// 8 ms slices at full share.
    fn default() -> Self {
        Self::new(8.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    struct FakeClock(Cell<f64>);

    impl Clock for FakeClock {
        fn now_ms(&self) -> f64 {
            self.0.get()
        }
    }

    impl FakeClock {
        fn advance(&self, ms: f64) {
            self.0.set(self.0.get() + ms);
        }
    }

    #[test]
    fn slices_never_exceed_the_budget_by_more_than_one_chunk() {
        let clock = FakeClock(Cell::new(0.0));
        let mut slicer = Slicer::new(8.0, 1.0);
        let mut remaining = 200_000usize;
        for round in 0..400 {
            // Speed changes mid-run (a slower phase of the algorithm).
            let cost_ms = if round < 20 { 0.002 } else { 0.01 };
            let mut largest_chunk_ms: f64 = 0.0;
            let report = slicer.run_slice(&clock, |max_rows| {
                let rows = max_rows.min(remaining);
                remaining -= rows;
                clock.advance(rows as f64 * cost_ms);
                largest_chunk_ms = largest_chunk_ms.max(rows as f64 * cost_ms);
                rows
            });
            assert!(
                report.busy_ms <= 8.0 + largest_chunk_ms,
                "round {round}: {report:?}"
            );
            if remaining == 0 {
                assert!(report.exhausted);
                return;
            }
            assert!(report.rows > 0);
        }
        panic!("the work never finished");
    }

    #[test]
    fn chunks_adapt_to_the_measured_speed() {
        let clock = FakeClock(Cell::new(0.0));
        let mut slicer = Slicer::new(10.0, 1.0);
        let mut first_chunks = Vec::new();
        for _ in 0..5 {
            let mut first = None;
            slicer.run_slice(&clock, |max_rows| {
                first.get_or_insert(max_rows);
                clock.advance(max_rows as f64 * 0.001);
                max_rows
            });
            first_chunks.extend(first);
        }
        // 1000 rows/ms: after a few slices a 10 ms slice starts by asking for ~10 000 rows.
        let last = *first_chunks.last().expect("chunks");
        assert!((5_000..=20_000).contains(&last), "{first_chunks:?}");
    }

    #[test]
    fn rest_time_is_proportional_to_the_cpu_share() {
        let clock = FakeClock(Cell::new(0.0));
        for (share, factor) in [(1.0, 0.0), (0.5, 1.0), (0.25, 3.0), (0.1, 9.0)] {
            let mut slicer = Slicer::new(8.0, share);
            let report = slicer.run_slice(&clock, |max_rows| {
                clock.advance(max_rows as f64 * 0.01);
                max_rows
            });
            assert!(report.busy_ms > 0.0);
            assert!(
                (report.rest_ms - report.busy_ms * factor).abs() < 1e-9,
                "share {share}: {report:?}"
            );
        }
    }

    #[test]
    fn idle_work_ends_the_slice_at_once_without_rest() {
        let clock = FakeClock(Cell::new(0.0));
        let mut slicer = Slicer::new(8.0, 0.5);
        let report = slicer.run_slice(&clock, |_| 0);
        assert_eq!(
            (
                report.rows,
                report.busy_ms,
                report.rest_ms,
                report.exhausted
            ),
            (0, 0.0, 0.0, true)
        );
    }
}
