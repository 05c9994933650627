//! Templates, for admins: list every version, add a new version of one (ranges, thresholds).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use vitalgrid_worker::template::Template;

use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{ApiJson, AppError};

pub async fn list(
    State(state): State<AppState>,
    _: Admin,
) -> Result<ApiJson<Vec<Template>>, AppError> {
    Ok(ApiJson(state.templates.all_versions().await?))
}

/// The body is a whole template; its `id` and `version` are taken from the path and assigned.
pub async fn add_version(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(template_id): Path<String>,
    ApiJson(proposed): ApiJson<Template>,
) -> Result<(StatusCode, ApiJson<Template>), AppError> {
    let stored = state
        .templates
        .add_version(&template_id, proposed, admin.id, state.clock.now_ms())
        .await?;
    tracing::info!(admin.id = admin.id, template.id = %stored.id, template.version = stored.version, "template version added");
    Ok((StatusCode::CREATED, ApiJson(stored)))
}
