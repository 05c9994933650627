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
    let mut options = ConnectOptions::new(url.to_owned());
    // SeaORM's SQLite default is a single connection; readers need not wait behind writers in WAL mode.
    options
        .max_connections(if sqlite_path(url).is_some() { 4 } else { 16 })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // A per-connection setting, so it is made on every connection of the pool.
        .map_sqlx_sqlite_opts(move |options| {
            options.synchronous(match sqlite_sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
        });
    let db = Database::connect(options)
        .await
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
