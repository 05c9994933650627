//! The fault suite's harness: the real app in-process or the real `vitalgrid` binary as a child
//! process, on a fresh SQLite or MariaDB database; native workers (with chosen faults) from
//! `vitalgrid-native-worker`; and the correct analysis of a job computed natively in one pass.

use std::path::Path;
use std::time::Duration;

use reqwest::multipart;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use vitalgrid_native_worker::{Fault, WorkerConfig, WorkerStats, run_reconnecting};
use vitalgrid_server::accounts::{Role, create_account};
use vitalgrid_server::app::AppState;
use vitalgrid_server::config::SchedulerConfig;
use vitalgrid_server::db::entities::{file, job, job_event, result, task};
use vitalgrid_server::templates::TemplateStore;
use vitalgrid_synthetic::{VitalsConfig, generate_vitals};
use vitalgrid_worker::algorithm::merge;
use vitalgrid_worker::analysis::SegmentResult;
use vitalgrid_worker::pipeline::run_task;
use vitalgrid_worker::protocol::{CheckedPayload, TaskPacket, sha256_hex};

pub const PASSWORD: &str = "a long test password";

pub(crate) use crate::common::on_every_backend;
pub use crate::common::{Backend, TestDatabase, mariadb_url};

/// Timings short enough that ACK timeouts, lease expiry and resends all happen within a test.
/// `max_attempts` is the default: only leases that went wrong count, not the replicas that succeed.
pub fn fault_scheduler() -> SchedulerConfig {
    SchedulerConfig {
        ack_timeout: Duration::from_millis(600),
        lease_ttl: Duration::from_secs(2),
        sweep_interval: Duration::from_millis(100),
        vitals_rows_per_task: 300,
        replicas: 2,
        // The probe rate the sweep period had before probes were timed (a quarter of sweeps).
        probe_interval: Duration::from_millis(400),
        ..SchedulerConfig::default()
    }
}

/// The app running inside the test process.
pub struct TestApp {
    pub base: String,
    pub ws_url: String,
    pub state: AppState,
    /// Held so the database outlives the app (and a MariaDB one is dropped after it).
    _database: TestDatabase,
}

pub async fn spawn_app(backend: Backend, scheduler: SchedulerConfig) -> TestApp {
    let database = TestDatabase::new(backend).await;
    let (state, base, ws_url) = crate::common::start_app(&database.url, scheduler).await;
    TestApp {
        base,
        ws_url,
        state,
        _database: database,
    }
}

/// The real `vitalgrid` binary serving a database, with the fault suite's short timings.
pub struct ServerProcess {
    child: tokio::process::Child,
    pub listen: String,
    pub base: String,
    pub ws_url: String,
}

impl ServerProcess {
    /// Starts `vitalgrid serve` on `listen` (`127.0.0.1:0` for any port) and waits until it says
    /// where it listens. Its log goes to `log`.
    pub async fn start(database_url: &str, listen: &str, log: &Path) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log file");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vitalgrid"))
            .args(["serve", "--listen", listen, "--database-url", database_url])
            .args([
                "--lease-ttl-ms",
                "2000",
                "--sweep-interval-ms",
                "200",
                "--ack-timeout-ms",
                "1000",
            ])
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("vitalgrid starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = line.strip_prefix("VitalGrid listening on http://") {
                    return Some(address.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "vitalgrid did not start; its log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
        // Keep reading, so a later line on stdout never meets a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            base: format!("http://{address}"),
            ws_url: format!("ws://{address}/ws/worker"),
            listen: address,
        }
    }

    /// SIGKILL: no graceful shutdown, no chance to release anything.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL delivered");
    }
}

/// Creates a clinician directly in the database (before or while a server runs on it).
pub async fn create_clinician(db: &DatabaseConnection, email: &str) {
    create_account(db, email, PASSWORD, Role::Clinician, 0)
        .await
        .expect("account created");
}

/// An API client logged in at `base`.
pub async fn login(base: &str, email: &str) -> Api {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let response = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("login request");
    assert_eq!(response.status(), 200, "login of {email}");
    Api {
        base: base.to_owned(),
        client,
    }
}

/// A logged-in client of one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn at(&self, base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: self.client.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON body")
    }

    /// Uploads and submits a file; returns (file id, job id).
    pub async fn upload_and_submit(&self, file_name: &str, csv: &[u8]) -> (i64, i64) {
        let form = multipart::Form::new()
            .text("patient_ref", "PT-FAULTS")
            .part(
                "file",
                multipart::Part::bytes(csv.to_vec()).file_name(file_name.to_owned()),
            );
        let response = self
            .client
            .post(format!("{}/api/files", self.base))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status(), 201, "upload of {file_name} accepted");
        let file: Value = response.json().await.expect("file json");
        let file_id = file["id"].as_i64().expect("file id");
        let response = self
            .client
            .post(format!("{}/api/files/{file_id}/jobs", self.base))
            .json(&json!({}))
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), 201, "job accepted");
        let job: Value = response.json().await.expect("job json");
        (file_id, job["id"].as_i64().expect("job id"))
    }

    /// Polls until every job is done or failed, or `timeout` passes; returns their last states.
    pub async fn wait_for_jobs(&self, job_ids: &[i64], timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut jobs = Vec::with_capacity(job_ids.len());
            for id in job_ids {
                jobs.push(self.get(&format!("/api/jobs/{id}")).await);
            }
            let finished = jobs
                .iter()
                .all(|j| j["status"] == "done" || j["status"] == "failed");
            if finished || tokio::time::Instant::now() > deadline {
                return jobs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn count_done(&self, job_ids: &[i64]) -> usize {
        let mut done = 0;
        for id in job_ids {
            done += usize::from(self.get(&format!("/api/jobs/{id}")).await["status"] == "done");
        }
        done
    }
}

/// Asserts every job finished successfully, with every task counted exactly once.
pub fn assert_all_done(jobs: &[Value]) {
    let unfinished: Vec<&Value> = jobs.iter().filter(|j| j["status"] != "done").collect();
    assert!(
        unfinished.is_empty(),
        "{} of {} jobs did not complete: {unfinished:#?}",
        unfinished.len(),
        jobs.len()
    );
    for job in jobs {
        assert_eq!(
            job["tasks_done"], job["tasks_total"],
            "every task counted exactly once: {job}"
        );
    }
}

/// A small synthetic bedside recording (about one row a second), different for each seed.
pub fn vitals_csv(seed: u64, duration_s: u64) -> String {
    generate_vitals(&VitalsConfig {
        seed,
        duration_s,
        ..VitalsConfig::default()
    })
    .csv
}

/// The correct analysis of a job: each of its stored tasks run natively in one pass and merged,
/// exactly as honest workers and the server would. Also checks that each task's accepted result
/// is the honest one, byte for byte.
pub async fn assert_correct_analysis(db: &DatabaseConnection, api: &Api, job_id: i64) {
    let owner = job::Entity::find_by_id(job_id)
        .one(db)
        .await
        .expect("job query")
        .expect("job exists");
    let templates = TemplateStore::open(db.clone(), 0).await.expect("templates");
    let template = templates
        .get(&owner.template_id, owner.template_version as u32)
        .await
        .expect("template query")
        .expect("the job's template exists");
    let tasks = task::Entity::find()
        .filter(task::Column::JobId.eq(job_id))
        .order_by_asc(task::Column::Seq)
        .all(db)
        .await
        .expect("tasks query");
    let mut segments = Vec::with_capacity(tasks.len());
    for stored in &tasks {
        let packet = TaskPacket {
            task_id: stored.id.clone(),
            lease: 1,
            template_id: owner.template_id.clone(),
            template_version: owner.template_version as u32,
            algorithm: owner.algorithm.clone(),
            data: CheckedPayload::seal(
                String::from_utf8(stored.payload.clone()).expect("payload is UTF-8"),
            ),
        };
        let honest = run_task(&template, &packet).expect("the task runs natively");
        assert_eq!(
            stored.result_sha256.as_deref(),
            Some(sha256_hex(honest.data.payload.as_bytes()).as_str()),
            "job {job_id} part {}: the accepted result is not the honest one",
            stored.seq + 1
        );
        segments.push(
            serde_json::from_str::<SegmentResult>(&honest.data.payload).expect("segment parses"),
        );
    }
    let expected = merge(&template, &segments, owner.trend_bucket_s).expect("segments merge");
    let expected = serde_json::to_string(&expected).expect("analysis serialises");
    // The stored bytes are compared: a JSON round trip through the API may move a float by an ULP.
    let stored = result::Entity::find_by_id(job_id)
        .one(db)
        .await
        .expect("result query")
        .expect("the job has a result");
    if stored.analysis != expected {
        let (stored, expected): (Value, Value) = (
            serde_json::from_str(&stored.analysis).expect("stored JSON"),
            serde_json::from_str(&expected).expect("JSON"),
        );
        let at = first_difference(&stored, &expected, String::new())
            .unwrap_or_else(|| "(formatting only)".to_owned());
        panic!("job {job_id}: the analysis differs from a native one-pass run at {at}");
    }
    let shown = api.get(&format!("/api/jobs/{job_id}/result")).await;
    assert!(
        shown["analysis"].is_object(),
        "job {job_id}: the clinician sees the analysis"
    );
}

/// The JSON path of the first place where `a` and `b` differ, with both values.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let found =
                    first_difference(&x[key.as_str()], &y[key.as_str()], format!("{path}.{key}"));
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: stored {a} / native {b}")),
    }
}

/// How many times each task of these jobs had a result accepted, and how many leases were handed
/// out in all (from the job event history).
pub async fn acceptances_and_leases(
    db: &DatabaseConnection,
    job_ids: &[i64],
) -> (Vec<(String, usize)>, usize) {
    let events = job_event::Entity::find()
        .filter(job_event::Column::JobId.is_in(job_ids.iter().copied()))
        .all(db)
        .await
        .expect("events query");
    let tasks = task::Entity::find()
        .filter(task::Column::JobId.is_in(job_ids.iter().copied()))
        .all(db)
        .await
        .expect("tasks query");
    let accepted = tasks
        .into_iter()
        .map(|t| {
            let n = events
                .iter()
                .filter(|e| {
                    e.kind == "result_accepted" && e.task_id.as_deref() == Some(t.id.as_str())
                })
                .count();
            (t.id, n)
        })
        .collect();
    let leases = events.iter().filter(|e| e.kind == "leased").count();
    (accepted, leases)
}

/// Every stored file with the SHA-256 of its content, by id.
pub async fn file_fingerprints(db: &DatabaseConnection) -> Vec<(i64, i64, String)> {
    file::Entity::find()
        .order_by_asc(file::Column::Id)
        .all(db)
        .await
        .expect("files query")
        .into_iter()
        .map(|f| (f.id, f.rows, sha256_hex(&f.content)))
        .collect()
}

/// A native worker running in the background (reconnecting after every disconnect) until stopped.
pub struct Worker {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<WorkerStats>,
}

impl Worker {
    pub fn spawn(ws_url: &str, key: &str, threads: u32, fault: Fault) -> Self {
        let mut config = WorkerConfig::new(ws_url, threads);
        config.key = Some(key.to_owned());
        config.fault = fault;
        config.agent = format!("fault suite {key}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(run_reconnecting(
            config,
            async move {
                let _ = stopped.await;
            },
            Duration::from_millis(100),
        ));
        Self { stop, handle }
    }

    /// Stops the worker (it releases what it holds) and returns what it did.
    pub async fn stop(self) -> WorkerStats {
        let _ = self.stop.send(());
        self.handle.await.expect("worker task ran")
    }

    /// Ends the worker abruptly: its socket is dropped without a goodbye, as when a laptop lid shuts.
    pub fn vanish(self) {
        self.handle.abort();
    }
}
