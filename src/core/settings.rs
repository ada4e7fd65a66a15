//! Small durable settings changed at run time (the console, the operator
//! API): a key/value table with one version counter, and [`Live`], a value
//! built from the table and rebuilt when the version in the database moved.
//!
//! Why a version and not a cache with a lifetime: several instances may
//! share one PostgreSQL (issue 19). A change made on one must take effect
//! on all, so every reader checks the one-row version at most every
//! [`CHECK_EVERY`] (a primary-key read) and rebuilds only when it moved.
//! Every change bumps the version in the transaction that writes the value,
//! so a reader never sees the new version with the old value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::store::{Db, StoreError};

/// How stale a [`Live`] value may be on an instance that did not make the
/// change.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One stored setting.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub updated_at: i64,
}

/// The version of the whole table: it moves on every change.
pub async fn version(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT version FROM settings_version WHERE id = 1")
            .fetch_one(&db.read)
            .await?,
    )
}

/// Every stored setting, by key.
pub async fn all(db: &Db) -> Result<Vec<Entry>, StoreError> {
    Ok(
        sqlx::query_as("SELECT key, value, updated_at FROM settings ORDER BY key")
            .fetch_all(&db.read)
            .await?,
    )
}

/// One stored setting.
pub async fn get(db: &Db, key: &str) -> Result<Option<Entry>, StoreError> {
    Ok(
        sqlx::query_as("SELECT key, value, updated_at FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&db.read)
            .await?,
    )
}

/// Stores `value` under `key` (`None` deletes it) and bumps the version in
/// the same transaction; the new version.
pub async fn put(db: &Db, key: &str, value: Option<&str>, now_ms: i64) -> Result<i64, StoreError> {
    let mut tx = db.write.begin().await?;
    // The row lock on PostgreSQL orders concurrent changes: versions never
    // repeat.
    let v: i64 = sqlx::query_scalar(
        "UPDATE settings_version SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .fetch_one(&mut *tx)
    .await?;
    match value {
        Some(value) => {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM settings WHERE key = $1")
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(v)
}

type Build<T> = Box<dyn Fn(&[Entry]) -> T + Send + Sync>;

struct Cached<T> {
    version: i64,
    checked: Option<Instant>,
    value: Arc<T>,
}

/// A value built from the stored settings, rebuilt when the version in the
/// database moved (checked at most every [`CHECK_EVERY`], and at once after
/// [`Live::changed`] on this instance).
pub struct Live<T> {
    db: Db,
    build: Build<T>,
    check_every: Duration,
    stale: AtomicBool,
    state: tokio::sync::Mutex<Cached<T>>,
}

impl<T: Send + Sync + 'static> Live<T> {
    /// `initial` serves until the first check; `build` turns the stored
    /// entries into the value (it gets every entry, and picks its keys).
    pub fn new(
        db: Db,
        initial: T,
        build: impl Fn(&[Entry]) -> T + Send + Sync + 'static,
    ) -> Arc<Live<T>> {
        Arc::new(Live {
            db,
            build: Box::new(build),
            check_every: CHECK_EVERY,
            stale: AtomicBool::new(true),
            state: tokio::sync::Mutex::new(Cached {
                version: -1,
                checked: None,
                value: Arc::new(initial),
            }),
        })
    }

    /// The value in effect, rebuilt first when the stored settings changed.
    pub async fn get(&self) -> Result<Arc<T>, StoreError> {
        let mut st = self.state.lock().await;
        let fresh = st.checked.is_some_and(|c| c.elapsed() < self.check_every);
        let stale = self.stale.swap(false, Ordering::AcqRel);
        if fresh && !stale {
            return Ok(st.value.clone());
        }
        let v = version(&self.db).await?;
        if v != st.version {
            let entries = all(&self.db).await?;
            st.value = Arc::new((self.build)(&entries));
            st.version = v;
        }
        st.checked = Some(Instant::now());
        Ok(st.value.clone())
    }

    /// Like [`Live::get`], but when the database cannot be read, the last
    /// value (logged): a worker keeps going on what it had.
    pub async fn current(&self) -> Arc<T> {
        match self.get().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "stored settings unreadable; using the last ones");
                self.state.lock().await.value.clone()
            }
        }
    }

    /// This instance changed a setting: the next [`Live::get`] reads it.
    pub fn changed(&self) {
        self.stale.store(true, Ordering::Release);
    }
}
