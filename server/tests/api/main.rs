//! Integration tests: the real router on 127.0.0.1:0 against a fresh database — SQLite always, and
//! MariaDB/MySQL too when `TEST_DATABASE_URL` is set — driven over real HTTP and WebSockets.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod accounts;
mod database;
mod dependencies;
mod files;
mod reserves;
mod templates;
mod worker_socket;
