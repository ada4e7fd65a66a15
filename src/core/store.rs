//! Storage: one handle over SQLite (embedded, the default) or PostgreSQL.
//!
//! Both backends go through sqlx's `Any` driver so every feature writes its
//! queries once. The SQL used is the common subset of the two dialects:
//! `$1` placeholders, `BIGINT`/`TEXT` columns, `ON CONFLICT ... DO NOTHING`,
//! `RETURNING`. Where DDL differs (`BLOB` vs `BYTEA`) migrations use
//! placeholders filled in per backend. Booleans are stored as 0/1 BIGINTs and
//! times as Unix milliseconds (tillgate's clock) or ISO text (cash-server
//! local time, which has no zone), so values decode identically from both.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use super::config::Storage;
use super::log;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("consumer {0} is led by another instance now: this write is refused (fencing)")]
    Fenced(String),
    #[error("{0} needs a database path (postgres://host/DATABASE)")]
    NoDatabasePath(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The storage handle shared by every feature.
///
/// Every write goes through `write`. On SQLite it is one connection: SQLite
/// allows one writer at a time anyway, and queueing for the connection is
/// fairer (and never fails with SQLITE_BUSY) than racing for the file lock.
/// `read` is a pool for queries. Offsets stay in commit order because the
/// event log has a single writer task, not because of the pool size.
#[derive(Clone, Debug)]
pub struct Db {
    pub backend: Backend,
    pub read: AnyPool,
    pub write: AnyPool,
    /// The newest committed log entries (see [`log::Tail`]); filled by the
    /// log writer, read by `log::read_after`.
    pub tail: std::sync::Arc<log::Tail>,
    /// On SQLite, the event log's own database file (see [`log_file_for`]),
    /// attached to every connection of the pools as schema `log`; `None` on
    /// PostgreSQL, where the log's tables live in the one database.
    pub log_file: Option<std::path::PathBuf>,
    /// Alive while any clone of this handle is: the WAL checkpointer thread
    /// stops when it can no longer upgrade its weak copy.
    _alive: std::sync::Arc<()>,
}

impl Db {
    pub async fn open(storage: &Storage) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        match storage {
            Storage::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                // Every byte but letters and digits percent-encoded: a
                // Windows path (`C:\ProgramData\...`), spaces or `?` would
                // otherwise be read as URL syntax and open the wrong file.
                let name = percent_encoding::percent_encode(
                    path.as_os_str().as_encoded_bytes(),
                    percent_encoding::NON_ALPHANUMERIC,
                );
                let url = format!("sqlite:{name}?mode=rwc");
                let opts = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                let log_file = log_file_for(path);
                prepare_log_file(&log_file)?;
                let attach: std::sync::Arc<str> = attach_sql(&log_file).into();
                // WAL lets consumers and the API read while the log writer
                // commits; synchronous=FULL makes a commit survive power loss,
                // which is what "answered 2xx only after commit" promises.
                // No ping on acquire: a local file connection cannot go
                // away, and the log writer acquires it for every batch.
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect({
                        let attach = attach.clone();
                        move |c, _| {
                            let attach = attach.clone();
                            Box::pin(async move { sqlite_pragmas(c, &attach).await })
                        }
                    })
                    .connect_with(opts.clone())
                    .await?;
                let read = AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(move |c, _| {
                        let attach = attach.clone();
                        Box::pin(async move { sqlite_pragmas(c, &attach).await })
                    })
                    .connect_with(opts)
                    .await?;
                let alive = std::sync::Arc::new(());
                spawn_checkpointer(path, std::sync::Arc::downgrade(&alive));
                spawn_checkpointer(&log_file, std::sync::Arc::downgrade(&alive));
                Ok(Db {
                    backend: Backend::Sqlite,
                    read,
                    write,
                    tail: Default::default(),
                    log_file: Some(log_file),
                    _alive: alive,
                })
            }
            Storage::Postgres { url } => {
                let opts =
                    AnyConnectOptions::from_str(url.expose_secret())?.disable_statement_logging();
                let write = AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts.clone())
                    .await?;
                let read = AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?;
                Ok(Db {
                    backend: Backend::Postgres,
                    read,
                    write,
                    tail: Default::default(),
                    log_file: None,
                    _alive: std::sync::Arc::new(()),
                })
            }
        }
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// `wal_autocheckpoint=0`: a commit never copies the WAL back into the
/// database file itself (that stalled the commit which crossed the
/// threshold for ~15 ms, a latency spike for every cash server waiting on
/// it); the checkpointer thread does it alongside.
async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection, attach: &str) -> Result<(), sqlx::Error> {
    conn.execute(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;",
    )
    .await?;
    conn.execute(sqlx::AssertSqlSafe(attach)).await?;
    Ok(())
}

/// Where the event log lives beside the state database `state`:
/// `tillgate.db` → `tillgate-log.db`.
///
/// Why a file of its own: SQLite has one write lock per file. With the log
/// and the consumers' state in one file, every consumer's commit waited for
/// the log writer's and the other way round; apart, the log writer (one
/// thread, see `log::writer`) never waits for a consumer, and consumers
/// read the log through WAL snapshots that never block it.
pub fn log_file_for(state: &std::path::Path) -> std::path::PathBuf {
    let stem = state
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tillgate".into());
    let name = match state.extension() {
        Some(ext) => format!("{stem}-log.{}", ext.to_string_lossy()),
        None => format!("{stem}-log"),
    };
    state.with_file_name(name)
}

/// Creates the log file if missing and puts it in WAL mode before any pool
/// attaches it: a file attached before its journal mode is set would be
/// read in rollback mode, whose readers block the writer.
fn prepare_log_file(path: &std::path::Path) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    Ok(())
}

/// `ATTACH` of the log file as schema `log`. Unqualified names find a
/// table in `main` first, then in attached files, so queries name `events`
/// wherever it lives (before the move on an upgraded directory: `main`).
fn attach_sql(path: &std::path::Path) -> String {
    let quoted = path.display().to_string().replace('\'', "''");
    format!("ATTACH DATABASE '{quoted}' AS log")
}

/// Copies the WAL back into the database file every 100 ms on a connection
/// of its own. PASSIVE never waits for, nor blocks, writers or readers; the
/// WAL then restarts from its beginning at the next commit once readers
/// allow. Stops when the `Db` it belongs to is gone.
fn spawn_checkpointer(path: &std::path::Path, alive: std::sync::Weak<()>) {
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("tillgate-checkpoint".into())
        .spawn(move || {
            let conn = match rusqlite::Connection::open(&path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "WAL checkpointer cannot open the database");
                    return;
                }
            };
            let _ = conn.execute_batch("PRAGMA busy_timeout=1000;");
            while alive.upgrade().is_some() {
                std::thread::sleep(Duration::from_millis(100));
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "WAL checkpoint failed; will try again");
                }
            }
            // The last handle is gone: copy back what is left (PASSIVE
            // still, a restarted server may already be writing).
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the WAL checkpointer");
    }
}

/// `head` followed by `rows` groups of `cols` placeholders, bound in order.
pub fn multi_row(backend: Backend, head: &str, rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * cols * 5);
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                // Anonymous `?`: with numbered names sqlx looks each one up
                // by number, and SQLite finds a name by a linear scan, so a
                // statement of n parameters cost O(n^2) to bind (measured:
                // the top symbol of the server's profile).
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(i * cols + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Creates a fresh, empty PostgreSQL database on the server `admin_url`
/// points at and returns its URL and name. Tests and benchmarks each want a
/// clean database without a cluster of their own.
pub async fn create_scratch_database(
    admin_url: &str,
    prefix: &str,
) -> Result<(String, String), StoreError> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let (base, _) = admin_url
        .rsplit_once('/')
        .ok_or_else(|| StoreError::NoDatabasePath("the PostgreSQL URL".into()))?;
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok((format!("{base}/{name}"), name))
}

/// Drops a database made by [`create_scratch_database`]; best effort.
pub async fn drop_scratch_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::AnyConnection::connect(admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
    }
}
