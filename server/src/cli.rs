//! The `vitalgrid` command line: `serve`, `generate-vitals`, `audit-results`. `main.rs` only parses
//! arguments and calls `run`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vitalgrid_synthetic::{VitalsConfig, generate_vitals};

use crate::accounts::{self, Role};
use crate::app::{AppState, connect_database, connect_database_with, redact};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DatabaseArgs, ServeArgs};
use crate::router::{build_router, without_nagle};

#[derive(Debug, Parser)]
#[command(
    name = "vitalgrid",
    version,
    about = "VitalGrid: volunteer computing for clinical recordings"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app, the API and the volunteer socket.
    Serve(ServeArgs),
    /// Write a synthetic bedside vitals log (CSV) with known episodes, artifacts, duplicates and gaps.
    GenerateVitals {
        #[arg(long, default_value_t = 24.0)]
        hours: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Use an ISO 8601 `timestamp` column instead of `time_s`.
        #[arg(long)]
        timestamps: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-run every stored task natively and compare with the results volunteers returned.
    AuditResults {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::GenerateVitals {
            hours,
            seed,
            timestamps,
            out,
        } => {
            let config = VitalsConfig {
                seed,
                duration_s: (hours * 3600.0).round() as u64,
                start: timestamps.then(|| "2026-01-05T08:00:00Z".to_owned()),
                ..VitalsConfig::default()
            };
            let recording = generate_vitals(&config);
            std::fs::write(&out, recording.csv)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} rows with {} episodes to {}",
                recording.rows,
                recording.episodes.len(),
                out.display()
            );
            Ok(())
        }
        Command::AuditResults { database } => {
            let db = connect_database(&database.database_url).await?;
            let templates =
                crate::templates::TemplateStore::open(db.clone(), SystemClock.now_ms()).await?;
            let report = crate::audit::audit_results(&db, &templates).await?;
            println!("{}", serde_json::to_string(&report)?);
            anyhow::ensure!(
                report.different == 0,
                "{} stored results differ from a native re-run",
                report.different
            );
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let db = connect_database_with(
        &args.database.database_url,
        args.database.sqlite_synchronous,
    )
    .await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    ensure_first_admin(&db, clock.now_ms()).await?;
    let config = Config::from_args(&args);
    if !config.web_dir.join("index.html").exists() {
        tracing::warn!(web_dir = %config.web_dir.display(), "the web app is not built here; run `cargo xtask build`");
    }
    let state = AppState::start(db, config, clock).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, database = %redact(&args.database.database_url), "serving");
    println!("VitalGrid listening on http://{address}");
    axum::serve(without_nagle(listener), build_router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving HTTP")
}

/// On the very first start there is no account at all: create an admin from
/// `VITALGRID_ADMIN_EMAIL`/`VITALGRID_ADMIN_PASSWORD`, or with a one-time password printed once.
async fn ensure_first_admin(db: &sea_orm::DatabaseConnection, now_ms: i64) -> anyhow::Result<()> {
    if accounts::count_accounts(db).await? > 0 {
        return Ok(());
    }
    let email = std::env::var("VITALGRID_ADMIN_EMAIL")
        .unwrap_or_else(|_| "admin@vitalgrid.local".to_owned());
    let (password, generated) = match std::env::var("VITALGRID_ADMIN_PASSWORD") {
        Ok(password) => (password, false),
        Err(_) => (accounts::new_one_time_password(), true),
    };
    accounts::create_account(db, &email, &password, Role::Admin, now_ms)
        .await
        .map_err(|error| anyhow::anyhow!("creating the first admin: {error}"))?;
    if generated {
        println!("First start: created admin {email} with one-time password {password}");
    } else {
        println!("First start: created admin {email} (password from VITALGRID_ADMIN_PASSWORD)");
    }
    Ok(())
}
