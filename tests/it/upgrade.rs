//! Data made by the release before `migrations/` existed (see
//! `tests/fixtures/upgrade/README.md`) upgrades in place: the new server
//! starts on it, records the migrations that release had applied without
//! running them again, and serves the same events, orders and cards.

use std::time::Duration;

use serde_json::Value;
use tillgate::core::config::{Config, Storage};

use crate::harness::{self, Backend, TestApp};

const EVENTS: i64 = 131;
const ORDERS: usize = 13;
const CARD: &str = "7770001";
const BALANCE: i64 = 12_345;

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// What the old release's data must still say through the new server.
async fn check_old_data(app: &TestApp) {
    let events = get(app, "/api/events?limit=1000").await;
    assert_eq!(events["head"].as_i64(), Some(EVENTS), "{events}");
    assert_eq!(events["items"].as_array().unwrap().len() as i64, EVENTS);
    let orders = get(app, "/api/orders?limit=100").await;
    assert_eq!(orders["items"].as_array().unwrap().len(), ORDERS);
    let card = get(app, &format!("/api/loyalty/cards/{CARD}")).await;
    assert_eq!(card["balance"].as_i64(), Some(BALANCE), "{card}");
    assert_eq!(card["ledger_balance"].as_i64(), Some(BALANCE), "{card}");
}

/// The rows of `tillgate_schema`, as (version, name).
async fn schema(db: &tillgate::core::store::Db) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT version, name FROM tillgate_schema ORDER BY version")
        .fetch_all(&db.read)
        .await
        .unwrap()
}

async fn upgraded(mut config: Config, dir: tempfile::TempDir) {
    // The fixture's events were received when it was made, longer ago than
    // the default dedupe window: widen it so their resends are compared.
    config.log.dedupe_window = Duration::from_secs(36_500 * 86_400);
    // The old release's own bookkeeping is still there, untouched.
    let db = tillgate::core::store::Db::open(&config.storage)
        .await
        .unwrap();
    let old: Vec<String> = sqlx::query_scalar("SELECT id FROM tillgate_migrations ORDER BY id")
        .fetch_all(&db.read)
        .await
        .unwrap();
    assert_eq!(old.len(), 7, "{old:?}");
    db.close().await;

    let app = harness::start(config, dir).await;
    check_old_data(&app).await;
    // New data goes on from where the old stopped.
    let day = tillgate_simulate::generate(&tillgate_simulate::Scenario {
        orders: 1,
        stations: 1,
        seed: 77,
        ..Default::default()
    });
    let ev = &day.servers[0].events[0];
    let r = app
        .client
        .post(app.url("/rkevent"))
        .body(ev.xml.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let after = get(&app, "/api/events?limit=1").await;
    assert_eq!(after["head"].as_i64(), Some(EVENTS + 1));

    let db = tillgate::core::store::Db::open(&app.config.storage)
        .await
        .unwrap();
    let recorded = schema(&db).await;
    let all = tillgate::app::migrations();
    assert_eq!(recorded.len(), all.len(), "{recorded:?}");
    for (m, (v, name)) in all.iter().zip(&recorded) {
        assert_eq!((i64::from(m.version), m.name), (*v, name.as_str()));
    }
    db.close().await;

    // A second start finds nothing to do and the same data.
    let (config, dir) = app.stop().await;
    let app = harness::start(config, dir).await;
    let after = get(&app, "/api/events?limit=1").await;
    assert_eq!(after["head"].as_i64(), Some(EVENTS + 1));

    // An old event resent byte for byte is still a duplicate of its row
    // (written before bodies were compared, so compared as stored); the
    // same key with other bytes is stored and listed.
    let old = app
        .client
        .get(app.url("/api/events/7/raw"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let ack = |r: reqwest::Response| async move {
        assert!(r.status().is_success(), "{}", r.status());
        r.json::<Value>().await.unwrap()
    };
    let post = |body: Vec<u8>| app.client.post(app.url("/rkevent")).body(body).send();
    let again = ack(post(old.clone()).await.unwrap()).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(again["offset"].as_i64(), Some(7));
    let mut other = old;
    other.extend_from_slice(b"\n");
    let reused = ack(post(other).await.unwrap()).await;
    assert_eq!(reused["status"], "stored", "{reused}");
    assert_eq!(reused["offset"].as_i64(), Some(EVENTS + 2));
    let reuses = get(&app, "/api/key-reuses").await;
    assert_eq!(
        reuses["items"][0]["first_offset"].as_i64(),
        Some(7),
        "{reuses}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_sqlite_data_directory_of_the_previous_release_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/upgrade/v0.1-sqlite.db"
    );
    std::fs::copy(fixture, dir.path().join("tillgate.db")).unwrap();
    let config = Config::for_tests(dir.path());
    assert!(matches!(config.storage, Storage::Sqlite { .. }));
    upgraded(config, dir).await;
}

#[tokio::test]
async fn a_postgres_database_of_the_previous_release_upgrades_in_place() {
    if !harness::backends().contains(&Backend::Postgres) {
        return;
    }
    let url = harness::fresh_pg_database().await;
    let dump = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/upgrade/v0.1-postgres.sql"
    ))
    .unwrap();
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.storage = Storage::Postgres {
        url: secrecy::SecretString::from(url),
    };
    upgraded(config, dir).await;
}

/// An applied migration whose file changed afterwards stops the server with
/// an error naming it; so does a database from a newer tillgate.
#[tokio::test]
async fn a_changed_or_unknown_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_tests(dir.path());
    let app = harness::start(config, dir).await;
    let (config, dir) = app.stop().await;
    let db = tillgate::core::store::Db::open(&config.storage)
        .await
        .unwrap();
    sqlx::query("UPDATE tillgate_schema SET checksum = 'edited' WHERE version = 4")
        .execute(&db.write)
        .await
        .unwrap();
    let e = tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("migration 4 (0004_relay) was changed"), "{e}");
    // The server refuses to start on it, rather than run on a schema it
    // does not know.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        tillgate::run(config.clone(), listener, Default::default()),
    )
    .await
    .expect("refuses promptly");
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains("was changed"), "{e}");

    let sum = tillgate::core::migrate::checksum(tillgate::app::migrations()[3].sql);
    sqlx::query("UPDATE tillgate_schema SET checksum = $1 WHERE version = 4")
        .bind(sum)
        .execute(&db.write)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tillgate_schema (version, name, checksum, applied_at) VALUES (9999, '9999_future', 'x', 0)")
        .execute(&db.write)
        .await
        .unwrap();
    let e = tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("9999") && e.contains("newer version"), "{e}");
    db.close().await;
    drop(dir);
}

/// The table names of one SQLite file (not counting attached ones).
fn tables(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn the_log_moves_into_a_file_of_its_own_and_an_interrupted_move_is_done_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("tillgate.db");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/upgrade/v0.1-sqlite.db"
    );
    std::fs::copy(fixture, &state).unwrap();
    // A move that stopped half-way: the log file already has an `events`
    // table with a partial copy (one row); the state file is still whole.
    let log_file = tillgate::core::store::log_file_for(&state);
    assert_eq!(log_file, dir.path().join("tillgate-log.db"));
    {
        let conn = rusqlite::Connection::open(&log_file).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (log_offset BIGINT PRIMARY KEY, received_at BIGINT NOT NULL, stream_guid TEXT NOT NULL, seqnumber BIGINT NOT NULL, situation BIGINT NOT NULL, rest_code TEXT, event_time TEXT, shift_num BIGINT, order_guid TEXT, body BLOB NOT NULL);
             INSERT INTO events VALUES (1, 0, 'x', 1, 0, NULL, NULL, NULL, NULL, x'00');",
        )
        .unwrap();
    }
    let old_body: Vec<u8> = rusqlite::Connection::open(&state)
        .unwrap()
        .query_row("SELECT body FROM events WHERE log_offset = 7", [], |r| {
            r.get(0)
        })
        .unwrap();

    let app = harness::start(Config::for_tests(dir.path()), dir).await;
    check_old_data(&app).await;
    // A new event is stored compressed, the old ones as they were; both
    // come back through the API exactly as received.
    let day = tillgate_simulate::generate(&tillgate_simulate::Scenario {
        orders: 1,
        stations: 1,
        seed: 78,
        ..Default::default()
    });
    // The longest body of the day (a whole order): short ones barely shrink.
    let new_body = day.servers[0]
        .events
        .iter()
        .map(|e| e.xml.clone())
        .max_by_key(|b| b.len())
        .unwrap();
    let r = app
        .client
        .post(app.url("/rkevent"))
        .body(new_body.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for (offset, body) in [(7, &old_body), (EVENTS + 1, &new_body)] {
        let r = app
            .client
            .get(app.url(&format!("/api/events/{offset}/raw")))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        assert_eq!(&r.bytes().await.unwrap()[..], &body[..], "offset {offset}");
    }
    let (_config, dir) = app.stop().await;

    let state_tables = tables(&state);
    for t in ["events", "streams", "gaps", "quarantine"] {
        assert!(
            !state_tables.contains(&t.to_string()),
            "{t} left in {state_tables:?}"
        );
    }
    assert!(state_tables.contains(&"consumer_cursors".to_string()));
    let log_tables = tables(&log_file);
    assert_eq!(log_tables, ["events", "gaps", "quarantine", "streams"]);
    let conn = rusqlite::Connection::open(&log_file).unwrap();
    let (n, raw, lz4): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), SUM(codec = 0), SUM(codec = 1) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((n, raw, lz4), (EVENTS + 1, EVENTS, 1));
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT body FROM events WHERE log_offset = $1",
            [EVENTS + 1],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        stored.len() * 2 < new_body.len(),
        "{} of {}",
        stored.len(),
        new_body.len()
    );
    drop(dir);
}

/// A SQLite directory of the release before migration 0018, its log
/// already in a file of its own, gets the migration in that file (where
/// the index must be), and a resend is still told from a reused key.
#[tokio::test]
async fn migration_0018_reaches_a_log_already_in_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("tillgate.db");
    let log_file = tillgate::core::store::log_file_for(&state);
    let app = harness::start(Config::for_tests(dir.path()), dir).await;
    let day = tillgate_simulate::generate(&tillgate_simulate::Scenario {
        orders: 1,
        stations: 1,
        seed: 18,
        ..Default::default()
    });
    let body = day.servers[0].events[0].xml.clone();
    let post = |app: &TestApp, body: Vec<u8>| {
        let r = app.client.post(app.url("/rkevent")).body(body).send();
        async move {
            let r = r.await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(post(&app, body.clone()).await["offset"].as_i64(), Some(1));
    let (config, dir) = app.stop().await;

    // Back to what the release before left: the unique key, no mark, 0018
    // not recorded.
    rusqlite::Connection::open(&log_file)
        .unwrap()
        .execute_batch(
            "DROP INDEX events_key_reused; DROP INDEX events_stream_seq_any; \
             ALTER TABLE events DROP COLUMN first_offset; \
             CREATE UNIQUE INDEX events_stream_seq ON events (stream_guid, seqnumber);",
        )
        .unwrap();
    rusqlite::Connection::open(&state)
        .unwrap()
        .execute("DELETE FROM tillgate_schema WHERE version = 18", [])
        .unwrap();

    let app = harness::start(config, dir).await;
    let indexes: Vec<String> = {
        let conn = rusqlite::Connection::open(&log_file).unwrap();
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(
        indexes.contains(&"events_stream_seq_any".to_string())
            && indexes.contains(&"events_key_reused".to_string())
            && !indexes.contains(&"events_stream_seq".to_string()),
        "{indexes:?}"
    );
    assert!(!tables(&state).contains(&"events".to_string()));
    let again = post(&app, body.clone()).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(again["offset"].as_i64(), Some(1));
    let mut other = body;
    other.extend_from_slice(b"\n");
    let reused = post(&app, other).await;
    assert_eq!(reused["status"], "stored", "{reused}");
    assert_eq!(reused["offset"].as_i64(), Some(2));
    let reuses = get(&app, "/api/key-reuses").await;
    assert_eq!(
        reuses["items"][0]["first_offset"].as_i64(),
        Some(1),
        "{reuses}"
    );
    app.stop().await;
}
