//! Persistence: the sea-orm entities and the status values stored in them.

pub mod entities;

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, IsolationLevel, RuntimeErr,
    TransactionTrait,
};

/// Begins a transaction that writes scheduler or job state. On MySQL/MariaDB it runs at READ
/// COMMITTED: under the default REPEATABLE READ, InnoDB's locking reads and updates also lock the
/// gaps between index entries, so a scheduler round holding the gap at the end of `tasks` and a
/// job submission inserting its first tasks there deadlocked. At READ COMMITTED only rows are
/// locked and every statement reads what is committed when it runs, which is what the scheduler's
/// conditional updates (the fencing token, `status = 'queued'`) are written against. SQLite has one
/// writer at a time and no isolation levels to choose.
pub async fn begin_write<C>(db: &C) -> Result<DatabaseTransaction, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    match db.get_database_backend() {
        DbBackend::MySql => {
            db.begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                .await
        }
        _ => db.begin().await,
    }
}

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
