//! Leadership leases: on PostgreSQL several tillgate instances share one
//! database, and every consumer and outbox worker must run on exactly one
//! of them at a time.
//!
//! A lease is a row of `leases` (name, holder, token, expires_at). An
//! instance takes a free or expired lease by raising its token (the fencing
//! token) and keeps it by pushing `expires_at` forward every
//! [`RENEW_EVERY`]; times are the database's clock, so the instances'
//! clocks need not agree. Each holder also keeps a local deadline, earlier
//! than the row's expiry, after which it treats the lease as lost even if
//! it could not reach the database: a leader cut off stops before another
//! instance can take over.
//!
//! Fencing: a consumer's cursor write ([`crate::core::log::set_cursor`])
//! checks, inside the consumer's own transaction, that this instance still
//! holds the lease with its token, locking the row (`FOR SHARE`) until the
//! transaction ends. A takeover (which updates the row) therefore waits for
//! a stale leader's transaction in flight and then reads the cursor it
//! stored, or the stale leader finds the new token and its write is
//! refused. Either way no batch is applied twice.
//!
//! The leases reach the runners without their features' code: the server
//! installs them on its background runtimes' threads ([`install`]), and
//! [`crate::core::consumer::Runner`] and [`crate::core::outbox::run`] look
//! them up ([`ambient`]). On SQLite nothing is installed: one process owns
//! the file and everything runs as before.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Any, Transaction};

use super::store::{Db, StoreError};

/// How long a lease lasts without renewal. A dead leader's consumers are
/// taken over at most this (plus [`RETRY_EVERY`]) after its last renewal.
pub const TTL: Duration = Duration::from_secs(3);
/// How often a leader pushes its leases' expiry forward.
pub const RENEW_EVERY: Duration = Duration::from_millis(750);
/// How often a follower tries to take a lease.
pub const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Clustered, the longest an idle outbox worker rests: the consumer that
/// queues its rows may run on another instance, whose wake-up reaches only
/// its own process.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// A holder stops leading this long before the row's expiry, so a
/// renewal's round trip and a step still finishing fit before another
/// instance may take over.
const MARGIN: Duration = Duration::from_millis(750);

/// The database's clock, in Unix milliseconds.
const DB_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// One instance's leases. Cheap to clone.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    holder: String,
    ttl: Duration,
    /// Every name this instance has asked to lead, with its token and local
    /// deadline while held (`None`: not held).
    names: Mutex<HashMap<String, Option<Held>>>,
}

#[derive(Clone, Copy)]
struct Held {
    token: i64,
    until: Instant,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("holder", &self.inner.holder)
            .finish()
    }
}

impl Leases {
    /// Leases for this instance, named `holder` (unique per process start).
    pub fn new(db: Db, holder: String) -> Leases {
        Leases::with_ttl(db, holder, TTL)
    }

    /// [`Leases::new`] with another lifetime (tests).
    pub fn with_ttl(db: Db, holder: String, ttl: Duration) -> Leases {
        Leases {
            inner: Arc::new(Inner {
                db,
                holder,
                ttl,
                names: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A holder name for this process: host, process id and a random part,
    /// so a restarted process never mistakes its predecessor's lease for
    /// its own.
    pub fn holder_name() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &id[..8])
    }

    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Held>>> {
        self.inner
            .names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The token of `name` if this instance holds it now (local deadline
    /// not passed).
    pub fn token(&self, name: &str) -> Option<i64> {
        let names = self.names();
        names
            .get(name)
            .copied()
            .flatten()
            .filter(|h| h.until > Instant::now())
            .map(|h| h.token)
    }

    /// Whether this instance leads `name`: answered from memory while the
    /// lease is held, otherwise by trying to take it (one statement).
    pub async fn lead(&self, name: &str) -> Result<bool, StoreError> {
        if self.token(name).is_some() {
            return Ok(true);
        }
        self.names().entry(name.to_string()).or_insert(None);
        let asked = Instant::now();
        let sql = format!(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, 1, {DB_NOW_MS} + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = leases.token + 1, expires_at = excluded.expires_at \
             WHERE leases.expires_at < {DB_NOW_MS} RETURNING token"
        );
        let token: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(&self.inner.holder)
            .bind(self.ttl_ms())
            .fetch_optional(&self.inner.db.write)
            .await?;
        if let Some(token) = token {
            tracing::info!(lease = name, token, holder = %self.inner.holder, "leading");
            metrics::counter!("tillgate_lease_takeovers_total").increment(1);
            self.names().insert(
                name.to_string(),
                Some(Held {
                    token,
                    until: asked + self.local_life(),
                }),
            );
        }
        Ok(token.is_some())
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.inner.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    fn local_life(&self) -> Duration {
        self.inner
            .ttl
            .saturating_sub(MARGIN.min(self.inner.ttl / 2))
    }

    /// Pushes every held lease's expiry forward; a lease whose row no
    /// longer carries this holder's token is dropped (another instance took
    /// it). A database error leaves the leases to their local deadline.
    pub async fn renew(&self) {
        let held: Vec<(String, i64)> = self
            .names()
            .iter()
            .filter_map(|(n, h)| h.map(|h| (n.clone(), h.token)))
            .collect();
        for (name, token) in held {
            let asked = Instant::now();
            let sql = format!(
                "UPDATE leases SET expires_at = {DB_NOW_MS} + $1 WHERE name = $2 AND holder = $3 AND token = $4"
            );
            let renewed = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(self.ttl_ms())
                .bind(&name)
                .bind(&self.inner.holder)
                .bind(token)
                .execute(&self.inner.db.write)
                .await;
            match renewed {
                Ok(r) if r.rows_affected() == 1 => {
                    if let Some(Some(h)) = self.names().get_mut(&name)
                        && h.token == token
                    {
                        h.until = asked + self.local_life();
                    }
                }
                Ok(_) => {
                    tracing::warn!(lease = %name, token, "lease taken over by another instance");
                    self.forget(&name, token);
                }
                Err(e) => tracing::warn!(lease = %name, error = %e, "cannot renew a lease"),
            }
        }
    }

    fn forget(&self, name: &str, token: i64) {
        if let Some(slot) = self.names().get_mut(name)
            && slot.is_some_and(|h| h.token == token)
        {
            *slot = None;
        }
    }

    /// Renews until `stop`; the server runs this once per instance.
    pub async fn run_renewals(self, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RENEW_EVERY) => self.renew().await,
            }
        }
    }

    /// Gives `name` up (a graceful stop), so another instance takes it at
    /// its next try instead of after the lifetime.
    pub async fn release(&self, name: &str) {
        let Some(token) = self.token(name) else {
            return;
        };
        self.forget(name, token);
        let released = sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND token = $3",
        )
        .bind(name)
        .bind(&self.inner.holder)
        .bind(token)
        .execute(&self.inner.db.write)
        .await;
        if let Err(e) = released {
            tracing::warn!(lease = name, error = %e, "cannot release a lease; it expires by itself");
        }
    }

    /// Gives every held lease up: the server calls it after its consumers
    /// and workers stopped (and stored their cursors), so the other
    /// instances take over at their next try.
    pub async fn release_all(&self) {
        let held: Vec<String> = self
            .names()
            .iter()
            .filter_map(|(n, h)| h.map(|_| n.clone()))
            .collect();
        for name in held {
            self.release(&name).await;
        }
    }

    /// Whether this instance has ever asked to lead `name`.
    pub fn manages(&self, name: &str) -> bool {
        self.names().contains_key(name)
    }

    /// The fencing check, inside the writer's transaction: refuses unless
    /// this instance holds `name` with its current token, and keeps the
    /// lease row locked until `tx` ends (see the module comment).
    pub async fn fence(
        &self,
        tx: &mut Transaction<'static, Any>,
        name: &str,
    ) -> Result<(), StoreError> {
        let Some(token) = self.token(name) else {
            return Err(StoreError::Fenced(name.to_string()));
        };
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT token FROM leases WHERE name = $1 AND holder = $2 AND token = $3 FOR SHARE",
        )
        .bind(name)
        .bind(&self.inner.holder)
        .bind(token)
        .fetch_optional(&mut **tx)
        .await?;
        if found.is_none() {
            self.forget(name, token);
            metrics::counter!("tillgate_lease_fenced_total").increment(1);
            return Err(StoreError::Fenced(name.to_string()));
        }
        Ok(())
    }
}

thread_local! {
    /// The leases of the server whose runtime runs on this thread.
    static AMBIENT: RefCell<Option<Leases>> = const { RefCell::new(None) };
}

/// Makes `leases` this thread's (the server calls it on each of its
/// single-threaded background runtimes, through [`crate::core::runtimes`]).
pub fn install(leases: Option<Leases>) {
    AMBIENT.with(|a| *a.borrow_mut() = leases);
}

/// The leases of the server this code runs in, when it runs clustered
/// (PostgreSQL); `None` on SQLite, in tests that drive runners directly,
/// and on the HTTP runtime.
pub fn ambient() -> Option<Leases> {
    AMBIENT.with(|a| a.borrow().clone())
}

/// Waits until this instance leads `name` (trying every [`RETRY_EVERY`])
/// or `stop` fires; answers whether it leads.
pub async fn wait_to_lead(
    leases: &Leases,
    name: &str,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    loop {
        match leases.lead(name).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => tracing::warn!(lease = name, error = %e, "cannot try a lease"),
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}
