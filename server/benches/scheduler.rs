//! Load benchmark of the scheduler (`cargo xtask bench scheduler`, or
//! `cargo bench -p vitalgrid-server --bench scheduler -- [--mysql URL] [--tasks N] [--json PATH]`;
//! every flag is in `parse_args`).
//!
//! The release `vitalgrid` binary runs as a child process (so its memory is its own) on a fresh
//! SQLite database and, with `--mysql URL` or `TEST_DATABASE_URL`, a fresh MariaDB/MySQL database.
//! Workers are `vitalgrid-native-worker` connections inside this process, one slot each, running the
//! real pipeline: on one-row tasks it costs microseconds, so it stands in for a no-op.
//!
//! Jobs are written straight into the database (a job row and its task rows, exactly as
//! `jobs::submit_job` writes them) because the binary cuts uploads into 3 600-row tasks and many
//! tiny tasks are what is measured. The server learns of them at its next sweep (every 20 ms here).
//!
//! Measured, with one replica (a trusted pool, as the anchors are):
//! a) tiny tasks per second: dispatched, ACKed, result committed, job merged — from the commit of
//!    the task rows to the job's `done`;
//! b) round trip of one task at a time: one worker with one slot and a queue of tasks; the interval
//!    between consecutive task packets arriving is result → commit → claim → next packet;
//! c) tasks per second with a 64 KB task payload (the result is about 1 KB);
//! with 100 and 1 000 connected workers, and the server's resident memory (VmRSS, VmHWM).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set,
    TransactionTrait,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use vitalgrid_native_worker::{WorkerConfig, run};
use vitalgrid_server::accounts::{Role, create_account};
use vitalgrid_server::app::connect_database;
use vitalgrid_server::config::SchedulerConfig;
use vitalgrid_server::db::entities::{file, job, task};
use vitalgrid_server::db::job_status;
use vitalgrid_server::extract::trend_bucket_for;
use vitalgrid_server::jobs::{TaskIds, queued_task};
use vitalgrid_server::scheduler::random_id;
use vitalgrid_worker::pipeline::Pipeline;
use vitalgrid_worker::protocol::{
    PROTOCOL_VERSION, ServerMessage, SignalColumn, TaskData, WorkerMessage, decode_server_frame,
};
use vitalgrid_worker::sender;

const PASSWORD: &str = "a long bench password";
/// Pause after the 64 KB phase before the second memory reading.
const SETTLE_BEFORE_MEMORY_READING: Duration = Duration::from_secs(3);

struct Args {
    mysql: Option<String>,
    tasks: usize,
    tasks_64k: usize,
    round_trips: usize,
    workers: Vec<usize>,
    json: Option<PathBuf>,
    /// The server's sweep period; also how soon it notices jobs written straight into the database.
    sweep_ms: u64,
    /// The server's `--sqlite-synchronous` (`full`, its default, or `normal`).
    sqlite_synchronous: String,
    /// The server's `--reserve-per-slot` (its default, 1, when not given).
    reserve_per_slot: Option<u32>,
    /// The server's `--payload-budget-mib` (its default when not given).
    payload_budget_mib: Option<usize>,
}

fn parse_args() -> Args {
    let mut args = Args {
        mysql: std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        tasks: 10_000,
        tasks_64k: 2_000,
        round_trips: 1_000,
        workers: vec![100, 1_000],
        json: None,
        sweep_ms: 20,
        sqlite_synchronous: "full".to_owned(),
        reserve_per_slot: None,
        payload_budget_mib: None,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--mysql" => args.mysql = Some(value()),
            "--tasks" => args.tasks = value().parse().expect("--tasks N"),
            "--tasks-64k" => args.tasks_64k = value().parse().expect("--tasks-64k N"),
            "--round-trips" => args.round_trips = value().parse().expect("--round-trips N"),
            "--workers" => {
                args.workers = value()
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(|n| n.parse().expect("--workers 100,1000"))
                    .collect()
            }
            "--json" => args.json = Some(PathBuf::from(value())),
            "--sweep-ms" => args.sweep_ms = value().parse().expect("--sweep-ms N"),
            "--sqlite-synchronous" => args.sqlite_synchronous = value(),
            "--reserve-per-slot" => {
                args.reserve_per_slot = Some(value().parse().expect("--reserve-per-slot N"))
            }
            "--payload-budget-mib" => {
                args.payload_budget_mib = Some(value().parse().expect("--payload-budget-mib N"))
            }
            // `cargo bench` passes `--bench`; anything else is a mistake worth hearing about.
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut report = Vec::new();
    report.push(bench_backend("sqlite", None, &args).await);
    if let Some(url) = &args.mysql {
        report.push(bench_backend("mariadb", Some(url), &args).await);
    }
    let report = Value::Array(report);
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("report folder");
        }
        std::fs::write(
            path,
            serde_json::to_string_pretty(&report).expect("report serialises"),
        )
        .expect("report written");
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("report serialises")
    );
}

/// Every measurement on one backend.
async fn bench_backend(name: &str, mysql: Option<&String>, args: &Args) -> Value {
    let dir = std::env::temp_dir().join(format!("vitalgrid-bench-{}", &random_id()[..12]));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let (url, drop_after) = match mysql {
        None => (
            format!("sqlite://{}/bench.sqlite?mode=rwc", dir.display()),
            None,
        ),
        Some(url) => {
            let (server, db_name) = fresh_mysql_database(url).await;
            (format!("{server}/{db_name}"), Some((server, db_name)))
        }
    };
    let db = connect_database(&url)
        .await
        .expect("database opens and migrates");
    let owner = create_account(&db, "bench@example.org", PASSWORD, Role::Clinician, 0)
        .await
        .expect("account");
    let mut server = start_server(&url, &dir.join("server.log"), args).await;
    let file_id = upload_small_file(&server.base).await;
    let source = file::Entity::find_by_id(file_id)
        .one(&db)
        .await
        .expect("file query")
        .expect("file stored");
    let template = (source.template_id.clone(), source.template_version);
    let owner_id = owner.id;

    eprintln!(
        "[{name}] b) round trip, {} tasks one at a time",
        args.round_trips
    );
    let (p50, p99) =
        round_trips(&db, &server, owner_id, file_id, &template, args.round_trips).await;
    eprintln!("[{name}]    p50 {p50:.3} ms, p99 {p99:.3} ms");

    let mut scenarios = Vec::new();
    for &workers in &args.workers {
        let (stops, handles) = connect_workers(&server, workers).await;
        let (idle_rss, _) = server.memory_mb();
        eprintln!(
            "[{name}]    server memory with {workers} idle workers: {idle_rss:.1} MB resident"
        );
        eprintln!("[{name}] a) {} tiny tasks, {workers} workers", args.tasks);
        let tiny = throughput(&db, owner_id, file_id, &template, args.tasks, 1).await;
        eprintln!("[{name}]    {tiny:.0} tasks/s");
        let (tiny_rss, _) = server.memory_mb();
        eprintln!("[{name}]    server memory after the tiny tasks: {tiny_rss:.1} MB resident");
        eprintln!(
            "[{name}] c) {} tasks with 64 KB payloads, {workers} workers",
            args.tasks_64k
        );
        let large = throughput(&db, owner_id, file_id, &template, args.tasks_64k, 64 * 1024).await;
        eprintln!("[{name}]    {large:.0} tasks/s");
        let (rss, hwm) = server.memory_mb();
        eprintln!("[{name}]    server memory: {rss:.1} MB resident, {hwm:.1} MB peak");
        // What stays resident once the burst is over, with the workers still connected: an
        // allocator may hand freed memory back a little later.
        tokio::time::sleep(SETTLE_BEFORE_MEMORY_READING).await;
        let (settled_rss, _) = server.memory_mb();
        eprintln!(
            "[{name}]    server memory {} s later: {settled_rss:.1} MB resident",
            SETTLE_BEFORE_MEMORY_READING.as_secs()
        );
        for stop in stops {
            let _ = stop.send(());
        }
        for handle in handles {
            let _ = handle.await;
        }
        scenarios.push(json!({
            "workers": workers,
            "noop_tasks_per_s": tiny,
            "payload_64k_tasks_per_s": large,
            "server_rss_idle_mb": idle_rss,
            "server_rss_after_tiny_mb": tiny_rss,
            "server_rss_mb": rss,
            "server_rss_settled_mb": settled_rss,
            "server_peak_rss_mb": hwm,
        }));
    }
    let _ = server.child.kill().await;
    drop(db);
    if let Some((server, db_name)) = drop_after {
        if let Ok(admin) = Database::connect(&server).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{db_name}`"))
                .await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    json!({
        "backend": name,
        "sqlite_synchronous": &args.sqlite_synchronous,
        "reserve_per_slot": args.reserve_per_slot,
        "payload_budget_mib": args.payload_budget_mib,
        "round_trip_p50_ms": p50,
        "round_trip_p99_ms": p99,
        "round_trips": args.round_trips,
        "tasks": args.tasks,
        "tasks_64k": args.tasks_64k,
        "scenarios": scenarios,
    })
}

async fn fresh_mysql_database(url: &str) -> (String, String) {
    let (server, base) = match url.rsplit_once('/') {
        Some((server, name))
            if server.contains("://") && !server.ends_with('/') && !name.is_empty() =>
        {
            (server.to_owned(), name.to_owned())
        }
        _ => (url.trim_end_matches('/').to_owned(), "vitalgrid".to_owned()),
    };
    let name = format!("{base}_bench_{}", &random_id()[..8]);
    let admin = Database::connect(&server).await.expect("MySQL reachable");
    admin
        .execute_unprepared(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .await
        .expect("bench database");
    (server, name)
}

struct Server {
    child: tokio::process::Child,
    base: String,
    ws_url: String,
}

impl Server {
    /// Resident and peak resident memory of the server process, in MB.
    fn memory_mb(&self) -> (f64, f64) {
        let Some(pid) = self.child.id() else {
            return (0.0, 0.0);
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

async fn start_server(url: &str, log: &std::path::Path, args: &Args) -> Server {
    let log_file = std::fs::File::create(log).expect("server log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vitalgrid"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--replicas",
            "1",
        ])
        .args([
            "--sweep-interval-ms",
            &args.sweep_ms.to_string(),
            "--sqlite-synchronous",
            &args.sqlite_synchronous,
            "--ack-timeout-ms",
            "30000",
            "--lease-ttl-ms",
            "120000",
        ])
        .args(
            args.reserve_per_slot
                .iter()
                .flat_map(|n| ["--reserve-per-slot".to_owned(), n.to_string()]),
        )
        .args(
            args.payload_budget_mib
                .iter()
                .flat_map(|n| ["--payload-budget-mib".to_owned(), n.to_string()]),
        )
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .expect("vitalgrid starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut address = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("VitalGrid listening on http://") {
            address = Some(rest.trim().to_owned());
            break;
        }
    }
    let address = address.expect("vitalgrid printed its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        child,
        base: format!("http://{address}"),
        ws_url: format!("ws://{address}/ws/worker"),
    }
}

async fn upload_small_file(base: &str) -> i64 {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let login = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": "bench@example.org", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    let mut csv = String::from("time_s,hr,spo2\n");
    for i in 0..60 {
        csv.push_str(&format!("{i},{},{}\n", 70 + i % 5, 96 + i % 3));
    }
    let form = reqwest::multipart::Form::new()
        .text("patient_ref", "BENCH")
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("bench.csv"),
        );
    let response = client
        .post(format!("{base}/api/files"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await.expect("file json");
    file["id"].as_i64().expect("file id")
}

/// A task's data of about `bytes` bytes as JSON (one row at least).
fn task_data(seq: usize, bytes: usize) -> TaskData {
    let mut rows = 1;
    loop {
        let data = TaskData {
            time_s: (0..rows).map(|i| (seq * rows + i) as f64).collect(),
            signals: vec![SignalColumn {
                name: "hr".into(),
                values: (0..rows).map(|i| Some(60.0 + (i % 40) as f64)).collect(),
            }],
            core_start: 0,
            core_end: rows,
            trend_bucket_s: 60.0,
            reordered_rows: 0,
        };
        let json_len = serde_json::to_string(&data)
            .expect("task data serialises")
            .len();
        if json_len >= bytes || bytes <= 1 {
            return data;
        }
        rows = (rows * bytes / json_len).max(rows + 1);
    }
}

/// Writes a job of `tasks` tasks straight into the database (the task rows as `submit_job` makes
/// them, with the trend bucket width it would choose for the recording's length); returns its id
/// once committed.
async fn insert_job(
    db: &DatabaseConnection,
    owner_id: i64,
    file_id: i64,
    template: &(String, i32),
    tasks: usize,
    payload_bytes: usize,
) -> i64 {
    let mut data: Vec<TaskData> = (0..tasks)
        .map(|seq| task_data(seq, payload_bytes))
        .collect();
    let duration_s = data
        .last()
        .and_then(|last| last.time_s.last())
        .copied()
        .unwrap_or(0.0);
    let trend_bucket_s = trend_bucket_for(duration_s, SchedulerConfig::default().trend_points);
    let payloads: Vec<String> = data
        .iter_mut()
        .map(|task| {
            task.trend_bucket_s = trend_bucket_s;
            serde_json::to_string(task).expect("task data serialises")
        })
        .collect();
    let transaction = db.begin().await.expect("transaction");
    let created = job::ActiveModel {
        file_id: Set(file_id),
        owner_id: Set(owner_id),
        algorithm: Set("signal-summary".to_owned()),
        template_id: Set(template.0.clone()),
        template_version: Set(template.1),
        status: Set(job_status::QUEUED.to_owned()),
        tasks_total: Set(tasks as i32),
        tasks_done: Set(0),
        trend_bucket_s: Set(trend_bucket_s),
        error: Set(None),
        created_at_ms: Set(0),
        finished_at_ms: Set(None),
        priority: Set("normal".to_owned()),
        ..Default::default()
    }
    .insert(&transaction)
    .await
    .expect("job inserted");
    let ids = TaskIds::new();
    let rows: Vec<task::ActiveModel> = payloads
        .into_iter()
        .enumerate()
        .map(|(seq, payload)| queued_task(&ids, created.id, seq, payload))
        .collect();
    let batch = if payload_bytes > 1 { 8 } else { 500 };
    for chunk in rows.chunks(batch) {
        task::Entity::insert_many(chunk.to_vec())
            .exec(&transaction)
            .await
            .expect("tasks inserted");
    }
    transaction.commit().await.expect("committed");
    created.id
}

async fn wait_done(db: &DatabaseConnection, job_id: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let found = job::Entity::find_by_id(job_id)
            .one(db)
            .await
            .expect("job query")
            .expect("job exists");
        if found.status == job_status::DONE {
            return;
        }
        assert!(
            found.status != job_status::FAILED,
            "bench job failed: {:?}",
            found.error
        );
        assert!(
            Instant::now() < deadline,
            "bench job not done in {timeout:?}: {}/{}",
            found.tasks_done,
            found.tasks_total
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn throughput(
    db: &DatabaseConnection,
    owner_id: i64,
    file_id: i64,
    template: &(String, i32),
    tasks: usize,
    payload_bytes: usize,
) -> f64 {
    let job_id = insert_job(db, owner_id, file_id, template, tasks, payload_bytes).await;
    let started = Instant::now();
    wait_done(db, job_id, Duration::from_secs(1_800)).await;
    tasks as f64 / started.elapsed().as_secs_f64()
}

type Stops = Vec<tokio::sync::oneshot::Sender<()>>;
type Handles = Vec<tokio::task::JoinHandle<anyhow::Result<vitalgrid_native_worker::WorkerStats>>>;

/// Connects `n` one-slot native workers and waits until the server counts them all.
async fn connect_workers(server: &Server, n: usize) -> (Stops, Handles) {
    let mut stops = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let mut config = WorkerConfig::new(server.ws_url.as_str(), 1);
        config.key = Some(format!("bench-worker-{i:05}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        handles.push(tokio::spawn(run(config, async move {
            let _ = stopped.await;
        })));
    }
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health: Value = client
            .get(format!("{}/api/health", server.base))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("json");
        if health["workers"].as_u64() == Some(n as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} workers connected",
            health["workers"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (stops, handles)
}

/// One worker, one slot, a queue of tiny tasks: the gaps between task packets are round trips.
async fn round_trips(
    db: &DatabaseConnection,
    server: &Server,
    owner_id: i64,
    file_id: i64,
    template: &(String, i32),
    n: usize,
) -> (f64, f64) {
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(server.ws_url.as_str(), None, true)
            .await
            .expect("worker connects");
    let (mut sink, mut stream) = socket.split();
    let hello = WorkerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        slots: 1,
        agent: "bench".into(),
        worker_key: Some("bench-round-trip".into()),
    };
    sink.send(Message::Text(
        serde_json::to_string(&hello).expect("hello").into(),
    ))
    .await
    .expect("hello sent");
    // Warm up the caches, connections and the template on this connection.
    let warm = insert_job(db, owner_id, file_id, template, 20, 1).await;
    let job_id = warm;
    let mut pipeline = Pipeline::new();
    let mut arrivals = Vec::with_capacity(n + 20);
    let mut second_job = None;
    while arrivals.len() < n + 20 {
        // Task packets arrive as binary messages of the same UTF-8 JSON.
        let text = match stream.next().await {
            Some(Ok(Message::Text(text))) => text.to_string(),
            Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => panic!("the server closed the bench worker"),
        };
        if matches!(
            decode_server_frame(text.as_str()),
            Ok(ServerMessage::Task(_))
        ) {
            arrivals.push(Instant::now());
        }
        let mut outgoing = pipeline.receive(text.as_str());
        outgoing.extend(pipeline.run_until_idle());
        for message in outgoing {
            sink.send(Message::Binary(
                sender::encode(&message).expect("encodes").into(),
            ))
            .await
            .expect("sent");
        }
        if arrivals.len() == 20 && second_job.is_none() {
            wait_done(db, job_id, Duration::from_secs(60)).await;
            second_job = Some(insert_job(db, owner_id, file_id, template, n, 1).await);
            // The first packet of the measured job arrives after a sweep, not after a result.
            arrivals.clear();
            arrivals.resize(20, Instant::now());
        }
    }
    let _ = sink.close().await;
    let mut gaps: Vec<f64> = arrivals[20..]
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1_000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let at = |q: f64| gaps[((gaps.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}
