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
pub mod priority;
pub mod replication;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::{Rng, RngCore};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use vitalgrid_worker::protocol::{
    CheckedPayload, ErrorCode, ServerMessage, SignedPayload, TaskPacket, WorkerMessage,
};

use crate::clock::Clock;
use crate::config::SchedulerConfig;
use crate::db::entities::{job, task, task_result, worker_record};
use crate::db::{job_status, task_status};
use crate::events;
use crate::templates::TemplateStore;
use priority::{ActiveJob, FairQueue, Priority};

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
    wake: Notify,
}

/// A worker connected to this process.
#[derive(Debug)]
struct ConnectedWorker {
    outbox: mpsc::UnboundedSender<ServerMessage>,
    /// The key its record (credibility) is kept under: the one it presented, or the connection id.
    key: String,
    /// Measured speed (rows per second, smoothed); `None` until its first result.
    rows_per_s: Option<f64>,
    slots: u32,
    agent: String,
    connected_at_ms: i64,
    templates_sent: HashSet<(String, u32)>,
    in_flight: HashMap<String, InFlight>,
    tasks_done: u64,
}

/// A task packet this process sent and has not yet had an answer to.
#[derive(Debug, Clone)]
struct InFlight {
    packet: TaskPacket,
    sent_at_ms: i64,
    acked: bool,
    resends: u32,
    /// For a known-answer probe: the hash of the validated result the worker must reproduce.
    known_answer: Option<String>,
}

/// Chance, per sweep, that an idle worker without full credibility is sent a known-answer probe:
/// a copy of an already validated task under a fresh id, whose result hash is known.
const KNOWN_ANSWER_RATE: f64 = 0.25;

/// Smoothing of the measured worker speed: recent tasks count most, one odd task cannot dominate.
const SPEED_SMOOTHING: f64 = 0.3;

/// What the admin pages show of a connected worker.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub worker_key: String,
    pub agent: String,
    pub rows_per_s: Option<f64>,
    pub current_tasks: Vec<String>,
    pub slots: u32,
    pub in_flight: usize,
    pub tasks_done: u64,
    pub connected_at: i64,
}

impl SenderCore {
    /// Creates the core and spawns its dispatch/sweep loop on the current Tokio runtime.
    pub fn start(
        db: DatabaseConnection,
        config: SchedulerConfig,
        clock: Arc<dyn Clock>,
        templates: Arc<TemplateStore>,
    ) -> Arc<Self> {
        let core = Arc::new(Self {
            db,
            config,
            clock,
            templates,
            workers: Mutex::new(HashMap::new()),
            fair_queue: Mutex::new(FairQueue::default()),
            wake: Notify::new(),
        });
        tokio::spawn(Arc::clone(&core).run());
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
            tokio::select! {
                () = self.wake.notified() => {}
                _ = sweep.tick() => {
                    if let Err(error) = self.sweep().await {
                        tracing::warn!(%error, "scheduler sweep failed");
                    }
                }
            }
            if let Err(error) = self.dispatch().await {
                tracing::warn!(%error, "dispatch failed");
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
    ) -> Result<Option<(String, mpsc::UnboundedReceiver<ServerMessage>)>, DbErr> {
        let worker_id = random_id();
        let key = worker_key
            .filter(|k| is_acceptable_key(k))
            .unwrap_or_else(|| worker_id.clone());
        if self.touch_record(&key).await? {
            tracing::info!(worker.key = %key, "banned worker refused");
            return Ok(None);
        }
        let (outbox, inbox) = mpsc::unbounded_channel();
        let _ = outbox.send(ServerMessage::Welcome {
            worker_id: worker_id.clone(),
            slots,
        });
        self.workers().insert(
            worker_id.clone(),
            ConnectedWorker {
                outbox,
                key,
                rows_per_s: None,
                slots,
                agent,
                connected_at_ms: self.clock.now_ms(),
                templates_sent: HashSet::new(),
                in_flight: HashMap::new(),
                tasks_done: 0,
            },
        );
        tracing::info!(worker.id = %worker_id, slots, "worker connected");
        self.notify();
        Ok(Some((worker_id, inbox)))
    }

    /// Creates or refreshes the worker's record; returns whether it is banned.
    async fn touch_record(&self, key: &str) -> Result<bool, DbErr> {
        let now = self.clock.now_ms();
        if let Some(record) = worker_record::Entity::find_by_id(key).one(&self.db).await? {
            worker_record::Entity::update_many()
                .col_expr(worker_record::Column::LastSeenAtMs, Expr::value(now))
                .filter(worker_record::Column::WorkerKey.eq(key))
                .exec(&self.db)
                .await?;
            return Ok(record.banned);
        }
        let inserted = worker_record::Entity::insert(worker_record::ActiveModel {
            worker_key: sea_orm::Set(key.to_owned()),
            agreed: sea_orm::Set(0),
            disagreed: sea_orm::Set(0),
            banned: sea_orm::Set(false),
            first_seen_at_ms: sea_orm::Set(now),
            last_seen_at_ms: sea_orm::Set(now),
        })
        .exec(&self.db)
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

    /// Forgets a worker whose connection ended and puts every task it held back in the queue.
    pub async fn disconnect(&self, worker_id: &str) -> Result<(), DbErr> {
        let held = self
            .workers()
            .remove(worker_id)
            .map(|w| w.in_flight)
            .unwrap_or_default();
        tracing::info!(worker.id = %worker_id, tasks_held = held.len(), "worker disconnected");
        for (task_id, in_flight) in held {
            self.release(
                &task_id,
                in_flight.packet.lease,
                true,
                "the worker disconnected",
            )
            .await?;
        }
        self.notify();
        Ok(())
    }

    /// Sends a message to one worker (dropped silently if it has just gone).
    pub fn send_to(&self, worker_id: &str, message: ServerMessage) {
        if let Some(worker) = self.workers().get(worker_id) {
            let _ = worker.outbox.send(message);
        }
    }

    /// Median measured speed (rows per second) of the connected workers that have returned results.
    pub fn typical_speed(&self) -> Option<f64> {
        let mut speeds: Vec<f64> = self
            .workers()
            .values()
            .filter_map(|w| w.rows_per_s)
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
                rows_per_s: w.rows_per_s,
                current_tasks: w.in_flight.keys().cloned().collect(),
                slots: w.slots,
                in_flight: w.in_flight.len(),
                tasks_done: w.tasks_done,
                connected_at: w.connected_at_ms,
            })
            .collect();
        list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at).then(a.id.cmp(&b.id)));
        list
    }

    /// Handles one message from a worker.
    pub async fn handle(&self, worker_id: &str, message: WorkerMessage) -> Result<(), DbErr> {
        match message {
            WorkerMessage::Hello { .. } => self.send_to(
                worker_id,
                ServerMessage::Error {
                    task_id: None,
                    code: ErrorCode::Protocol,
                    message: "hello was already received on this connection".to_owned(),
                },
            ),
            WorkerMessage::Ack { task_id, lease } => {
                if self.mark_acked(worker_id, &task_id, lease) {
                    self.renew_lease(&task_id, lease).await?;
                }
            }
            WorkerMessage::Progress { task_id, lease, .. } => {
                if self.holds(worker_id, &task_id, lease) {
                    self.renew_lease(&task_id, lease).await?;
                }
            }
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
                    self.notify();
                }
            }
        }
        Ok(())
    }

    fn holds(&self, worker_id: &str, task_id: &str, lease: u64) -> bool {
        self.workers()
            .get(worker_id)
            .and_then(|w| w.in_flight.get(task_id))
            .is_some_and(|f| f.packet.lease == lease)
    }

    fn mark_acked(&self, worker_id: &str, task_id: &str, lease: u64) -> bool {
        let mut workers = self.workers();
        match workers
            .get_mut(worker_id)
            .and_then(|w| w.in_flight.get_mut(task_id))
        {
            Some(in_flight) if in_flight.packet.lease == lease => {
                in_flight.acked = true;
                true
            }
            _ => false,
        }
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
            if damaged_in_transit && in_flight.resends < MAX_RESENDS {
                in_flight.resends += 1;
                in_flight.sent_at_ms = self.clock.now_ms();
                in_flight.acked = false;
                Some(in_flight.packet.clone())
            } else {
                None
            }
        };
        match resend {
            Some(packet) => {
                self.send_task(worker_id, packet);
                Ok(())
            }
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
                let reason = format!("a worker refused it: {message}");
                self.release(task_id, in_flight.packet.lease, true, &reason)
                    .await?;
                self.notify();
                Ok(())
            }
        }
    }

    /// Sends a task, preceded by its template if this worker has not had it yet.
    fn send_task(&self, worker_id: &str, packet: TaskPacket) {
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
                        let _ = worker
                            .outbox
                            .send(ServerMessage::Template(SignedPayload::seal(json)));
                        worker.templates_sent.insert(key);
                    }
                    Err(error) => tracing::error!(%error, "template does not serialise"),
                }
            }
        }
        let _ = worker.outbox.send(ServerMessage::Task(packet));
    }

    /// Hands queued tasks to workers with free slots until either runs out. Slots are served in
    /// the order of the fair queue (priorities, then clinicians in turn); the fastest workers get
    /// work first; a worker never gets a task it has already answered (replicas must be distinct).
    async fn dispatch(&self) -> Result<(), DbErr> {
        loop {
            let mut free: Vec<(String, String, f64)> = Vec::new();
            for (id, w) in self.workers().iter() {
                let open = (w.slots as usize).saturating_sub(w.in_flight.len());
                free.extend(std::iter::repeat_n(
                    (id.clone(), w.key.clone(), w.rows_per_s.unwrap_or(0.0)),
                    open,
                ));
            }
            if free.is_empty() {
                return Ok(());
            }
            free.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));

            let active = self.active_jobs().await?;
            if active.is_empty() {
                return Ok(());
            }
            let plan = self
                .fair_queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .plan(&active, free.len());
            let mut wanted: Vec<(i64, u64)> = Vec::new();
            for job_id in &plan {
                match wanted.iter_mut().find(|(id, _)| id == job_id) {
                    Some((_, n)) => *n += 1,
                    None => wanted.push((*job_id, 1)),
                }
            }
            let mut candidates: HashMap<i64, std::collections::VecDeque<task::Model>> =
                HashMap::new();
            for (job_id, n) in &wanted {
                // A few extra, in case some were already answered by the free workers.
                let tasks = task::Entity::find()
                    .filter(task::Column::JobId.eq(*job_id))
                    .filter(task::Column::Status.eq(task_status::QUEUED))
                    .order_by_asc(task::Column::Seq)
                    .limit(n * 2 + 2)
                    .all(&self.db)
                    .await?;
                candidates.insert(*job_id, tasks.into());
            }
            let ids: Vec<String> = candidates
                .values()
                .flatten()
                .map(|t| t.id.clone())
                .collect();
            let answered: HashSet<(String, String)> = task_result::Entity::find()
                .select_only()
                .column(task_result::Column::TaskId)
                .column(task_result::Column::WorkerKey)
                .filter(task_result::Column::TaskId.is_in(ids))
                .into_tuple::<(String, String)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect();

            let mut progress = false;
            for job_id in plan {
                let Some(queue) = candidates.get_mut(&job_id) else {
                    continue;
                };
                let Some(position) = queue.iter().position(|t| {
                    free.iter()
                        .any(|(_, key, _)| !answered.contains(&(t.id.clone(), key.clone())))
                }) else {
                    continue;
                };
                let Some(candidate) = queue.remove(position) else {
                    continue;
                };
                let Some(slot) = free.iter().position(|(_, key, _)| {
                    !answered.contains(&(candidate.id.clone(), key.clone()))
                }) else {
                    continue;
                };
                let (worker_id, _, _) = free.remove(slot);
                let Some(packet) = self.claim(candidate, &worker_id).await? else {
                    continue;
                };
                progress = true;
                let in_flight = InFlight {
                    packet: packet.clone(),
                    sent_at_ms: self.clock.now_ms(),
                    acked: false,
                    resends: 0,
                    known_answer: None,
                };
                let still_connected = match self.workers().get_mut(&worker_id) {
                    Some(worker) => {
                        worker.in_flight.insert(packet.task_id.clone(), in_flight);
                        true
                    }
                    None => false,
                };
                if still_connected {
                    self.send_task(&worker_id, packet);
                } else {
                    self.release(
                        &packet.task_id,
                        packet.lease,
                        false,
                        "the worker disconnected",
                    )
                    .await?;
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// Jobs with queued tasks, with their owner and priority.
    async fn active_jobs(&self) -> Result<Vec<ActiveJob>, DbErr> {
        let counts: Vec<(i64, i64)> = task::Entity::find()
            .select_only()
            .column(task::Column::JobId)
            .column_as(Expr::col(task::Column::Id).count(), "queued")
            .filter(task::Column::Status.eq(task_status::QUEUED))
            .group_by(task::Column::JobId)
            .into_tuple()
            .all(&self.db)
            .await?;
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = job::Entity::find()
            .filter(job::Column::Id.is_in(counts.iter().map(|(id, _)| *id)))
            .filter(job::Column::Status.is_in([job_status::QUEUED, job_status::RUNNING]))
            .all(&self.db)
            .await?;
        Ok(jobs
            .into_iter()
            .filter_map(|j| {
                let queued = counts.iter().find(|(id, _)| *id == j.id)?.1;
                Some(ActiveJob {
                    job_id: j.id,
                    owner_id: j.owner_id,
                    priority: Priority::parse(&j.priority).unwrap_or_default(),
                    queued_tasks: queued as usize,
                })
            })
            .collect())
    }

    /// Leases `candidate` to `worker_id` unless another process got there first.
    async fn claim(
        &self,
        candidate: task::Model,
        worker_id: &str,
    ) -> Result<Option<TaskPacket>, DbErr> {
        let now = self.clock.now_ms();
        let transaction = self.db.begin().await?;
        if self.db.get_database_backend() == DbBackend::MySql {
            // Several servers share the queue: lock the row, skipping rows another server holds,
            // so they spread over different tasks instead of racing for the same one. (SQLite
            // has one writer at a time; the conditional UPDATE below is the guard there, and the
            // final word everywhere.)
            let free = task::Entity::find_by_id(&candidate.id)
                .select_only()
                .column(task::Column::Id)
                .filter(task::Column::Status.eq(task_status::QUEUED))
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .into_tuple::<String>()
                .one(&transaction)
                .await?;
            if free.is_none() {
                return Ok(None);
            }
        }
        let claimed = task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(task_status::LEASED))
            .col_expr(task::Column::Lease, Expr::col(task::Column::Lease).add(1))
            .col_expr(task::Column::LeaseWorker, Expr::value(worker_id))
            .col_expr(
                task::Column::LeaseExpiresAtMs,
                Expr::value(now + self.lease_ttl_ms()),
            )
            .col_expr(
                task::Column::Attempts,
                Expr::col(task::Column::Attempts).add(1),
            )
            .filter(task::Column::Id.eq(&candidate.id))
            .filter(task::Column::Status.eq(task_status::QUEUED))
            .filter(task::Column::Lease.eq(candidate.lease))
            .exec(&transaction)
            .await?
            .rows_affected
            == 1;
        transaction.commit().await?;
        if !claimed {
            return Ok(None);
        }
        job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(job_status::RUNNING))
            .filter(job::Column::Id.eq(candidate.job_id))
            .filter(job::Column::Status.eq(job_status::QUEUED))
            .exec(&self.db)
            .await?;
        let Some(owner) = job::Entity::find_by_id(candidate.job_id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        self.templates
            .get(&owner.template_id, owner.template_version as u32)
            .await?;
        let detail = format!(
            "lease {} (attempt {})",
            candidate.lease + 1,
            candidate.attempts + 1
        );
        events::record(
            &self.db,
            owner.id,
            Some(&candidate.id),
            Some(worker_id),
            "leased",
            detail,
            now,
        )
        .await?;
        let payload = String::from_utf8(candidate.payload)
            .map_err(|e| DbErr::Custom(format!("task payload is not UTF-8: {e}")))?;
        Ok(Some(TaskPacket {
            task_id: candidate.id,
            lease: candidate.lease as u64 + 1,
            template_id: owner.template_id,
            template_version: owner.template_version as u32,
            algorithm: owner.algorithm,
            data: CheckedPayload::seal(payload),
        }))
    }

    /// Puts a leased task back in the queue, or fails it (and its job) once it has used up its
    /// attempts. `lease` fences out a release that arrives after the task moved on.
    async fn release(
        &self,
        task_id: &str,
        lease: u64,
        counts_as_attempt: bool,
        reason: &str,
    ) -> Result<(), DbErr> {
        let mut update = task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(task_status::QUEUED))
            .col_expr(
                task::Column::LeaseWorker,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                task::Column::LeaseExpiresAtMs,
                Expr::value(Option::<i64>::None),
            );
        if !counts_as_attempt {
            update = update.col_expr(
                task::Column::Attempts,
                Expr::col(task::Column::Attempts).sub(1),
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
            if let Some(found) = task::Entity::find_by_id(task_id).one(&self.db).await? {
                events::record(
                    &self.db,
                    found.job_id,
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
        let Some(found) = task::Entity::find_by_id(task_id).one(&self.db).await? else {
            return Ok(());
        };
        if found.status != task_status::QUEUED || found.attempts < self.config.max_attempts {
            return Ok(());
        }
        task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(task_status::FAILED))
            .filter(task::Column::Id.eq(task_id))
            .filter(task::Column::Status.eq(task_status::QUEUED))
            .exec(&self.db)
            .await?;
        let message = format!(
            "part {} of the analysis failed {} times; last reason: {reason}",
            found.seq + 1,
            found.attempts
        );
        tracing::warn!(job.id = found.job_id, task.id = %task_id, %message, "job failed");
        events::record(
            &self.db,
            found.job_id,
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
            .filter(job::Column::Id.eq(found.job_id))
            .filter(job::Column::Status.is_in([job_status::QUEUED, job_status::RUNNING]))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn renew_lease(&self, task_id: &str, lease: u64) -> Result<(), DbErr> {
        task::Entity::update_many()
            .col_expr(
                task::Column::LeaseExpiresAtMs,
                Expr::value(self.clock.now_ms() + self.lease_ttl_ms()),
            )
            .filter(task::Column::Id.eq(task_id))
            .filter(task::Column::Lease.eq(lease as i64))
            .filter(task::Column::Status.eq(task_status::LEASED))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    fn lease_ttl_ms(&self) -> i64 {
        self.config.lease_ttl.as_millis() as i64
    }

    /// Renews the leases of live connections, requeues expired leases (their holder is gone, maybe
    /// with a crashed process) and resends or reassigns packets that were never ACKed.
    /// Sends known-answer probes to some idle workers that have not earned trust yet, so a forger
    /// is caught even when its results would otherwise have stood alone or gone unreplicated.
    async fn probe_idle_workers(&self) -> Result<(), DbErr> {
        let idle: Vec<(String, String)> = self
            .workers()
            .iter()
            .filter(|(_, w)| w.in_flight.is_empty())
            .map(|(id, w)| (id.clone(), w.key.clone()))
            .collect();
        for (worker_id, key) in idle {
            if rand::thread_rng().r#gen::<f64>() >= KNOWN_ANSWER_RATE {
                continue;
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
            // A validated task this worker has not answered (answering it twice would prove nothing).
            let answered: Vec<String> = task_result::Entity::find()
                .select_only()
                .column(task_result::Column::TaskId)
                .filter(task_result::Column::WorkerKey.eq(&key))
                .into_tuple()
                .all(&self.db)
                .await?;
            let Some(known) = task::Entity::find()
                .filter(task::Column::Status.eq(task_status::DONE))
                .filter(task::Column::ResultSha256.is_not_null())
                .filter(task::Column::Id.is_not_in(answered))
                .order_by_desc(task::Column::JobId)
                .one(&self.db)
                .await?
            else {
                continue;
            };
            let Some(owner) = job::Entity::find_by_id(known.job_id).one(&self.db).await? else {
                continue;
            };
            self.templates
                .get(&owner.template_id, owner.template_version as u32)
                .await?;
            let (Ok(payload), Some(expected)) =
                (String::from_utf8(known.payload), known.result_sha256)
            else {
                continue;
            };
            let packet = TaskPacket {
                task_id: random_id(),
                lease: 1,
                template_id: owner.template_id,
                template_version: owner.template_version as u32,
                algorithm: owner.algorithm,
                data: CheckedPayload::seal(payload),
            };
            let probe = InFlight {
                packet: packet.clone(),
                sent_at_ms: self.clock.now_ms(),
                acked: false,
                resends: 0,
                known_answer: Some(expected),
            };
            if let Some(worker) = self.workers().get_mut(&worker_id) {
                worker.in_flight.insert(packet.task_id.clone(), probe);
            }
            self.send_task(&worker_id, packet);
        }
        Ok(())
    }

    async fn sweep(&self) -> Result<(), DbErr> {
        let now = self.clock.now_ms();
        // Only the tasks a live connection actually holds are renewed: a lease this process lost
        // track of (say, after a failed transaction) expires like any other.
        let held: Vec<String> = self
            .workers()
            .values()
            .flat_map(|w| w.in_flight.keys().cloned())
            .collect();
        for chunk in held.chunks(500) {
            task::Entity::update_many()
                .col_expr(
                    task::Column::LeaseExpiresAtMs,
                    Expr::value(now + self.lease_ttl_ms()),
                )
                .filter(task::Column::Status.eq(task_status::LEASED))
                .filter(task::Column::Id.is_in(chunk.iter().cloned()))
                .exec(&self.db)
                .await?;
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
                    in_flight.resends += 1;
                    in_flight.sent_at_ms = now;
                    resend.push((worker_id.clone(), in_flight.packet.clone()));
                } else {
                    give_up.push((worker_id.clone(), task_id.clone(), in_flight.packet.lease));
                }
            }
        }
        for (worker_id, packet) in resend {
            tracing::info!(worker.id = %worker_id, task.id = %packet.task_id, "no ACK in time; resending");
            self.send_task(&worker_id, packet);
        }
        for (worker_id, task_id, lease) in give_up {
            if self.take_in_flight(&worker_id, &task_id, lease).is_some() {
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
        self.probe_idle_workers().await?;
        Ok(())
    }
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
