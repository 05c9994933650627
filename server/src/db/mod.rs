//! Persistence: the sea-orm entities and the status values stored in them.

pub mod entities;

/// Values of `tasks.status`.
pub mod task_status {
    pub const QUEUED: &str = "queued";
    pub const LEASED: &str = "leased";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
}

/// Values of `jobs.status`.
pub mod job_status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
}
