//! A clinician's jobs and their results.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::app::AppState;
use crate::auth::Clinician;
use crate::error::{ApiJson, AppError};
use crate::jobs::{self, JobView, ResultView};

pub async fn get(
    State(state): State<AppState>,
    Clinician(user): Clinician,
    Path(job_id): Path<i64>,
) -> Result<ApiJson<JobView>, AppError> {
    Ok(ApiJson(jobs::get_job(&state.db, user.id, job_id).await?))
}

pub async fn result(
    State(state): State<AppState>,
    Clinician(user): Clinician,
    Path(job_id): Path<i64>,
) -> Result<ApiJson<ResultView>, AppError> {
    Ok(ApiJson(jobs::get_result(&state.db, user.id, job_id).await?))
}

pub async fn delete_result(
    State(state): State<AppState>,
    Clinician(user): Clinician,
    Path(job_id): Path<i64>,
) -> Result<StatusCode, AppError> {
    jobs::delete_result(&state.db, user.id, job_id).await?;
    tracing::info!(user.id = user.id, job.id = job_id, "result deleted");
    Ok(StatusCode::NO_CONTENT)
}
