//! Typed configuration from command-line flags and `VITALGRID_*` / `DATABASE_URL` environment
//! variables. The defaults run a single server with SQLite under `./data`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `vitalgrid serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VITALGRID_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Folder holding the built web app (index.html, assets, wasm).
    #[arg(long, env = "VITALGRID_WEB_DIR", default_value = default_web_dir())]
    pub web_dir: PathBuf,
    /// Largest accepted upload, in MiB.
    #[arg(long, env = "VITALGRID_MAX_UPLOAD_MIB", default_value_t = 256)]
    pub max_upload_mib: usize,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
}

/// Scheduler timings and redundancy; the defaults suit volunteers' browsers.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// A task not ACKed this long after sending is resent, then reassigned.
    #[arg(long, env = "VITALGRID_ACK_TIMEOUT_MS", default_value_t = 10_000)]
    pub ack_timeout_ms: u64,
    /// How long a lease lasts without news from its worker.
    #[arg(long, env = "VITALGRID_LEASE_TTL_MS", default_value_t = 60_000)]
    pub lease_ttl_ms: u64,
    /// Period of the sweep that renews, expires and resends.
    #[arg(long, env = "VITALGRID_SWEEP_INTERVAL_MS", default_value_t = 2_000)]
    pub sweep_interval_ms: u64,
    /// Distinct workers whose results must agree before a task counts (1 for a trusted pool).
    #[arg(long, env = "VITALGRID_REPLICAS", default_value_t = 2)]
    pub replicas: u32,
    /// Mean time between known-answer probes of an idle worker that has not earned trust yet.
    #[arg(long, env = "VITALGRID_PROBE_INTERVAL_MS", default_value_t = 8_000)]
    pub probe_interval_ms: u64,
    /// Tasks claimed per worker slot beyond the ones it is running, at least (a worker faster than
    /// a dispatch round gets up to 8), held here and sent the moment a slot frees (0 turns reserves
    /// off).
    #[arg(long, env = "VITALGRID_RESERVE_PER_SLOT", default_value_t = 1)]
    pub reserve_per_slot: u32,
    /// Task payloads held in memory at once (read and not yet written to a socket, or reserved),
    /// in MiB.
    #[arg(long, env = "VITALGRID_PAYLOAD_BUDGET_MIB", default_value_t = 16)]
    pub payload_budget_mib: usize,
}

/// Where the database is.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH?mode=rwc` or `mysql://USER:PASSWORD@HOST:PORT/DATABASE`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/vitalgrid.sqlite?mode=rwc"
    )]
    pub database_url: String,
    /// SQLite only: `full` flushes every commit to disk before it counts (it survives a power
    /// cut); `normal` flushes at checkpoints only (a commit survives the server process dying,
    /// even by SIGKILL, but the last ones may be lost if the machine loses power). See
    /// docs/operations.md.
    #[arg(
        long,
        env = "VITALGRID_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value_t = SqliteSync::Full
    )]
    pub sqlite_synchronous: SqliteSync,
}

/// How SQLite makes a commit durable (`PRAGMA synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SqliteSync {
    /// The log is flushed to disk (fsync) at every commit: a commit survives a power cut.
    #[default]
    Full,
    /// The log is flushed at checkpoints only: a commit survives a crash of the server process,
    /// not of the machine. Saves one flush per commit (about 1 ms on an ordinary disk).
    Normal,
}

/// The web app built by `cargo xtask build`, found from the source tree so the binary serves it
/// wherever it is started from.
fn default_web_dir() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../web/dist")
}

/// Everything the running application needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    pub web_dir: PathBuf,
    pub max_upload_bytes: usize,
    pub session_ttl: Duration,
    pub scheduler: SchedulerConfig,
}

impl Config {
    pub fn from_args(args: &ServeArgs) -> Self {
        Self {
            web_dir: args.web_dir.clone(),
            max_upload_bytes: args.max_upload_mib.saturating_mul(1024 * 1024),
            scheduler: SchedulerConfig {
                ack_timeout: Duration::from_millis(args.scheduler.ack_timeout_ms),
                lease_ttl: Duration::from_millis(args.scheduler.lease_ttl_ms),
                sweep_interval: Duration::from_millis(args.scheduler.sweep_interval_ms.max(10)),
                replicas: args.scheduler.replicas.max(1),
                probe_interval: Duration::from_millis(args.scheduler.probe_interval_ms.max(1)),
                reserve_per_slot: args.scheduler.reserve_per_slot,
                payload_budget_bytes: args.scheduler.payload_budget_mib.max(1) * 1024 * 1024,
                ..SchedulerConfig::default()
            },
            ..Self::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            web_dir: PathBuf::from(default_web_dir()),
            max_upload_bytes: 256 * 1024 * 1024,
            session_ttl: Duration::from_secs(12 * 3600),
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// Timings and sizes of task distribution.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// A task not ACKed this long after sending is sent again; after a second silence it goes to
    /// another worker.
    pub ack_timeout: Duration,
    /// How long a lease lasts without news; the sweep renews the leases of live connections once a
    /// third of them has passed.
    pub lease_ttl: Duration,
    /// Period of the sweep that renews live leases, requeues expired ones and resends un-ACKed tasks.
    pub sweep_interval: Duration,
    /// Failed attempts (a lease that expired, was never ACKed, was refused or came back broken)
    /// after which a task, and its job, fail with a reason instead of looping forever.
    pub max_attempts: i32,
    /// Rows per task: about a second of volunteer CPU each.
    pub vitals_rows_per_task: usize,
    pub ecg_rows_per_task: usize,
    /// Chart points per signal in a result.
    pub trend_points: usize,
    /// Distinct workers whose result hashes must agree before a task's result is applied.
    pub replicas: u32,
    /// Mean time between known-answer probes of an idle worker without full credibility: a rate
    /// in time, so a short sweep period (as in tests and benchmarks) does not multiply the probes.
    pub probe_interval: Duration,
    /// Reserve places per worker slot: tasks claimed and leased to the worker like sent ones but
    /// held in memory, so that when a slot frees its next task goes out at once instead of after
    /// a dispatch round (a read, a claim transaction and a payload read). The least a worker
    /// holds: one faster than a round holds more (`choice::reserve_depth`). 0 turns reserves off.
    pub reserve_per_slot: u32,
    /// Task payload bytes held in memory at once: read from the database and not yet written to a
    /// socket, or in a reserve (`scheduler::budget`). Dispatch rounds hand out no more than it
    /// holds, so the server's memory does not grow with workers × task size.
    pub payload_budget_bytes: usize,
    /// Result bytes (with a fixed allowance per result for its bookkeeping) accepted and not yet
    /// committed: when workers answer faster than group commits take their results, a
    /// connection waits to hand over its next result, so the backlog in memory stays bounded.
    pub result_backlog_bytes: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(2),
            max_attempts: 5,
            vitals_rows_per_task: 3_600,
            ecg_rows_per_task: 60_000,
            trend_points: 1_000,
            replicas: 2,
            probe_interval: Duration::from_secs(8),
            reserve_per_slot: 1,
            payload_budget_bytes: 16 * 1024 * 1024,
            result_backlog_bytes: 16 * 1024 * 1024,
        }
    }
}
