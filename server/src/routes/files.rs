//! A clinician's files: list, upload (multipart), delete, submit for processing.

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Clinician;
use crate::error::{ApiJson, AppError};
use crate::files::{self, FileView, NewFile};
use crate::jobs::{self, JobView};
use crate::scheduler::priority::Priority;

pub async fn list(
    State(state): State<AppState>,
    Clinician(user): Clinician,
) -> Result<ApiJson<Vec<FileView>>, AppError> {
    Ok(ApiJson(files::list_files(&state.db, user.id).await?))
}

/// `multipart/form-data` with a text field `patient_ref` and a file field `file`.
pub async fn upload(
    State(state): State<AppState>,
    Clinician(user): Clinician,
    mut form: Multipart,
) -> Result<(StatusCode, ApiJson<FileView>), AppError> {
    let mut patient_ref = None;
    let mut upload = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|error| too_large_or_bad(&state, error))?
    {
        match field.name() {
            Some("patient_ref") => {
                patient_ref = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| too_large_or_bad(&state, e))?,
                )
            }
            Some("file") => {
                let name = files::clean_file_name(field.file_name().unwrap_or(""));
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| too_large_or_bad(&state, e))?;
                upload = Some((name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    let patient_ref = files::validate_patient_ref(patient_ref.as_deref().unwrap_or(""))?;
    let (file_name, content) = upload
        .ok_or_else(|| AppError::invalid("invalid_file", "no file was attached (field `file`)"))?;
    let templates = state.templates.latest().await?;
    let (content, recording) = files::check_upload(content, templates.clone()).await?;
    let kind = templates
        .iter()
        .find(|t| t.id == recording.template_id)
        .map(|t| t.kind)
        .ok_or_else(|| anyhow::anyhow!("extractor chose an unknown template"))?;
    let new = NewFile {
        owner_id: user.id,
        patient_ref,
        file_name,
        content,
        recording,
        kind,
    };
    let view = files::store_file(&state.db, new, state.clock.now_ms()).await?;
    tracing::info!(
        user.id = user.id,
        file.id = view.id,
        rows = view.rows,
        "file uploaded"
    );
    Ok((StatusCode::CREATED, ApiJson(view)))
}

fn too_large_or_bad(state: &AppState, error: axum::extract::multipart::MultipartError) -> AppError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge {
            limit_mib: state.config.max_upload_bytes / (1024 * 1024),
        }
    } else {
        error.into()
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Clinician(user): Clinician,
    Path(file_id): Path<i64>,
) -> Result<StatusCode, AppError> {
    let job_ids = files::delete_file(&state.db, user.id, file_id).await?;
    state.scheduler.drop_reserved(&job_ids).await?;
    tracing::info!(user.id = user.id, file.id = file_id, "file deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJobRequest {
    /// Omitted: the default analysis for the file's kind.
    pub algorithm: Option<String>,
    /// `urgent`, `normal` (the default) or `batch`.
    #[serde(default)]
    pub priority: Priority,
}

pub async fn submit_job(
    State(state): State<AppState>,
    Clinician(user): Clinician,
    Path(file_id): Path<i64>,
    ApiJson(request): ApiJson<SubmitJobRequest>,
) -> Result<(StatusCode, ApiJson<JobView>), AppError> {
    let job = jobs::submit_job(
        &state,
        user.id,
        file_id,
        request.algorithm,
        request.priority,
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(job)))
}
