//! Accepting a worker's result: check it, apply it exactly once under the fencing token, and merge
//! the job's analysis when its last task lands — all in one transaction.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use vitalgrid_worker::algorithm::merge;
use vitalgrid_worker::analysis::SegmentResult;
use vitalgrid_worker::protocol::{ErrorCode, ResultPacket, ServerMessage};

use super::SenderCore;
use crate::db::entities::{job, result, task};
use crate::db::{job_status, task_status};
use crate::templates::TemplateStore;

impl SenderCore {
    pub(super) async fn accept_result(&self, worker_id: &str, packet: ResultPacket) -> Result<(), DbErr> {
        let task_id = packet.task_id.clone();
        let Some(in_flight) = self.take_in_flight(worker_id, &task_id, packet.lease) else {
            // Late (after reassignment) or duplicate: recorded in the log, never applied.
            tracing::info!(worker.id = %worker_id, task.id = %task_id, lease = packet.lease, "stale result ignored");
            self.send_to(worker_id, ServerMessage::Error {
                task_id: Some(task_id),
                code: ErrorCode::StaleLease,
                message: "this task is no longer leased to you".to_owned(),
            });
            return Ok(());
        };
        let checked = if packet.data.is_intact() {
            serde_json::from_str::<SegmentResult>(&packet.data.payload)
                .map_err(|error| (ErrorCode::Malformed, format!("result does not parse: {error}")))
                .and_then(|segment| {
                    if segment.algorithm == in_flight.packet.algorithm {
                        Ok(segment)
                    } else {
                        Err((ErrorCode::Malformed, format!("result is for algorithm {}", segment.algorithm)))
                    }
                })
        } else {
            Err((ErrorCode::Integrity, "result payload does not match its SHA-256".to_owned()))
        };
        if let Err((code, message)) = checked {
            tracing::warn!(worker.id = %worker_id, task.id = %task_id, %message, "result refused");
            self.send_to(worker_id, ServerMessage::Error { task_id: Some(task_id.clone()), code, message: message.clone() });
            self.release(&task_id, packet.lease, true, &message).await?;
            self.notify();
            return Ok(());
        }

        let transaction = self.db.begin().await?;
        let applied = apply_result(&transaction, &packet, self.clock.now_ms(), &self.templates).await?;
        transaction.commit().await?;
        if applied {
            if let Some(worker) = self.workers().get_mut(worker_id) {
                worker.tasks_done += 1;
            }
        }
        self.notify();
        Ok(())
    }
}

/// Stores the result if the lease is still current; completes the job when it was the last task.
/// Returns whether the result was applied.
async fn apply_result(
    db: &impl ConnectionTrait,
    packet: &ResultPacket,
    now_ms: i64,
    templates: &TemplateStore,
) -> Result<bool, DbErr> {
    let stored = task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value(task_status::DONE))
        .col_expr(task::Column::Result, Expr::value(packet.data.payload.as_bytes().to_vec()))
        .col_expr(task::Column::ResultSha256, Expr::value(packet.data.sha256.clone()))
        .col_expr(task::Column::LeaseWorker, Expr::value(Option::<String>::None))
        .col_expr(task::Column::LeaseExpiresAtMs, Expr::value(Option::<i64>::None))
        .filter(task::Column::Id.eq(&packet.task_id))
        .filter(task::Column::Lease.eq(packet.lease as i64))
        .filter(task::Column::Status.eq(task_status::LEASED))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if !stored {
        return Ok(false);
    }
    let Some(owner) = task::Entity::find_by_id(&packet.task_id).one(db).await? else { return Ok(false) };
    job::Entity::update_many()
        .col_expr(job::Column::TasksDone, Expr::col(job::Column::TasksDone).add(1))
        .filter(job::Column::Id.eq(owner.job_id))
        .exec(db)
        .await?;
    let Some(current) = job::Entity::find_by_id(owner.job_id).one(db).await? else { return Ok(true) };
    if current.tasks_done >= current.tasks_total && current.status == job_status::RUNNING {
        finish_job(db, current, now_ms, templates).await?;
    }
    Ok(true)
}

/// Merges every segment of a finished job, in order, into its analysis.
async fn finish_job(
    db: &impl ConnectionTrait,
    finished: job::Model,
    now_ms: i64,
    templates: &TemplateStore,
) -> Result<(), DbErr> {
    let tasks = task::Entity::find()
        .filter(task::Column::JobId.eq(finished.id))
        .order_by_asc(task::Column::Seq)
        .all(db)
        .await?;
    let segments: Result<Vec<SegmentResult>, String> = tasks
        .iter()
        .map(|t| {
            let bytes = t.result.as_deref().ok_or_else(|| format!("part {} has no result", t.seq + 1))?;
            serde_json::from_slice(bytes).map_err(|e| format!("part {} result unreadable: {e}", t.seq + 1))
        })
        .collect();
    let template = templates.get(&finished.template_id, finished.template_version as u32).await?;
    let analysis = match (segments, template) {
        (Ok(segments), Some(template)) => merge(&template, &segments, finished.trend_bucket_s)
            .map_err(|error| error.to_string())
            .and_then(|analysis| serde_json::to_string(&analysis).map_err(|e| e.to_string())),
        (Err(error), _) => Err(error),
        (_, None) => Err(format!("template {} v{} is unknown", finished.template_id, finished.template_version)),
    };
    let mut update: job::ActiveModel = finished.clone().into();
    update.finished_at_ms = Set(Some(now_ms));
    match analysis {
        Ok(json) => {
            result::ActiveModel { job_id: Set(finished.id), analysis: Set(json), created_at_ms: Set(now_ms) }
                .insert(db)
                .await?;
            update.status = Set(job_status::DONE.to_owned());
            tracing::info!(job.id = finished.id, tasks = finished.tasks_total, "job done");
        }
        Err(message) => {
            tracing::error!(job.id = finished.id, %message, "merging the job's results failed");
            update.status = Set(job_status::FAILED.to_owned());
            update.error = Set(Some(format!("the results could not be combined: {message}")));
        }
    }
    update.update(db).await?;
    Ok(())
}
