//! Schema migrations: SQL files in `migrations/`, one numbering for the
//! whole program, applied in order, each once, each checked.
//!
//! Every file is compiled into the binary (`include_str!`), so a deployed
//! tillgate carries its schema with it. A file is identified by its number
//! and its SHA-256: the database records both when it applies one, and on
//! every start a recorded migration whose file no longer has that checksum
//! stops tillgate with an error. An applied migration is never edited; a
//! change is a new file. A database that records a number this binary does
//! not know was written by a newer tillgate and is refused too, rather than
//! run with a schema the code does not expect.
//!
//! The only dialect difference the files need is the binary column type:
//! `{blob}` becomes `BLOB` on SQLite and `BYTEA` on PostgreSQL before the
//! file runs (the checksum is of the file as written). `{log}` names the
//! schema of the event log's tables for DDL that must land beside them
//! (`CREATE INDEX {log}name ON events ...`): `log.` on SQLite once the log
//! lives in its own attached file (SQLite creates an unqualified index in
//! `main`, away from its table), nothing otherwise.
//!
//! Upgrading data made before the files existed: those releases recorded
//! migrations by name in `tillgate_migrations`. The same SQL now lives in
//! the first files, so a database with those names is recorded as having
//! applied the matching files, and only newer files run.

use sha2::{Digest, Sha256};
use sqlx::Executor;

use super::store::{Backend, Db, StoreError};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The number in the file name (`0004_relay.sql` is 4): the order.
    pub version: u32,
    /// The file name without `.sql`, for messages.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Compiles in `migrations/<stem>.sql`: `migration!("0004_relay")`.
#[macro_export]
macro_rules! migration {
    ($stem:literal) => {
        $crate::core::migrate::Migration::new(
            $stem,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $stem,
                ".sql"
            )),
        )
    };
}

impl Migration {
    /// `stem` is the file name without `.sql`; its leading digits are the
    /// number (checked when compiled: a file without one does not build).
    pub const fn new(stem: &'static str, sql: &'static str) -> Migration {
        let b = stem.as_bytes();
        let mut i = 0;
        let mut version = 0u32;
        while i < b.len() && b[i].is_ascii_digit() {
            version = version * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        assert!(
            i > 0 && i < b.len() && b[i] == b'_',
            "a migration file is named NNNN_name.sql"
        );
        Migration {
            version,
            name: stem,
            sql,
        }
    }
}

/// Migration names recorded by releases before `migrations/`, and the file
/// that holds the same SQL now.
const LEGACY: &[(&str, u32)] = &[
    ("0001_event_log", 1),
    ("0002_events_rest_shift", 2),
    ("0002_order_state", 3),
    ("0004_relay", 4),
    ("0005_alerts", 5),
    ("0600_sms", 6),
    ("loyalty_0001_model", 7),
];

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("two migrations have the number {0}")]
    Duplicate(u32),
    #[error(
        "migration {version} ({name}) was changed after it was applied to this database (recorded checksum {recorded}, file {file}); applied migrations must never be edited: restore the file and add a new migration"
    )]
    Changed {
        version: u32,
        name: String,
        recorded: String,
        file: String,
    },
    #[error(
        "this database has migration {version} ({name}), which this tillgate does not know: it was written by a newer version"
    )]
    Unknown { version: u32, name: String },
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        version: u32,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        MigrateError::Store(StoreError::Db(e))
    }
}

/// Lower-case hex SHA-256 of a file's text.
pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What [`migrate`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Numbers applied now.
    pub applied: Vec<u32>,
    /// Numbers recorded from a pre-`migrations/` database without running.
    pub adopted: Vec<u32>,
    /// Events moved from the state database into the log's own file (an
    /// upgraded SQLite directory; see `log::move_into_own_file`).
    pub log_moved: u64,
}

/// Applies every migration not applied yet, in number order, each in a
/// transaction of its own with its record.
///
/// On PostgreSQL several instances may start at once on one database: the
/// first to take an advisory lock migrates, the others wait for it and then
/// find everything applied.
pub async fn migrate(db: &Db, migrations: &[Migration]) -> Result<Report, MigrateError> {
    if db.backend != Backend::Postgres {
        return migrate_now(db, migrations).await;
    }
    // A connection of the read pool holds the lock; the migrations run on
    // the write pool.
    let mut lock = db.read.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(7411019)")
        .execute(&mut *lock)
        .await?;
    let report = migrate_now(db, migrations).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(7411019)")
        .execute(&mut *lock)
        .await;
    if unlocked.is_err() {
        // The lock dies with its connection.
        lock.detach();
    }
    report
}

async fn migrate_now(db: &Db, migrations: &[Migration]) -> Result<Report, MigrateError> {
    let mut all: Vec<Migration> = migrations.to_vec();
    all.sort_by_key(|m| m.version);
    for w in all.windows(2) {
        if w[0].version == w[1].version {
            return Err(MigrateError::Duplicate(w[0].version));
        }
    }
    db.write
        .execute(
            "CREATE TABLE IF NOT EXISTS tillgate_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
    let mut report = Report::default();
    let recorded: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT version, name, checksum FROM tillgate_schema ORDER BY version")
            .fetch_all(&db.write)
            .await?;
    if recorded.is_empty() {
        report.adopted = adopt_legacy(db, &all).await?;
    }
    let recorded: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT version, name, checksum FROM tillgate_schema ORDER BY version")
            .fetch_all(&db.write)
            .await?;
    for (version, name, sum) in &recorded {
        let version = *version as u32;
        match all.iter().find(|m| m.version == version) {
            None => {
                return Err(MigrateError::Unknown {
                    version,
                    name: name.clone(),
                });
            }
            Some(m) => {
                let file = checksum(m.sql);
                if &file != sum {
                    return Err(MigrateError::Changed {
                        version,
                        name: m.name.to_string(),
                        recorded: sum.clone(),
                        file,
                    });
                }
            }
        }
    }
    for m in &all {
        if recorded.iter().any(|(v, ..)| *v as u32 == m.version) {
            continue;
        }
        let sql = m
            .sql
            .replace(
                "{blob}",
                match db.backend {
                    Backend::Sqlite => "BLOB",
                    Backend::Postgres => "BYTEA",
                },
            )
            .replace("{log}", log_schema(db).await?);
        let failed = |source| MigrateError::Failed {
            version: m.version,
            name: m.name,
            source,
        };
        let mut tx = db.write.begin().await?;
        tx.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
            .await
            .map_err(failed)?;
        record(&mut tx, m).await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        report.applied.push(m.version);
    }
    // After the files, so an upgraded directory gets every column first.
    report.log_moved = super::log::move_into_own_file(db)
        .await
        .map_err(MigrateError::Store)?;
    Ok(report)
}

/// What `{log}` becomes: `log.` when the log's tables are only in the
/// attached log file (SQLite), empty while the database the migrations run
/// on holds them (PostgreSQL; a SQLite directory before the move, or one
/// whose move was interrupted: the move copies from `main` again, so the
/// change belongs there).
async fn log_schema(db: &Db) -> Result<&'static str, sqlx::Error> {
    if db.backend != Backend::Sqlite || db.log_file.is_none() {
        return Ok("");
    }
    let in_main: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'events'",
    )
    .fetch_one(&db.write)
    .await?;
    Ok(if in_main > 0 { "" } else { "log." })
}

async fn record(conn: &mut sqlx::AnyConnection, m: &Migration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tillgate_schema (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(i64::from(m.version))
    .bind(m.name)
    .bind(checksum(m.sql))
    .bind(super::clock::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the files that hold what a pre-`migrations/` release applied.
async fn adopt_legacy(db: &Db, all: &[Migration]) -> Result<Vec<u32>, MigrateError> {
    let exists: Option<i64> = match db.backend {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tillgate_migrations'",
        )
        .fetch_optional(&db.write)
        .await?,
        Backend::Postgres => sqlx::query_scalar(
            "SELECT 1::BIGINT FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'tillgate_migrations'",
        )
        .fetch_optional(&db.write)
        .await?,
    };
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let old: Vec<String> = sqlx::query_scalar("SELECT id FROM tillgate_migrations")
        .fetch_all(&db.write)
        .await?;
    let mut adopted = Vec::new();
    let mut tx = db.write.begin().await?;
    for (legacy, version) in LEGACY {
        if !old.iter().any(|o| o == legacy) {
            continue;
        }
        if let Some(m) = all.iter().find(|m| m.version == *version) {
            record(&mut tx, m).await?;
            adopted.push(*version);
        }
    }
    tx.commit().await?;
    if !adopted.is_empty() {
        tracing::info!(
            ?adopted,
            "recorded the migrations an earlier release applied"
        );
    }
    Ok(adopted)
}
