//! The history of every job: each state change of a job or task is a row (who, what, when), so the
//! admin pages can show it, also after a restart.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

use crate::db::entities::job_event;

/// Records one event. `worker` is the worker's key or connection id.
pub async fn record(
    db: &impl ConnectionTrait,
    job_id: i64,
    task_id: Option<&str>,
    worker: Option<&str>,
    kind: &'static str,
    detail: impl Into<String>,
    at_ms: i64,
) -> Result<(), DbErr> {
    record_all(
        db,
        vec![NewEvent {
            job_id,
            task_id: task_id.map(str::to_owned),
            worker: worker.map(str::to_owned),
            kind,
            detail: detail.into(),
            at_ms,
        }],
    )
    .await
}

/// An event to record with `record_all`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub job_id: i64,
    pub task_id: Option<String>,
    pub worker: Option<String>,
    pub kind: &'static str,
    pub detail: String,
    pub at_ms: i64,
}

/// Most rows per INSERT: far below every backend's limit on bound parameters.
const ROWS_PER_INSERT: usize = 500;

/// Records events in order, with one multi-row INSERT per few hundred: a dispatch round or a
/// group of results writes one statement for all of its events instead of one each.
pub async fn record_all(db: &impl ConnectionTrait, events: Vec<NewEvent>) -> Result<(), DbErr> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let rows = chunk.iter().map(|e| job_event::ActiveModel {
            job_id: Set(e.job_id),
            task_id: Set(e.task_id.clone()),
            worker: Set(e.worker.clone()),
            kind: Set(e.kind.to_owned()),
            detail: Set(e.detail.clone()),
            at_ms: Set(e.at_ms),
            ..Default::default()
        });
        job_event::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub at: i64,
    pub kind: String,
    pub task_id: Option<String>,
    pub worker: Option<String>,
    pub detail: String,
}

pub async fn for_job(db: &impl ConnectionTrait, job_id: i64) -> Result<Vec<EventView>, DbErr> {
    let events = job_event::Entity::find()
        .filter(job_event::Column::JobId.eq(job_id))
        .order_by_asc(job_event::Column::Id)
        .all(db)
        .await?;
    Ok(events
        .into_iter()
        .map(|e| EventView {
            at: e.at_ms,
            kind: e.kind,
            task_id: e.task_id,
            worker: e.worker,
            detail: e.detail,
        })
        .collect())
}
