//! The payload budget: task payload bytes this process holds in memory at once — read from the
//! database and not yet written to a worker's socket, or held in a worker's reserve.
//!
//! A dispatch round hands out a task to every free slot it can fill. With a thousand workers and
//! tasks of 64 KB to a few MB, one round would otherwise read, serialise and buffer a payload per
//! worker at the same time: the server's memory would grow with the number of workers times the
//! task size. Each payload is charged here from the moment it is read until its frame has been
//! written to the socket (or, for a reserved task, until it leaves the reserve that way); rounds
//! hand out only as many tasks as the room left is expected to hold, and when that held a round
//! back, the first charge to end wakes the dispatcher again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// What a task's payload is assumed to weigh before any has been read.
const FIRST_GUESS_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct PayloadBudget {
    capacity: usize,
    held: AtomicUsize,
    /// Mean payload size of the last tasks read: how many tasks the room left will hold.
    typical_bytes: AtomicUsize,
    /// Set when a round handed out fewer tasks than there were free slots for want of room.
    dispatch_held_back: AtomicBool,
    /// The dispatcher's wake-up call.
    wake: Arc<Notify>,
}

/// Payload bytes charged to the budget until this is dropped.
#[derive(Debug)]
pub struct PayloadCharge {
    budget: Arc<PayloadBudget>,
    bytes: usize,
}

impl PayloadBudget {
    pub fn new(capacity: usize, wake: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            held: AtomicUsize::new(0),
            typical_bytes: AtomicUsize::new(FIRST_GUESS_BYTES),
            dispatch_held_back: AtomicBool::new(false),
            wake,
        })
    }

    /// Charges a payload that has been read. It always succeeds (a payload larger than the whole
    /// budget must still go out); the rounds that follow make up for it.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> PayloadCharge {
        self.held.fetch_add(bytes, Ordering::Relaxed);
        PayloadCharge {
            budget: Arc::clone(self),
            bytes,
        }
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes still free: what the payloads of tasks to send now may take.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.held())
    }

    /// How many more tasks of the typical size fit: for tasks to send now, the whole room; for
    /// reserves, only what leaves half the budget free, so that reserved tasks (which wait for their
    /// worker) never take the room that tasks for idle workers need.
    pub fn tasks_that_fit(&self, for_reserve: bool) -> usize {
        let limit = if for_reserve {
            self.capacity / 2
        } else {
            self.capacity
        };
        let room = limit.saturating_sub(self.held());
        // Rounded up: with any room at all, one more task goes, so a task larger than the whole
        // budget still goes out once nothing else is held.
        room.div_ceil(self.typical_bytes.load(Ordering::Relaxed).max(1))
    }

    /// Whether a payload already charged may be held in a reserve: only while everything held
    /// stays within half the budget.
    pub fn may_reserve(&self) -> bool {
        self.held() <= self.capacity / 2
    }

    /// Records the sizes of payloads just read; the typical size follows the latest tasks, which
    /// are what the next rounds will most likely read.
    pub fn observe(&self, total_bytes: usize, tasks: usize) {
        if let Some(mean) = total_bytes.checked_div(tasks) {
            self.typical_bytes.store(mean.max(1), Ordering::Relaxed);
        }
    }

    /// A round left free slots without a task because the budget was full: the next charge to end
    /// wakes the dispatcher.
    pub fn hold_back_dispatch(&self) {
        self.dispatch_held_back.store(true, Ordering::Relaxed);
    }
}

impl Drop for PayloadCharge {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
        if self
            .budget
            .dispatch_held_back
            .swap(false, Ordering::Relaxed)
        {
            self.budget.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_held_until_dropped() {
        let budget = PayloadBudget::new(1_000, Arc::new(Notify::new()));
        let a = budget.charge(300);
        let b = budget.charge(200);
        assert_eq!(budget.held(), 500);
        drop(a);
        assert_eq!(budget.held(), 200);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn the_room_is_counted_in_tasks_of_the_typical_size() {
        let budget = PayloadBudget::new(1_000, Arc::new(Notify::new()));
        budget.observe(1_000, 10);
        assert_eq!(budget.tasks_that_fit(false), 10);
        assert_eq!(
            budget.tasks_that_fit(true),
            5,
            "reserves get half the budget"
        );
        let held = budget.charge(450);
        assert!(budget.may_reserve());
        assert_eq!(
            budget.tasks_that_fit(false),
            6,
            "550 bytes of room: rounded up"
        );
        assert_eq!(budget.tasks_that_fit(true), 1);
        let more = budget.charge(250);
        assert_eq!(budget.tasks_that_fit(false), 3);
        assert_eq!(budget.tasks_that_fit(true), 0);
        assert!(!budget.may_reserve());
        drop((held, more));
    }

    #[test]
    fn a_task_larger_than_the_budget_goes_once_nothing_else_is_held() {
        let budget = PayloadBudget::new(100, Arc::new(Notify::new()));
        budget.observe(1_000, 1);
        assert_eq!(budget.tasks_that_fit(false), 1);
        let big = budget.charge(1_000);
        assert_eq!(budget.tasks_that_fit(false), 0);
        drop(big);
        assert_eq!(budget.held(), 0);
        assert_eq!(budget.tasks_that_fit(false), 1);
    }

    #[tokio::test]
    async fn a_held_back_dispatcher_is_woken_by_the_next_charge_to_end() {
        let wake = Arc::new(Notify::new());
        let budget = PayloadBudget::new(100, Arc::clone(&wake));
        let first = budget.charge(60);
        let second = budget.charge(60);
        drop(first);
        // Nobody was held back: no wake-up is stored.
        let woken = tokio::time::timeout(std::time::Duration::from_millis(20), wake.notified());
        assert!(woken.await.is_err());
        budget.hold_back_dispatch();
        drop(second);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), wake.notified());
        assert!(woken.await.is_ok(), "the dispatcher is woken");
    }
}
