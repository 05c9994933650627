//! The admin dashboard's data: connected workers, jobs across all clinicians, system health.

use std::collections::HashMap;

use axum::extract::State;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::Admin;
use crate::db::entities::{file, job, task, user};
use crate::db::task_status;
use crate::error::{ApiJson, AppError};
use crate::jobs::{jobs_with_results, JobView};
use crate::scheduler::WorkerInfo;

/// Most recent jobs shown on the dashboard.
const JOBS_SHOWN: u64 = 200;

pub async fn workers(State(state): State<AppState>, _: Admin) -> ApiJson<Vec<WorkerInfo>> {
    ApiJson(state.scheduler.workers_snapshot())
}

#[derive(Debug, Serialize)]
pub struct AdminJobView {
    #[serde(flatten)]
    pub job: JobView,
    pub owner_email: String,
    pub file_name: String,
}

pub async fn jobs(State(state): State<AppState>, _: Admin) -> Result<ApiJson<Vec<AdminJobView>>, AppError> {
    let recent = job::Entity::find().order_by_desc(job::Column::Id).limit(JOBS_SHOWN).all(&state.db).await?;
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
}

/// Public: a load balancer's health check. Reveals counts only.
pub async fn health(State(state): State<AppState>) -> Result<ApiJson<Health>, AppError> {
    let count = |status: &'static str| {
        task::Entity::find().filter(task::Column::Status.eq(status)).count(&state.db)
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
    }))
}
