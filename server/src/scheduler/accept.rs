//! Accepting a worker's result: check it, record it, and once enough distinct workers agree on its
//! hash, apply it exactly once under the fencing token, merging the job's analysis when its last
//! task lands — all in one transaction, shared with the results that arrived while the previous
//! one was being committed (group commit). Workers caught disagreeing with the agreed result are
//! banned and their unreplicated results redone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use rand::Rng;
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};
use vitalgrid_worker::algorithm::JobMerge;
use vitalgrid_worker::analysis::Analysis;
use vitalgrid_worker::analysis::SegmentResult;
use vitalgrid_worker::protocol::{ErrorCode, ResultPacket, ServerMessage, sha256_hex};
use vitalgrid_worker::template::Template;

use super::replication::{Verdict, decide, replicas_needed};
use super::writer::WriteTurns;
use super::{InFlight, SenderCore};
use crate::db::entities::{job, result, task, task_result, worker_record};
use crate::db::{job_status, task_status};
use crate::events::{self, NewEvent};
use crate::templates::TemplateStore;

/// Most results applied in one transaction.
const MAX_GROUP: usize = 512;

/// Distinct workers asked at most before disagreeing answers fail the task.
const EXTRA_REPLICAS_ON_MISMATCH: usize = 3;

/// What became of an accepted result.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    /// Not under the current lease: recorded nowhere, applied nowhere.
    Stale,
    /// Recorded; the task waits for another worker's answer.
    AwaitingReplica,
    /// The task's result is decided; these workers' answers disagreed with it.
    Decided { dissenting: Vec<String> },
    /// The answers never agreed; the task (and its job) failed.
    Undecidable,
}

impl SenderCore {
    pub(super) async fn accept_result(
        self: &Arc<Self>,
        worker_id: &str,
        packet: ResultPacket,
    ) -> Result<(), DbErr> {
        let task_id = packet.task_id.clone();
        let Some(in_flight) = self.take_in_flight(worker_id, &task_id, packet.lease) else {
            // Late (after reassignment) or duplicate: never applied, but on the worker's record.
            tracing::info!(worker.id = %worker_id, task.id = %task_id, lease = packet.lease, "stale result ignored");
            self.count_on_record(
                &self.record_key(worker_id),
                worker_record::Column::LateResults,
            )
            .await?;
            self.send_to(
                worker_id,
                ServerMessage::Error {
                    task_id: Some(task_id),
                    code: ErrorCode::StaleLease,
                    message: "this task is no longer leased to you".to_owned(),
                },
            );
            return Ok(());
        };
        // The slot is free: its next task goes out before any database work for this result.
        if self.send_next_reserved(worker_id) {
            self.notify();
        }
        if let Some(expected) = &in_flight.known_answer {
            return self.check_known_answer(worker_id, &packet, expected).await;
        }
        let checked = if packet.data.is_intact() {
            serde_json::from_str::<SegmentResult>(&packet.data.payload)
                .map_err(|error| {
                    (
                        ErrorCode::Malformed,
                        format!("result does not parse: {error}"),
                    )
                })
                .and_then(|segment| {
                    if segment.algorithm == in_flight.packet.algorithm {
                        Ok(segment)
                    } else {
                        Err((
                            ErrorCode::Malformed,
                            format!("result is for algorithm {}", segment.algorithm),
                        ))
                    }
                })
        } else {
            Err((
                ErrorCode::Integrity,
                "result payload does not match its Adler-32".to_owned(),
            ))
        };
        let segment = match checked {
            Ok(segment) => segment,
            Err((code, message)) => {
                tracing::warn!(worker.id = %worker_id, task.id = %task_id, %message, "result refused");
                self.send_to(
                    worker_id,
                    ServerMessage::Error {
                        task_id: Some(task_id.clone()),
                        code,
                        message: message.clone(),
                    },
                );
                self.lease_failed(worker_id, &task_id);
                self.release(&task_id, packet.lease, true, &message).await?;
                self.notify();
                return Ok(());
            }
        };

        if let Some(worker) = self.workers().get_mut(worker_id) {
            worker
                .track
                .record_task_time(in_flight.sent.elapsed().as_secs_f64() * 1_000.0);
        }
        // When results arrive faster than group commits take them (a thousand workers on tiny
        // tasks outrun SQLite), this connection waits here for room in the backlog, and its
        // worker's next frames wait in the socket: the results held in memory stay bounded
        // instead of growing with the job. The room is given back once the commit is settled.
        let Ok(backlog_room) = Arc::clone(&self.result_backlog)
            .acquire_many_owned(backlog_charge(
                packet.data.payload.len(),
                backlog_capacity_kib(self.config.result_backlog_bytes),
            ))
            .await
        else {
            return Err(committer_gone());
        };
        let now = self.clock.now_ms();
        let key = self.record_key(worker_id);
        let spot_check_draw: f64 = rand::thread_rng().r#gen();
        let (reply, outcome) = oneshot::channel();
        let pending = PendingAnswer {
            sha256: sha256_hex(packet.data.payload.as_bytes()),
            packet,
            job_id: in_flight.job_id,
            key,
            now_ms: now,
            spot_check_draw,
            reply,
        };
        let answer_queued = self.answers.send(pending).is_ok();
        // The commit is awaited apart from this connection's messages: the worker's next result
        // is read (and takes the next reserved task) while this one is being committed, and then
        // shares its group commit.
        let core = Arc::clone(self);
        let worker_id = worker_id.to_owned();
        let rows = segment.rows as f64;
        tokio::spawn(async move {
            let recorded = if answer_queued {
                outcome.await.unwrap_or_else(|_| Err(committer_gone()))
            } else {
                Err(committer_gone())
            };
            // Boxed, so that the thousands of these tasks waiting for their commit do not each
            // hold room for the settling's database work (3.6 KB apiece inline).
            let settled = Box::pin(core.settle_answer(&worker_id, &in_flight, rows, now, recorded));
            if let Err(error) = settled.await {
                tracing::error!(worker.id = %worker_id, task.id = %task_id, %error, "settling a committed result failed");
            }
            drop(backlog_room);
        });
        Ok(())
    }

    /// What follows a result's commit: the worker's record of speed, bans of workers caught
    /// disagreeing, and a requeue if the commit failed.
    async fn settle_answer(
        &self,
        worker_id: &str,
        in_flight: &InFlight,
        rows: f64,
        now: i64,
        recorded: Result<Outcome, DbErr>,
    ) -> Result<(), DbErr> {
        let (task_id, lease) = (&in_flight.packet.task_id, in_flight.packet.lease);
        let outcome = match recorded {
            Ok(outcome) => outcome,
            Err(error) => {
                // A deadlock or lost connection rolled the answer back; the task must not stay
                // leased to a worker that no longer holds it, so it goes back to the queue.
                tracing::warn!(task.id = %task_id, %error, "recording a result failed; task requeued");
                self.release(task_id, lease, false, "the result could not be stored")
                    .await?;
                self.notify();
                return Ok(());
            }
        };

        if let Some(worker) = self.workers().get_mut(worker_id) {
            worker.track.tasks_done += u64::from(outcome != Outcome::Stale);
            let elapsed_s = (now - in_flight.sent_at_ms).max(1) as f64 / 1000.0;
            let speed = rows / elapsed_s;
            worker.track.rows_per_s = Some(match worker.track.rows_per_s {
                Some(previous) => previous + super::SPEED_SMOOTHING * (speed - previous),
                None => speed,
            });
        }
        match outcome {
            Outcome::Decided { dissenting } => {
                for forger in dissenting {
                    self.ban(&forger).await?;
                }
            }
            Outcome::Undecidable => self.drop_reserved(&[in_flight.job_id]).await?,
            Outcome::Stale | Outcome::AwaitingReplica => {}
        }
        self.notify();
        Ok(())
    }

    /// A probe's answer: matching the validated hash earns credit, anything else is a wrong result.
    async fn check_known_answer(
        &self,
        worker_id: &str,
        packet: &ResultPacket,
        expected: &str,
    ) -> Result<(), DbErr> {
        let key = self.record_key(worker_id);
        if !packet.data.is_intact() {
            // Damage in transit is not a lie; the probe is simply dropped.
            return Ok(());
        }
        let honest = sha256_hex(packet.data.payload.as_bytes()) == expected;
        let column = if honest {
            worker_record::Column::Agreed
        } else {
            worker_record::Column::Disagreed
        };
        self.count_on_record(&key, column).await?;
        if !honest {
            tracing::warn!(worker.key = %key, "known-answer probe failed");
            self.ban(&key).await?;
        }
        self.notify();
        Ok(())
    }

    /// The key a connection's record is kept under: the one it presented, or its connection id.
    pub(super) fn record_key(&self, worker_id: &str) -> String {
        self.workers()
            .get(worker_id)
            .map_or_else(|| worker_id.to_owned(), |w| w.key.clone())
    }

    /// Adds one to a counter (`agreed`, `disagreed`, `late_results`) of the record under `key`.
    async fn count_on_record(
        &self,
        key: &str,
        counter: worker_record::Column,
    ) -> Result<(), DbErr> {
        // In turn with the group commits and claims: a thousand idle workers answer known-answer
        // probes, and on SQLite each of these updates would otherwise wait out a commit in
        // SQLite's busy handler, which sleeps in steps of up to 100 ms, holding one of the pool's
        // few connections all the while.
        let turn = self.write_turns.take().await;
        worker_record::Entity::update_many()
            .col_expr(counter, Expr::col(counter).add(1))
            .filter(worker_record::Column::WorkerKey.eq(key))
            .exec(turn.db)
            .await?;
        Ok(())
    }

    /// A worker whose result disagreed with the agreed one: no credibility, no more work, and every
    /// result of its that stood alone (adaptive replication) is redone.
    async fn ban(&self, key: &str) -> Result<(), DbErr> {
        let now = self.clock.now_ms();
        tracing::warn!(worker.key = %key, "worker banned for a wrong result");
        let transaction = self.db.begin().await?;
        worker_record::Entity::update_many()
            .col_expr(worker_record::Column::Banned, Expr::value(true))
            .filter(worker_record::Column::WorkerKey.eq(key))
            .exec(&transaction)
            .await?;
        let answers = task_result::Entity::find()
            .filter(task_result::Column::WorkerKey.eq(key))
            .all(&transaction)
            .await?;
        for answer in answers {
            let Some(owner_task) = task::Entity::find_by_id(&answer.task_id)
                .one(&transaction)
                .await?
            else {
                continue;
            };
            task_result::Entity::delete_by_id(answer.id)
                .exec(&transaction)
                .await?;
            let stood_alone = owner_task.status == task_status::DONE
                && owner_task.replicas_needed <= 1
                && owner_task.result_sha256.as_deref() == Some(answer.result_sha256.as_str());
            if stood_alone {
                redo_task(&transaction, owner_task, self.config.replicas, now, key).await?;
            }
        }
        transaction.commit().await?;

        // Its connections lose their tasks and are closed (dropping the outbox ends the session).
        let banned: Vec<(String, Vec<(String, u64)>)> = {
            let mut workers = self.workers();
            let ids: Vec<String> = workers
                .iter()
                .filter(|(_, w)| w.key == key)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| {
                    let mut worker = workers.remove(&id)?;
                    let reserved = self.take_reserve(&mut worker, |_| true);
                    let refusal = ServerMessage::Error {
                        task_id: None,
                        code: ErrorCode::Protocol,
                        message: "this worker returned a wrong result and may not take more work"
                            .to_owned(),
                    };
                    let _ = worker.outbox.send(refusal.into());
                    Some((
                        id,
                        worker
                            .in_flight
                            .into_iter()
                            .map(|(t, f)| (t, f.packet.lease))
                            .chain(reserved)
                            .collect(),
                    ))
                })
                .collect()
        };
        for (_, held) in banned {
            for (task_id, lease) in held {
                self.release(&task_id, lease, false, "its worker was banned")
                    .await?;
            }
        }
        Ok(())
    }
}

/// A checked result on its way to the next group commit; the outcome goes back on `reply` once
/// its transaction has committed (or failed).
#[derive(Debug)]
pub(super) struct PendingAnswer {
    packet: ResultPacket,
    /// SHA-256 of the result payload, computed here: what replicas are compared by.
    sha256: String,
    job_id: i64,
    /// The worker's key, under which agreement and credibility are kept.
    key: String,
    now_ms: i64,
    spot_check_draw: f64,
    reply: oneshot::Sender<Result<Outcome, DbErr>>,
}

/// What a result costs while it waits for its commit besides its payload: the task awaiting the
/// commit and the answer on its way to the committer (≈ 2.4 KB together, heaptrack).
const RESULT_OVERHEAD_BYTES: usize = 4 * 1024;

/// The result backlog's room in KiB, for `result_backlog_bytes`: at least 1.
pub(super) fn backlog_capacity_kib(bytes: usize) -> usize {
    (bytes / 1024).clamp(1, u32::MAX as usize)
}

/// The KiB of backlog room a result with a payload of `payload_bytes` takes: the payload and the
/// allowance, and at most the whole room — a result larger than the backlog still goes through,
/// alone.
pub(super) fn backlog_charge(payload_bytes: usize, capacity_kib: usize) -> u32 {
    let kib = payload_bytes
        .saturating_add(RESULT_OVERHEAD_BYTES)
        .div_ceil(1024)
        .min(capacity_kib);
    u32::try_from(kib).unwrap_or(u32::MAX)
}

fn committer_gone() -> DbErr {
    DbErr::Custom("the result committer has stopped".to_owned())
}

/// What the group committer works with.
#[derive(Debug)]
pub(super) struct Committer {
    pub(super) db: DatabaseConnection,
    pub(super) replicas: u32,
    pub(super) templates: Arc<TemplateStore>,
    pub(super) write_turns: Arc<WriteTurns>,
    /// The longest statement the database accepts (MySQL's `max_allowed_packet`), read when the
    /// committer starts; `None` on SQLite, whose limit no analysis comes near.
    pub(super) largest_statement: Option<usize>,
}

/// Applies results in groups: the results that arrive while one transaction commits go together
/// into the next, so a hundred results share one log flush (fsync) instead of paying one each.
/// Each result goes through exactly the checks it would alone (`record_answer`). If a group's
/// transaction fails, nothing of it was applied, and its results are retried one transaction each,
/// so one that cannot be stored does not cost the others theirs.
pub(super) async fn commit_answers(
    mut committer: Committer,
    mut queue: mpsc::UnboundedReceiver<PendingAnswer>,
) {
    committer.largest_statement = largest_statement(&committer.db).await;
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        // The same order in every process: on MySQL two servers' groups then take their row locks
        // in the same order, and wait for each other instead of deadlocking.
        group.sort_by(|a, b| (a.job_id, &a.packet.task_id).cmp(&(b.job_id, &b.packet.task_id)));
        match committer.record(&group).await {
            Ok(outcomes) => {
                for (pending, outcome) in group.drain(..).zip(outcomes) {
                    let _ = pending.reply.send(Ok(outcome));
                }
            }
            Err(error) if group.len() == 1 => {
                if let Some(pending) = group.pop() {
                    let _ = pending.reply.send(Err(error));
                }
            }
            Err(error) => {
                tracing::info!(%error, results = group.len(), "a group of results rolled back; recording them one by one");
                for pending in group.drain(..) {
                    let outcome = committer
                        .record(std::slice::from_ref(&pending))
                        .await
                        .and_then(|mut outcomes| outcomes.pop().ok_or_else(committer_gone));
                    let _ = pending.reply.send(outcome);
                }
            }
        }
    }
}

impl Committer {
    /// Records the answers of a group in one transaction; one outcome per answer, in order.
    async fn record(&self, group: &[PendingAnswer]) -> Result<Vec<Outcome>, DbErr> {
        let turn = self.write_turns.take().await;
        let transaction = turn.db.begin().await?;
        let mut effects = GroupEffects::default();
        let outcomes = if group.len() > 1 {
            record_together(&transaction, group, self.replicas, &mut effects).await?
        } else {
            let mut outcomes = Vec::with_capacity(group.len());
            for pending in group {
                outcomes
                    .push(record_answer(&transaction, pending, self.replicas, &mut effects).await?);
            }
            outcomes
        };
        let now_ms = group.iter().map(|p| p.now_ms).max().unwrap_or_default();
        effects
            .apply(
                &transaction,
                now_ms,
                &self.templates,
                self.largest_statement,
            )
            .await?;
        transaction.commit().await?;
        Ok(outcomes)
    }
}

/// The writes a group's answers share, made once per group after every answer is recorded: the
/// events in one multi-row insert, the credibility counters and the jobs' progress one statement
/// per distinct increment, then the merge of each job whose last task landed.
#[derive(Debug, Default)]
struct GroupEffects {
    events: Vec<NewEvent>,
    agreed: BTreeMap<String, i64>,
    disagreed: BTreeMap<String, i64>,
    /// Tasks decided in this group, by job.
    decided: BTreeMap<i64, i64>,
}

impl GroupEffects {
    /// Agreements and disagreements of `key` recorded earlier in this group but not yet written,
    /// so that a credibility read within the group sees them as it would between transactions.
    fn pending_record(&self, key: &str) -> (i64, i64) {
        (
            self.agreed.get(key).copied().unwrap_or(0),
            self.disagreed.get(key).copied().unwrap_or(0),
        )
    }

    async fn apply(
        self,
        db: &impl ConnectionTrait,
        now_ms: i64,
        templates: &TemplateStore,
        largest_statement: Option<usize>,
    ) -> Result<(), DbErr> {
        for (column, counts) in [
            (worker_record::Column::Agreed, self.agreed),
            (worker_record::Column::Disagreed, self.disagreed),
        ] {
            for (n, keys) in by_increment(counts) {
                worker_record::Entity::update_many()
                    .col_expr(column, Expr::col(column).add(n))
                    .filter(worker_record::Column::WorkerKey.is_in(keys))
                    .exec(db)
                    .await?;
            }
        }
        events::record_all(db, self.events).await?;
        if self.decided.is_empty() {
            return Ok(());
        }
        let job_ids: Vec<i64> = self.decided.keys().copied().collect();
        // One statement per job, in the order of their ids (a group touches few jobs): two servers
        // updating the same jobs then lock them in the same order and never deadlock.
        for (job_id, n) in self.decided {
            job::Entity::update_many()
                .col_expr(
                    job::Column::TasksDone,
                    Expr::col(job::Column::TasksDone).add(n),
                )
                .filter(job::Column::Id.eq(job_id))
                .exec(db)
                .await?;
        }
        let jobs = job::Entity::find()
            .filter(job::Column::Id.is_in(job_ids))
            .all(db)
            .await?;
        for owner in jobs {
            if owner.tasks_done >= owner.tasks_total && owner.status == job_status::RUNNING {
                finish_job(db, owner, now_ms, templates, largest_statement).await?;
            }
        }
        Ok(())
    }
}

/// Groups keys by the amount to add to each, so one UPDATE serves all keys with the same amount.
fn by_increment<K: Ord>(counts: BTreeMap<K, i64>) -> BTreeMap<i64, Vec<K>> {
    let mut groups: BTreeMap<i64, Vec<K>> = BTreeMap::new();
    for (key, n) in counts {
        groups.entry(n).or_default().push(key);
    }
    groups
}

/// Records one worker's answer to a task under the current lease, and decides the task when enough
/// distinct workers agree. Writes shared with the rest of the group go to `effects`.
async fn record_answer(
    db: &impl ConnectionTrait,
    pending: &PendingAnswer,
    configured_replicas: u32,
    effects: &mut GroupEffects,
) -> Result<Outcome, DbErr> {
    let (packet, key, now_ms) = (&pending.packet, pending.key.as_str(), pending.now_ms);
    // The fence: only the current lease's answer counts, and only once.
    let fenced = super::back_in_queue()
        .filter(task::Column::Id.eq(&packet.task_id))
        .filter(task::Column::Lease.eq(packet.lease as i64))
        .filter(task::Column::Status.eq(task_status::LEASED))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if !fenced {
        return Ok(Outcome::Stale);
    }
    task_result::ActiveModel {
        task_id: Set(packet.task_id.clone()),
        lease: Set(packet.lease as i64),
        worker_key: Set(key.to_owned()),
        result_sha256: Set(pending.sha256.clone()),
        result: Set(packet.data.payload.as_bytes().to_vec()),
        received_at_ms: Set(now_ms),
        ..Default::default()
    }
    .insert(db)
    .await?;
    // Only what is decided on: the payload and an earlier result can run to megabytes.
    let Some((job_id, seq, stored_replicas_needed)) = task::Entity::find_by_id(&packet.task_id)
        .select_only()
        .column(task::Column::JobId)
        .column(task::Column::Seq)
        .column(task::Column::ReplicasNeeded)
        .into_tuple::<(i64, i32, i32)>()
        .one(db)
        .await?
    else {
        return Ok(Outcome::Stale);
    };
    let stored = StoredTask {
        job_id,
        seq,
        replicas_needed: stored_replicas_needed,
    };
    decide_answer(db, pending, stored, configured_replicas, effects, None).await
}

/// What deciding an answer reads of its task.
#[derive(Debug, Clone, Copy)]
struct StoredTask {
    job_id: i64,
    seq: i32,
    replicas_needed: i32,
}

/// A decided task whose result is the answer's own bytes, written with others in one UPDATE.
#[derive(Debug)]
struct Decided<'a> {
    task_id: &'a str,
    /// The lease it was answered under.
    lease: i64,
    result: &'a str,
    sha256: &'a str,
    replicas_needed: i32,
}

/// Decides a recorded answer's task: how many agreeing workers it needs (set by its first
/// answer), whether they agree, and what follows. `batch` collects the results to write when the
/// caller writes many at once; without it the result is written here.
async fn decide_answer<'a>(
    db: &impl ConnectionTrait,
    pending: &'a PendingAnswer,
    stored: StoredTask,
    configured_replicas: u32,
    effects: &mut GroupEffects,
    batch: Option<&mut Vec<Decided<'a>>>,
) -> Result<Outcome, DbErr> {
    let (packet, key, now_ms) = (&pending.packet, pending.key.as_str(), pending.now_ms);
    let StoredTask {
        job_id,
        seq,
        replicas_needed: stored_replicas_needed,
    } = stored;
    // `replicas_needed` is 0 until a task's first answer is recorded, which sets it (a redo sets
    // it too): so while it is 0, this answer is the task's only one.
    let first_answer = stored_replicas_needed == 0;
    let needed = if !first_answer {
        stored_replicas_needed
    } else if configured_replicas <= 1 {
        // A trusted pool: one answer stands, whatever the worker's record says.
        1
    } else {
        let record = worker_record::Entity::find_by_id(key).one(db).await?;
        let (agreed, disagreed, banned) =
            record.map_or((0, 0, false), |r| (r.agreed, r.disagreed, r.banned));
        let (agreed_here, disagreed_here) = effects.pending_record(key);
        replicas_needed(
            configured_replicas,
            agreed + agreed_here,
            disagreed + disagreed_here,
            banned,
            pending.spot_check_draw,
        ) as i32
    }
    .max(1);
    let answers: Vec<(String, String)> = if first_answer {
        vec![(key.to_owned(), pending.sha256.clone())]
    } else {
        task_result::Entity::find()
            .select_only()
            .column(task_result::Column::WorkerKey)
            .column(task_result::Column::ResultSha256)
            .filter(task_result::Column::TaskId.eq(&packet.task_id))
            .order_by_asc(task_result::Column::Id)
            .into_tuple()
            .all(db)
            .await?
    };
    let wanted = needed as usize;
    match decide(&answers, wanted, wanted + EXTRA_REPLICAS_ON_MISMATCH) {
        Verdict::NeedMore => {
            if first_answer {
                task::Entity::update_many()
                    .col_expr(task::Column::ReplicasNeeded, Expr::value(needed))
                    .filter(task::Column::Id.eq(&packet.task_id))
                    .exec(db)
                    .await?;
            }
            let detail = format!(
                "{} of {wanted} agreeing answers",
                answers.len().min(wanted - 1).max(1)
            );
            effects.events.push(NewEvent {
                job_id,
                task_id: Some(packet.task_id.clone()),
                worker: Some(key.to_owned()),
                kind: "awaiting_replica",
                detail,
                at_ms: now_ms,
            });
            Ok(Outcome::AwaitingReplica)
        }
        Verdict::Undecidable => {
            task::Entity::update_many()
                .col_expr(task::Column::Status, Expr::value(task_status::FAILED))
                .col_expr(task::Column::ReplicasNeeded, Expr::value(needed))
                .filter(task::Column::Id.eq(&packet.task_id))
                .exec(db)
                .await?;
            let message = format!(
                "part {} of the analysis got {} different answers from volunteers",
                seq + 1,
                answers.len()
            );
            fail_job(db, job_id, &message, now_ms).await?;
            effects.events.push(NewEvent {
                job_id,
                task_id: Some(packet.task_id.clone()),
                worker: None,
                kind: "failed",
                detail: message,
                at_ms: now_ms,
            });
            Ok(Outcome::Undecidable)
        }
        Verdict::Agreed {
            sha256,
            agreeing,
            dissenting,
        } => {
            // Equal hashes are equal results: this answer's bytes serve unless another one won.
            let own = sha256 == pending.sha256;
            let winning = if let (true, Some(batch)) = (own, batch) {
                batch.push(Decided {
                    task_id: &packet.task_id,
                    lease: packet.lease as i64,
                    result: &packet.data.payload,
                    sha256: &pending.sha256,
                    replicas_needed: needed,
                });
                None
            } else if own {
                Some(packet.data.payload.as_bytes().to_vec())
            } else {
                Some(
                    task_result::Entity::find()
                        .select_only()
                        .column(task_result::Column::Result)
                        .filter(task_result::Column::TaskId.eq(&packet.task_id))
                        .filter(task_result::Column::ResultSha256.eq(&sha256))
                        .into_tuple::<Vec<u8>>()
                        .one(db)
                        .await?
                        .ok_or_else(|| DbErr::Custom("the agreed result vanished".to_owned()))?,
                )
            };
            if let Some(winning) = winning {
                task::Entity::update_many()
                    .col_expr(task::Column::Status, Expr::value(task_status::DONE))
                    .col_expr(task::Column::Result, Expr::value(winning))
                    .col_expr(task::Column::ResultSha256, Expr::value(sha256))
                    .col_expr(task::Column::ReplicasNeeded, Expr::value(needed))
                    .filter(task::Column::Id.eq(&packet.task_id))
                    .exec(db)
                    .await?;
            }
            // Credibility grows only with results another worker confirmed: an answer that stood
            // alone (a trusted pool, a credible worker's unchecked result) was compared with
            // nothing, and counting it would let a worker's trust feed on itself.
            if agreeing.len() > 1 {
                for worker in &agreeing {
                    *effects.agreed.entry(worker.clone()).or_default() += 1;
                }
            }
            for worker in &dissenting {
                *effects.disagreed.entry(worker.clone()).or_default() += 1;
            }
            effects.events.push(NewEvent {
                job_id,
                task_id: Some(packet.task_id.clone()),
                worker: Some(key.to_owned()),
                kind: "result_accepted",
                detail: format!(
                    "agreed by {} worker(s); {} disagreed",
                    agreeing.len(),
                    dissenting.len()
                ),
                at_ms: now_ms,
            });
            *effects.decided.entry(job_id).or_default() += 1;
            Ok(Outcome::Decided { dissenting })
        }
    }
}

/// Bytes of results written by one statement: well under MySQL's default `max_allowed_packet`
/// (16 MiB) whatever the mix of small and large results.
const RESULT_BYTES_PER_STATEMENT: usize = 4 * 1024 * 1024;
/// Answers written by one statement, whatever their size. The UPDATEs pick each task's values with
/// `CASE id WHEN … THEN … END`, evaluated row by row, arm by arm, so a statement's cost grows with
/// the square of its answers: on SQLite 50 per statement recorded a group faster than 25 or 200
/// (docs/benchmarks.md, tenth session).
const ANSWERS_PER_STATEMENT: usize = 50;

/// Records a group of answers in a few statements for all of them rather than several each: the
/// answers in one multi-row INSERT, their tasks read in one SELECT, the fences in one conditional
/// UPDATE, and the results that stand written in one UPDATE. Each answer is decided exactly as
/// `record_answer` decides it. In a trusted pool (one answer per task) a task's first answer
/// decides it, so its fence is folded into the UPDATE that writes its result. When an answer of
/// the group is not under its task's current lease (as read, or as a guarded UPDATE finds: it
/// changes fewer rows than it lists and cannot tell which), the group fails with nothing applied
/// and the committer records its answers one by one, each under its own fence.
async fn record_together(
    db: &impl ConnectionTrait,
    group: &[PendingAnswer],
    configured_replicas: u32,
    effects: &mut GroupEffects,
) -> Result<Vec<Outcome>, DbErr> {
    let ids: Vec<String> = group.iter().map(|p| p.packet.task_id.clone()).collect();
    if ids.iter().collect::<HashSet<_>>().len() != ids.len() {
        return Err(not_all_current());
    }
    // A write first: SQLite then takes the write lock at the transaction's first statement, where
    // its busy handler waits out another writer. Begun with a read, the transaction would have to
    // upgrade later, which SQLite refuses at once (SQLITE_BUSY) whenever another connection wrote
    // in between. Answers not under their current lease are rolled back with the group.
    for chunk in by_size(group, |p| p.packet.data.payload.len()) {
        let answers = chunk.iter().map(|p| task_result::ActiveModel {
            task_id: Set(p.packet.task_id.clone()),
            lease: Set(p.packet.lease as i64),
            worker_key: Set(p.key.clone()),
            result_sha256: Set(p.sha256.clone()),
            result: Set(p.packet.data.payload.as_bytes().to_vec()),
            received_at_ms: Set(p.now_ms),
            ..Default::default()
        });
        task_result::Entity::insert_many(answers).exec(db).await?;
    }
    let stored = stored_tasks(db, &ids).await?;
    // Each answer's task, in the group's order.
    let mut tasks = Vec::with_capacity(group.len());
    let mut fenced_later = HashSet::new();
    for pending in group {
        let task = stored
            .get(&pending.packet.task_id)
            .ok_or_else(|| DbErr::RecordNotFound(format!("task {}", pending.packet.task_id)))?;
        if task.status != task_status::LEASED || task.lease != pending.packet.lease as i64 {
            return Err(not_all_current());
        }
        if task.stored.replicas_needed == 0 && configured_replicas <= 1 {
            fenced_later.insert(pending.packet.task_id.as_str());
        }
        tasks.push(task.stored);
    }
    let fenced_now: Vec<&PendingAnswer> = group
        .iter()
        .filter(|p| !fenced_later.contains(p.packet.task_id.as_str()))
        .collect();
    for chunk in by_size(&fenced_now, |p| p.packet.data.payload.len()) {
        let fenced = super::back_in_queue()
            .filter(super::listed_tasks_in_status(
                chunk.iter().map(|p| p.packet.task_id.clone()),
                task_status::LEASED,
            ))
            .filter(super::under_leases(
                chunk
                    .iter()
                    .map(|p| (p.packet.task_id.as_str(), p.packet.lease as i64)),
            ))
            .exec(db)
            .await?
            .rows_affected;
        if fenced as usize != chunk.len() {
            return Err(not_all_current());
        }
    }
    let mut decided = Vec::with_capacity(group.len());
    let mut outcomes = Vec::with_capacity(group.len());
    for (pending, task) in group.iter().zip(tasks) {
        outcomes.push(
            decide_answer(
                db,
                pending,
                task,
                configured_replicas,
                effects,
                Some(&mut decided),
            )
            .await?,
        );
    }
    let (unfenced, fenced): (Vec<Decided>, Vec<Decided>) = decided
        .into_iter()
        .partition(|d| fenced_later.contains(d.task_id));
    if unfenced.len() != fenced_later.len() {
        // An answer left unfenced must be written below, or its task would stay leased.
        return Err(DbErr::Custom(
            "an answer that decides its task alone was not decided".to_owned(),
        ));
    }
    for chunk in by_size(&fenced, |d| d.result.len()) {
        write_results(chunk)
            .filter(task::Column::Id.is_in(chunk.iter().map(|d| d.task_id.to_owned())))
            .exec(db)
            .await?;
    }
    for chunk in by_size(&unfenced, |d| d.result.len()) {
        // The fence and the result in one statement, under the same conditions as the fence.
        let written = super::without_lease(write_results(chunk))
            .filter(super::listed_tasks_in_status(
                chunk.iter().map(|d| d.task_id.to_owned()),
                task_status::LEASED,
            ))
            .filter(super::under_leases(
                chunk.iter().map(|d| (d.task_id, d.lease)),
            ))
            .exec(db)
            .await?
            .rows_affected;
        if written as usize != chunk.len() {
            return Err(not_all_current());
        }
    }
    Ok(outcomes)
}

/// What a group reads of its answers' tasks: what deciding needs, and the lease they are under.
#[derive(Debug)]
struct TaskUnderLease {
    stored: StoredTask,
    status: String,
    lease: i64,
}

/// The listed tasks as a group's decisions and fences need them, by id.
async fn stored_tasks(
    db: &impl ConnectionTrait,
    ids: &[String],
) -> Result<HashMap<String, TaskUnderLease>, DbErr> {
    let mut stored = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ANSWERS_PER_STATEMENT) {
        let rows = task::Entity::find()
            .select_only()
            .column(task::Column::Id)
            .column(task::Column::JobId)
            .column(task::Column::Seq)
            .column(task::Column::ReplicasNeeded)
            .column(task::Column::Status)
            .column(task::Column::Lease)
            .filter(task::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple::<(String, i64, i32, i32, String, i64)>()
            .all(db)
            .await?;
        for (id, job_id, seq, replicas_needed, status, lease) in rows {
            let stored_task = StoredTask {
                job_id,
                seq,
                replicas_needed,
            };
            stored.insert(
                id,
                TaskUnderLease {
                    stored: stored_task,
                    status,
                    lease,
                },
            );
        }
    }
    Ok(stored)
}

/// The UPDATE that marks decided tasks done with their own answers' bytes (filters are the
/// caller's).
fn write_results(decided: &[Decided]) -> sea_orm::UpdateMany<task::Entity> {
    let (mut result, mut sha256, mut replicas) = (
        CaseStatement::new(),
        CaseStatement::new(),
        CaseStatement::new(),
    );
    for d in decided {
        let this = || task::Column::Id.eq(d.task_id);
        result = result.case(this(), Expr::value(d.result.as_bytes().to_vec()));
        sha256 = sha256.case(this(), Expr::value(d.sha256));
        replicas = replicas.case(this(), Expr::value(d.replicas_needed));
    }
    task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value(task_status::DONE))
        .col_expr(task::Column::Result, result.into())
        .col_expr(task::Column::ResultSha256, sha256.into())
        .col_expr(task::Column::ReplicasNeeded, replicas.into())
}

fn not_all_current() -> DbErr {
    DbErr::Custom("an answer of the group is not under its current lease".to_owned())
}

/// Consecutive runs of `items` of at most `ANSWERS_PER_STATEMENT` items and, unless one item alone
/// is larger, `RESULT_BYTES_PER_STATEMENT` bytes.
fn by_size<T>(items: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    super::runs_within(
        items,
        ANSWERS_PER_STATEMENT,
        RESULT_BYTES_PER_STATEMENT,
        bytes,
    )
}

/// Puts a task whose accepted result is no longer trusted back in the queue, with full replication,
/// reopening its job if it had finished.
async fn redo_task(
    db: &impl ConnectionTrait,
    redo: task::Model,
    replicas: u32,
    now_ms: i64,
    key: &str,
) -> Result<(), DbErr> {
    task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value(task_status::QUEUED))
        .col_expr(task::Column::Result, Expr::value(Option::<Vec<u8>>::None))
        .col_expr(
            task::Column::ResultSha256,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            task::Column::ReplicasNeeded,
            Expr::value(replicas.max(1) as i32),
        )
        .filter(task::Column::Id.eq(&redo.id))
        .exec(db)
        .await?;
    job::Entity::update_many()
        .col_expr(
            job::Column::TasksDone,
            Expr::col(job::Column::TasksDone).sub(1),
        )
        .col_expr(job::Column::Status, Expr::value(job_status::RUNNING))
        .col_expr(job::Column::FinishedAtMs, Expr::value(Option::<i64>::None))
        .filter(job::Column::Id.eq(redo.job_id))
        .filter(job::Column::Status.ne(job_status::FAILED))
        .exec(db)
        .await?;
    result::Entity::delete_by_id(redo.job_id).exec(db).await?;
    events::record(
        db,
        redo.job_id,
        Some(&redo.id),
        Some(key),
        "redo",
        "its only result came from a banned worker",
        now_ms,
    )
    .await
}

async fn fail_job(
    db: &impl ConnectionTrait,
    job_id: i64,
    message: &str,
    now_ms: i64,
) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(job_status::FAILED))
        .col_expr(job::Column::Error, Expr::value(message.to_owned()))
        .col_expr(job::Column::FinishedAtMs, Expr::value(now_ms))
        .filter(job::Column::Id.eq(job_id))
        .filter(job::Column::Status.is_in([job_status::QUEUED, job_status::RUNNING]))
        .exec(db)
        .await?;
    Ok(())
}

/// The longest statement the database accepts, where it has a limit an analysis can reach.
async fn largest_statement(db: &DatabaseConnection) -> Option<usize> {
    if db.get_database_backend() != DbBackend::MySql {
        return None;
    }
    let limit = sea_orm::Statement::from_string(DbBackend::MySql, "SELECT @@max_allowed_packet");
    match db.query_one(limit).await {
        Ok(Some(row)) => row.try_get_by_index::<u64>(0).ok().map(|n| n as usize),
        Ok(None) | Err(_) => {
            tracing::warn!(
                "could not read max_allowed_packet; analyses are not checked against it"
            );
            None
        }
    }
}

/// Room in a statement for everything but the analysis itself (the INSERT, its other columns).
const STATEMENT_OVERHEAD_BYTES: usize = 64 * 1024;

/// The analysis if the database can store it in one statement. Without this check an analysis
/// over the limit would roll back the commit of the job's last result again and again (the task is
/// requeued after each failed commit), and the job would never end; instead it fails with a
/// reason an administrator can act on.
fn fits_one_statement(json: String, largest_statement: Option<usize>) -> Result<String, String> {
    match largest_statement {
        Some(limit) if json.len() + STATEMENT_OVERHEAD_BYTES > limit => Err(format!(
            "the analysis is {:.1} MB, more than the database accepts in one statement \
             ({:.1} MB, MySQL's max_allowed_packet); an administrator can raise that limit and \
             submit the file again",
            json.len() as f64 / 1e6,
            limit as f64 / 1e6,
        )),
        _ => Ok(json),
    }
}

/// Stored results read per query while a finished job is merged: the merge holds one page of them
/// and the running analysis, however many parts the job has.
const RESULTS_PER_READ: u64 = 64;

/// Folds a finished job's stored results, in part order, into its analysis; `Err` with the reason
/// the clinician reads when a part's result is missing or unreadable or the parts do not merge.
async fn merge_stored_results(
    db: &impl ConnectionTrait,
    finished: &job::Model,
    template: &Template,
) -> Result<Result<Analysis, String>, DbErr> {
    let mut merged = match JobMerge::new(template, finished.trend_bucket_s) {
        Ok(merged) => merged,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let mut next_seq = 0;
    loop {
        // Only what the merge reads: a job's payloads (the patient's data) can run to many
        // megabytes. Every result counted in `tasks_done` is committed by now: each was counted by
        // an UPDATE of the job's row in its own transaction, and this transaction's UPDATE of that
        // row waited for them. At READ COMMITTED (`app::connect_mysql`) a plain SELECT reads them.
        let page: Vec<(i32, Option<Vec<u8>>)> = task::Entity::find()
            .select_only()
            .column(task::Column::Seq)
            .column(task::Column::Result)
            .filter(task::Column::Status.eq(task_status::DONE))
            .filter(task::Column::JobId.eq(finished.id))
            .filter(task::Column::Seq.gte(next_seq))
            .order_by_asc(task::Column::Seq)
            .limit(RESULTS_PER_READ)
            .into_tuple()
            .all(db)
            .await?;
        if page.is_empty() {
            break;
        }
        for (seq, result) in page {
            if let Err(reason) = fold_stored_result(&mut merged, next_seq, seq, result) {
                return Ok(Err(reason));
            }
            next_seq = seq + 1;
        }
    }
    if next_seq < finished.tasks_total {
        return Ok(Err(no_result(next_seq)));
    }
    Ok(merged.finish().map_err(|error| error.to_string()))
}

/// Folds the stored result of part `seq`, expected to be part `expected`, into the job's merge.
fn fold_stored_result(
    merged: &mut JobMerge,
    expected: i32,
    seq: i32,
    result: Option<Vec<u8>>,
) -> Result<(), String> {
    // A part absent from the sequence, or present without a result, says the same to the clinician.
    let bytes = result
        .filter(|_| seq == expected)
        .ok_or_else(|| no_result(expected))?;
    let segment: SegmentResult = serde_json::from_slice(&bytes)
        .map_err(|e| format!("part {} result unreadable: {e}", seq + 1))?;
    drop(bytes);
    merged.add(&segment).map_err(|error| error.to_string())
}

/// Why a finished job cannot be merged when part `seq` (counted from 0) has no stored result.
fn no_result(seq: i32) -> String {
    format!("part {} has no result", seq + 1)
}

/// Merges every segment of a finished job, in order, into its analysis.
async fn finish_job(
    db: &impl ConnectionTrait,
    finished: job::Model,
    now_ms: i64,
    templates: &TemplateStore,
    largest_statement: Option<usize>,
) -> Result<(), DbErr> {
    let template = templates
        .get(&finished.template_id, finished.template_version as u32)
        .await?;
    let analysis = match template {
        Some(template) => merge_stored_results(db, &finished, &template)
            .await?
            .and_then(|analysis| serde_json::to_string(&analysis).map_err(|e| e.to_string()))
            .and_then(|json| fits_one_statement(json, largest_statement)),
        None => Err(format!(
            "template {} v{} is unknown",
            finished.template_id, finished.template_version
        )),
    };
    let mut update: job::ActiveModel = finished.clone().into();
    update.finished_at_ms = Set(Some(now_ms));
    match analysis {
        Ok(json) => {
            result::ActiveModel {
                job_id: Set(finished.id),
                analysis: Set(json),
                created_at_ms: Set(now_ms),
            }
            .insert(db)
            .await?;
            update.status = Set(job_status::DONE.to_owned());
            events::record(
                db,
                finished.id,
                None,
                None,
                "done",
                format!("{} parts merged", finished.tasks_total),
                now_ms,
            )
            .await?;
            tracing::info!(
                job.id = finished.id,
                tasks = finished.tasks_total,
                "job done"
            );
        }
        Err(message) => {
            tracing::error!(job.id = finished.id, %message, "merging the job's results failed");
            update.status = Set(job_status::FAILED.to_owned());
            update.error = Set(Some(format!(
                "the results could not be combined: {message}"
            )));
            events::record(db, finished.id, None, None, "failed", message, now_ms).await?;
        }
    }
    update.update(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_takes_its_payload_and_an_allowance_from_the_backlog_and_never_more_than_all() {
        let capacity = backlog_capacity_kib(16 * 1024 * 1024);
        assert_eq!(capacity, 16 * 1024);
        // A no-op result: the allowance of 4 KiB and one KiB started.
        assert_eq!(backlog_charge(300, capacity), 5);
        assert_eq!(backlog_charge(700 * 1024, capacity), 704);
        // Larger than the whole backlog: it takes all of it, so it still goes through, alone.
        assert_eq!(backlog_charge(64 * 1024 * 1024, capacity), 16 * 1024);
        assert_eq!(backlog_capacity_kib(1), 1);
        assert_eq!(backlog_charge(300, backlog_capacity_kib(1)), 1);
    }

    #[test]
    fn an_analysis_over_the_statement_limit_fails_with_the_sizes_in_its_reason() {
        let json = "x".repeat(2_000_000);
        let refused = fits_one_statement(json.clone(), Some(1_048_576))
            .expect_err("2 MB does not fit in 1 MiB");
        assert!(refused.contains("2.0 MB"), "{refused}");
        assert!(refused.contains("1.0 MB"), "{refused}");
        assert!(refused.contains("max_allowed_packet"), "{refused}");
        assert_eq!(
            fits_one_statement(json.clone(), Some(16 << 20)),
            Ok(json.clone())
        );
        assert_eq!(fits_one_statement(json.clone(), None), Ok(json));
    }

    #[test]
    fn the_statement_limit_leaves_room_for_the_rest_of_the_insert() {
        let limit = 1_000_000;
        let just_too_big = "x".repeat(limit - STATEMENT_OVERHEAD_BYTES + 1);
        assert!(fits_one_statement(just_too_big, Some(limit)).is_err());
        let just_fits = "x".repeat(limit - STATEMENT_OVERHEAD_BYTES);
        assert!(fits_one_statement(just_fits, Some(limit)).is_ok());
    }

    #[test]
    fn statements_are_cut_by_count_and_by_bytes_but_never_split_an_item() {
        let sizes = vec![1usize; ANSWERS_PER_STATEMENT + 1];
        let runs: Vec<usize> = by_size(&sizes, |n| *n).iter().map(|r| r.len()).collect();
        assert_eq!(runs, [ANSWERS_PER_STATEMENT, 1]);

        let big = RESULT_BYTES_PER_STATEMENT;
        let sizes = [big / 2, big / 2, 1, big * 2, 3];
        let runs: Vec<Vec<usize>> = by_size(&sizes, |n| *n).iter().map(|r| r.to_vec()).collect();
        assert_eq!(
            runs,
            [vec![big / 2, big / 2], vec![1], vec![big * 2], vec![3]]
        );
        assert!(by_size(&[] as &[usize], |n| *n).is_empty());
    }
}
