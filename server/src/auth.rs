//! Who is asking: the `AuthUser` extractor reads the session cookie; `Admin` and `Clinician` also
//! demand a role. Handlers name the one they need in their arguments; no handler checks by hand.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use crate::accounts::{Account, Role, account_for_session};
use crate::app::AppState;
use crate::error::AppError;

pub const SESSION_COOKIE: &str = "vg_session";

/// A signed-in user of any role.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Account);

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Admin(pub Account);

/// A signed-in clinician.
#[derive(Debug, Clone)]
pub struct Clinician(pub Account);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = session_token(&parts.headers).ok_or(AppError::Unauthenticated)?;
        account_for_session(&state.db, &token, state.clock.now_ms())
            .await?
            .map(AuthUser)
            .ok_or(AppError::Unauthenticated)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AuthUser(account) = AuthUser::from_request_parts(parts, state).await?;
        match account.role {
            Role::Admin => Ok(Self(account)),
            Role::Clinician => Err(AppError::Forbidden("admin")),
        }
    }
}

impl FromRequestParts<AppState> for Clinician {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AuthUser(account) = AuthUser::from_request_parts(parts, state).await?;
        match account.role {
            Role::Clinician => Ok(Self(account)),
            Role::Admin => Err(AppError::Forbidden("clinician")),
        }
    }
}

/// The session token from the `Cookie` header, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// `Set-Cookie` for a new session: HttpOnly (no script reads it) and SameSite=Strict (no other
/// site's page sends it).
pub fn session_cookie(token: &str, max_age_s: u64) -> (axum::http::HeaderName, HeaderValue) {
    let cookie =
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}");
    (
        SET_COOKIE,
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

pub fn expired_session_cookie() -> (axum::http::HeaderName, HeaderValue) {
    (
        SET_COOKIE,
        HeaderValue::from_static("vg_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_token_is_found_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("theme=dark; vg_session=abc123; x=1"),
        );
        assert_eq!(session_token(&headers), Some("abc123".to_owned()));
        assert_eq!(session_token(&HeaderMap::new()), None);
    }
}
