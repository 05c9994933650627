//! Logging in and out, and who am I.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::accounts::{self, Account};
use crate::app::AppState;
use crate::auth::{AuthUser, expired_session_cookie, session_cookie, session_token};
use crate::error::{ApiJson, AppError};

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, AppError> {
    let ttl = state.config.session_ttl;
    let (account, token) = accounts::log_in(
        &state.db,
        &request.email,
        &request.password,
        state.clock.now_ms(),
        ttl.as_millis() as i64,
    )
    .await?;
    tracing::info!(user.id = account.id, "logged in");
    Ok(([session_cookie(&token, ttl.as_secs())], ApiJson(account)))
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    if let Some(token) = session_token(&headers) {
        accounts::log_out(&state.db, &token).await?;
    }
    Ok((StatusCode::NO_CONTENT, [expired_session_cookie()]))
}

pub async fn me(AuthUser(account): AuthUser) -> ApiJson<Account> {
    ApiJson(account)
}
