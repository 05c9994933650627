//! SenderCore: hands tasks to connected workers and takes their results back.
//!
//! The database is the source of truth: a task is `queued`, `leased` to one worker under a fencing
//! token (`lease`), `done` or `failed`. What lives only in memory is what this process knows of its
//! own connections: each worker's slots, the packets it holds and whether it ACKed them. Several
//! processes can share one database: a task is claimed by a conditional UPDATE that only one of them
//! can win, and a lease nobody renews expires and the task returns to the queue.
//!
//! Nothing polls the database in a loop: dispatch runs when something happens (a job is submitted,
//! a worker connects or frees a slot) and at each periodic sweep, which also renews the leases of
//! live connections, requeues expired ones and resends packets nobody ACKed.

mod accept;
mod budget;
pub mod choice;
mod dispatch;
pub mod priority;
pub mod replication;
mod writer;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rand::{Rng, RngCore};
use sea_orm::sea_query::{CaseStatement, Expr, Query};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc};
use vitalgrid_worker::protocol::{
    CheckedPayload, ErrorCode, ServerMessage, SignedPayload, TaskPacket, WorkerMessage,
};

use self::budget::{PayloadBudget, PayloadCharge};
use self::choice::Track;
use crate::clock::Clock;
use crate::config::SchedulerConfig;
use crate::db::entities::{job, task, task_result, worker_record};
use crate::db::{job_status, task_status};
use crate::events;
use crate::templates::TemplateStore;
use accept::PendingAnswer;
use dispatch::{Assignment, RoundJob, StoredPayload};
use priority::FairQueue;
use writer::WriteTurns;

/// Resends of a packet the worker reported as damaged, or never ACKed, before it goes elsewhere.
const MAX_RESENDS: u32 = 2;

#[derive(Debug)]
pub struct SenderCore {
    db: DatabaseConnection,
    config: SchedulerConfig,
    clock: Arc<dyn Clock>,
    templates: Arc<TemplateStore>,
    workers: Mutex<HashMap<String, ConnectedWorker>>,
    fair_queue: Mutex<FairQueue>,
    wake: Arc<Notify>,
    /// Results on their way to the next group commit (`accept::commit_answers`).
    answers: mpsc::UnboundedSender<PendingAnswer>,
    /// The room left for results accepted and not yet committed, in KiB (`accept::backlog_charge`).
    result_backlog: Arc<Semaphore>,
    write_turns: Arc<WriteTurns>,
    /// For a queued task whose last lease failed: the key of the worker it failed on, so the next
    /// round gives the task to someone else when anyone else is free (an entry lasts until the
    /// task is handed out again).
    failed_last_on: Mutex<HashMap<String, String>>,
    /// Task payloads held in memory: on their way to a socket, or in a reserve.
    payload_budget: Arc<PayloadBudget>,
    /// How long a dispatch round that handed out tasks took, in milliseconds, smoothed: what a
    /// reserve must cover (`choice::reserve_depth`).
    round_ms: Mutex<Option<f64>>,
}

/// How a worker's connection ended, which decides whether the tasks it held used up an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It sent a close frame: a volunteer stopped or closed the tab. Whatever it held was not the
    /// tasks' fault; a volunteer who stops just after a task arrived must not bring a clinician's
    /// job closer to failing.
    Left,
    /// The connection broke or timed out: the worker may have crashed on the task (a tab running
    /// out of memory on it), so each task it held has used up an attempt and a task that kills
    /// every worker ends up failing instead of looping.
    Lost,
}

/// A message on its way to a worker's socket. A task packet's payload stays charged to the payload
/// budget until the frame has been written.
#[derive(Debug)]
pub struct Outgoing {
    pub message: ServerMessage,
    pub charge: Option<PayloadCharge>,
}

impl From<ServerMessage> for Outgoing {
    fn from(message: ServerMessage) -> Self {
        Self {
            message,
            charge: None,
        }
    }
}

/// A worker connected to this process.
#[derive(Debug)]
struct ConnectedWorker {
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// The key its record (credibility) is kept under: the one it presented, or the connection id.
    key: String,
    /// Speed, ACK latency, tasks done and failed leases: what choosing it rests on.
    track: Track,
    slots: u32,
    agent: String,
    connected_at_ms: i64,
    templates_sent: HashSet<(String, u32)>,
    in_flight: HashMap<String, InFlight>,
    /// Tasks leased to it but not sent yet, oldest first: the next goes out the moment a slot frees.
    reserve: VecDeque<Reserved>,
}

/// A task claimed and leased to a worker, held here until one of its slots frees. Unlike
/// `InFlight` it keeps its payload (charged to the budget): sending it must not wait for a
/// database read.
#[derive(Debug)]
struct Reserved {
    packet: TaskPacket,
    charge: PayloadCharge,
    job_id: i64,
    /// When its lease was last set to expire a full `lease_ttl` later (at the claim, then by sweeps).
    lease_renewed_at_ms: i64,
}

/// A task packet this process sent and has not yet had an answer to.
#[derive(Debug, Clone)]
struct InFlight {
    /// The packet as sent but without its payload, which stays in the database and is read again
    /// for a resend: a worker holding several multi-megabyte tasks costs no copy of each here.
    packet: TaskPacket,
    /// The stored task whose payload the packet carries (for a probe, the validated task it copies).
    payload_of: String,
    /// The task's job (for a probe, the job of the task it copies).
    job_id: i64,
    sent_at_ms: i64,
    /// When it was sent, for the worker's task time (`Track::task_ms`), which can be well under a
    /// millisecond: the scheduler's clock counts whole milliseconds.
    sent: Instant,
    /// When its lease was last set to expire a full `lease_ttl` later (at the claim, then by sweeps).
    lease_renewed_at_ms: i64,
    acked: bool,
    resends: u32,
    /// For a known-answer probe: the hash of the validated result the worker must reproduce.
    known_answer: Option<String>,
}

impl InFlight {
    /// A packet sent at `now_ms`, not yet ACKed or resent, whose lease was last renewed at
    /// `lease_renewed_at_ms`.
    fn sent(
        packet: TaskPacket,
        payload_of: String,
        job_id: i64,
        now_ms: i64,
        lease_renewed_at_ms: i64,
    ) -> Self {
        Self {
            packet,
            payload_of,
            job_id,
            sent_at_ms: now_ms,
            sent: Instant::now(),
            lease_renewed_at_ms,
            acked: false,
            resends: 0,
            known_answer: None,
        }
    }

    /// The packet goes out again at `now_ms` and awaits a new ACK.
    fn resent(&mut self, now_ms: i64) {
        self.resends += 1;
        self.sent_at_ms = now_ms;
        self.sent = Instant::now();
        self.acked = false;
    }
}

/// Smoothing of the measured worker speed: recent tasks count most, one odd task cannot dominate.
const SPEED_SMOOTHING: f64 = 0.3;

/// What the admin pages show of a connected worker.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub worker_key: String,
    pub agent: String,
    pub rows_per_s: Option<f64>,
    /// Milliseconds from sending a task to its ACK, smoothed.
    pub ack_latency_ms: Option<f64>,
    pub current_tasks: Vec<String>,
    pub slots: u32,
    pub in_flight: usize,
    /// Tasks leased to it and held here, to be sent as its slots free.
    pub reserved: usize,
    pub tasks_done: u64,
    /// Leases that went wrong on it: no ACK, a refused packet, a broken result.
    pub failures: u64,
    pub connected_at: i64,
}

impl SenderCore {
    /// Creates the core and spawns its dispatch/sweep loop, its result committer and (on SQLite)
    /// its checkpointer on the current Tokio runtime.
    pub fn start(
        db: DatabaseConnection,
        config: SchedulerConfig,
        clock: Arc<dyn Clock>,
        templates: Arc<TemplateStore>,
    ) -> Arc<Self> {
        let write_turns = Arc::new(WriteTurns::for_database(&db));
        let (answers, queued_answers) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let payload_budget = PayloadBudget::new(config.payload_budget_bytes, Arc::clone(&wake));
        let result_backlog = Arc::new(Semaphore::new(accept::backlog_capacity_kib(
            config.result_backlog_bytes,
        )));
        tokio::spawn(accept::commit_answers(
            accept::Committer {
                db: db.clone(),
                replicas: config.replicas,
                templates: Arc::clone(&templates),
                write_turns: Arc::clone(&write_turns),
                largest_statement: None,
            },
            queued_answers,
        ));
        let core = Arc::new(Self {
            db,
            config,
            clock,
            templates,
            workers: Mutex::new(HashMap::new()),
            fair_queue: Mutex::new(FairQueue::default()),
            wake,
            answers,
            result_backlog,
            write_turns,
            failed_last_on: Mutex::new(HashMap::new()),
            payload_budget,
            round_ms: Mutex::new(None),
        });
        tokio::spawn(Arc::clone(&core).run());
        tokio::spawn(writer::keep_checkpointed(
            Arc::downgrade(&core.write_turns),
            core.db.clone(),
        ));
        core
    }

    /// Tells the loop there may be work to hand out (a job was submitted, a slot freed).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>) {
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let swept = tokio::select! {
                () = self.wake.notified() => false,
                _ = sweep.tick() => {
                    if let Err(error) = self.sweep().await {
                        tracing::warn!(%error, "scheduler sweep failed");
                    }
                    true
                }
            };
            if let Err(error) = self.dispatch().await {
                tracing::warn!(%error, "dispatch failed");
            }
            // After dispatch, so a probe only fills a slot that real work left empty.
            if swept {
                if let Err(error) = self.probe_idle_workers().await {
                    tracing::warn!(%error, "sending known-answer probes failed");
                }
            }
        }
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<String, ConnectedWorker>> {
        // A panic while holding the lock leaves plain bookkeeping behind; it is still usable.
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a worker that said Hello; returns its id and the queue of messages to send it, or
    /// `None` for a worker whose key was banned for returning wrong results.
    pub async fn connect(
        &self,
        slots: u32,
        agent: String,
        worker_key: Option<String>,
    ) -> Result<Option<(String, mpsc::UnboundedReceiver<Outgoing>)>, DbErr> {
        let worker_id = random_id();
        let key = worker_key
            .filter(|k| is_acceptable_key(k))
            .unwrap_or_else(|| worker_id.clone());
        if self.touch_record(&key).await? {
            tracing::info!(worker.key = %key, "banned worker refused");
            return Ok(None);
        }
        let (outbox, inbox) = mpsc::unbounded_channel();
        let _ = outbox.send(
            ServerMessage::Welcome {
                worker_id: worker_id.clone(),
                slots,
            }
            .into(),
        );
        self.workers().insert(
            worker_id.clone(),
            ConnectedWorker {
                outbox,
                key,
                track: Track::default(),
                slots,
                agent,
                connected_at_ms: self.clock.now_ms(),
                templates_sent: HashSet::new(),
                in_flight: HashMap::new(),
                reserve: VecDeque::new(),
            },
        );
        tracing::info!(worker.id = %worker_id, slots, "worker connected");
        self.notify();
        Ok(Some((worker_id, inbox)))
    }

    /// Creates or refreshes the worker's record; returns whether it is banned.
    async fn touch_record(&self, key: &str) -> Result<bool, DbErr> {
        let now = self.clock.now_ms();
        // In turn with the other writers (`WriteTurns`): a thousand workers connecting at once
        // would otherwise queue in SQLite's busy handler.
        let turn = self.write_turns.take().await;
        if let Some(record) = worker_record::Entity::find_by_id(key).one(turn.db).await? {
            worker_record::Entity::update_many()
                .col_expr(worker_record::Column::LastSeenAtMs, Expr::value(now))
                .filter(worker_record::Column::WorkerKey.eq(key))
                .exec(turn.db)
                .await?;
            return Ok(record.banned);
        }
        let inserted = worker_record::Entity::insert(worker_record::ActiveModel {
            worker_key: sea_orm::Set(key.to_owned()),
            agreed: sea_orm::Set(0),
            disagreed: sea_orm::Set(0),
            late_results: sea_orm::Set(0),
            banned: sea_orm::Set(false),
            first_seen_at_ms: sea_orm::Set(now),
            last_seen_at_ms: sea_orm::Set(now),
        })
        .exec(turn.db)
        .await;
        match inserted {
            Ok(_) => Ok(false),
            // The same key connecting twice at once: the other insert won, which is fine.
            Err(error)
                if matches!(
                    error.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Forgets a worker whose connection ended and puts every task it held back in the queue: the
    /// ones it was sent as failed attempts if the connection broke (`Departure`), its reserve as
    /// never tried.
    pub async fn disconnect(&self, worker_id: &str, departure: Departure) -> Result<(), DbErr> {
        let (held, reserved) = match self.workers().remove(worker_id) {
            Some(mut worker) => {
                let reserved = self.take_reserve(&mut worker, |_| true);
                (worker.in_flight, reserved)
            }
            None => Default::default(),
        };
        tracing::info!(
            worker.id = %worker_id,
            tasks_held = held.len(),
            tasks_reserved = reserved.len(),
            "worker disconnected"
        );
        let (counts_as_attempt, reason) = match departure {
            Departure::Lost => (true, "the worker disconnected"),
            Departure::Left => (false, "the worker left"),
        };
        for (task_id, in_flight) in held {
            self.release(&task_id, in_flight.packet.lease, counts_as_attempt, reason)
                .await?;
        }
        self.release_untried(reserved, "reserved for a worker that disconnected")
            .await?;
        self.notify();
        Ok(())
    }

    /// Takes the reserved tasks `taken` picks out of a worker's reserve (under the `workers` lock),
    /// freeing their payloads; returns them with their leases.
    fn take_reserve(
        &self,
        worker: &mut ConnectedWorker,
        taken: impl Fn(&Reserved) -> bool,
    ) -> Vec<(String, u64)> {
        let (taken, kept): (Vec<Reserved>, Vec<Reserved>) = std::mem::take(&mut worker.reserve)
            .into_iter()
            .partition(taken);
        worker.reserve = kept.into();
        taken
            .into_iter()
            .map(|r| (r.packet.task_id, r.packet.lease))
            .collect()
    }

    /// Puts reserved tasks taken from a worker back in the queue: never sent, so no attempt used.
    async fn release_untried(
        &self,
        reserved: Vec<(String, u64)>,
        reason: &str,
    ) -> Result<(), DbErr> {
        for (task_id, lease) in reserved {
            self.release(&task_id, lease, false, reason).await?;
        }
        Ok(())
    }

    /// Sends the worker's next reserved task if it has a free slot, with no database work in
    /// between: this is what makes a freed slot busy again within a network round trip. Returns
    /// whether a task went (its reserve place is then refilled by the next dispatch round).
    fn send_next_reserved(&self, worker_id: &str) -> bool {
        let (packet, charge) = {
            let mut workers = self.workers();
            let Some(worker) = workers.get_mut(worker_id) else {
                return false;
            };
            if worker.in_flight.len() >= worker.slots as usize {
                return false;
            }
            let Some(reserved) = worker.reserve.pop_front() else {
                return false;
            };
            let (packet, kept) = without_payload(reserved.packet);
            // The lease in the database runs from its last renewal, not from now.
            let in_flight = InFlight::sent(
                kept,
                packet.task_id.clone(),
                reserved.job_id,
                self.clock.now_ms(),
                reserved.lease_renewed_at_ms,
            );
            worker.in_flight.insert(packet.task_id.clone(), in_flight);
            (packet, reserved.charge)
        };
        // Its template was cached when the task was claimed (`dispatch::cache_templates`), so
        // `send_task` can put it first if this worker lacks it.
        self.send_task(worker_id, packet, charge);
        true
    }

    /// Drops the reserved tasks of jobs that ended (deleted, or failed) so that none of them is
    /// sent later, and puts them back in the queue without counting an attempt (a deleted job's
    /// tasks are gone already; a failed job's queued tasks are never dispatched).
    pub async fn drop_reserved(&self, job_ids: &[i64]) -> Result<(), DbErr> {
        let dropped: Vec<(String, u64)> = self
            .workers()
            .values_mut()
            .flat_map(|worker| self.take_reserve(worker, |r| job_ids.contains(&r.job_id)))
            .collect();
        // A direct update rather than `release`: this runs from `fail_if_exhausted`, which
        // `release` calls, and a job that ended needs no requeue event.
        for (task_id, lease) in dropped {
            back_in_queue()
                .filter(task::Column::Id.eq(task_id))
                .filter(task::Column::Lease.eq(lease as i64))
                .filter(task::Column::Status.eq(task_status::LEASED))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// Task payload bytes held in memory now (`budget`).
    pub fn payload_held_bytes(&self) -> usize {
        self.payload_budget.held()
    }

    /// The most payload bytes held at once, as configured.
    pub fn payload_budget_bytes(&self) -> usize {
        self.payload_budget.capacity()
    }

    /// Sends a message to one worker (dropped silently if it has just gone).
    pub fn send_to(&self, worker_id: &str, message: ServerMessage) {
        if let Some(worker) = self.workers().get(worker_id) {
            let _ = worker.outbox.send(message.into());
        }
    }

    /// Median measured speed (rows per second) of the connected workers that have returned results.
    pub fn typical_speed(&self) -> Option<f64> {
        let mut speeds: Vec<f64> = self
            .workers()
            .values()
            .filter_map(|w| w.track.rows_per_s)
            .collect();
        speeds.sort_by(f64::total_cmp);
        speeds.get(speeds.len() / 2).copied()
    }

    pub fn workers_snapshot(&self) -> Vec<WorkerInfo> {
        let mut list: Vec<WorkerInfo> = self
            .workers()
            .iter()
            .map(|(id, w)| WorkerInfo {
                id: id.clone(),
                worker_key: w.key.clone(),
                agent: w.agent.clone(),
                rows_per_s: w.track.rows_per_s,
                ack_latency_ms: w.track.ack_latency_ms,
                current_tasks: w.in_flight.keys().cloned().collect(),
                slots: w.slots,
                in_flight: w.in_flight.len(),
                reserved: w.reserve.len(),
                tasks_done: w.track.tasks_done,
                failures: w.track.failures,
                connected_at: w.connected_at_ms,
            })
            .collect();
        list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at).then(a.id.cmp(&b.id)));
        list
    }

    /// Handles one message from a worker.
    pub async fn handle(
        self: &Arc<Self>,
        worker_id: &str,
        message: WorkerMessage,
    ) -> Result<(), DbErr> {
        match message {
            WorkerMessage::Hello { .. } => self.send_to(
                worker_id,
                ServerMessage::Error {
                    task_id: None,
                    code: ErrorCode::Protocol,
                    message: "hello was already received on this connection".to_owned(),
                },
            ),
            // Neither needs a write of its own: the sweep renews the lease of every task a live
            // connection holds, long before it could expire (`sweep_interval` ≪ `lease_ttl` / 3).
            WorkerMessage::Ack { task_id, lease } => self.mark_acked(worker_id, &task_id, lease),
            WorkerMessage::Progress { .. } => {}
            WorkerMessage::Result(result) => self.accept_result(worker_id, result).await?,
            WorkerMessage::Error {
                task_id: Some(task_id),
                lease,
                code,
                message,
            } => {
                self.task_error(worker_id, &task_id, lease, code, &message)
                    .await?;
            }
            WorkerMessage::Error {
                task_id: None,
                code,
                message,
                ..
            } => {
                tracing::warn!(worker.id = %worker_id, ?code, %message, "worker reported an error");
            }
            WorkerMessage::Release { task_id, lease } => {
                if self.take_in_flight(worker_id, &task_id, lease).is_some() {
                    self.release(&task_id, lease, false, "handed back by the volunteer")
                        .await?;
                    // A volunteer hands tasks back when it stops: its reserve goes back too,
                    // rather than being sent only to be handed back in turn.
                    let reserved = match self.workers().get_mut(worker_id) {
                        Some(worker) => self.take_reserve(worker, |_| true),
                        None => Vec::new(),
                    };
                    self.release_untried(reserved, "its volunteer stopped")
                        .await?;
                    self.notify();
                }
            }
        }
        Ok(())
    }

    fn mark_acked(&self, worker_id: &str, task_id: &str, lease: u64) {
        let now = self.clock.now_ms();
        let mut workers = self.workers();
        let Some(worker) = workers.get_mut(worker_id) else {
            return;
        };
        if let Some(in_flight) = worker
            .in_flight
            .get_mut(task_id)
            .filter(|f| f.packet.lease == lease && !f.acked)
        {
            in_flight.acked = true;
            worker.track.record_ack((now - in_flight.sent_at_ms) as f64);
        }
    }

    /// A lease of `task_id` that went wrong on this worker: counted against the worker (see
    /// `choice`) and remembered, so the task goes elsewhere next.
    fn lease_failed(&self, worker_id: &str, task_id: &str) {
        if let Some(worker) = self.workers().get_mut(worker_id) {
            worker.track.failures += 1;
        }
        self.remember_failed_lease(worker_id, task_id);
    }

    fn remember_failed_lease(&self, worker_id: &str, task_id: &str) {
        let key = self.record_key(worker_id);
        self.failed_last_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task_id.to_owned(), key);
    }

    fn take_in_flight(&self, worker_id: &str, task_id: &str, lease: u64) -> Option<InFlight> {
        let mut workers = self.workers();
        let worker = workers.get_mut(worker_id)?;
        if worker.in_flight.get(task_id)?.packet.lease != lease {
            return None;
        }
        worker.in_flight.remove(task_id)
    }

    async fn task_error(
        &self,
        worker_id: &str,
        task_id: &str,
        lease: Option<u64>,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), DbErr> {
        tracing::info!(worker.id = %worker_id, task.id = %task_id, ?code, %message, "worker refused a task");
        let resend = {
            let mut workers = self.workers();
            let Some(worker) = workers.get_mut(worker_id) else {
                return Ok(());
            };
            let Some(in_flight) = worker.in_flight.get_mut(task_id) else {
                return Ok(());
            };
            if lease.is_some_and(|lease| lease != in_flight.packet.lease) {
                return Ok(());
            }
            if code == ErrorCode::UnknownTemplate {
                worker.templates_sent.clear();
            }
            let damaged_in_transit = matches!(
                code,
                ErrorCode::Integrity | ErrorCode::Malformed | ErrorCode::UnknownTemplate
            );
            // Every refusal counts against the worker's record of reliability (a damaged link
            // delays tasks as surely as a bad machine), resent or not.
            worker.track.failures += 1;
            if damaged_in_transit && in_flight.resends < MAX_RESENDS {
                in_flight.resent(self.clock.now_ms());
                Some((in_flight.packet.clone(), in_flight.payload_of.clone()))
            } else {
                None
            }
        };
        match resend {
            Some((packet, payload_of)) => self.resend(worker_id, packet, &payload_of).await,
            None => {
                let Some(in_flight) = lease
                    .and_then(|lease| self.take_in_flight(worker_id, task_id, lease))
                    .or_else(|| {
                        self.workers()
                            .get_mut(worker_id)
                            .and_then(|w| w.in_flight.remove(task_id))
                    })
                else {
                    return Ok(());
                };
                self.send_next_reserved(worker_id);
                let reason = format!("a worker refused it: {message}");
                self.remember_failed_lease(worker_id, task_id);
                self.release(task_id, in_flight.packet.lease, true, &reason)
                    .await?;
                self.notify();
                Ok(())
            }
        }
    }

    /// Sends a packet kept without its payload again, with the payload read back from the database.
    async fn resend(
        &self,
        worker_id: &str,
        mut packet: TaskPacket,
        payload_of: &str,
    ) -> Result<(), DbErr> {
        let stored = task::Entity::find_by_id(payload_of)
            .select_only()
            .column(task::Column::Payload)
            .into_tuple::<Vec<u8>>()
            .one(&self.db)
            .await?;
        match stored.map(String::from_utf8) {
            Some(Ok(payload)) => {
                let charge = self.payload_budget.charge(payload.len());
                packet.data.payload = payload;
                self.send_task(worker_id, packet, charge);
            }
            // Its job was deleted meanwhile: without an ACK, the sweep gives the packet up.
            _ => {
                tracing::info!(task.id = %packet.task_id, "no stored payload to resend");
            }
        }
        Ok(())
    }

    /// Sends a task, preceded by its template if this worker has not had it yet. The payload's
    /// charge goes with the packet to the socket.
    fn send_task(&self, worker_id: &str, packet: TaskPacket, charge: PayloadCharge) {
        let mut workers = self.workers();
        let Some(worker) = workers.get_mut(worker_id) else {
            return;
        };
        let key = (packet.template_id.clone(), packet.template_version);
        if !worker.templates_sent.contains(&key) {
            // Every claimed task's template was read into the cache in `claim`.
            if let Some(template) = self.templates.cached(&key.0, key.1) {
                match serde_json::to_string(&template) {
                    Ok(json) => {
                        let template = ServerMessage::Template(SignedPayload::seal(json));
                        let _ = worker.outbox.send(template.into());
                        worker.templates_sent.insert(key);
                    }
                    Err(error) => tracing::error!(%error, "template does not serialise"),
                }
            }
        }
        let _ = worker.outbox.send(Outgoing {
            message: ServerMessage::Task(packet),
            charge: Some(charge),
        });
    }

    /// The packet of a task just claimed: its payload as stored, under its new lease.
    fn task_packet(
        claimed: &Assignment,
        job: &RoundJob,
        candidate: StoredPayload,
    ) -> Result<TaskPacket, DbErr> {
        let payload = String::from_utf8(candidate.payload)
            .map_err(|e| DbErr::Custom(format!("task payload is not UTF-8: {e}")))?;
        Ok(TaskPacket {
            task_id: claimed.task_id.clone(),
            lease: claimed.lease as u64,
            template_id: job.template_id.clone(),
            template_version: job.template_version,
            algorithm: job.algorithm.clone(),
            data: CheckedPayload::seal(payload),
        })
    }

    /// Puts a leased task back in the queue, or fails it (and its job) once it has used up its
    /// attempts. `lease` fences out a release that arrives after the task moved on.
    ///
    /// Only leases that went wrong count as attempts (`counts_as_attempt`): a worker that vanished,
    /// never ACKed, refused the task or sent a broken result. A claim itself does not, so a task
    /// answered by several replicas, or handed back by a volunteer who stopped, keeps its attempts.
    async fn release(
        &self,
        task_id: &str,
        lease: u64,
        counts_as_attempt: bool,
        reason: &str,
    ) -> Result<(), DbErr> {
        let mut update = back_in_queue();
        if counts_as_attempt {
            update = update.col_expr(
                task::Column::Attempts,
                Expr::col(task::Column::Attempts).add(1),
            );
        }
        let released = update
            .filter(task::Column::Id.eq(task_id))
            .filter(task::Column::Lease.eq(lease as i64))
            .filter(task::Column::Status.eq(task_status::LEASED))
            .exec(&self.db)
            .await?
            .rows_affected
            == 1;
        if released {
            let job_id = task::Entity::find_by_id(task_id)
                .select_only()
                .column(task::Column::JobId)
                .into_tuple::<i64>()
                .one(&self.db)
                .await?;
            if let Some(job_id) = job_id {
                events::record(
                    &self.db,
                    job_id,
                    Some(task_id),
                    None,
                    "requeued",
                    reason,
                    self.clock.now_ms(),
                )
                .await?;
            }
            if counts_as_attempt {
                self.fail_if_exhausted(task_id, reason).await?;
            }
        }
        Ok(())
    }

    async fn fail_if_exhausted(&self, task_id: &str, reason: &str) -> Result<(), DbErr> {
        // Only what is read: the payload can run to megabytes.
        let Some((job_id, seq, status, attempts)) = task::Entity::find_by_id(task_id)
            .select_only()
            .column(task::Column::JobId)
            .column(task::Column::Seq)
            .column(task::Column::Status)
            .column(task::Column::Attempts)
            .into_tuple::<(i64, i32, String, i32)>()
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        if status != task_status::QUEUED || attempts < self.config.max_attempts {
            return Ok(());
        }
        task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(task_status::FAILED))
            .filter(task::Column::Id.eq(task_id))
            .filter(task::Column::Status.eq(task_status::QUEUED))
            .exec(&self.db)
            .await?;
        let message = format!(
            "part {} of the analysis failed {attempts} times; last reason: {reason}",
            seq + 1,
        );
        tracing::warn!(job.id = job_id, task.id = %task_id, %message, "job failed");
        events::record(
            &self.db,
            job_id,
            Some(task_id),
            None,
            "failed",
            message.clone(),
            self.clock.now_ms(),
        )
        .await?;
        job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(job_status::FAILED))
            .col_expr(job::Column::Error, Expr::value(message))
            .col_expr(job::Column::FinishedAtMs, Expr::value(self.clock.now_ms()))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::Status.is_in([job_status::QUEUED, job_status::RUNNING]))
            .exec(&self.db)
            .await?;
        self.drop_reserved(&[job_id]).await
    }

    fn lease_ttl_ms(&self) -> i64 {
        self.config.lease_ttl.as_millis() as i64
    }

    /// Sends known-answer probes — a copy of an already validated task under a fresh id, whose
    /// result hash is known — to some idle workers that have not earned trust yet, so a forger is
    /// caught even when its results would otherwise have stood alone or gone unreplicated.
    async fn probe_idle_workers(&self) -> Result<(), DbErr> {
        let idle: Vec<(String, String)> = self
            .workers()
            .iter()
            .filter(|(_, w)| w.in_flight.is_empty() && w.reserve.is_empty())
            .map(|(id, w)| (id.clone(), w.key.clone()))
            .collect();
        // Each sweep probes an idle worker with the chance that gives one probe per
        // `probe_interval` on average.
        let chance = self.config.sweep_interval.as_secs_f64()
            / self
                .config
                .probe_interval
                .as_secs_f64()
                .max(f64::MIN_POSITIVE);
        for (worker_id, key) in idle {
            if rand::thread_rng().r#gen::<f64>() >= chance {
                continue;
            }
            // Probes wait while payloads fill the budget: real work comes first.
            if self.payload_budget.room() == 0 {
                break;
            }
            let record = worker_record::Entity::find_by_id(&key)
                .one(&self.db)
                .await?;
            let trusted = record.is_some_and(|r| {
                replication::replicas_needed(2, r.agreed, r.disagreed, r.banned, 1.0) == 1
            });
            if trusted {
                continue;
            }
            // A validated task this worker has not answered (answering it twice would prove
            // nothing). The answered tasks stay in the database: a volunteer's history can outgrow
            // what one statement may list (SQLite takes 32 766 values).
            let answered = Query::select()
                .column(task_result::Column::TaskId)
                .from(task_result::Entity)
                .and_where(task_result::Column::WorkerKey.eq(&key))
                .to_owned();
            // Not the task's stored result: a probe needs only its hash, and the analysis of a
            // large task can weigh more than its payload.
            let Some((known_id, known_job_id, payload, expected)) = task::Entity::find()
                .select_only()
                .column(task::Column::Id)
                .column(task::Column::JobId)
                .column(task::Column::Payload)
                .column(task::Column::ResultSha256)
                .filter(task::Column::Status.eq(task_status::DONE))
                .filter(task::Column::ResultSha256.is_not_null())
                .filter(task::Column::Id.not_in_subquery(answered))
                .order_by_desc(task::Column::JobId)
                .into_tuple::<(String, i64, Vec<u8>, String)>()
                .one(&self.db)
                .await?
            else {
                continue;
            };
            let Some(owner) = job::Entity::find_by_id(known_job_id).one(&self.db).await? else {
                continue;
            };
            self.templates
                .get(&owner.template_id, owner.template_version as u32)
                .await?;
            let Ok(payload) = String::from_utf8(payload) else {
                continue;
            };
            let charge = self.payload_budget.charge(payload.len());
            let packet = TaskPacket {
                task_id: crate::jobs::TaskIds::again(&known_id),
                lease: 1,
                template_id: owner.template_id,
                template_version: owner.template_version as u32,
                algorithm: owner.algorithm,
                data: CheckedPayload::seal(payload),
            };
            let (packet, kept) = without_payload(packet);
            let now = self.clock.now_ms();
            let probe = InFlight {
                known_answer: Some(expected),
                ..InFlight::sent(kept, known_id, known_job_id, now, now)
            };
            if let Some(worker) = self.workers().get_mut(&worker_id) {
                worker.in_flight.insert(packet.task_id.clone(), probe);
            }
            self.send_task(&worker_id, packet, charge);
        }
        Ok(())
    }

    /// Renews the leases of live connections, requeues expired leases (their holder is gone, maybe
    /// with a crashed process) and resends or reassigns packets that were never ACKed.
    async fn sweep(&self) -> Result<(), DbErr> {
        let now = self.clock.now_ms();
        // Only the tasks a live connection actually holds are renewed: a lease this process lost
        // track of (say, after a failed transaction) expires like any other. A lease is renewed once
        // a third of it has passed, not at every sweep: two thirds of it always remain, and a sweep
        // every few seconds does not rewrite every lease each time.
        let renew_after = self.lease_ttl_ms() / 3;
        // Reserved tasks are leased like sent ones, so theirs are renewed alike.
        let mut due: Vec<String> = self
            .workers()
            .values()
            .flat_map(|w| {
                let sent = w
                    .in_flight
                    .iter()
                    .map(|(id, f)| (id, f.lease_renewed_at_ms));
                let reserved = w
                    .reserve
                    .iter()
                    .map(|r| (&r.packet.task_id, r.lease_renewed_at_ms));
                sent.chain(reserved)
            })
            .filter(|(_, renewed_at_ms)| now - renewed_at_ms >= renew_after)
            .map(|(task_id, _)| task_id.clone())
            .collect();
        due.sort_unstable();
        let turn = self.write_turns.take().await;
        for chunk in due.chunks(500) {
            task::Entity::update_many()
                .col_expr(
                    task::Column::LeaseExpiresAtMs,
                    Expr::value(now + self.lease_ttl_ms()),
                )
                .filter(listed_tasks_in_status(
                    chunk.iter().cloned(),
                    task_status::LEASED,
                ))
                .exec(turn.db)
                .await?;
        }
        drop(turn);
        for worker in self.workers().values_mut() {
            for (task_id, in_flight) in worker.in_flight.iter_mut() {
                if due.binary_search(task_id).is_ok() {
                    in_flight.lease_renewed_at_ms = now;
                }
            }
            for reserved in worker.reserve.iter_mut() {
                if due.binary_search(&reserved.packet.task_id).is_ok() {
                    reserved.lease_renewed_at_ms = now;
                }
            }
        }
        let expired = task::Entity::find()
            .select_only()
            .column(task::Column::Id)
            .column(task::Column::Lease)
            .filter(task::Column::Status.eq(task_status::LEASED))
            .filter(task::Column::LeaseExpiresAtMs.lt(now))
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?;
        for (task_id, lease) in expired {
            tracing::info!(task.id = %task_id, "lease expired; task requeued");
            self.release(&task_id, lease as u64, true, "its worker stopped answering")
                .await?;
        }

        let ack_deadline = now - self.config.ack_timeout.as_millis() as i64;
        let mut resend = Vec::new();
        let mut give_up = Vec::new();
        for (worker_id, worker) in self.workers().iter_mut() {
            for (task_id, in_flight) in worker.in_flight.iter_mut() {
                if in_flight.acked || in_flight.sent_at_ms > ack_deadline {
                    continue;
                }
                if in_flight.resends < MAX_RESENDS {
                    in_flight.resent(now);
                    resend.push((
                        worker_id.clone(),
                        in_flight.packet.clone(),
                        in_flight.payload_of.clone(),
                    ));
                } else {
                    give_up.push((worker_id.clone(), task_id.clone(), in_flight.packet.lease));
                }
            }
        }
        for (worker_id, packet, payload_of) in resend {
            tracing::info!(worker.id = %worker_id, task.id = %packet.task_id, "no ACK in time; resending");
            self.resend(&worker_id, packet, &payload_of).await?;
        }
        for (worker_id, task_id, lease) in give_up {
            if self.take_in_flight(&worker_id, &task_id, lease).is_some() {
                self.send_next_reserved(&worker_id);
                self.lease_failed(&worker_id, &task_id);
                self.send_to(
                    &worker_id,
                    ServerMessage::Cancel {
                        task_id: task_id.clone(),
                    },
                );
                self.release(&task_id, lease, true, "its worker never acknowledged it")
                    .await?;
            }
        }
        Ok(())
    }
}

/// An update that puts tasks back in the queue with no lease holder (filters and the attempts
/// count are the caller's): the one shape of every requeue.
pub(super) fn back_in_queue() -> sea_orm::UpdateMany<task::Entity> {
    without_lease(
        task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(task_status::QUEUED)),
    )
}

/// `update`, also clearing the tasks' lease holder and expiry: what ends a lease.
pub(super) fn without_lease(
    update: sea_orm::UpdateMany<task::Entity>,
) -> sea_orm::UpdateMany<task::Entity> {
    update
        .col_expr(
            task::Column::LeaseWorker,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            task::Column::LeaseExpiresAtMs,
            Expr::value(Option::<i64>::None),
        )
}

/// The tasks listed by id that are in `status`: the filter of every statement that claims, fences
/// or renews many tasks at once.
///
/// Written so that the ids decide how the rows are found. Asked for `status = ? AND id IN (…)`,
/// SQLite, which keeps no statistics on these tables, guesses that an equality on the leading
/// column of the `(status, job_id, seq)` index finds fewer rows than a list of ids, and scans every
/// task in that state (twenty thousand for a large queued job, each testing the statement's CASE
/// of leases) instead of looking up the listed ones: 22 ms against 3 ms for a claim of 250 tasks.
/// A unary `+` keeps a term off any index (SQLite's documented way to steer its planner); it
/// changes no value, and MySQL, which plans from statistics, ignores it.
pub(super) fn listed_tasks_in_status(
    ids: impl IntoIterator<Item = String>,
    status: &str,
) -> sea_orm::sea_query::SimpleExpr {
    task::Column::Id.is_in(ids).and(
        Expr::expr(Expr::cust_with_expr(
            "+?",
            Expr::col((task::Entity, task::Column::Status)),
        ))
        .eq(status),
    )
}

/// Each listed task is under the fencing token given for it (`lease = CASE id WHEN … THEN … END`):
/// the condition that lets one statement claim or fence many tasks, each under its own lease.
pub(super) fn under_leases<'a>(
    tasks: impl Iterator<Item = (&'a str, i64)>,
) -> sea_orm::sea_query::SimpleExpr {
    let lease_of = tasks.fold(CaseStatement::new(), |case, (id, lease)| {
        case.case(task::Column::Id.eq(id), Expr::value(lease))
    });
    Expr::col(task::Column::Lease).eq(lease_of)
}

/// Consecutive runs of `items` of at most `max_items` items and, unless one item alone is larger,
/// `max_bytes` bytes: how statements that carry or fetch payloads and results are cut.
pub(super) fn runs_within<T>(
    items: &[T],
    max_items: usize,
    max_bytes: usize,
    bytes: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = bytes(item);
        let full = i - start == max_items || total + size > max_bytes;
        if i > start && full {
            runs.push(&items[start..i]);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// Splits a packet into the one to send and a copy without its payload to keep while it is out.
fn without_payload(mut packet: TaskPacket) -> (TaskPacket, TaskPacket) {
    let payload = std::mem::take(&mut packet.data.payload);
    let kept = packet.clone();
    packet.data.payload = payload;
    (packet, kept)
}

/// Keys are opaque to the server, but bounded and printable so they can be stored and shown.
fn is_acceptable_key(key: &str) -> bool {
    (8..=64).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// 128 random bits as hex: ids that say nothing about what they name.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::SimpleExpr;
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};

    use super::*;

    /// How SQLite would run a claim-shaped UPDATE of the tasks that `filter` selects, one step a
    /// line.
    async fn sqlite_plan(db: &DatabaseConnection, filter: SimpleExpr) -> String {
        let update = task::Entity::update_many()
            .col_expr(task::Column::Lease, Expr::col(task::Column::Lease).add(1))
            .filter(filter)
            .build(DbBackend::Sqlite);
        let explain = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("EXPLAIN QUERY PLAN {}", update.sql),
            update.values.map(|values| values.0).unwrap_or_default(),
        );
        let steps = db
            .query_all(explain)
            .await
            .expect("SQLite explains the update");
        steps
            .iter()
            .map(|step| step.try_get::<String>("", "detail").expect("a plan step"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A migrated SQLite database in a folder of its own (the caller removes the folder).
    pub(super) async fn sqlite_in_new_folder(
        name: &str,
    ) -> (std::path::PathBuf, DatabaseConnection) {
        let folder = std::env::temp_dir().join(format!("vitalgrid-{name}-{}", random_id()));
        let url = format!("sqlite://{}/{name}.sqlite?mode=rwc", folder.display());
        let db = crate::app::connect_database(&url)
            .await
            .expect("a migrated database");
        (folder, db)
    }

    #[tokio::test]
    async fn statements_on_listed_tasks_find_them_by_id_instead_of_scanning_their_status() {
        let (folder, db) = sqlite_in_new_folder("plan").await;
        let ids: Vec<String> = (0..250).map(|n| format!("{n:032}")).collect();
        let steered = sqlite_plan(
            &db,
            listed_tasks_in_status(ids.clone(), task_status::QUEUED),
        )
        .await;
        let plain = sqlite_plan(
            &db,
            task::Column::Id
                .is_in(ids)
                .and(task::Column::Status.eq(task_status::QUEUED)),
        )
        .await;
        db.close().await.expect("the database closes");
        let _ = std::fs::remove_dir_all(&folder);
        // Why the helper exists; should SQLite ever plan the plain form by id, it is no longer
        // needed.
        assert!(
            plain.contains("idx_tasks_status_job_seq"),
            "the plain filter is planned as:\n{plain}"
        );
        assert!(
            steered.contains("sqlite_autoindex_tasks_1")
                && !steered.contains("idx_tasks_status_job_seq"),
            "the helper's filter is planned as:\n{steered}"
        );
    }
}
