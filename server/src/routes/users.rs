//! Accounts, managed by admins only (there is no self sign-up).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::accounts::{self, Account, Role};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{ApiJson, AppError};

#[derive(Debug, Deserialize)]
pub struct NewUserRequest {
    pub email: String,
    pub password: String,
    pub role: Role,
}

pub async fn list(
    State(state): State<AppState>,
    _: Admin,
) -> Result<ApiJson<Vec<Account>>, AppError> {
    Ok(ApiJson(accounts::list_accounts(&state.db).await?))
}

pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(request): ApiJson<NewUserRequest>,
) -> Result<(StatusCode, ApiJson<Account>), AppError> {
    let account = accounts::create_account(
        &state.db,
        &request.email,
        &request.password,
        request.role,
        state.clock.now_ms(),
    )
    .await?;
    tracing::info!(
        admin.id = admin.id,
        user.id = account.id,
        role = account.role.as_str(),
        "account created"
    );
    Ok((StatusCode::CREATED, ApiJson(account)))
}
