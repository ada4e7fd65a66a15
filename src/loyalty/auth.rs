//! Register authentication: HTTP Basic with the register id as user name.
//!
//! Passwords are stored as Argon2id hashes. Verifying Argon2 costs tens of
//! milliseconds of CPU by design, which would cap a 2-core server at a few
//! dozen requests a second; so a successful verification is cached in
//! memory (the password kept as a `SecretString`, compared in constant
//! time) together with the stored hash it was checked against. A password
//! change or a disabled register changes the stored row and so invalidates
//! the cache entry on the next request, even when made by the CLI from
//! another process.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::core::store::Db;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs HTTP Basic authentication with the register id and its password")]
    Missing,
    #[error("register {0:?} is not registered in tillgate; ask the operator to register it")]
    NotRegistered(String),
    #[error("wrong password for register {0:?}")]
    BadCredentials(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))
}

/// Splits an `Authorization: Basic ...` header into register and password.
pub fn parse_basic(header: Option<&str>) -> Result<(String, SecretString), AuthError> {
    let b64 = header
        .and_then(|h| h.strip_prefix("Basic "))
        .ok_or(AuthError::Missing)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| AuthError::Missing)?;
    let text = String::from_utf8(raw).map_err(|_| AuthError::Missing)?;
    let (user, pass) = text.split_once(':').ok_or(AuthError::Missing)?;
    Ok((user.to_string(), SecretString::from(pass.to_string())))
}

#[derive(Default)]
pub struct CredCache {
    /// register id -> (stored hash it was verified against, password)
    ok: Mutex<HashMap<String, (String, SecretString)>>,
}

impl CredCache {
    pub async fn verify(
        &self,
        db: &Db,
        register: &str,
        password: &SecretString,
    ) -> Result<(), AuthError> {
        let Some(super::registers::Credentials {
            password_hash: hash,
            enabled,
        }) = super::registers::credentials(&db.read, register).await?
        else {
            return Err(AuthError::NotRegistered(register.to_string()));
        };
        if enabled == 0 {
            return Err(AuthError::NotRegistered(register.to_string()));
        }
        if let Some((h, p)) = self
            .ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(register)
            && *h == hash
            && crate::core::api_error::secret_eq(password.expose_secret(), p)
        {
            return Ok(());
        }
        let pw = password.expose_secret().to_string();
        let h2 = hash.clone();
        // Argon2 is deliberately slow: keep it off the async workers.
        let good = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&h2)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(pw.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !good {
            return Err(AuthError::BadCredentials(register.to_string()));
        }
        self.ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(register.to_string(), (hash, password.clone()));
        Ok(())
    }
}
