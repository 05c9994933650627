//! Spawning the app for a test, logging in, and a native volunteer worker speaking the real protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::multipart;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vitalgrid_server::accounts::{Role, create_account};
use vitalgrid_server::app::AppState;
pub use vitalgrid_server::config::SchedulerConfig;
use vitalgrid_worker::pipeline::Pipeline;
use vitalgrid_worker::protocol::{
    PROTOCOL_VERSION, ServerMessage, WorkerMessage, decode_server_frame, decode_worker_frame,
};
use vitalgrid_worker::sender;

pub(crate) use crate::common::on_every_backend;
pub use crate::common::{Backend, TestDatabase};

pub struct TestApp {
    pub base: String,
    pub ws_url: String,
    pub state: AppState,
    pub database_url: String,
    /// Set on the app that created its database, which is removed when the test ends; an app
    /// started again on the same database (a restart) borrows it.
    _database: Option<TestDatabase>,
}

/// Timings short enough that lease and ACK handling show up within a test.
pub fn fast_scheduler() -> SchedulerConfig {
    SchedulerConfig {
        ack_timeout: Duration::from_millis(800),
        lease_ttl: Duration::from_secs(3),
        sweep_interval: Duration::from_millis(200),
        vitals_rows_per_task: 900,
        ecg_rows_per_task: 5_000,
        // One trusted test worker is enough here; replication has tests of its own.
        replicas: 1,
        // The probe rate the sweep period had before probes were timed (a quarter of sweeps).
        probe_interval: Duration::from_millis(800),
        ..SchedulerConfig::default()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, fast_scheduler()).await
}

pub async fn spawn_app_with(backend: Backend, scheduler: SchedulerConfig) -> TestApp {
    let database = TestDatabase::new(backend).await;
    let mut app = spawn_app_on(&database.url, scheduler).await;
    app._database = Some(database);
    app
}

/// Starts (another) app process-equivalent on an existing database, as after a restart.
pub async fn spawn_app_on(database_url: &str, scheduler: SchedulerConfig) -> TestApp {
    let (state, base, ws_url) = crate::common::start_app(database_url, scheduler).await;
    TestApp {
        base,
        ws_url,
        state,
        database_url: database_url.to_owned(),
        _database: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an account directly in the database (as the first admin is) and returns a client
    /// logged in as it.
    pub async fn user(&self, email: &str, role: Role) -> reqwest::Client {
        let password = "a long test password";
        create_account(&self.state.db, email, password, role, 0)
            .await
            .expect("account created");
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        let response = client
            .post(self.url("/api/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request");
        assert_eq!(response.status(), 200, "login of {email}");
        client
    }

    pub async fn upload(
        &self,
        client: &reqwest::Client,
        patient_ref: &str,
        file_name: &str,
        csv: &[u8],
    ) -> reqwest::Response {
        let form = multipart::Form::new()
            .text("patient_ref", patient_ref.to_owned())
            .part(
                "file",
                multipart::Part::bytes(csv.to_vec()).file_name(file_name.to_owned()),
            );
        client
            .post(self.url("/api/files"))
            .multipart(form)
            .send()
            .await
            .expect("upload request")
    }

    /// Uploads and submits a file; returns (file id, job id).
    pub async fn upload_and_submit(
        &self,
        client: &reqwest::Client,
        patient_ref: &str,
        file_name: &str,
        csv: &[u8],
    ) -> (i64, i64) {
        let response = self.upload(client, patient_ref, file_name, csv).await;
        assert_eq!(response.status(), 201, "upload accepted");
        let file: Value = response.json().await.expect("file json");
        let file_id = file["id"].as_i64().expect("file id");
        let response = client
            .post(self.url(&format!("/api/files/{file_id}/jobs")))
            .json(&json!({}))
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), 201, "job accepted");
        let job: Value = response.json().await.expect("job json");
        (file_id, job["id"].as_i64().expect("job id"))
    }

    /// A clinician's logged-in client, and the file and job it submitted: `small_vitals_csv(rows)`
    /// for patient PT-001.
    pub async fn clinician_with_vitals_job(&self, rows: usize) -> (reqwest::Client, i64, i64) {
        let client = self.user("ana@example.org", Role::Clinician).await;
        let csv = small_vitals_csv(rows);
        let (file_id, job_id) = self
            .upload_and_submit(&client, "PT-001", "night.csv", csv.as_bytes())
            .await;
        (client, file_id, job_id)
    }

    /// GET `path` as `client` and its JSON body.
    pub async fn get_json(&self, client: &reqwest::Client, path: &str) -> Value {
        client
            .get(self.url(path))
            .send()
            .await
            .expect("GET request")
            .json()
            .await
            .expect("JSON body")
    }

    /// The record of one worker key as an admin's client sees it (`Value::Null` when it has none).
    pub async fn worker_record(&self, admin: &reqwest::Client, key: &str) -> Value {
        let records: Value = self.get_json(admin, "/api/admin/worker-records").await;
        records
            .as_array()
            .and_then(|r| r.iter().find(|r| r["worker_key"] == key))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The job's result as the clinician's client sees it.
    pub async fn job_result(&self, client: &reqwest::Client, job_id: i64) -> Value {
        self.get_json(client, &format!("/api/jobs/{job_id}/result"))
            .await
    }

    /// Polls the job until it is done or failed (or `timeout` passes) and returns its last state.
    pub async fn wait_for_job(
        &self,
        client: &reqwest::Client,
        job_id: i64,
        timeout: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job: Value = self.get_json(client, &format!("/api/jobs/{job_id}")).await;
            if job["status"] == "done"
                || job["status"] == "failed"
                || tokio::time::Instant::now() > deadline
            {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A small vitals recording: `rows` seconds of plausible values, one duplicate row and one artifact.
pub fn small_vitals_csv(rows: usize) -> String {
    let mut csv = String::from("time_s,hr,spo2,sbp,dbp\n");
    for i in 0..rows {
        let hr = if i == 10 { 0 } else { 70 + (i % 7) };
        csv.push_str(&format!(
            "{i},{hr},{},{},{}\n",
            95 + i % 4,
            118 + i % 5,
            75 + i % 3
        ));
        if i == 20 {
            csv.push_str(&format!("{i},{hr},96,120,76\n"));
        }
    }
    csv
}

/// How a native test worker misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Misbehaviour {
    /// Flip a byte in the payload of the first task packet before the pipeline sees it.
    pub corrupt_first_task: bool,
    /// ACK the first task, then drop the connection without answering.
    pub vanish_after_first_ack: bool,
    /// ACK the first task, then close the connection with a close frame, as a volunteer's tab
    /// does when they press Stop or close it.
    pub leave_after_first_ack: bool,
    /// Return results with one number changed and a hash that matches the changed payload.
    pub forge_results: bool,
    /// Send every result twice, as a worker replaying its messages after a reconnect might.
    pub send_results_twice: bool,
    /// The key presented in Hello.
    pub worker_key: Option<&'static str>,
}

/// What a native worker saw and did.
#[derive(Debug, Default)]
pub struct WorkerLog {
    pub frames_received: Vec<String>,
    pub frames_sent: Vec<String>,
}

impl WorkerLog {
    pub fn sent_of_type(&self, kind: &str) -> usize {
        self.frames_sent
            .iter()
            .filter(|f| {
                decode_worker_frame(f.as_bytes())
                    .is_ok_and(|m| serde_json::to_value(&m).is_ok_and(|v| v["type"] == kind))
            })
            .count()
    }
}

/// Runs a native worker (the real pipeline, natively compiled) until `stop` resolves or it vanishes.
pub async fn run_native_worker(
    ws_url: String,
    slots: u32,
    misbehaviour: Misbehaviour,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> WorkerLog {
    let (socket, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("worker connects");
    let (mut sink, mut stream) = socket.split();
    let mut log = WorkerLog::default();
    let hello = serde_json::to_string(&WorkerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        slots,
        agent: "native test worker".into(),
        worker_key: misbehaviour.worker_key.map(str::to_owned),
    })
    .expect("hello serialises");
    sink.send(Message::Text(hello.clone().into()))
        .await
        .expect("hello sent");
    log.frames_sent.push(hello);
    let mut pipeline = Pipeline::new();
    let mut corrupted = false;
    let mut stop = stop;
    loop {
        let frame = tokio::select! {
            _ = &mut stop => break,
            frame = stream.next() => frame,
        };
        // Task packets arrive as binary messages of the same UTF-8 JSON.
        let mut text = match frame {
            Some(Ok(Message::Text(text))) => text.to_string(),
            Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => break,
        };
        log.frames_received.push(text.clone());
        let is_task = decode_server_frame(&text).is_ok_and(|m| matches!(m, ServerMessage::Task(_)));
        if is_task && misbehaviour.corrupt_first_task && !corrupted {
            corrupted = true;
            let original = text.clone();
            // The payload follows the frame's header line as it is.
            text = text.replacen("\"core_start\":", "\"core_start\":1", 1);
            assert_ne!(text, original, "the test corrupted the payload");
        }
        let mut outgoing = pipeline.receive(&text);
        let acked = outgoing
            .iter()
            .any(|m| matches!(m, WorkerMessage::Ack { .. }));
        if is_task
            && acked
            && (misbehaviour.vanish_after_first_ack || misbehaviour.leave_after_first_ack)
        {
            for message in &outgoing {
                let frame = sender::encode(message).expect("encodes");
                let _ = sink.send(Message::Binary(frame.clone().into())).await;
                log.frames_sent
                    .push(String::from_utf8(frame).expect("frames are UTF-8"));
            }
            if misbehaviour.leave_after_first_ack {
                let _ = sink.close().await; // a close frame: a goodbye
            }
            return log; // otherwise dropping the socket without a goodbye
        }
        outgoing.extend(pipeline.run_until_idle());
        if misbehaviour.forge_results {
            outgoing = outgoing.into_iter().map(forge).collect();
        }
        if misbehaviour.send_results_twice {
            outgoing = outgoing
                .into_iter()
                .flat_map(|message| match message {
                    WorkerMessage::Result(_) => vec![message.clone(), message],
                    other => vec![other],
                })
                .collect();
        }
        for message in outgoing {
            let frame = sender::encode(&message).expect("encodes");
            if sink
                .send(Message::Binary(frame.clone().into()))
                .await
                .is_err()
            {
                return log;
            }
            log.frames_sent
                .push(String::from_utf8(frame).expect("frames are UTF-8"));
        }
    }
    let _ = sink.close().await;
    log
}

/// A byzantine worker's lie: a plausible result, sealed with a checksum that matches it.
fn forge(message: WorkerMessage) -> WorkerMessage {
    match message {
        WorkerMessage::Result(mut result) => {
            let forged = result.data.payload.replacen("\"rows\":", "\"rows\":1", 1);
            result.data = vitalgrid_worker::protocol::CheckedPayload::seal(forged);
            WorkerMessage::Result(result)
        }
        other => other,
    }
}

/// Starts a native worker in the background; send on the returned handle to stop it.
pub fn spawn_native_worker(
    app: &TestApp,
    slots: u32,
    misbehaviour: Misbehaviour,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<WorkerLog>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(run_native_worker(
        app.ws_url.clone(),
        slots,
        misbehaviour,
        stop_rx,
    ));
    (stop_tx, handle)
}
