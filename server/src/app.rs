//! `AppState`: the one shared state handed to every handler — database, configuration, clock,
//! templates and the scheduler. Built once at start-up (or by a test) and cloned cheaply.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::sqlx::sqlite::SqliteSynchronous;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use vitalgrid_migrations::{Migrator, MigratorTrait};

use crate::clock::Clock;
use crate::config::{Config, SqliteSync};
use crate::scheduler::SenderCore;
use crate::templates::TemplateStore;

#[derive(Clone, Debug)]
pub struct AppState(Arc<App>);

#[derive(Debug)]
pub struct App {
    pub db: DatabaseConnection,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub templates: Arc<TemplateStore>,
    pub scheduler: Arc<SenderCore>,
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    /// Assembles the state (seeding the built-in templates on a new database) and starts the
    /// scheduler's background sweep.
    pub async fn start(
        db: DatabaseConnection,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let templates = Arc::new(
            TemplateStore::open(db.clone(), clock.now_ms())
                .await
                .context("loading templates")?,
        );
        let scheduler = SenderCore::start(
            db.clone(),
            config.scheduler.clone(),
            clock.clone(),
            Arc::clone(&templates),
        );
        Ok(Self(Arc::new(App {
            db,
            config,
            clock,
            templates,
            scheduler,
        })))
    }
}

/// Each SQLite connection's page cache (negative: in KiB), a quarter of SQLite's default. The
/// operating system caches the file as well, so a page SQLite does not keep costs a `pread`, not a
/// disk read. The four connections' default caches can hold 8 MB of 64 KB payloads; with this one
/// the resident size after the bench's 64 KB tasks was about 10 MB lower at the same throughput
/// (docs/benchmarks.md, eighth session).
const SQLITE_CACHE_SIZE: &str = "-512";

/// Opens the database named by `url`, creating the SQLite file's folder when needed, and brings
/// the schema up to date. SQLite commits are flushed to disk one by one (`SqliteSync::Full`).
pub async fn connect_database(url: &str) -> anyhow::Result<DatabaseConnection> {
    connect_database_with(url, SqliteSync::Full).await
}

/// `connect_database`, with SQLite's durability chosen (`--sqlite-synchronous`).
pub async fn connect_database_with(
    url: &str,
    sqlite_sync: SqliteSync,
) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = sqlite_path(url) {
        if let Some(parent) = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the database folder {}", parent.display()))?;
        }
    }
    let sqlite = sqlite_path(url).is_some();
    let mut options = ConnectOptions::new(url.to_owned());
    // SeaORM's SQLite default is a single connection; readers need not wait behind writers in WAL mode.
    options
        .max_connections(if sqlite { 4 } else { 16 })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // By default the pool pings a connection each time it hands it out, to find one the
        // database has closed. An embedded SQLite connection cannot be closed under us, and its
        // ping is a round trip to the connection's own thread on every transaction and query;
        // MySQL connections are pinged only after sitting idle (`connect_mysql`).
        .test_before_acquire(false)
        // Per-connection settings, so they are made on every connection of the pool.
        .map_sqlx_sqlite_opts(move |options| {
            options
                .pragma("cache_size", SQLITE_CACHE_SIZE)
                .synchronous(match sqlite_sync {
                    SqliteSync::Full => SqliteSynchronous::Full,
                    SqliteSync::Normal => SqliteSynchronous::Normal,
                })
        });
    let db = if DbBackend::MySql.is_prefix_of(url) {
        connect_mysql(options).await
    } else {
        Database::connect(options).await
    }
    .with_context(|| format!("connecting to {}", redact(url)))?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")
            .await
            .context("setting SQLite pragmas")?;
    }
    Migrator::up(&db, None)
        .await
        .context("running database migrations")?;
    Ok(db)
}

/// A pooled MySQL/MariaDB connection idle at least this long is pinged before it is used again.
const PING_CONNECTIONS_IDLE_FOR: Duration = Duration::from_secs(1);

/// A MySQL/MariaDB pool whose every connection runs its transactions at READ COMMITTED. Under the
/// default REPEATABLE READ, InnoDB's locking reads and updates also lock the gaps between index
/// entries, so a scheduler round holding the gap at the end of `tasks` and a job submission
/// inserting its first tasks there deadlocked. At READ COMMITTED only rows are locked and every
/// statement reads what is committed when it runs, which is what the scheduler's conditional
/// updates (the fencing token, `status = 'queued'`) are written against. Set once per connection
/// rather than per transaction: that would be one more statement in every transaction.
async fn connect_mysql(options: ConnectOptions) -> Result<DatabaseConnection, sea_orm::DbErr> {
    use sea_orm::sqlx::mysql::{MySql, MySqlConnectOptions};
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _, Executor as _};

    let connection_error = |error| sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error));
    let connect_options = options
        .get_url()
        .parse::<MySqlConnectOptions>()
        .map_err(connection_error)?
        .disable_statement_logging();
    let pool = options
        .sqlx_pool_options::<MySql>()
        // The pool pings every connection it takes back. Pinging it again as it hands it out
        // doubled the commands a busy server sent (over half of them were pings); only a
        // connection that has sat idle may have been dropped since (a restarted database server).
        .before_acquire(|connection, held| {
            Box::pin(async move {
                if held.idle_for < PING_CONNECTIONS_IDLE_FOR {
                    return Ok(true);
                }
                connection.ping().await.map(|()| true)
            })
        })
        .after_connect(|connection, _| {
            Box::pin(async move {
                connection
                    .execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(connect_options)
        .await
        .map_err(connection_error)?;
    Ok(sea_orm::SqlxMySqlConnector::from_sqlx_mysql_pool(pool))
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_and_passwords_redacted() {
        assert_eq!(
            sqlite_path("sqlite://data/vg.sqlite?mode=rwc"),
            Some("data/vg.sqlite")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("mysql://root@localhost/vg"), None);
        assert_eq!(
            redact("mysql://root:secret@db:3306/vg"),
            "mysql://root:***@db:3306/vg"
        );
    }
}
