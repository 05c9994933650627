//! Persistence: the sea-orm entities and the status values stored in them.

pub mod entities;

use sea_orm::{DbErr, RuntimeErr};

/// Whether the database rolled a transaction back to break a deadlock (MySQL/MariaDB error 1213,
/// SQLSTATE 40001). Nothing of the transaction was applied, so it may simply run again.
pub fn is_deadlock(error: &DbErr) -> bool {
    let runtime = match error {
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    matches!(runtime, RuntimeErr::SqlxError(sqlx_error)
        if sqlx_error
            .as_database_error()
            .and_then(|database| database.code())
            .as_deref()
            == Some("40001"))
}

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
