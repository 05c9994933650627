//! Accounts, passwords and sessions. Accounts are made by an admin (there is no sign-up); passwords
//! are hashed with argon2id; a session is a random token in an HttpOnly cookie whose SHA-256 is
//! what the database keeps.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use vitalgrid_worker::protocol::sha256_hex;

use crate::db::entities::{session, user};
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Clinician,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Clinician => "clinician",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "clinician" => Some(Self::Clinician),
            _ => None,
        }
    }
}

/// An account as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub created_at: i64,
}

impl Account {
    fn from_model(model: user::Model) -> Option<Self> {
        Some(Self {
            id: model.id,
            email: model.email,
            role: Role::parse(&model.role)?,
            created_at: model.created_at_ms,
        })
    }
}

pub const MIN_PASSWORD_CHARS: usize = 10;

/// Checks what an admin typed for a new account; returns the normalised e-mail.
pub fn validate_new_account(email: &str, password: &str) -> Result<String, AppError> {
    let email = email.trim().to_ascii_lowercase();
    let well_formed = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(AppError::invalid(
            "invalid_email",
            format!("`{email}` is not an e-mail address"),
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::invalid(
            "weak_password",
            format!("the password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(email)
}

/// argon2id with the crate's default (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("hashing a password: {error}"))
}

pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A fresh random session token (256 bits, hex) for the cookie.
pub fn new_session_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Random password for the first admin when none was configured.
pub fn new_one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

pub async fn create_account(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    role: Role,
    now_ms: i64,
) -> Result<Account, AppError> {
    let email = validate_new_account(email, password)?;
    if user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .one(db)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "an account for {email} already exists"
        )));
    }
    let password = password.to_owned();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|error| anyhow::anyhow!("password hashing task: {error}"))??;
    let model = user::ActiveModel {
        email: Set(email),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        created_at_ms: Set(now_ms),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Account::from_model(model).ok_or_else(|| anyhow::anyhow!("stored role is unknown").into())
}

pub async fn list_accounts(db: &impl ConnectionTrait) -> Result<Vec<Account>, AppError> {
    let users = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?;
    Ok(users.into_iter().filter_map(Account::from_model).collect())
}

pub async fn count_accounts(db: &impl ConnectionTrait) -> Result<u64, AppError> {
    use sea_orm::PaginatorTrait;
    Ok(user::Entity::find().count(db).await?)
}

/// Checks credentials and opens a session; returns the account and the cookie token.
pub async fn log_in(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<(Account, String), AppError> {
    let email = email.trim().to_ascii_lowercase();
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .one(db)
        .await?;
    let password = password.to_owned();
    // Verify even for unknown e-mails (against a fixed hash) so timing does not reveal accounts.
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => verify_password(&password, &hash),
        None => {
            let _ = verify_password(&password, DUMMY_HASH);
            false
        }
    })
    .await
    .map_err(|error| anyhow::anyhow!("password check task: {error}"))?;
    let account = match found {
        Some(model) if verified => Account::from_model(model).ok_or(AppError::BadCredentials)?,
        _ => return Err(AppError::BadCredentials),
    };
    let token = new_session_token();
    session::ActiveModel {
        token_hash: Set(sha256_hex(token.as_bytes())),
        user_id: Set(account.id),
        expires_at_ms: Set(now_ms + ttl_ms),
    }
    .insert(db)
    .await?;
    Ok((account, token))
}

/// The account behind a session token, if the session is live.
pub async fn account_for_session(
    db: &impl ConnectionTrait,
    token: &str,
    now_ms: i64,
) -> Result<Option<Account>, AppError> {
    let Some(found) = session::Entity::find_by_id(sha256_hex(token.as_bytes()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if found.expires_at_ms <= now_ms {
        return Ok(None);
    }
    Ok(user::Entity::find_by_id(found.user_id)
        .one(db)
        .await?
        .and_then(Account::from_model))
}

pub async fn log_out(db: &impl ConnectionTrait, token: &str) -> Result<(), AppError> {
    session::Entity::delete_by_id(sha256_hex(token.as_bytes()))
        .exec(db)
        .await?;
    Ok(())
}

/// A valid argon2id hash of a random password, used to spend the same time on unknown e-mails.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$WrTbGpvGVvyFMz1bVPKmVnVKnTpi5ZEJqcHm4Kw6Mzs";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let hash = hash_password("correct horse battery").expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn new_accounts_need_an_email_and_a_long_enough_password() {
        assert_eq!(
            validate_new_account(" Ana@Example.org ", "long enough!").ok(),
            Some("ana@example.org".into())
        );
        assert!(matches!(
            validate_new_account("ana", "long enough!"),
            Err(AppError::Invalid {
                code: "invalid_email",
                ..
            })
        ));
        assert!(matches!(
            validate_new_account("ana@example.org", "short"),
            Err(AppError::Invalid {
                code: "weak_password",
                ..
            })
        ));
    }

    #[test]
    fn session_tokens_are_long_and_distinct() {
        let (a, b) = (new_session_token(), new_session_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
