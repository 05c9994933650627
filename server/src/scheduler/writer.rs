//! The scheduler's writes on SQLite: one writer connection, taken in turns, and the checkpoints
//! that copy its write-ahead log into the database file away from those turns.

use std::sync::Weak;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// Turns at writing for the scheduler's transactions on SQLite, which lets one connection write at
/// a time: waiting here is a queue, while waiting inside SQLite's busy handler means sleeping 1, 2,
/// 5, 10… ms between retries. MySQL/MariaDB lock rows, not the database, so there every write goes
/// ahead at once, on the shared pool.
///
/// On SQLite the turns also share one connection of their own, the writer. SQLite empties a
/// connection's page cache whenever another connection has committed since it last read, so
/// writes spread over the pool's connections each began by reading back from the file the pages
/// the previous writer had just written; the writer keeps them, in a cache large enough for a
/// group commit's pages (a cache that fills mid-transaction spills pages to the log early).
///
/// The writer never checkpoints on its own (`keep_checkpointed` does): SQLite's automatic
/// checkpoint runs inside the commit that crosses its threshold, so a turn would copy the log
/// into the database file and wait for its flush while every other writer waited for the turn.
#[derive(Debug)]
pub(super) struct WriteTurns {
    turn: Option<tokio::sync::Mutex<()>>,
    writer: DatabaseConnection,
}

/// The writer's page cache (negative: in KiB), eight times a reading connection's
/// (`app::SQLITE_CACHE_SIZE`).
const SQLITE_WRITER_CACHE_SIZE: &str = "-4096";

/// One writer's turn: the connection to write through, held until dropped.
pub(super) struct WriteTurn<'a> {
    _turn: Option<tokio::sync::MutexGuard<'a, ()>>,
    pub(super) db: &'a DatabaseConnection,
}

impl WriteTurns {
    /// The turns for writing to `db`'s database. The SQLite writer connects on its first turn.
    pub(super) fn for_database(db: &DatabaseConnection) -> Self {
        if db.get_database_backend() != DbBackend::Sqlite {
            return Self {
                turn: None,
                writer: db.clone(),
            };
        }
        // The pool's own options, so the writer opens the same file (or the same shared in-memory
        // database) with the same pragmas.
        let options = (*db.get_sqlite_connection_pool().connect_options())
            .clone()
            .pragma("cache_size", SQLITE_WRITER_CACHE_SIZE)
            .pragma("wal_autocheckpoint", "0");
        let pool = sea_orm::sqlx::pool::PoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            // Kept open: a reopened connection starts with an empty cache.
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Self {
            turn: Some(tokio::sync::Mutex::new(())),
            writer: sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
        }
    }

    /// Waits for this writer's turn, which lasts as long as the returned turn.
    pub(super) async fn take(&self) -> WriteTurn<'_> {
        let turn = match &self.turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        WriteTurn {
            _turn: turn,
            db: &self.writer,
        }
    }
}

/// How often the write-ahead log is copied into the database file. The log grows by what the
/// writer commits in this time before it starts over: up to about 100 MB at full speed with 64 KB
/// tasks (docs/operations.md).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoints the SQLite database every `CHECKPOINT_INTERVAL` for as long as `turns` lives (on
/// other backends it returns at once).
pub(super) async fn keep_checkpointed(turns: Weak<WriteTurns>, db: DatabaseConnection) {
    if db.get_database_backend() != DbBackend::Sqlite || !in_wal_mode(&db).await {
        // No log to copy (an in-memory database), where checkpoints would only fail.
        return;
    }
    let mut every = tokio::time::interval(CHECKPOINT_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(turns) = turns.upgrade() else {
            return;
        };
        if let Err(error) = checkpoint(&turns, &db).await {
            tracing::warn!(%error, "checkpointing the SQLite log failed");
        }
    }
}

/// Whether the SQLite database keeps a write-ahead log (`app::connect_database` asks for one; an
/// in-memory database cannot have one).
async fn in_wal_mode(db: &DatabaseConnection) -> bool {
    let mode = db
        .query_one(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get_by_index::<String>(0).ok());
    mode.is_some_and(|mode| mode.eq_ignore_ascii_case("wal"))
}

/// What a checkpoint found in the log, in frames (pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogFrames {
    pub(super) written: i64,
    pub(super) copied: i64,
}

/// Frames a checkpoint pass beside the writer may leave for the pass in its turn (about 4 MB).
const FRAMES_LEFT_FOR_THE_TURN: i64 = 1_000;

/// Passes beside the writer at most, each copying what the writer committed during the last.
const PASSES_BESIDE_THE_WRITER: usize = 4;

/// Copies the write-ahead log into the database file. The first passes run on `db`, beside the
/// writer, and copy what is committed so far: the bulk of the work, the page writes and the file's
/// flush. The last runs on the writer in its turn, so that no transaction is open while it copies
/// the little committed meanwhile. The whole log then is in the file, and the writer's next
/// transaction starts the log over instead of growing it; a checkpoint running beside a writer
/// that always has a transaction open would never let it start over.
pub(super) async fn checkpoint(
    turns: &WriteTurns,
    db: &DatabaseConnection,
) -> Result<LogFrames, DbErr> {
    let mut beside = passive_checkpoint(db).await?;
    if beside.written <= 0 {
        // Empty (just started over), or not a write-ahead log at all (an in-memory database).
        return Ok(beside);
    }
    for _ in 1..PASSES_BESIDE_THE_WRITER {
        let copied_before = beside.copied;
        beside = passive_checkpoint(db).await?;
        // What this pass copied had been committed during the last: when that was little, the
        // writer's turn will be short.
        if beside.copied - copied_before <= FRAMES_LEFT_FOR_THE_TURN {
            break;
        }
    }
    let turn = turns.take().await;
    passive_checkpoint(turn.db).await
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: copies what no reader still needs, waiting for nobody.
async fn passive_checkpoint(db: &DatabaseConnection) -> Result<LogFrames, DbErr> {
    let row = db
        .query_one(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("wal_checkpoint returned no row".to_owned()))?;
    Ok(LogFrames {
        written: row.try_get("", "log")?,
        copied: row.try_get("", "checkpointed")?,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::TransactionTrait;

    use super::*;

    /// Commits `transactions` transactions through the writer, each adding about 40 pages.
    async fn write_through_the_writer(turns: &WriteTurns, transactions: usize) {
        for _ in 0..transactions {
            let turn = turns.take().await;
            let transaction = turn.db.begin().await.expect("a transaction");
            transaction
                .execute_unprepared(
                    "INSERT INTO filler SELECT randomblob(3000) FROM \
                     (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) \
                      SELECT i FROM n)",
                )
                .await
                .expect("rows written");
            transaction.commit().await.expect("committed");
        }
    }

    #[tokio::test]
    async fn the_writer_leaves_the_log_to_checkpoints_after_which_it_starts_the_log_over() {
        let (folder, db) = crate::scheduler::tests::sqlite_in_new_folder("log").await;
        let turns = WriteTurns::for_database(&db);
        turns
            .take()
            .await
            .db
            .execute_unprepared("CREATE TABLE filler (bytes BLOB)")
            .await
            .expect("a table to fill");

        // SQLite's own checkpoint would copy the log at 1 000 frames and start it over at the
        // next transaction, so the log would never pass ~1 050 frames.
        write_through_the_writer(&turns, 80).await;
        let log_path = folder.join("log.sqlite-wal");
        let log_bytes = std::fs::metadata(&log_path).expect("a log").len();
        assert!(
            log_bytes > 2_000 * 4_096,
            "the log holds only {log_bytes} bytes: the writer checkpointed on its own"
        );

        assert!(in_wal_mode(&db).await, "a file database keeps a log");
        let in_memory = crate::app::connect_database("sqlite::memory:")
            .await
            .expect("an in-memory database");
        assert!(
            !in_wal_mode(&in_memory).await,
            "nothing to checkpoint in memory"
        );
        let copied = checkpoint(&turns, &db).await.expect("a checkpoint");
        assert!(copied.written > 2_000, "{copied:?}");
        assert_eq!(copied.copied, copied.written, "the whole log is copied");

        write_through_the_writer(&turns, 1).await;
        let after = passive_checkpoint(&db).await.expect("a look at the log");
        db.close().await.expect("the database closes");
        turns.writer.close().await.expect("the writer closes");
        let _ = std::fs::remove_dir_all(&folder);
        assert!(
            after.written < 100,
            "the log did not start over after the checkpoint: {after:?}"
        );
    }
}
