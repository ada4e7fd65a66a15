//! Register authentication: HTTP Basic with the register id as user name.
//!
//! Passwords are stored as Argon2id hashes. Verifying Argon2 costs tens of
//! milliseconds of CPU by design, which would cap a 2-core server at a few
//! dozen requests a second; so a successful verification is cached in
//! memory (the password kept as a `SecretString`, compared in constant
//! time) together with the stored hash it was checked against.
//!
//! The cache cannot go stale, also across several tillgate instances on
//! one PostgreSQL: every request reads the register's row (one indexed
//! look-up, the same query that brings its store and switches), and the
//! cached entry counts only while the stored hash is the one it was
//! checked against. A password changed on any instance, or by the CLI in
//! another process, changes the row, so the old password stops working on
//! the next request everywhere; a disabled register likewise.
//!
//! Failed verifications are limited per register and per source address
//! ([`crate::core::limiter`]): past the limit a request is answered 429
//! before any hashing, so a burst of wrong passwords cannot make tillgate
//! spend its CPU on Argon2. A register whose password was verified before
//! still gets in during such a burst (its password matches the cache, no
//! hashing), so a guesser cannot lock the real till out.
//!
//! An unknown (or disabled) register and a wrong password are one answer,
//! [`AuthError::BadCredentials`], reached the same way: the same limiter
//! counts, and an Argon2 verification against a decoy hash takes the time
//! the real one would. Otherwise the answer, or its speed, would tell a
//! caller which register ids exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::switches::Effective;
use crate::core::limiter::FailureLimiter;
use crate::core::store::Db;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs HTTP Basic authentication with the register id and its password")]
    Missing,
    /// The register is unknown, disabled, or its password is wrong: which
    /// one is not said (the id is kept for the log only).
    #[error(
        "the register id or password is wrong (an unknown or disabled register is refused the same way; ask the operator to check the register)"
    )]
    BadCredentials(String),
    /// Too many failed attempts for this register or from this address.
    #[error("too many failed sign-ins for this register or from this address; try again in {0} s")]
    TooMany(u64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Register passwords are hashed as the console's are.
pub use crate::core::password::hash_password;

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

/// Failed sign-ins allowed per register and per source address within a
/// window; 0 turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_register: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_register: 10,
            per_address: 30,
            window: Duration::from_secs(60),
        }
    }
}

/// Who is calling, once authenticated: the register, its store and the
/// switches in force for it, all from the one look-up.
#[derive(Debug, Clone)]
pub struct RegisterCtx {
    pub register: String,
    pub store: String,
    pub switches: Effective,
}

pub struct CredCache {
    /// register id -> (stored hash it was verified against, password)
    ok: Mutex<HashMap<String, (String, SecretString)>>,
    by_register: FailureLimiter,
    by_address: FailureLimiter,
}

impl Default for CredCache {
    fn default() -> Self {
        CredCache::new(Limits::default())
    }
}

impl CredCache {
    pub fn new(limits: Limits) -> Self {
        crate::core::password::warm();
        CredCache {
            ok: Mutex::default(),
            by_register: FailureLimiter::new(limits.per_register, limits.window),
            by_address: FailureLimiter::new(limits.per_address, limits.window),
        }
    }

    /// Checks `register`'s password (no address known: only the per
    /// register limit applies).
    pub async fn verify(
        &self,
        db: &Db,
        register: &str,
        password: &SecretString,
    ) -> Result<(), AuthError> {
        self.authenticate(db, register, password, None)
            .await
            .map(|_| ())
    }

    /// Checks `register`'s password as sent from `from`; the register's
    /// store and switches when right.
    pub async fn authenticate(
        &self,
        db: &Db,
        register: &str,
        password: &SecretString,
        from: Option<IpAddr>,
    ) -> Result<RegisterCtx, AuthError> {
        let row = super::registers::credentials(&db.read, register)
            .await?
            .filter(|row| row.enabled != 0);
        let ctx = row.as_ref().map(|row| RegisterCtx {
            register: register.to_string(),
            store: row.store.clone(),
            switches: Effective::resolve(
                (row.reg_discount, row.reg_payment),
                (row.store_discount, row.store_payment),
            ),
        });
        // A register without a password (seed 004, set so explicitly by
        // the operator) is let in from its listed addresses with an empty
        // password; anything else it sends is refused on the same path as
        // a wrong password (the decoy hash, the limiter), so the answer
        // does not tell it apart.
        let mut open_refused = false;
        if let (Some(ctx), Some(row)) = (&ctx, &row)
            && !row.open_from.is_empty()
        {
            if password.expose_secret().is_empty()
                && from.is_some_and(|ip| super::operator::open_from_allows(&row.open_from, ip))
            {
                return Ok(ctx.clone());
            }
            open_refused = true;
        }
        // No register: the decoy hash is verified instead (in the blocking
        // task, as a real one), so the way to the answer is the same.
        let hash = row.map(|row| row.password_hash).filter(|_| !open_refused);
        if let (Some(ctx), Some(hash)) = (&ctx, &hash)
            && let Some((h, p)) = self
                .ok
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(register)
            && h == hash
            && crate::core::api_error::secret_eq(password.expose_secret(), p)
        {
            return Ok(ctx.clone());
        }
        let reg_key = vec![format!("r:{register}")];
        let addr_key: Vec<String> = from.map(|a| format!("ip:{a}")).into_iter().collect();
        // Counted before hashing, atomically with the check, so a burst
        // of concurrent guesses cannot all pass while the first are still
        // being hashed; taken back when the password is right.
        let limited = self.by_register.attempt(&reg_key).and_then(|()| {
            self.by_address.attempt(&addr_key).inspect_err(|_| {
                self.by_register.forgive(&reg_key);
            })
        });
        if let Err(wait) = limited {
            metrics::counter!("tillgate_loyalty_auth_limited_total").increment(1);
            return Err(AuthError::TooMany(wait.as_secs().max(1)));
        }
        metrics::counter!("tillgate_loyalty_auth_hashes_total").increment(1);
        // An unknown register checks the decoy: the same work, `false`.
        let good = crate::core::password::check(password.clone(), hash.clone()).await;
        let (Some(ctx), Some(hash), true) = (ctx, hash, good) else {
            tracing::warn!(register, remote = ?from, "register sign-in failed (unknown, disabled or wrong password)");
            return Err(AuthError::BadCredentials(register.to_string()));
        };
        self.by_register.succeeded(&reg_key);
        self.by_address.forgive(&addr_key);
        self.ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(register.to_string(), (hash, password.clone()));
        Ok(ctx)
    }
}
