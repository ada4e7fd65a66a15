//! The durable floor of the ingest benchmark: the least time any durable
//! SQLite log needs for the same events on this disk, measured in the same
//! run as tillgate's figure so the two compare on equal terms.
//!
//! The bodies are the load's own, in the order the senders post them, in
//! groups of as many events as there are senders (with one request in
//! flight per sender, no group commit can hold more). Each group is one
//! transaction of plain inserts into the log's real table (the same schema,
//! indexes and pragmas, the checkpointer running alongside) with one
//! synchronous=FULL commit. Nothing else: no HTTP, no reading, no
//! duplicate or gap checks, no consumers.

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tillgate::core::config::Storage;
use tillgate::core::log::Codec;
use tillgate::core::store::Db;

use super::ingest::Figures;

/// Appends every measured body of `streams` (those after `warmup`) in
/// groups of `group`, stored with `codec`.
pub async fn run(
    streams: &[Vec<Vec<u8>>],
    warmup: usize,
    group: usize,
    codec: Codec,
) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("temporary data dir")?;
    let path = dir.path().join("floor.db");
    // The real schema, and a live handle so the WAL checkpointer runs as
    // it does under tillgate.
    let db = Db::open(&Storage::Sqlite { path: path.clone() }).await?;
    tillgate::core::migrate::migrate(&db, &tillgate::app::migrations()).await?;
    let log_file = db
        .log_file
        .clone()
        .context("a SQLite handle has a log file")?;
    let mut conn = rusqlite::Connection::open(&log_file)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;",
    )?;
    let longest = streams.iter().map(Vec::len).max().unwrap_or(0);
    let order: Vec<&[u8]> = (warmup..longest)
        .flat_map(|i| {
            streams
                .iter()
                .filter_map(move |s| s.get(i).map(Vec::as_slice))
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut offset = 0i64;
    let mut bytes = 0u64;
    let started = Instant::now();
    for chunk in order.chunks(group.max(1)) {
        let t = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (log_offset, received_at, stream_guid, seqnumber, situation, body, codec) VALUES (?1, ?2, 'floor', ?1, 0, ?3, ?4)",
            )?;
            for body in chunk {
                offset += 1;
                insert.execute(rusqlite::params![
                    offset,
                    0i64,
                    codec.encode(body),
                    codec.id()
                ])?;
                bytes += body.len() as u64;
            }
        }
        tx.commit()?;
        hist.saturating_record((t.elapsed().as_micros() as u64).max(1));
    }
    let elapsed = started.elapsed();
    drop(conn);
    db.close().await;
    Ok(Figures {
        target: match codec {
            Codec::None => "floor-raw".into(),
            Codec::Lz4 => "floor-lz4".into(),
        },
        events: offset as u64,
        errors: 0,
        elapsed,
        p50: Duration::from_micros(hist.value_at_quantile(0.50)),
        p99: Duration::from_micros(hist.value_at_quantile(0.99)),
        max: Duration::from_micros(hist.max()),
        bytes,
    })
}
