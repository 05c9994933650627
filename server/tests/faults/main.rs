//! The fault suite: real volunteers misbehave, servers die, networks churn. Each test runs the real
//! server (in-process, or the `vitalgrid` binary as a child process) against a fresh SQLite
//! database — and MariaDB when `TEST_DATABASE_URL` is set — with native workers from
//! `vitalgrid-native-worker`, and checks that every job completes with the result a native
//! one-pass computation gives.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod byzantine;
mod churn;
mod crash;
mod misbehaving;
mod two_servers;
