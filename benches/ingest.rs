//! What one ingested event costs at least, piece by piece, on an idle
//! machine: reading the body at the edge, and making it durable.
//!
//! `cargo bench --bench ingest`. `tillgate bench` measures the whole server
//! under 64 senders; this one says how much of its per-event budget the
//! two unavoidable steps take, so a target for the whole can be checked
//! against them (see README, "Ingest load benchmark"):
//!
//! - `read_event`: `ingest::to_new_event` (rk7 read plus the log record) on
//!   the same emulator bodies `tillgate bench` posts;
//! - `sqlite_floor_batch64`: 64 of those rows into the real `events` table
//!   with rusqlite, one multi-row insert and one synchronous=FULL commit per
//!   64: the least any durable SQLite log can do per event;
//! - `log_writer_batch64`: the same through tillgate's log writer (64
//!   concurrent appends, group-committed), without HTTP.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
use tillgate::core::config::Storage;
use tillgate::core::log::{self, NewEvent};
use tillgate::core::store::Db;

const BATCH: usize = 64;

/// `tillgate bench`'s own workload (64 senders × 1,500 events after a
/// warm-up of 50, seed 1), every 25th body: the same mix and mean size.
fn bodies() -> Vec<Bytes> {
    tillgate_simulate::workload(64, 1550, 1)
        .into_iter()
        .flat_map(|s| s.into_iter().skip(50))
        .step_by(25)
        .map(Bytes::from)
        .collect()
}

/// Log records with fresh (guid, seqnumber) so none is a duplicate.
struct Fresh {
    events: Vec<NewEvent>,
    next: i64,
    at: usize,
}

impl Fresh {
    fn take(&mut self, n: usize) -> Vec<NewEvent> {
        (0..n)
            .map(|_| {
                let mut e = self.events[self.at % self.events.len()].clone();
                self.at += 1;
                e.stream_guid = "{BE9C0000-0000-4000-8000-00000000BE9C}".into();
                e.seqnumber = self.next;
                self.next += 1;
                e
            })
            .collect()
    }
}

fn bench(c: &mut Criterion) {
    let bodies = bodies();
    let mean = bodies.iter().map(|b| b.len()).sum::<usize>() / bodies.len();
    let events: Vec<NewEvent> = bodies
        .iter()
        .map(|b| tillgate::ingest::to_new_event(b.clone(), 0).expect("emulator bodies read"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut g = c.benchmark_group(format!("ingest_per_event_mean_body_{mean}_bytes"));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(6));

    g.throughput(Throughput::Elements(bodies.len() as u64));
    g.bench_function("read_event", |b| {
        b.iter(|| {
            bodies
                .iter()
                .filter(|body| tillgate::ingest::to_new_event((*body).clone(), 0).is_ok())
                .count()
        })
    });

    g.throughput(Throughput::Elements(BATCH as u64));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("floor.sqlite");
    rt.block_on(async {
        let db = Db::open(&Storage::Sqlite { path: path.clone() })
            .await
            .expect("open");
        tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
            .await
            .expect("migrate");
        db.close().await;
    });
    // The log's own file, where `events` lives.
    let mut conn = rusqlite::Connection::open(tillgate::core::store::log_file_for(&path))
        .expect("rusqlite open");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .expect("pragmas");
    let mut fresh = Fresh {
        events: events.clone(),
        next: 1,
        at: 0,
    };
    let mut offset = 0i64;
    let sql = format!(
        "INSERT INTO events (log_offset, received_at, stream_guid, seqnumber, situation, rest_code, event_time, shift_num, order_guid, body, codec) VALUES {}",
        vec!["(?,?,?,?,?,?,?,?,?,?,?)"; BATCH].join(",")
    );
    for codec in ["raw", "lz4", "zstd1", "zstd3"] {
        let name = if codec == "raw" {
            "sqlite_floor_batch64".to_string()
        } else {
            format!("sqlite_floor_batch64_{codec}")
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let batch = fresh.take(BATCH);
                let tx = conn.transaction().expect("begin");
                {
                    let mut st = tx.prepare_cached(&sql).expect("prepare");
                    let mut params: Vec<Box<dyn rusqlite::ToSql>> = Vec::with_capacity(BATCH * 10);
                    for e in batch {
                        offset += 1;
                        let body = match codec {
                            "lz4" => lz4_flex::compress_prepend_size(&e.body),
                            "zstd1" => zstd::bulk::compress(&e.body, 1).expect("zstd"),
                            "zstd3" => zstd::bulk::compress(&e.body, 3).expect("zstd"),
                            _ => e.body.to_vec(),
                        };
                        params.push(Box::new(offset));
                        params.push(Box::new(e.received_at));
                        params.push(Box::new(e.stream_guid));
                        params.push(Box::new(e.seqnumber));
                        params.push(Box::new(e.situation));
                        params.push(Box::new(e.rest_code));
                        params.push(Box::new(e.event_time));
                        params.push(Box::new(e.shift_num));
                        params.push(Box::new(e.order_guid));
                        params.push(Box::new(body));
                        params.push(Box::new(match codec {
                            "raw" => 0i64,
                            "lz4" => 1,
                            _ => 2,
                        }));
                    }
                    st.execute(rusqlite::params_from_iter(params.iter()))
                        .expect("insert");
                }
                tx.commit().expect("commit");
            })
        });
    }
    drop(conn);

    let dir2 = tempfile::tempdir().expect("temp dir");
    let (db, writer) = rt.block_on(async {
        let db = Db::open(&Storage::Sqlite {
            path: dir2.path().join("writer.sqlite"),
        })
        .await
        .expect("open");
        tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
            .await
            .expect("migrate");
        let (writer, task) = log::writer(db.clone(), 512).await.expect("writer");
        rt.spawn(task.run());
        (db, writer)
    });
    let mut fresh = Fresh {
        events,
        next: 1,
        at: 0,
    };
    g.bench_function("log_writer_batch64", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = fresh.take(BATCH);
                let t = Instant::now();
                rt.block_on(futures::future::join_all(
                    batch.into_iter().map(|e| writer.append(e)),
                ))
                .into_iter()
                .for_each(|r| {
                    r.expect("append");
                });
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    drop(writer);
    rt.block_on(db.close());
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().final_summary();
}
