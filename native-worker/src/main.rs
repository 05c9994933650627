//! `vitalgrid-worker`: parses flags and runs the native worker until Ctrl-C, reconnecting when the
//! server goes away (a restart, a load balancer switching over).

use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vitalgrid_native_worker::{MAX_THREADS, WorkerConfig, new_worker_key, run_reconnecting};

/// A trusted VitalGrid worker for a hospital's own machines.
#[derive(Debug, Parser)]
#[command(name = "vitalgrid-worker", version)]
struct Args {
    /// The server's worker socket, e.g. ws://vitalgrid.example:8080/ws/worker.
    #[arg(long, env = "VITALGRID_SERVER")]
    server: String,
    /// Tasks to run at once (1–64); defaults to the number of CPUs.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_THREADS)))]
    threads: Option<u32>,
    /// Key under which the server keeps this worker's credibility; keep it stable across restarts.
    /// Without one, a random key is made and printed.
    #[arg(long, env = "VITALGRID_WORKER_KEY")]
    key: Option<String>,
    /// Share of each thread's time spent computing (0.01–1).
    #[arg(long, default_value_t = 1.0)]
    cpu_share: f64,
    /// Seconds between reconnection attempts.
    #[arg(long, default_value_t = 2.0)]
    reconnect_s: f64,
    /// Misbehave on purpose (test builds only): drop-acks, disconnect-mid-task, slow:MS,
    /// corrupt-results, forge.
    #[cfg(feature = "faults")]
    #[arg(long, default_value = "none")]
    fault: vitalgrid_native_worker::Fault,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.cpu_share > 0.0 && args.cpu_share <= 1.0,
        "--cpu-share must be in (0, 1], not {}",
        args.cpu_share
    );
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get() as u32)
            .min(MAX_THREADS)
    });
    let key = args.key.unwrap_or_else(|| {
        let key = new_worker_key();
        println!(
            "worker key {key} (pass --key {key} to keep this worker's history across restarts)"
        );
        key
    });
    let mut config = WorkerConfig::new(args.server, threads);
    config.key = Some(key);
    config.cpu_share = args.cpu_share;
    config.agent = format!("{} ({threads} threads)", config.agent);
    #[cfg(feature = "faults")]
    {
        config.fault = args.fault;
    }
    tracing::info!(server = %config.server, threads, "worker starting");
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let stats = run_reconnecting(
        config,
        stop,
        Duration::from_secs_f64(args.reconnect_s.max(0.1)),
    )
    .await;
    println!(
        "tasks done {}, rows {}, errors sent {}",
        stats.tasks_done, stats.rows, stats.errors_sent
    );
    Ok(())
}
