//! A dispatch round: every free slot and reserve place is planned at once, the planned tasks are
//! claimed together in one transaction, and only then are their payloads read and sent — or, for a
//! reserve place, held for the worker until one of its slots frees.
//!
//! A round costs a few statements and one commit whatever the number of tasks it hands out: the
//! jobs with queued work, a bounded look at each one's queue (ids and fencing tokens, no payloads),
//! the answers already given, one conditional UPDATE per few hundred claims, one job update and one
//! multi-row event insert.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::PoisonError;
use std::time::Instant;

use sea_orm::sea_query::{CaseStatement, Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use vitalgrid_worker::protocol::TaskPacket;

use super::budget::PayloadCharge;
use super::choice::{REFERENCE_TASK_ROWS, reserve_depth};
use super::priority::{ActiveJob, Priority};
use super::{
    InFlight, Reserved, SenderCore, listed_tasks_in_status, runs_within, under_leases,
    without_payload,
};
use crate::db::entities::{job, task, task_result};
use crate::db::{job_status, task_status};
use crate::events::{self, NewEvent};

/// Most tasks read by one query.
const TASKS_PER_QUERY: usize = 250;
/// Most tasks claimed by one UPDATE. Its `CASE id WHEN … THEN … END` expressions (each task's worker
/// and fencing token) are evaluated row by row, arm by arm, so a statement's cost grows with the
/// square of its tasks: on SQLite 50 per statement claimed a round faster than 25 or 250
/// (docs/benchmarks.md, tenth session).
const CLAIMS_PER_STATEMENT: usize = 50;
/// Weight of a new round's time in the smoothed figure.
const ROUND_TIME_SMOOTHING: f64 = 0.2;
/// Payload bytes read by one query, unless one payload alone is larger: one 1 MB ECG task, sixteen
/// of 64 KB, or as many tiny ones as a statement takes (a fixed sixteen per query made a round of
/// two thousand tiny tasks cost 125 queries).
const PAYLOAD_BYTES_PER_QUERY: usize = 1024 * 1024;

/// A free slot, or a free reserve place, of a connected worker.
#[derive(Debug, Clone)]
struct FreeSlot {
    worker_id: String,
    key: String,
    /// Seconds its worker is expected to take over a reference task (`choice`).
    expected_s: f64,
    /// A reserve place: its task is held for the worker, not sent (`ConnectedWorker::reserve`).
    reserve: bool,
}

/// What a round needs of a job with queued tasks, read once per round.
#[derive(Debug, Clone)]
pub(super) struct RoundJob {
    status: String,
    owner_id: i64,
    priority: Priority,
    pub(super) template_id: String,
    pub(super) template_version: u32,
    pub(super) algorithm: String,
}

/// A queued task as a round sees it: enough to choose and claim it, without its payload.
#[derive(Debug, Clone, PartialEq)]
struct QueuedTask {
    id: String,
    job_id: i64,
    lease: i64,
    attempts: i32,
    /// Whether any answer to it was ever recorded: `replicas_needed` is set by the first one (and
    /// by a redo), so a task still at 0 has none and no worker needs to be kept from it.
    may_have_answers: bool,
    /// Its payload's size, which the round charges to the payload budget once it reads it.
    payload_bytes: usize,
}

/// A queued task planned for a worker's free slot. Once claimed, `lease` is the new fencing token.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Assignment {
    pub(super) task_id: String,
    pub(super) job_id: i64,
    pub(super) lease: i64,
    attempts: i32,
    pub(super) worker_id: String,
    /// Its payload's stored size, as the round read it.
    payload_bytes: usize,
}

/// Where a claimed task went (`SenderCore::place`).
enum Placement {
    /// Into a free slot: the packet is to be sent now, its payload charged until written.
    Send(TaskPacket, PayloadCharge),
    /// Into the worker's reserve.
    Reserved,
    /// Nowhere: every slot is busy and the reserves' payload budget has no room for it.
    NoRoom,
    /// Nowhere: its worker disconnected.
    WorkerGone,
}

/// A claimed task's stored payload (the packet's Adler-32 is computed as it is sent).
#[derive(Debug)]
pub(super) struct StoredPayload {
    pub(super) payload: Vec<u8>,
}

impl SenderCore {
    /// Hands queued tasks to workers with free slots until either runs out. Slots are served in
    /// the order of the fair queue (priorities, then clinicians in turn); the workers expected to
    /// finish soonest get work first (`choice`); a worker never gets a task it has already
    /// answered (replicas must be distinct).
    pub(super) async fn dispatch(&self) -> Result<(), DbErr> {
        self.send_reserved_to_free_slots();
        // Cleared when a reserved task did not fit the payload budget, so the loop does not claim
        // and put back the same tasks round after round.
        let mut reserving = self.config.reserve_per_slot > 0;
        loop {
            // A deque: each assignment takes a slot from near its front (workers soonest done
            // first), which a vector would pay for by moving every slot behind it.
            let mut free = VecDeque::from(self.free_slots(reserving));
            if free.is_empty() {
                return Ok(());
            }
            let round_started = Instant::now();
            let (jobs, mut queued) = self.queued_work(free.len()).await?;
            if queued.is_empty() {
                return Ok(());
            }
            let active: Vec<ActiveJob> = queued
                .iter()
                .filter_map(|(job_id, tasks)| {
                    let job = jobs.get(job_id)?;
                    Some(ActiveJob {
                        job_id: *job_id,
                        owner_id: job.owner_id,
                        priority: job.priority,
                        queued_tasks: tasks.len(),
                    })
                })
                .collect();
            let plan = self
                .fair_queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .plan(&active, free.len());
            let answered = self
                .answered(
                    queued
                        .values()
                        .flatten()
                        .filter(|t| t.may_have_answers)
                        .map(|t| t.id.clone())
                        .collect(),
                )
                .await?;
            let assignments = {
                let mut failed_last_on = self
                    .failed_last_on
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let room = self.payload_budget.room();
                let (assignments, out_of_room) = assign(
                    &plan,
                    &mut queued,
                    &mut free,
                    (&answered, &failed_last_on),
                    room,
                );
                if out_of_room {
                    self.payload_budget.hold_back_dispatch();
                }
                for assignment in &assignments {
                    failed_last_on.remove(&assignment.task_id);
                }
                assignments
            };
            if assignments.is_empty() {
                return Ok(());
            }
            let claimed = self.claim(assignments, &jobs).await?;
            if claimed.is_empty() {
                return Ok(());
            }
            if !self.send_claimed(claimed, &jobs).await? {
                reserving = false;
            }
            self.record_round_time(round_started.elapsed().as_secs_f64() * 1_000.0);
        }
    }

    /// Folds the time of a round that handed out tasks into the smoothed figure.
    fn record_round_time(&self, round_ms: f64) {
        let mut smoothed = self.round_ms.lock().unwrap_or_else(PoisonError::into_inner);
        *smoothed = Some(match *smoothed {
            Some(previous) => previous + ROUND_TIME_SMOOTHING * (round_ms - previous),
            None => round_ms,
        });
    }

    /// Sends reserved tasks to any slot that freed without taking one (a slot normally takes its
    /// worker's next reserved task the moment it frees; this is the safety net).
    fn send_reserved_to_free_slots(&self) {
        let waiting: Vec<String> = self
            .workers()
            .iter()
            .filter(|(_, w)| !w.reserve.is_empty() && w.in_flight.len() < w.slots as usize)
            .map(|(id, _)| id.clone())
            .collect();
        for worker_id in waiting {
            while self.send_next_reserved(&worker_id) {}
        }
    }

    /// Every open slot of every connected worker, the workers expected to finish soonest first,
    /// then (when `reserving`) every free reserve place — as many of them as the payload budget is
    /// expected to hold.
    fn free_slots(&self, reserving: bool) -> Vec<FreeSlot> {
        let budget = &self.payload_budget;
        let reserves_fit = if reserving {
            budget.tasks_that_fit(true)
        } else {
            0
        };
        let reserving = reserves_fit > 0;
        let round_ms = *self.round_ms.lock().unwrap_or_else(PoisonError::into_inner);
        let mut free = Vec::new();
        for (id, w) in self.workers().iter() {
            let slot = FreeSlot {
                worker_id: id.clone(),
                key: w.key.clone(),
                expected_s: w.track.expected_s(REFERENCE_TASK_ROWS),
                reserve: false,
            };
            let open = (w.slots as usize).saturating_sub(w.in_flight.len());
            free.extend(std::iter::repeat_n(slot.clone(), open));
            if reserving {
                let depth = reserve_depth(self.config.reserve_per_slot, round_ms, w.track.task_ms);
                let places = (w.slots as usize)
                    .saturating_mul(depth as usize)
                    .saturating_sub(w.reserve.len());
                free.extend(std::iter::repeat_n(
                    FreeSlot {
                        reserve: true,
                        ..slot
                    },
                    places,
                ));
            }
        }
        // Slots that will run their task at once come before reserve places.
        free.sort_by(|a, b| {
            a.reserve
                .cmp(&b.reserve)
                .then_with(|| a.expected_s.total_cmp(&b.expected_s))
                .then_with(|| a.worker_id.cmp(&b.worker_id))
        });
        let slots = free.iter().filter(|s| !s.reserve).count();
        let fit = budget.tasks_that_fit(false);
        if slots > fit {
            budget.hold_back_dispatch();
        }
        let reserve_places = (free.len() - slots).min(reserves_fit);
        free.truncate(slots.min(fit) + reserve_places.min(fit.saturating_sub(slots)));
        free
    }

    /// The unfinished jobs, and the first `2 × slots + 2` queued tasks of each one that has any
    /// (more than the slots, in case the free workers already answered some). Reading a bounded
    /// prefix of each queue through the `(status, job_id, seq)` index keeps a round's cost
    /// independent of how many tasks wait.
    async fn queued_work(
        &self,
        slots: usize,
    ) -> Result<(HashMap<i64, RoundJob>, BTreeMap<i64, VecDeque<QueuedTask>>), DbErr> {
        let limit = (slots * 2 + 2) as u64;
        let unfinished = job::Entity::find()
            .filter(job::Column::Status.is_in([job_status::QUEUED, job_status::RUNNING]))
            .all(&self.db)
            .await?;
        let mut jobs = HashMap::new();
        let mut queued = BTreeMap::new();
        for row in unfinished {
            let tasks: VecDeque<QueuedTask> = task::Entity::find()
                .select_only()
                .column(task::Column::Id)
                .column(task::Column::Lease)
                .column(task::Column::Attempts)
                .column(task::Column::ReplicasNeeded)
                // The stored size: SQLite and MySQL answer it without reading the payload.
                .column_as(Expr::cust("LENGTH(payload)"), "payload_bytes")
                .filter(task::Column::Status.eq(task_status::QUEUED))
                .filter(task::Column::JobId.eq(row.id))
                .order_by_asc(task::Column::Seq)
                .limit(limit)
                .into_tuple::<(String, i64, i32, i32, Option<i64>)>()
                .all(&self.db)
                .await?
                .into_iter()
                .map(|(id, lease, attempts, replicas_needed, bytes)| QueuedTask {
                    id,
                    job_id: row.id,
                    lease,
                    attempts,
                    may_have_answers: replicas_needed > 0,
                    payload_bytes: bytes.and_then(|b| usize::try_from(b).ok()).unwrap_or(0),
                })
                .collect();
            if tasks.is_empty() {
                continue;
            }
            queued.insert(row.id, tasks);
            jobs.insert(
                row.id,
                RoundJob {
                    status: row.status,
                    owner_id: row.owner_id,
                    priority: Priority::parse(&row.priority).unwrap_or_default(),
                    template_id: row.template_id,
                    template_version: row.template_version as u32,
                    algorithm: row.algorithm,
                },
            );
        }
        Ok((jobs, queued))
    }

    /// Which workers (by key) already answered each of these tasks.
    async fn answered(&self, task_ids: Vec<String>) -> Result<HashMap<String, Vec<String>>, DbErr> {
        let mut answered: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in task_ids.chunks(TASKS_PER_QUERY) {
            let rows = task_result::Entity::find()
                .select_only()
                .column(task_result::Column::TaskId)
                .column(task_result::Column::WorkerKey)
                .filter(task_result::Column::TaskId.is_in(chunk.iter().cloned()))
                .into_tuple::<(String, String)>()
                .all(&self.db)
                .await?;
            for (task_id, key) in rows {
                answered.entry(task_id).or_default().push(key);
            }
        }
        Ok(answered)
    }

    /// Leases the planned tasks to their workers in one transaction. The conditional UPDATE (still
    /// `queued`, still under the fencing token the round read) lets only one server process win a
    /// task; on MySQL the rows are first locked with `SKIP LOCKED`, so servers sharing the queue
    /// spread over different tasks instead of waiting for each other. Returns the assignments won,
    /// under their new lease.
    async fn claim(
        &self,
        assignments: Vec<Assignment>,
        jobs: &HashMap<i64, RoundJob>,
    ) -> Result<Vec<Assignment>, DbErr> {
        let now = self.clock.now_ms();
        let turn = self.write_turns.take().await;
        let transaction = turn.db.begin().await?;
        let mut won = Vec::with_capacity(assignments.len());
        for chunk in assignments.chunks(CLAIMS_PER_STATEMENT) {
            won.extend(self.claim_chunk(&transaction, chunk, now).await?);
        }
        if won.is_empty() {
            return Ok(won);
        }
        let starting: BTreeSet<i64> = won
            .iter()
            .map(|a| a.job_id)
            .filter(|id| jobs.get(id).is_some_and(|j| j.status == job_status::QUEUED))
            .collect();
        if !starting.is_empty() {
            job::Entity::update_many()
                .col_expr(job::Column::Status, Expr::value(job_status::RUNNING))
                .filter(job::Column::Id.is_in(starting))
                .filter(job::Column::Status.eq(job_status::QUEUED))
                .exec(&transaction)
                .await?;
        }
        let leased = won
            .iter()
            .map(|a| NewEvent {
                job_id: a.job_id,
                task_id: Some(a.task_id.clone()),
                worker: Some(a.worker_id.clone()),
                kind: "leased",
                detail: format!("lease {} (attempt {})", a.lease, a.attempts + 1),
                at_ms: now,
            })
            .collect();
        events::record_all(&transaction, leased).await?;
        transaction.commit().await?;
        Ok(won)
    }

    async fn claim_chunk(
        &self,
        transaction: &DatabaseTransaction,
        chunk: &[Assignment],
        now: i64,
    ) -> Result<Vec<Assignment>, DbErr> {
        let mut wanted: Vec<Assignment> = chunk.to_vec();
        if transaction.get_database_backend() == DbBackend::MySql {
            // SQLite has one writer at a time; the conditional UPDATE below is the guard there,
            // and the final word everywhere.
            let free: HashSet<String> = task::Entity::find()
                .select_only()
                .column(task::Column::Id)
                .filter(listed_tasks_in_status(
                    wanted.iter().map(|a| a.task_id.clone()),
                    task_status::QUEUED,
                ))
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .into_tuple::<String>()
                .all(transaction)
                .await?
                .into_iter()
                .collect();
            wanted.retain(|a| free.contains(&a.task_id));
        }
        if wanted.is_empty() {
            return Ok(wanted);
        }
        let worker_of = wanted.iter().fold(CaseStatement::new(), |case, a| {
            case.case(
                task::Column::Id.eq(a.task_id.as_str()),
                Expr::value(a.worker_id.as_str()),
            )
        });
        let ids = || wanted.iter().map(|a| a.task_id.clone());
        let updated = task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(task_status::LEASED))
            .col_expr(task::Column::Lease, Expr::col(task::Column::Lease).add(1))
            .col_expr(task::Column::LeaseWorker, worker_of.into())
            .col_expr(
                task::Column::LeaseExpiresAtMs,
                Expr::value(now + self.lease_ttl_ms()),
            )
            .filter(listed_tasks_in_status(ids(), task_status::QUEUED))
            .filter(under_leases(
                wanted.iter().map(|a| (a.task_id.as_str(), a.lease)),
            ))
            .exec(transaction)
            .await?
            .rows_affected;
        if updated as usize != wanted.len() {
            // Another process won some of them: keep the rows this UPDATE leased (worker ids are
            // random per connection, so no other claim wrote the same worker and lease).
            let leased: HashSet<(String, i64, Option<String>)> = task::Entity::find()
                .select_only()
                .column(task::Column::Id)
                .column(task::Column::Lease)
                .column(task::Column::LeaseWorker)
                .filter(listed_tasks_in_status(ids(), task_status::LEASED))
                .into_tuple()
                .all(transaction)
                .await?
                .into_iter()
                .collect();
            wanted.retain(|a| {
                leased.contains(&(a.task_id.clone(), a.lease + 1, Some(a.worker_id.clone())))
            });
        }
        for a in &mut wanted {
            a.lease += 1;
        }
        Ok(wanted)
    }

    /// Sends the tasks just claimed, each preceded by its template where the worker lacks it, a
    /// few payloads at a time (a round can hand out hundreds of multi-megabyte tasks). A task
    /// whose worker has no free slot by now goes to its reserve instead, or back to the queue if
    /// the reserves' payload budget has no room for it. A worker gone since the round began has its
    /// task put back at once. Returns false when a task was put back for want of budget. When
    /// putting one back fails, the database is likely down and each further attempt would wait out
    /// its timeout in the scheduler's loop: the round stops putting tasks back (their leases expire
    /// and the sweep requeues them) but still sends those it can, and returns the error.
    async fn send_claimed(
        &self,
        claimed: Vec<Assignment>,
        jobs: &HashMap<i64, RoundJob>,
    ) -> Result<bool, DbErr> {
        let mut budget_had_room = true;
        if let Err(error) = self.cache_templates(&claimed, jobs).await {
            self.put_back(&claimed).await?;
            return Err(error);
        }
        let mut not_put_back = Ok(());
        let mut read_so_far = 0;
        for chunk in runs_within(&claimed, TASKS_PER_QUERY, PAYLOAD_BYTES_PER_QUERY, |a| {
            a.payload_bytes
        }) {
            let mut payloads = match self.payloads_of(chunk).await {
                Ok(payloads) => payloads,
                Err(error) => {
                    if not_put_back.is_ok() {
                        if let Err(also) = self.put_back(&claimed[read_so_far..]).await {
                            tracing::warn!(%also, "claimed tasks not put back; their leases will expire");
                        }
                    }
                    return not_put_back.and(Err(error));
                }
            };
            read_so_far += chunk.len();
            let read_bytes = payloads.values().map(|p| p.payload.len()).sum();
            self.payload_budget.observe(read_bytes, payloads.len());
            for a in chunk {
                let packet = match (payloads.remove(&a.task_id), jobs.get(&a.job_id)) {
                    (Some(stored), Some(job)) => {
                        let charge = self.payload_budget.charge(stored.payload.len());
                        Self::task_packet(a, job, stored).map(|packet| (packet, charge))
                    }
                    _ => Err(DbErr::RecordNotFound(format!("task {}", a.task_id))),
                };
                let (packet, charge) = match packet {
                    Ok(charged) => charged,
                    Err(error) => {
                        tracing::error!(task.id = %a.task_id, %error, "a claimed task cannot be sent");
                        let reason = format!("it could not be sent: {error}");
                        if not_put_back.is_ok() {
                            not_put_back = self
                                .release(&a.task_id, a.lease as u64, true, &reason)
                                .await;
                        }
                        continue;
                    }
                };
                let reason = match self.place(a, packet, charge) {
                    Placement::Send(packet, charge) => {
                        self.send_task(&a.worker_id, packet, charge);
                        continue;
                    }
                    Placement::Reserved => continue,
                    Placement::NoRoom => {
                        budget_had_room = false;
                        "no room to reserve it"
                    }
                    Placement::WorkerGone => "the worker disconnected",
                };
                if not_put_back.is_ok() {
                    not_put_back = self
                        .release(&a.task_id, a.lease as u64, false, reason)
                        .await;
                }
            }
        }
        not_put_back.map(|()| budget_had_room)
    }

    /// Puts a claimed task in its worker's free slot (to be sent) or, with every slot busy — as for
    /// a reserve place, or when a slot filled since the round was planned — in its reserve.
    fn place(&self, a: &Assignment, packet: TaskPacket, charge: PayloadCharge) -> Placement {
        let now = self.clock.now_ms();
        let mut workers = self.workers();
        let Some(worker) = workers.get_mut(&a.worker_id) else {
            return Placement::WorkerGone;
        };
        // With reserves off, a slot that filled since the round was planned is overfilled by one,
        // as before reserves existed.
        if worker.in_flight.len() < worker.slots as usize || self.config.reserve_per_slot == 0 {
            let (packet, kept) = without_payload(packet);
            let in_flight = InFlight::sent(kept, a.task_id.clone(), a.job_id, now, now);
            worker.in_flight.insert(a.task_id.clone(), in_flight);
            return Placement::Send(packet, charge);
        }
        if !self.payload_budget.may_reserve() {
            return Placement::NoRoom;
        }
        worker.reserve.push_back(Reserved {
            packet,
            charge,
            job_id: a.job_id,
            lease_renewed_at_ms: now,
        });
        Placement::Reserved
    }

    /// Makes sure the claimed tasks' templates are in the cache, which `send_task` reads.
    async fn cache_templates(
        &self,
        claimed: &[Assignment],
        jobs: &HashMap<i64, RoundJob>,
    ) -> Result<(), DbErr> {
        let job_ids: BTreeSet<i64> = claimed.iter().map(|a| a.job_id).collect();
        for job in job_ids.iter().filter_map(|id| jobs.get(id)) {
            self.templates
                .get(&job.template_id, job.template_version)
                .await?;
        }
        Ok(())
    }

    /// Returns claimed tasks that could not be sent to the queue, without counting an attempt.
    async fn put_back(&self, claimed: &[Assignment]) -> Result<(), DbErr> {
        for a in claimed {
            self.release(&a.task_id, a.lease as u64, false, "it could not be sent")
                .await?;
        }
        Ok(())
    }

    /// The payloads of some claimed tasks.
    async fn payloads_of(
        &self,
        claimed: &[Assignment],
    ) -> Result<HashMap<String, StoredPayload>, DbErr> {
        let rows = task::Entity::find()
            .select_only()
            .column(task::Column::Id)
            .column(task::Column::Payload)
            .filter(task::Column::Id.is_in(claimed.iter().map(|a| a.task_id.clone())))
            .into_tuple::<(String, Vec<u8>)>()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, payload)| (id, StoredPayload { payload }))
            .collect())
    }
}

/// Matches the plan to free slots: for each planned job in turn, its first queued task that some
/// free worker has not answered goes to the first such worker (the one expected to finish
/// soonest) — other than the worker its last lease failed on (`failed_last_on`, by task id), when
/// another is free.
///
/// The tasks' payloads together stay within `room`, the payload budget's free bytes, except the
/// round's first task, which goes whatever its size (so a task larger than the whole budget still
/// goes). The count of slots a round offers is already sized to the budget, but from the sizes of
/// the payloads read last: after a job of tiny tasks, a job of large ones would otherwise be read
/// for every free slot at once. Returns the assignments and whether the room cut the round short.
fn assign(
    plan: &[i64],
    queued: &mut BTreeMap<i64, VecDeque<QueuedTask>>,
    free: &mut VecDeque<FreeSlot>,
    (answered, failed_last_on): (&HashMap<String, Vec<String>>, &HashMap<String, String>),
    mut room: usize,
) -> (Vec<Assignment>, bool) {
    let may_take = |task: &QueuedTask, slot: &FreeSlot| {
        answered
            .get(&task.id)
            .is_none_or(|keys| !keys.contains(&slot.key))
    };
    let mut assignments = Vec::new();
    for job_id in plan {
        let Some(tasks) = queued.get_mut(job_id) else {
            continue;
        };
        let Some(position) = tasks
            .iter()
            .position(|t| free.iter().any(|s| may_take(t, s)))
        else {
            continue;
        };
        let Some(task) = tasks.get(position) else {
            continue;
        };
        if !assignments.is_empty() && task.payload_bytes > room {
            return (assignments, true);
        }
        let Some(task) = tasks.remove(position) else {
            continue;
        };
        let failed_on = failed_last_on.get(&task.id);
        let Some(slot) = free
            .iter()
            .position(|s| may_take(&task, s) && failed_on != Some(&s.key))
            .or_else(|| free.iter().position(|s| may_take(&task, s)))
        else {
            continue;
        };
        let Some(slot) = free.remove(slot) else {
            continue;
        };
        room = room.saturating_sub(task.payload_bytes);
        assignments.push(Assignment {
            task_id: task.id,
            job_id: task.job_id,
            lease: task.lease,
            attempts: task.attempts,
            worker_id: slot.worker_id,
            payload_bytes: task.payload_bytes,
        });
    }
    (assignments, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(worker_id: &str, key: &str, expected_s: f64) -> FreeSlot {
        FreeSlot {
            worker_id: worker_id.to_owned(),
            key: key.to_owned(),
            expected_s,
            reserve: false,
        }
    }

    fn queue(job_id: i64, ids: &[&str]) -> VecDeque<QueuedTask> {
        ids.iter()
            .map(|id| QueuedTask {
                id: (*id).to_owned(),
                job_id,
                lease: 3,
                attempts: 0,
                may_have_answers: true,
                payload_bytes: 100,
            })
            .collect()
    }

    #[test]
    fn each_planned_slot_gets_the_next_task_of_its_job_in_order() {
        let mut queued = BTreeMap::from([(1, queue(1, &["a", "b", "c"])), (2, queue(2, &["x"]))]);
        let mut free = VecDeque::from(vec![
            slot("w1", "k1", 9.0),
            slot("w2", "k2", 5.0),
            slot("w3", "k3", 1.0),
        ]);
        let assigned = assign(
            &[1, 2, 1],
            &mut queued,
            &mut free,
            (&HashMap::new(), &HashMap::new()),
            usize::MAX,
        )
        .0;
        let pairs: Vec<(&str, &str)> = assigned
            .iter()
            .map(|a| (a.task_id.as_str(), a.worker_id.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "w1"), ("x", "w2"), ("b", "w3")]);
        assert!(free.is_empty());
        assert_eq!(assigned[0].lease, 3, "the token the round read");
    }

    /// `assign` for job 1's next task, with these answers, no failed leases and room for any payload.
    fn assign_next_of_job_1(
        queued: &mut BTreeMap<i64, VecDeque<QueuedTask>>,
        free: &mut VecDeque<FreeSlot>,
        answered: &HashMap<String, Vec<String>>,
    ) -> Vec<Assignment> {
        assign(&[1], queued, free, (answered, &HashMap::new()), usize::MAX).0
    }

    #[test]
    fn a_worker_never_gets_a_task_it_already_answered() {
        let mut queued = BTreeMap::from([(1, queue(1, &["a", "b"]))]);
        let mut free = VecDeque::from(vec![slot("w1", "k1", 9.0)]);
        let answered = HashMap::from([("a".to_owned(), vec!["k1".to_owned()])]);
        let assigned = assign_next_of_job_1(&mut queued, &mut free, &answered);
        assert_eq!(assigned.len(), 1);
        assert_eq!(assigned[0].task_id, "b", "the answered task is skipped");
        assert_eq!(queued[&1].len(), 1, "and stays queued for another worker");
    }

    #[test]
    fn a_task_every_free_worker_answered_is_left_for_later() {
        let mut queued = BTreeMap::from([(1, queue(1, &["a"]))]);
        let mut free = VecDeque::from(vec![slot("w1", "k1", 1.0)]);
        let answered = HashMap::from([("a".to_owned(), vec!["k1".to_owned()])]);
        let assigned = assign_next_of_job_1(&mut queued, &mut free, &answered);
        assert!(assigned.is_empty());
        assert_eq!(free.len(), 1);
    }

    #[test]
    fn a_task_whose_lease_failed_goes_to_another_worker_when_one_is_free() {
        let failed_last_on = HashMap::from([("a".to_owned(), "k1".to_owned())]);
        let mut queued = BTreeMap::from([(1, queue(1, &["a"]))]);
        // k1 would come first (it is expected to finish soonest), but "a" just failed on it.
        let mut free = VecDeque::from(vec![slot("w1", "k1", 1.0), slot("w2", "k2", 2.0)]);
        let assigned = assign(
            &[1],
            &mut queued,
            &mut free,
            (&HashMap::new(), &failed_last_on),
            usize::MAX,
        )
        .0;
        assert_eq!(assigned[0].worker_id, "w2");

        // With nobody else free, it may go back to the same worker rather than wait.
        let mut queued = BTreeMap::from([(1, queue(1, &["a"]))]);
        let mut free = VecDeque::from(vec![slot("w1", "k1", 1.0)]);
        let assigned = assign(
            &[1],
            &mut queued,
            &mut free,
            (&HashMap::new(), &failed_last_on),
            usize::MAX,
        )
        .0;
        assert_eq!(assigned[0].worker_id, "w1");
    }

    #[test]
    fn a_round_reads_no_more_payload_than_the_budget_has_room_for_except_its_first_task() {
        let plan = [1, 1, 1, 1];
        let slots = || {
            VecDeque::from(vec![
                slot("w1", "k1", 1.0),
                slot("w2", "k2", 1.0),
                slot("w3", "k3", 1.0),
                slot("w4", "k4", 1.0),
            ])
        };
        let none = HashMap::new();
        let no_failures = HashMap::new();
        // Four free slots, 100-byte payloads, room for 250 bytes: two tasks, and the round says
        // the room cut it short (so the next payload written wakes the dispatcher).
        let mut queued = BTreeMap::from([(1, queue(1, &["a", "b", "c", "d"]))]);
        let mut free = slots();
        let (assigned, out_of_room) =
            assign(&plan, &mut queued, &mut free, (&none, &no_failures), 250);
        assert_eq!(assigned.len(), 2);
        assert!(out_of_room);
        assert_eq!(queued[&1].len(), 2, "the rest stay queued");
        assert_eq!(free.len(), 2);
        // A payload larger than all the room still goes when it is the round's first.
        let mut queued = BTreeMap::from([(1, queue(1, &["a", "b"]))]);
        let mut free = slots();
        let (assigned, out_of_room) =
            assign(&plan, &mut queued, &mut free, (&none, &no_failures), 10);
        assert_eq!(assigned.len(), 1);
        assert!(out_of_room);
        // With room for everything, nothing is cut short.
        let mut queued = BTreeMap::from([(1, queue(1, &["a", "b"]))]);
        let mut free = slots();
        let (assigned, out_of_room) =
            assign(&plan, &mut queued, &mut free, (&none, &no_failures), 1_000);
        assert_eq!(assigned.len(), 2);
        assert!(!out_of_room);
    }
}
