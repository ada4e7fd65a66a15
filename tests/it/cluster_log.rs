//! Two log writers (two instances) on one PostgreSQL database, committing
//! interleaved: offsets stay dense and in commit order (a reader polling
//! the table meanwhile never sees a hole), the same (guid, seqnumber) sent
//! to both at once is stored once, and gaps are decided on what both
//! committed (no false gap when a stream's events alternate instances).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use secrecy::SecretString;
use tillgate::core::config::Storage;
use tillgate::core::log::{self, AppendOutcome, LogWriter, NewEvent};
use tillgate::core::store::Db;

use crate::harness::fresh_pg_database;

fn new_event(body: &[u8]) -> NewEvent {
    let ev = rk7::read(body).expect("emulator bodies read");
    let guid = ev.guid.as_ref().expect("a guid").canonical();
    let seq = i64::try_from(ev.seqnumber.expect("a seqnumber")).expect("in range");
    NewEvent::from_read(0, guid, seq, ev, Bytes::copy_from_slice(body))
}

/// One instance's storage handle and writer, on the shared database.
async fn instance(url: &str) -> (Db, LogWriter, tokio::task::JoinHandle<()>) {
    let db = Db::open(&Storage::Postgres {
        url: SecretString::from(url.to_string()),
    })
    .await
    .unwrap();
    let (w, task) = log::writer(db.clone(), 64).await.unwrap();
    (db, w, tokio::spawn(task.run()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_interleave_dense_commit_ordered_offsets() {
    if std::env::var("TILLGATE_TEST_DATABASE_URL").is_err() {
        eprintln!("note: TILLGATE_TEST_DATABASE_URL is not set: cluster log test SKIPPED");
        return;
    }
    let url = fresh_pg_database().await;
    {
        let db = Db::open(&Storage::Postgres {
            url: SecretString::from(url.clone()),
        })
        .await
        .unwrap();
        tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
            .await
            .unwrap();
        db.close().await;
    }
    let (db_a, a, run_a) = instance(&url).await;
    let (db_b, b, run_b) = instance(&url).await;
    // Six cash servers, two days: twelve streams.
    let scenario = tillgate_simulate::generate(&tillgate_simulate::Scenario {
        restaurants: 3,
        cash_servers: 2,
        orders: 6,
        days: 2,
        ..tillgate_simulate::Scenario::default()
    });
    let mut streams: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for s in &scenario.servers {
        for e in &s.events {
            let ev = new_event(&e.xml);
            streams
                .entry(ev.stream_guid)
                .or_default()
                .push(e.xml.clone());
        }
    }
    let distinct: usize = streams.values().map(Vec::len).sum();
    assert!(distinct > 500, "{distinct} events");

    // A reader on a third handle (its tail empty: every read from the
    // table) follows the log while both write.
    let reader_db = Db::open(&Storage::Postgres {
        url: SecretString::from(url.clone()),
    })
    .await
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut cursor = 0i64;
            loop {
                let finished = done.load(Ordering::Acquire);
                let got = log::read_after(&reader_db, cursor, 1000, false)
                    .await
                    .unwrap();
                for e in &got {
                    assert_eq!(
                        e.offset,
                        cursor + 1,
                        "a reader saw offset {} right after {cursor}: a hole",
                        e.offset
                    );
                    cursor = e.offset;
                }
                if got.is_empty() {
                    if finished {
                        return cursor;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        })
    };

    // Every stream in order, each event to A or B in turn; every fourth
    // event to both at the same moment.
    let mut tasks = Vec::new();
    for (n, (_, bodies)) in streams.into_iter().enumerate() {
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let mut twins = 0usize;
            for (i, body) in bodies.iter().enumerate() {
                if i % 4 == 3 {
                    let (x, y) = tokio::join!(a.append(new_event(body)), b.append(new_event(body)));
                    let (x, y) = (x.unwrap(), y.unwrap());
                    match (x, y) {
                        (
                            AppendOutcome::Stored { offset: o1 },
                            AppendOutcome::Duplicate { offset: o2 },
                        )
                        | (
                            AppendOutcome::Duplicate { offset: o1 },
                            AppendOutcome::Stored { offset: o2 },
                        ) => {
                            assert_eq!(o1, o2, "the duplicate names the stored offset");
                        }
                        other => panic!("sent to both at once: {other:?}"),
                    }
                    twins += 1;
                } else {
                    let w = if (i + n) % 2 == 0 { &a } else { &b };
                    let out = w.append(new_event(body)).await.unwrap();
                    assert!(matches!(out, AppendOutcome::Stored { .. }), "{out:?}");
                }
            }
            twins
        }));
    }
    let mut twins = 0;
    for t in tasks {
        twins += t.await.unwrap();
    }
    assert!(twins > 100, "{twins} events sent to both");
    done.store(true, Ordering::Release);
    let seen = reader.await.unwrap();
    assert_eq!(seen, distinct as i64, "the reader saw every offset once");

    let all = log::read_after(&db_a, 0, 1_000_000, false).await.unwrap();
    let offsets: Vec<i64> = all.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (1..=distinct as i64).collect::<Vec<_>>(), "dense");
    let keys: HashSet<(String, i64)> = all
        .iter()
        .map(|e| (e.stream_guid.clone(), e.seqnumber))
        .collect();
    assert_eq!(keys.len(), distinct, "each (guid, seqnumber) once");
    assert!(
        log::gaps(&db_a, 0, 100).await.unwrap().is_empty(),
        "no gap: each writer saw the other's commits"
    );
    // Each stream's seqnumbers in offset order are increasing: commit
    // order is the order each stream was sent in.
    let mut last: HashMap<&str, i64> = HashMap::new();
    for e in &all {
        let prev = last.insert(e.stream_guid.as_str(), e.seqnumber);
        assert!(prev.is_none_or(|p| p < e.seqnumber), "{e:?}");
    }

    // A seqnumber jump sent to B after A stored the stream's last event is
    // one gap, found once.
    let (guid, seq) = (
        all[all.len() - 1].stream_guid.clone(),
        all[all.len() - 1].seqnumber,
    );
    let body = scenario
        .servers
        .iter()
        .flat_map(|s| &s.events)
        .map(|e| &e.xml)
        .find(|x| {
            let ev = new_event(x);
            ev.stream_guid == guid && ev.seqnumber == seq
        })
        .unwrap()
        .clone();
    let mut jumped = new_event(&body);
    jumped.seqnumber = seq + 5;
    let out = b.append(jumped).await.unwrap();
    assert_eq!(
        out,
        AppendOutcome::Stored {
            offset: distinct as i64 + 1
        }
    );
    let gaps = log::gaps(&db_a, 0, 100).await.unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].from_seq, gaps[0].to_seq), (seq + 1, seq + 4));

    drop((a, b));
    run_a.await.unwrap();
    run_b.await.unwrap();
    db_a.close().await;
    db_b.close().await;
}
