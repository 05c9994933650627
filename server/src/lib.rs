//! VitalGrid's server. A tour:

/// Accounts, password hashing and sessions.
pub mod accounts;
/// `AppState`, database connection and migrations at start-up.
pub mod app;
/// `vitalgrid audit-results`: native re-run of stored tasks.
pub mod audit;
/// Auth extractors: `AuthUser`, `Admin`, `Clinician`.
pub mod auth;
/// The command line (`serve`, `generate-vitals`, `audit-results`).
pub mod cli;
/// Wall-clock behind a trait.
pub mod clock;
/// Typed configuration from flags and environment.
pub mod config;
/// sea-orm entities and stored status values.
pub mod db;
/// `AppError` and its one conversion into HTTP responses.
pub mod error;
/// The event history of jobs and tasks.
pub mod events;
/// DataExtractor: CSV parsing and splitting into tasks.
pub mod extract;
/// Clinicians' files.
pub mod files;
/// Jobs, their submission and results.
pub mod jobs;
/// `build_router`.
pub mod router;
/// HTTP handlers, one module per resource.
pub mod routes;
/// SenderCore: task leases, dispatch, results.
pub mod scheduler;
/// Templates as versioned data in the database.
pub mod templates;
/// The volunteer WebSocket.
pub mod ws;
