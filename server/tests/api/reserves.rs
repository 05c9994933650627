//! Per-worker reserves: a task leased to a worker and held by the server goes out the moment a
//! slot frees, goes back to the queue untried when its worker leaves, and is never sent once its
//! job is deleted. The worker here is driven by hand, so the test decides when a slot frees.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vitalgrid_server::accounts::Role;
use vitalgrid_server::db::entities::task;
use vitalgrid_worker::pipeline::Pipeline;
use vitalgrid_worker::protocol::{
    PROTOCOL_VERSION, ServerMessage, WorkerMessage, decode_server_frame,
};
use vitalgrid_worker::sender;

use vitalgrid_server::config::SchedulerConfig;

use crate::support::{
    Backend, Misbehaviour, TestApp, fast_scheduler, on_every_backend, small_vitals_csv, spawn_app,
    spawn_app_with, spawn_native_worker,
};

const JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a condition the server must reach on its own is waited for before the test fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

on_every_backend!(
    a_freed_slot_takes_the_reserved_task_and_every_job_completes_correctly,
    a_reserved_task_goes_back_untried_when_its_worker_disconnects,
    a_deleted_jobs_reserved_task_is_never_sent,
    a_payload_budget_smaller_than_any_task_still_sends_every_task_and_reserves_none,
);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A one-slot worker whose every step the test takes: it ACKs tasks as they arrive but answers
/// only when told to.
struct HandDrivenWorker {
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    pipeline: Pipeline,
}

impl HandDrivenWorker {
    async fn connect(app: &TestApp, key: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(&app.ws_url)
            .await
            .expect("worker connects");
        let (sink, stream) = socket.split();
        let mut worker = Self {
            sink,
            stream,
            pipeline: Pipeline::new(),
        };
        worker
            .send(vec![WorkerMessage::Hello {
                protocol: PROTOCOL_VERSION,
                slots: 1,
                agent: "hand-driven test worker".into(),
                worker_key: Some(key.to_owned()),
            }])
            .await;
        worker
    }

    async fn send(&mut self, messages: Vec<WorkerMessage>) {
        for message in messages {
            let frame = sender::encode(&message).expect("encodes");
            self.sink
                .send(Message::Binary(frame.into()))
                .await
                .expect("sent");
        }
    }

    /// Reads frames until a task packet arrives, ACKs it and returns its id (unanswered).
    async fn next_task(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(SETTLE_TIMEOUT, self.stream.next())
                .await
                .expect("a task arrives");
            let text = match frame {
                Some(Ok(Message::Text(text))) => text.to_string(),
                Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                other => panic!("the server closed the connection: {other:?}"),
            };
            let task_id = match decode_server_frame(&text) {
                Ok(ServerMessage::Task(packet)) => Some(packet.task_id),
                _ => None,
            };
            let replies = self.pipeline.receive(&text);
            self.send(replies).await;
            if let Some(task_id) = task_id {
                return task_id;
            }
        }
    }

    /// Runs the held task and sends its result, which frees the slot.
    async fn answer(&mut self) {
        let results = self.pipeline.run_until_idle();
        assert!(!results.is_empty(), "the held task produced a result");
        self.send(results).await;
    }
}

/// This connection's entry in the admin workers list, once `ready` holds for it.
async fn worker_entry(
    app: &TestApp,
    admin: &reqwest::Client,
    key: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let workers = app.get_json(admin, "/api/admin/workers").await;
        let entry = workers
            .as_array()
            .and_then(|w| w.iter().find(|w| w["worker_key"] == key))
            .cloned()
            .unwrap_or(Value::Null);
        if ready(&entry) {
            return entry;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker {key} never reached the expected state: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holds_one_and_one_in_reserve(entry: &Value) -> bool {
    entry["in_flight"] == 1 && entry["reserved"] == 1
}

async fn events(app: &TestApp, admin: &reqwest::Client, job_id: i64) -> Vec<Value> {
    app.get_json(admin, &format!("/api/admin/jobs/{job_id}/events"))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn task_ids_of(app: &TestApp, job_id: i64) -> Vec<String> {
    task::Entity::find()
        .filter(task::Column::JobId.eq(job_id))
        .all(&app.state.db)
        .await
        .expect("tasks query")
        .into_iter()
        .map(|t| t.id)
        .collect()
}

async fn a_freed_slot_takes_the_reserved_task_and_every_job_completes_correctly(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(3_000).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let tasks = task_ids_of(&app, job_id).await;
    assert!(tasks.len() >= 3, "several tasks queue up: {}", tasks.len());
    let mut worker = HandDrivenWorker::connect(&app, "reserve-key-0001").await;

    let mut received = vec![worker.next_task().await];
    for _ in 1..tasks.len() {
        // The next task is leased to this worker while it still holds the current one…
        let entry = worker_entry(&app, &admin, "reserve-key-0001", |e| {
            e["in_flight"] == 1 && e["reserved"].as_u64() >= Some(1)
        })
        .await;
        assert_eq!(entry["current_tasks"][0], received[received.len() - 1]);
        // …and is what the freed slot receives.
        worker.answer().await;
        received.push(worker.next_task().await);
    }
    worker.answer().await;

    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let mut sorted = received.clone();
    sorted.sort();
    let mut expected = tasks.clone();
    expected.sort();
    assert_eq!(sorted, expected, "each task was sent exactly once");
    let result = app.job_result(&client, job_id).await;
    assert_eq!(result["analysis"]["rows"], 3_001, "{result}");

    // Each task after the first was leased before the previous one's result was accepted.
    let history = events(&app, &admin, job_id).await;
    let position = |kind: &str, task_id: &str| {
        history
            .iter()
            .position(|e| e["kind"] == kind && e["task_id"] == task_id)
            .unwrap_or_else(|| panic!("no {kind} event for {task_id}: {history:?}"))
    };
    for pair in received.windows(2) {
        assert!(
            position("leased", &pair[1]) < position("result_accepted", &pair[0]),
            "task {} was reserved before task {} was answered",
            pair[1],
            pair[0]
        );
    }
    assert!(
        !history.iter().any(|e| e["kind"] == "requeued"),
        "no reserved task went back: {history:?}"
    );
}

async fn a_reserved_task_goes_back_untried_when_its_worker_disconnects(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(3_000).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let mut leaving = HandDrivenWorker::connect(&app, "leaving-key-0001").await;
    let sent = leaving.next_task().await;
    worker_entry(
        &app,
        &admin,
        "leaving-key-0001",
        holds_one_and_one_in_reserve,
    )
    .await;
    let reserved: Vec<String> = events(&app, &admin, job_id)
        .await
        .iter()
        .filter(|e| e["kind"] == "leased" && e["task_id"] != sent.as_str())
        .filter_map(|e| e["task_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reserved.len(), 1, "one task is held in reserve");
    let reserved = &reserved[0];

    drop(leaving);
    let (stop, other) = spawn_native_worker(&app, 1, Misbehaviour::default());
    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let _ = stop.send(());
    let _ = other.await;

    let attempts = |task_id: &str| {
        let db = app.state.db.clone();
        let task_id = task_id.to_owned();
        async move {
            task::Entity::find_by_id(task_id)
                .one(&db)
                .await
                .expect("task query")
                .expect("task exists")
                .attempts
        }
    };
    assert_eq!(attempts(&sent).await, 1, "the sent task counts an attempt");
    assert_eq!(
        attempts(reserved).await,
        0,
        "the reserved one was never tried"
    );
    let history = events(&app, &admin, job_id).await;
    assert!(
        history.iter().any(|e| e["kind"] == "requeued"
            && e["task_id"] == reserved.as_str()
            && e["detail"] == "reserved for a worker that disconnected"),
        "{history:?}"
    );
    let result = app.job_result(&client, job_id).await;
    assert_eq!(result["analysis"]["rows"], 3_001, "{result}");
}

async fn a_deleted_jobs_reserved_task_is_never_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, file_id, deleted_job) = app.clinician_with_vitals_job(3_000).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let mut worker = HandDrivenWorker::connect(&app, "steady-key-0001").await;
    worker.next_task().await;
    worker_entry(
        &app,
        &admin,
        "steady-key-0001",
        holds_one_and_one_in_reserve,
    )
    .await;

    let response = client
        .delete(app.url(&format!("/api/files/{file_id}")))
        .send()
        .await
        .expect("delete request");
    assert_eq!(response.status(), 204);
    let entry = worker_entry(&app, &admin, "steady-key-0001", |_| true).await;
    assert_eq!(entry["reserved"], 0, "the reserve is dropped with the job");
    assert!(task_ids_of(&app, deleted_job).await.is_empty());

    // The answer to the deleted job's task frees the slot; only the next job's tasks follow.
    worker.answer().await;
    let (_, next_job) = app
        .upload_and_submit(
            &client,
            "PT-002",
            "day.csv",
            small_vitals_csv(3_000).as_bytes(),
        )
        .await;
    let next_tasks = task_ids_of(&app, next_job).await;
    for _ in 0..next_tasks.len() {
        let task_id = worker.next_task().await;
        assert!(
            next_tasks.contains(&task_id),
            "task {task_id} is not of the job submitted after the delete"
        );
        worker.answer().await;
    }
    let job = app.wait_for_job(&client, next_job, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
}

async fn a_payload_budget_smaller_than_any_task_still_sends_every_task_and_reserves_none(
    backend: Backend,
) {
    let app = spawn_app_with(
        backend,
        SchedulerConfig {
            payload_budget_bytes: 1,
            // A probe reaching a worker between its tasks would be taken for one of the job's.
            probe_interval: Duration::from_secs(3_600),
            ..fast_scheduler()
        },
    )
    .await;
    let (client, _, job_id) = app.clinician_with_vitals_job(6_000).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let tasks = task_ids_of(&app, job_id).await;
    let keys = ["budget-key-0001", "budget-key-0002", "budget-key-0003"];
    assert!(
        tasks.len() > keys.len(),
        "more tasks than workers: {}",
        tasks.len()
    );

    // Every worker gets a task although each payload is larger than the whole budget: a task goes
    // whenever nothing else is held, and a sent task's payload is no longer held once written.
    let mut workers = Vec::new();
    for key in keys {
        let mut worker = HandDrivenWorker::connect(&app, key).await;
        worker.next_task().await;
        workers.push(worker);
    }
    for key in keys {
        // With reserves on (the default), each would also hold one in reserve; the budget has no
        // room for any.
        let entry = worker_entry(&app, &admin, key, |e| e["in_flight"] == 1).await;
        assert_eq!(entry["reserved"], 0, "{entry}");
    }
    let health = app.get_json(&admin, "/api/health").await;
    assert_eq!(health["payload_budget_bytes"], 1, "{health}");
    assert_eq!(
        health["payload_held_bytes"], 0,
        "every frame was written: {health}"
    );

    // The rest of the tasks follow as slots free, and the job's result is complete.
    let mut received = keys.len();
    while received < tasks.len() {
        for worker in &mut workers {
            worker.answer().await;
            if received < tasks.len() {
                worker.next_task().await;
                received += 1;
            }
        }
    }
    for worker in &mut workers {
        let held = worker.pipeline.run_until_idle();
        worker.send(held).await;
    }
    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let result = app.job_result(&client, job_id).await;
    assert_eq!(result["analysis"]["rows"], 6_001, "{result}");
}
