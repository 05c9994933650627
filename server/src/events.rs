//! The history of every job: each state change of a job or task is a row (who, what, when), so the
//! admin pages can show it, also after a restart.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use serde::Serialize;

use crate::db::entities::job_event;

/// Records one event. `worker` is the worker's key or connection id.
pub async fn record(
    db: &impl ConnectionTrait,
    job_id: i64,
    task_id: Option<&str>,
    worker: Option<&str>,
    kind: &str,
    detail: impl Into<String>,
    at_ms: i64,
) -> Result<(), DbErr> {
    job_event::ActiveModel {
        job_id: Set(job_id),
        task_id: Set(task_id.map(str::to_owned)),
        worker: Set(worker.map(str::to_owned)),
        kind: Set(kind.to_owned()),
        detail: Set(detail.into()),
        at_ms: Set(at_ms),
        ..Default::default()
    }
    .insert(db)
    .await?;
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
