//! What both integration suites (`api`, `faults`) need to stand up the real app: a fresh database
//! per test on each backend, the per-backend test macro, and the app served on 127.0.0.1:0.
//! Each suite includes this file (`#[path = "../common/mod.rs"] mod common;`) and builds its own
//! harness on top.

// Each suite is its own crate and uses a different part of this file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sea_orm::{ConnectionTrait, Database};
use vitalgrid_server::app::{AppState, connect_database};
use vitalgrid_server::clock::SystemClock;
use vitalgrid_server::config::{Config, SchedulerConfig};
use vitalgrid_server::router::{build_router, without_nagle};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    MariaDb,
}

/// Generates one test per backend from a scenario `async fn(Backend)`; the MariaDB one runs only
/// when `TEST_DATABASE_URL` is set (and must be set in CI).
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() { super::$scenario(crate::common::Backend::Sqlite).await }
            )*
        }
        mod mariadb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                if crate::common::mariadb_url().is_some() {
                    super::$scenario(crate::common::Backend::MariaDb).await
                }
            }
            )*
        }
    };
}
pub(crate) use on_every_backend;

/// The MariaDB server to test against. In CI (`CI` set) it must be configured: a silently skipped
/// backend would hide failures.
pub fn mariadb_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set TEST_DATABASE_URL for the MariaDB tests"
            );
            None
        }
    }
}

/// A database for one test, removed when the test ends: a SQLite file in a temporary folder, or a
/// new database on the MariaDB server of `TEST_DATABASE_URL`, named after it.
pub struct TestDatabase {
    pub url: String,
    pub dir: TempDir,
    mariadb_to_drop: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        let dir = TempDir::new();
        match backend {
            Backend::Sqlite => Self {
                url: format!(
                    "sqlite://{}/vitalgrid.sqlite?mode=rwc",
                    dir.path().display()
                ),
                dir,
                mariadb_to_drop: None,
            },
            Backend::MariaDb => {
                let (server, name) = fresh_mariadb_database().await;
                Self {
                    url: format!("{server}/{name}"),
                    dir,
                    mariadb_to_drop: Some((server, name)),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.mariadb_to_drop.take() else {
            return;
        };
        // Drop runs outside async context, so the cleanup gets a small runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = Database::connect(&server).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A new, empty database on the MariaDB server of `TEST_DATABASE_URL`, named after it; returns the
/// server URL and the database name.
async fn fresh_mariadb_database() -> (String, String) {
    let url = mariadb_url().expect("TEST_DATABASE_URL is set");
    let (server, base_name) = match url.rsplit_once('/') {
        Some((server, name))
            if server.contains("://") && !server.ends_with('/') && !name.is_empty() =>
        {
            (server.to_owned(), name.to_owned())
        }
        _ => (
            url.trim_end_matches('/').to_owned(),
            "vitalgrid_test".to_owned(),
        ),
    };
    let name = format!(
        "{base_name}_{}",
        &vitalgrid_server::scheduler::random_id()[..12]
    );
    let admin = Database::connect(&server).await.expect("MariaDB reachable");
    admin
        .execute_unprepared(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .await
        .expect("creates a test database");
    (server, name)
}

/// Opens (and migrates) the database at `database_url`, starts the app on it with `scheduler` and
/// serves it; returns the state, the base HTTP URL and the workers' WebSocket URL.
pub async fn start_app(
    database_url: &str,
    scheduler: SchedulerConfig,
) -> (AppState, String, String) {
    let db = connect_database(database_url)
        .await
        .expect("database opens and migrates");
    let config = Config {
        scheduler,
        ..Config::default()
    };
    let state = AppState::start(db, config, Arc::new(SystemClock))
        .await
        .expect("app starts");
    let (base, ws_url) = serve(&state).await;
    (state, base, ws_url)
}

/// Serves the real router for `state` on 127.0.0.1:0 in the background; returns the base HTTP URL
/// and the workers' WebSocket URL.
async fn serve(state: &AppState) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let address = listener.local_addr().expect("has an address");
    let router = build_router(state.clone());
    tokio::spawn(async move { axum::serve(without_nagle(listener), router).await });
    (
        format!("http://{address}"),
        format!("ws://{address}/ws/worker"),
    )
}

/// A temporary folder removed on drop, without another dependency.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "vitalgrid-test-{}",
            vitalgrid_server::scheduler::random_id()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
