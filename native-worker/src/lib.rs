//! A trusted native VitalGrid worker: the same pipeline volunteers run in their browsers, compiled
//! natively, speaking the real `/ws/worker` protocol and running up to `threads` tasks at once.
//!
//! A hospital runs it on its own machines (`vitalgrid-worker --server ws://…/ws/worker`); the
//! server's tests and benchmarks run hundreds of them inside one process through [`run`].

mod fault;

use std::collections::HashMap;
use std::future::Future;
use std::ops::AddAssign;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{Sink, SinkExt, StreamExt};
use rand::RngCore;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use vitalgrid_worker::protocol::{ErrorCode, PROTOCOL_VERSION, WorkerMessage};
use vitalgrid_worker::receiver::{AcceptedTask, Received, Receiver};
use vitalgrid_worker::sender;

pub use fault::{Fault, UnknownFault};

/// Tasks this small are computed on the connection's own task: a hop to the blocking pool would
/// cost more than the work (the benchmark's tiny tasks take microseconds).
const INLINE_ROWS: usize = 2_000;
/// The server accepts at most this many slots per connection.
pub const MAX_THREADS: u32 = 64;

/// What a worker connects to and how it behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `ws://HOST:PORT/ws/worker` (or `wss://`).
    pub server: String,
    /// Tasks run at once; announced to the server as `slots` (1–64).
    pub threads: u32,
    /// Kept across connections so the server can build up this worker's credibility.
    pub key: Option<String>,
    /// Shown on the admin page.
    pub agent: String,
    pub fault: Fault,
    /// Share of each thread's time spent computing (0.01–1): after a task that took `t`, the
    /// thread idles `t × (1 − share) / share`, so a clinical workstation stays responsive.
    pub cpu_share: f64,
}

impl WorkerConfig {
    /// A well-behaved worker with `threads` slots, full CPU share and no key.
    pub fn new(server: impl Into<String>, threads: u32) -> Self {
        Self {
            server: server.into(),
            threads,
            key: None,
            agent: format!("vitalgrid-native-worker/{}", env!("CARGO_PKG_VERSION")),
            fault: Fault::None,
            cpu_share: 1.0,
        }
    }
}

/// What a worker did over one connection (or, from [`run_reconnecting`], over all of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Results sent.
    pub tasks_done: u64,
    /// Error messages sent (refused packets, results that could not be encoded).
    pub errors_sent: u64,
    /// Rows of the tasks whose results were sent.
    pub rows: u64,
}

impl AddAssign for WorkerStats {
    fn add_assign(&mut self, other: Self) {
        self.tasks_done += other.tasks_done;
        self.errors_sent += other.errors_sent;
        self.rows += other.rows;
    }
}

/// A random worker key: 128 bits as hex, like the browser's.
pub fn new_worker_key() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A task's answer, handed from its compute task back to the connection.
struct Finished {
    task_id: String,
    lease: u64,
    rows: u64,
    message: WorkerMessage,
}

/// Serves one connection until `stop` resolves or the server closes it. On stop, every task still
/// held is released (so the server requeues it at once) before the socket closes.
///
/// Errors only when the connection cannot be opened or the greeting cannot be sent; a connection
/// that ends later is an ordinary end, reported through the stats.
pub async fn run(
    config: WorkerConfig,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<WorkerStats> {
    let threads = config.threads.clamp(1, MAX_THREADS);
    // Nagle off: an ACK and a result are two small frames written back to back, and with Nagle
    // the second waits for the TCP acknowledgement of the first — up to 40 ms of delayed ACK.
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(config.server.as_str(), None, true)
            .await
            .with_context(|| format!("connecting to {}", config.server))?;
    let (mut sink, mut stream) = socket.split();
    let hello = WorkerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        slots: threads,
        agent: config.agent.clone(),
        worker_key: config.key.clone(),
    };
    send(&mut sink, &hello).await.context("sending hello")?;

    let mut receiver = Receiver::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    // The server never sends more than `slots` unanswered tasks, but a resent copy can overlap its
    // original; the semaphore keeps the CPU use at `threads` whatever arrives.
    let permits = Arc::new(Semaphore::new(threads as usize));
    // task id → the lease of the newest copy: only that copy may answer.
    let mut held: HashMap<String, u64> = HashMap::new();
    let mut stats = WorkerStats::default();
    let mut tasks_taken: u64 = 0;
    let mut stop = std::pin::pin!(stop);

    loop {
        tokio::select! {
            () = &mut stop => {
                for (task_id, lease) in held.drain() {
                    if send(&mut sink, &WorkerMessage::Release { task_id, lease }).await.is_err() {
                        break;
                    }
                }
                let _ = sink.close().await;
                return Ok(stats);
            }
            Some(finished) = done_rx.recv() => {
                if held.get(&finished.task_id) != Some(&finished.lease) {
                    // Cancelled, or superseded by a newer copy of the same task.
                    continue;
                }
                held.remove(&finished.task_id);
                let message = match finished.message {
                    WorkerMessage::Result(packet) => {
                        stats.tasks_done += 1;
                        stats.rows += finished.rows;
                        WorkerMessage::Result(config.fault.tamper(packet))
                    }
                    other => {
                        stats.errors_sent += u64::from(matches!(other, WorkerMessage::Error { .. }));
                        other
                    }
                };
                if send(&mut sink, &message).await.is_err() {
                    return Ok(stats);
                }
            }
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    // Task packets arrive as binary messages of the same UTF-8 JSON.
                    Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned().into(),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(stats),
                    // Pings are answered by tungstenite itself; nothing else carries packets.
                    Some(Ok(_)) => continue,
                };
                match receiver.receive(text.as_str()) {
                    Received::Nothing => {}
                    Received::Reply(message) => {
                        stats.errors_sent += 1;
                        if send(&mut sink, &message).await.is_err() {
                            return Ok(stats);
                        }
                    }
                    Received::Cancel(task_id) => {
                        held.remove(&task_id);
                    }
                    Received::Task(task) => {
                        let (task_id, lease) = (task.task_id.clone(), task.lease);
                        held.insert(task_id.clone(), lease);
                        tasks_taken += 1;
                        if config.fault.acks() {
                            let ack = WorkerMessage::Ack { task_id, lease };
                            if send(&mut sink, &ack).await.is_err() {
                                return Ok(stats);
                            }
                        }
                        if config.fault.vanishes_after_first_ack() && tasks_taken == 1 {
                            // Dropping both halves ends the TCP connection without a close frame.
                            return Ok(stats);
                        }
                        spawn_compute(*task, Arc::clone(&permits), done_tx.clone(), &config);
                    }
                }
            }
        }
    }
}

/// Runs one task off the connection's loop and reports its answer on `done`.
fn spawn_compute(
    task: AcceptedTask,
    permits: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Finished>,
    config: &WorkerConfig,
) {
    let delay = config.fault.delay();
    let share = config.cpu_share.clamp(0.01, 1.0);
    tokio::spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return;
        };
        let (task_id, lease) = (task.task_id.clone(), task.lease);
        let rows = task.processor.total_rows() as u64;
        let started = Instant::now();
        let message = if task.processor.total_rows() <= INLINE_ROWS {
            finish(task)
        } else {
            match tokio::task::spawn_blocking(move || finish(task)).await {
                Ok(message) => message,
                Err(error) => {
                    // A panic in the pipeline is a bug on this machine, not the task's fault: hand
                    // it back so another worker can take it at once.
                    tracing::error!(task.id = %task_id, %error, "computing a task panicked");
                    WorkerMessage::Release {
                        task_id: task_id.clone(),
                        lease,
                    }
                }
            }
        };
        if share < 1.0 {
            tokio::time::sleep(started.elapsed().mul_f64((1.0 - share) / share)).await;
        }
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let _ = done.send(Finished {
            task_id,
            lease,
            rows,
            message,
        });
    });
}

/// The pipeline's last stages for one task, exactly as `Pipeline` runs them, so the bytes match
/// a browser's.
fn finish(mut task: AcceptedTask) -> WorkerMessage {
    task.processor.process(usize::MAX, &mut task.run);
    let result = task.run.finish(&task.processor);
    match sender::result_packet(&task.task_id, task.lease, &result) {
        Ok(packet) => WorkerMessage::Result(packet),
        Err(error) => WorkerMessage::Error {
            task_id: Some(task.task_id),
            lease: Some(task.lease),
            code: ErrorCode::Malformed,
            message: error.to_string(),
        },
    }
}

async fn send<S>(sink: &mut S, message: &WorkerMessage) -> anyhow::Result<()>
where
    S: Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    // A binary message: a result's frame is its header line and payload (docs/protocol.md).
    let frame = sender::encode(message)?;
    sink.send(Message::Binary(frame.into())).await?;
    Ok(())
}

/// Serves connection after connection until `stop` resolves: a worker on a hospital machine
/// outlives server restarts. Waits `backoff` between attempts; returns the stats of every
/// connection together.
pub async fn run_reconnecting(
    config: WorkerConfig,
    stop: impl Future<Output = ()>,
    backoff: Duration,
) -> WorkerStats {
    let stopped = AtomicBool::new(false);
    // `stop` is polled by several connections in turn; the flag says whether it has fired, since
    // a finished future must not be polled again.
    let mut stop = std::pin::pin!(async {
        stop.await;
        stopped.store(true, Ordering::SeqCst);
    });
    let mut total = WorkerStats::default();
    loop {
        match run(config.clone(), stop.as_mut()).await {
            Ok(stats) => total += stats,
            Err(error) => {
                tracing::debug!(server = %config.server, error = %format!("{error:#}"), "worker could not connect")
            }
        }
        if stopped.load(Ordering::SeqCst) {
            return total;
        }
        tokio::select! {
            () = stop.as_mut() => return total,
            () = tokio::time::sleep(backoff) => {}
        }
    }
}
