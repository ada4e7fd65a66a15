//! The rules' and the watchdog's memory: each order as last seen (with
//! what was already alerted on), each restaurant's shift and last activity,
//! each station's state, and the marks that make a silence alert once.

use super::Tx;
use crate::core::store::{self, Backend, Db, StoreError};

/// An order's memory (JSON of `rules::OrderMemory`), if the rules saw it.
pub async fn order_memory(
    conn: &mut sqlx::AnyConnection,
    order_guid: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT memory FROM alerts_orders WHERE order_guid = $1")
            .bind(order_guid)
            .fetch_optional(conn)
            .await?,
    )
}

pub async fn save_order_memories(
    tx: &mut Tx,
    backend: Backend,
    rows: &[(&String, String)],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(200) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (order_guid) DO UPDATE SET memory = excluded.memory",
            store::multi_row(
                backend,
                "INSERT INTO alerts_orders (order_guid, memory) VALUES ",
                chunk.len(),
                2
            )
        )));
        for (key, json) in chunk {
            q = q.bind(key.as_str()).bind(json.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A restaurant as the rules and the watchdog remember it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RestRow {
    pub rest_code: String,
    /// The highest shift seen.
    pub shift_num: Option<i64>,
    /// When its last event was received (clock ms).
    pub last_seen: i64,
    /// The cash server's time of that event.
    pub last_event_time: Option<String>,
    /// The log offset of that event.
    pub last_offset: i64,
    /// 1 once "cash server silent" was raised for the current silence.
    pub silent_alerted: i64,
    /// The last shift whose report was queued.
    pub reported_shift: Option<i64>,
}

pub async fn rest(
    conn: &mut sqlx::AnyConnection,
    rest_code: &str,
) -> Result<Option<RestRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT rest_code, shift_num, last_seen, last_event_time, last_offset, silent_alerted, reported_shift \
         FROM alerts_rests WHERE rest_code = $1",
    )
    .bind(rest_code)
    .fetch_optional(conn)
    .await?)
}

/// Stores restaurants an event touched; a new event ends a silence.
pub async fn save_rests(tx: &mut Tx, backend: Backend, rows: &[RestRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(100) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (rest_code) DO UPDATE SET shift_num = excluded.shift_num, \
             last_seen = excluded.last_seen, last_event_time = excluded.last_event_time, last_offset = excluded.last_offset, \
             silent_alerted = 0, reported_shift = excluded.reported_shift",
            store::multi_row(
                backend,
                "INSERT INTO alerts_rests (rest_code, shift_num, last_seen, last_event_time, last_offset, silent_alerted, reported_shift) VALUES ",
                chunk.len(),
                7
            )
        )));
        for r in chunk {
            q = q
                .bind(r.rest_code.as_str())
                .bind(r.shift_num)
                .bind(r.last_seen)
                .bind(r.last_event_time.as_deref())
                .bind(r.last_offset)
                .bind(0i64)
                .bind(r.reported_shift);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn set_rest_silent(tx: &mut Tx, rest_code: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE alerts_rests SET silent_alerted = 1 WHERE rest_code = $1")
        .bind(rest_code)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn set_reported_shift(
    tx: &mut Tx,
    rest_code: &str,
    shift: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE alerts_rests SET reported_shift = $2 WHERE rest_code = $1")
        .bind(rest_code)
        .bind(shift)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether a station is started (`None`: never seen).
pub async fn station_started(
    conn: &mut sqlx::AnyConnection,
    station_key: &str,
) -> Result<Option<bool>, StoreError> {
    let started: Option<i64> =
        sqlx::query_scalar("SELECT started FROM alerts_stations WHERE station_key = $1")
            .bind(station_key)
            .fetch_optional(conn)
            .await?;
    Ok(started.map(|s| s == 1))
}

/// A station as an event left it.
#[derive(Debug, Clone)]
pub struct StationWrite {
    pub station_key: String,
    pub rest_code: Option<String>,
    pub name: String,
    pub started: bool,
    pub last_seen: i64,
    pub last_event_time: Option<String>,
}

/// Stores stations an event touched; a new event ends a silence.
pub async fn save_stations(
    tx: &mut Tx,
    backend: Backend,
    rows: &[StationWrite],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(100) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (station_key) DO UPDATE SET rest_code = excluded.rest_code, \
             name = excluded.name, started = excluded.started, last_seen = excluded.last_seen, \
             last_event_time = excluded.last_event_time, silent_alerted = 0",
            store::multi_row(
                backend,
                "INSERT INTO alerts_stations (station_key, rest_code, name, started, last_seen, last_event_time, silent_alerted) VALUES ",
                chunk.len(),
                7
            )
        )));
        for s in chunk {
            q = q
                .bind(s.station_key.as_str())
                .bind(s.rest_code.as_deref())
                .bind(s.name.as_str())
                .bind(s.started as i64)
                .bind(s.last_seen)
                .bind(s.last_event_time.as_deref())
                .bind(0i64);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A started station not yet alerted as silent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuietStation {
    pub station_key: String,
    pub rest_code: Option<String>,
    pub name: String,
    pub last_seen: i64,
    pub last_event_time: Option<String>,
}

pub async fn quiet_stations(tx: &mut Tx) -> Result<Vec<QuietStation>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT station_key, rest_code, name, last_seen, last_event_time FROM alerts_stations \
         WHERE started = 1 AND silent_alerted = 0",
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn set_station_silent(tx: &mut Tx, station_key: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE alerts_stations SET silent_alerted = 1 WHERE station_key = $1")
        .bind(station_key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A started station of a restaurant, for `/status`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OnlineStation {
    pub name: String,
    pub last_event_time: Option<String>,
}

pub async fn online_stations(db: &Db, rest_code: &str) -> Result<Vec<OnlineStation>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT name, last_event_time FROM alerts_stations WHERE rest_code = $1 AND started = 1 ORDER BY name",
    )
    .bind(rest_code)
    .fetch_all(&db.read)
    .await?)
}

/// The restaurant's current shift, for `/report` without a number.
pub async fn current_shift(db: &Db, rest_code: &str) -> Result<Option<i64>, StoreError> {
    let mut conn = db.read.acquire().await?;
    Ok(rest(&mut conn, rest_code).await?.and_then(|r| r.shift_num))
}
