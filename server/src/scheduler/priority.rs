//! Which job gets the next free slot: urgent first, but normal and batch work keep moving (smooth
//! weighted round robin over the three queues), and within a queue the clinicians take turns, so one
//! clinician's small job is not stuck behind another's thousand tasks. Pure logic, no I/O.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgent,
    #[default]
    Normal,
    Batch,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Urgent, Priority::Normal, Priority::Batch];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Urgent => "urgent",
            Self::Normal => "normal",
            Self::Batch => "batch",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// Share of slots a queue gets when all three have work: 6 : 3 : 1.
    fn weight(self) -> i64 {
        match self {
            Self::Urgent => 6,
            Self::Normal => 3,
            Self::Batch => 1,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A job with queued tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveJob {
    pub job_id: i64,
    pub owner_id: i64,
    pub priority: Priority,
    pub queued_tasks: usize,
}

/// Remembers, between dispatch rounds, the weighted round robin's credit and whose turn it is.
#[derive(Debug, Default)]
pub struct FairQueue {
    credit: [i64; 3],
    last_owner: [Option<i64>; 3],
}

impl FairQueue {
    /// Assigns up to `slots` slots to jobs, returning job ids in the order they should be served
    /// (a job may appear several times).
    pub fn plan(&mut self, jobs: &[ActiveJob], slots: usize) -> Vec<i64> {
        let mut remaining: Vec<ActiveJob> = jobs.to_vec();
        let mut plan = Vec::with_capacity(slots);
        while plan.len() < slots {
            let waiting: Vec<Priority> = Priority::ALL
                .into_iter()
                .filter(|p| {
                    remaining
                        .iter()
                        .any(|j| j.priority == *p && j.queued_tasks > 0)
                })
                .collect();
            if waiting.is_empty() {
                break;
            }
            // Smooth weighted round robin (as in nginx): add weights, take the largest, pay the total.
            let total: i64 = waiting.iter().map(|p| p.weight()).sum();
            for p in &waiting {
                self.credit[p.index()] += p.weight();
            }
            let Some(chosen) = waiting
                .iter()
                .copied()
                .max_by_key(|p| (self.credit[p.index()], std::cmp::Reverse(p.index())))
            else {
                break;
            };
            self.credit[chosen.index()] -= total;
            let Some(job) = self.next_owner_job(&mut remaining, chosen) else {
                break;
            };
            plan.push(job);
        }
        plan
    }

    /// The oldest job of the owner after the last one served in this queue.
    fn next_owner_job(&mut self, jobs: &mut [ActiveJob], priority: Priority) -> Option<i64> {
        let mut owners: Vec<i64> = jobs
            .iter()
            .filter(|j| j.priority == priority && j.queued_tasks > 0)
            .map(|j| j.owner_id)
            .collect();
        owners.sort_unstable();
        owners.dedup();
        let last = self.last_owner[priority.index()];
        let owner = owners
            .iter()
            .copied()
            .find(|o| last.is_some_and(|l| *o > l))
            .or_else(|| owners.first().copied())?;
        self.last_owner[priority.index()] = Some(owner);
        let job = jobs
            .iter_mut()
            .filter(|j| j.priority == priority && j.owner_id == owner && j.queued_tasks > 0)
            .min_by_key(|j| j.job_id)?;
        job.queued_tasks -= 1;
        Some(job.job_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(job_id: i64, owner_id: i64, priority: Priority, queued_tasks: usize) -> ActiveJob {
        ActiveJob {
            job_id,
            owner_id,
            priority,
            queued_tasks,
        }
    }

    #[test]
    fn urgent_goes_first_but_batch_is_not_starved() {
        let jobs = [
            job(1, 1, Priority::Batch, 1_000),
            job(2, 2, Priority::Urgent, 1_000),
            job(3, 3, Priority::Normal, 1_000),
        ];
        let plan = FairQueue::default().plan(&jobs, 100);
        let count = |id| plan.iter().filter(|j| **j == id).count();
        assert_eq!((count(2), count(3), count(1)), (60, 30, 10));
        assert_eq!(plan[0], 2, "urgent is served first");
    }

    #[test]
    fn clinicians_take_turns_within_a_queue() {
        let jobs = [
            job(1, 10, Priority::Normal, 1_000),
            job(2, 20, Priority::Normal, 2),
        ];
        let plan = FairQueue::default().plan(&jobs, 6);
        assert_eq!(
            plan,
            vec![1, 2, 1, 2, 1, 1],
            "the small job finishes within its first turns"
        );
    }

    #[test]
    fn turns_continue_across_dispatch_rounds() {
        let jobs = [
            job(1, 10, Priority::Normal, 100),
            job(2, 20, Priority::Normal, 100),
        ];
        let mut queue = FairQueue::default();
        assert_eq!(queue.plan(&jobs, 1), vec![1]);
        assert_eq!(queue.plan(&jobs, 1), vec![2]);
    }

    #[test]
    fn plan_stops_when_work_runs_out() {
        let jobs = [job(1, 10, Priority::Batch, 2)];
        assert_eq!(FairQueue::default().plan(&jobs, 5), vec![1, 1]);
    }
}
