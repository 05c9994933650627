//! The admin dashboard's data: connected workers, jobs across all clinicians, system health.

use std::collections::HashMap;

use axum::extract::{Path, State};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::Admin;
use crate::db::entities::{file, job, task, user, worker_record};
use crate::db::task_status;
use crate::error::{ApiJson, AppError};
use crate::events::{self, EventView};
use crate::jobs::{JobView, jobs_with_results};
use crate::scheduler::WorkerInfo;
use crate::scheduler::replication::credibility;

/// Most recent jobs shown on the dashboard.
const JOBS_SHOWN: u64 = 200;

/// A connected worker with its track record.
#[derive(Debug, Serialize)]
pub struct AdminWorkerView {
    #[serde(flatten)]
    pub worker: WorkerInfo,
    pub agreed: i64,
    pub disagreed: i64,
    pub banned: bool,
    pub credibility: f64,
}

pub async fn workers(
    State(state): State<AppState>,
    _: Admin,
) -> Result<ApiJson<Vec<AdminWorkerView>>, AppError> {
    let connected = state.scheduler.workers_snapshot();
    let records: HashMap<String, worker_record::Model> = worker_record::Entity::find()
        .filter(
            worker_record::Column::WorkerKey.is_in(connected.iter().map(|w| w.worker_key.clone())),
        )
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| (r.worker_key.clone(), r))
        .collect();
    Ok(ApiJson(
        connected
            .into_iter()
            .map(|worker| {
                let (agreed, disagreed, banned) = records
                    .get(&worker.worker_key)
                    .map_or((0, 0, false), |r| (r.agreed, r.disagreed, r.banned));
                AdminWorkerView {
                    credibility: credibility(agreed, disagreed, banned),
                    agreed,
                    disagreed,
                    banned,
                    worker,
                }
            })
            .collect(),
    ))
}

/// Every worker ever seen, with its record: the forgers caught stay visible after they leave.
pub async fn worker_records(
    State(state): State<AppState>,
    _: Admin,
) -> Result<ApiJson<Vec<AdminRecordView>>, AppError> {
    let records = worker_record::Entity::find()
        .order_by_desc(worker_record::Column::LastSeenAtMs)
        .limit(500)
        .all(&state.db)
        .await?;
    Ok(ApiJson(
        records
            .into_iter()
            .map(|r| AdminRecordView {
                credibility: credibility(r.agreed, r.disagreed, r.banned),
                worker_key: r.worker_key,
                agreed: r.agreed,
                disagreed: r.disagreed,
                late_results: r.late_results,
                banned: r.banned,
                last_seen_at: r.last_seen_at_ms,
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize)]
pub struct AdminRecordView {
    pub worker_key: String,
    pub agreed: i64,
    pub disagreed: i64,
    /// Results sent after the task had moved on; never applied.
    pub late_results: i64,
    pub banned: bool,
    pub credibility: f64,
    pub last_seen_at: i64,
}

/// The history of one job.
pub async fn job_events(
    State(state): State<AppState>,
    _: Admin,
    Path(job_id): Path<i64>,
) -> Result<ApiJson<Vec<EventView>>, AppError> {
    job::Entity::find_by_id(job_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("job"))?;
    Ok(ApiJson(events::for_job(&state.db, job_id).await?))
}

/// Tasks by job priority and state: the queues at a glance.
pub async fn queues(
    State(state): State<AppState>,
    _: Admin,
) -> Result<ApiJson<Vec<QueueCount>>, AppError> {
    let rows: Vec<(String, String, i64)> = task::Entity::find()
        .select_only()
        .column(job::Column::Priority)
        .column(task::Column::Status)
        .column_as(Expr::col((task::Entity, task::Column::Id)).count(), "n")
        .join_rev(sea_orm::JoinType::InnerJoin, job_relation())
        .group_by(job::Column::Priority)
        .group_by(task::Column::Status)
        .into_tuple()
        .all(&state.db)
        .await?;
    Ok(ApiJson(
        rows.into_iter()
            .map(|(priority, status, tasks)| QueueCount {
                priority,
                status,
                tasks,
            })
            .collect(),
    ))
}

fn job_relation() -> sea_orm::RelationDef {
    job::Entity::belongs_to(task::Entity)
        .from(job::Column::Id)
        .to(task::Column::JobId)
        .into()
}

#[derive(Debug, Serialize)]
pub struct QueueCount {
    pub priority: String,
    pub status: String,
    pub tasks: i64,
}

#[derive(Debug, Serialize)]
pub struct AdminJobView {
    #[serde(flatten)]
    pub job: JobView,
    pub owner_email: String,
    pub file_name: String,
}

pub async fn jobs(
    State(state): State<AppState>,
    _: Admin,
) -> Result<ApiJson<Vec<AdminJobView>>, AppError> {
    let recent = job::Entity::find()
        .order_by_desc(job::Column::Id)
        .limit(JOBS_SHOWN)
        .all(&state.db)
        .await?;
    let emails: HashMap<i64, String> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Email)
        .into_tuple::<(i64, String)>()
        .all(&state.db)
        .await?
        .into_iter()
        .collect();
    let file_ids: Vec<i64> = recent.iter().map(|j| j.file_id).collect();
    let names: HashMap<i64, String> = file::Entity::find()
        .select_only()
        .column(file::Column::Id)
        .column(file::Column::FileName)
        .filter(file::Column::Id.is_in(file_ids))
        .into_tuple::<(i64, String)>()
        .all(&state.db)
        .await?
        .into_iter()
        .collect();
    let with_results = jobs_with_results(&state.db, recent.iter().map(|j| j.id)).await?;
    Ok(ApiJson(
        recent
            .into_iter()
            .map(|j| AdminJobView {
                owner_email: emails.get(&j.owner_id).cloned().unwrap_or_default(),
                file_name: names.get(&j.file_id).cloned().unwrap_or_default(),
                job: JobView::new(j.clone(), with_results.contains(&j.id)),
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
    pub workers: usize,
    pub queued_tasks: u64,
    pub leased_tasks: u64,
    /// Task payload bytes this process holds in memory now, and the most it lets itself hold.
    pub payload_held_bytes: usize,
    pub payload_budget_bytes: usize,
}

/// Public: a load balancer's health check. Reveals counts only.
pub async fn health(State(state): State<AppState>) -> Result<ApiJson<Health>, AppError> {
    let count = |status: &'static str| {
        task::Entity::find()
            .filter(task::Column::Status.eq(status))
            .count(&state.db)
    };
    Ok(ApiJson(Health {
        status: "ok",
        database: match state.db.get_database_backend() {
            DbBackend::MySql => "mysql",
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
        },
        workers: state.scheduler.workers_snapshot().len(),
        queued_tasks: count(task_status::QUEUED).await?,
        leased_tasks: count(task_status::LEASED).await?,
        payload_held_bytes: state.scheduler.payload_held_bytes(),
        payload_budget_bytes: state.scheduler.payload_budget_bytes(),
    }))
}
