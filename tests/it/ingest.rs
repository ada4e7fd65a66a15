//! Ingest: durability, duplicates, gaps, bad input, auth.

use crate::harness::{backends, spawn_app, spawn_app_with};

fn event(guid: &str, seq: u64, situation: i64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="199990093" DateTime="2019-12-18T17:18:00" Situation="{situation}" seqnumber="{seq}" guid="{guid}" name="Login" ShiftNum="1" ShiftDate="2019-11-18T00:00:00">
<Station id="15003" code="1" name="MM_CASH" NetName="MM_CASH_169058"/>
<Server id="15002" code="15002" name="MM_MID" NetName="MM_MID"/>
<Waiter id="1" code="7" name="Administrator"><Role id="100007" code="7" name="Administrators"/></Waiter>
<Item/>
</a>"#
    )
}

const G1: &str = "{81A89081-D394-4070-BD37-A8E54CCA7B56}";
const G2: &str = "{9ECCB1B5-97EE-4B88-9840-8568F05586D0}";

#[tokio::test]
async fn accepts_on_every_known_path_and_assigns_offsets() {
    for b in backends() {
        let app = spawn_app(b).await;
        let mut offsets = Vec::new();
        for (i, path) in ["/rkevent", "/api/v1/events", "/api/v4/kds/events", "/"]
            .iter()
            .enumerate()
        {
            let r = app.post_event(path, event(G1, i as u64 + 1, 21)).await;
            assert_eq!(r.status(), 200, "{path}");
            let ack: serde_json::Value = r.json().await.unwrap();
            assert_eq!(ack["status"], "stored");
            offsets.push(ack["offset"].as_i64().unwrap());
        }
        assert!(offsets.windows(2).all(|w| w[1] > w[0]), "{offsets:?}");
        let log = app.get_json("/api/events?after=0&limit=10").await;
        let items = log["items"].as_array().unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0]["guid"], G1);
        assert_eq!(items[0]["seqnumber"], 1);
        assert_eq!(items[0]["situation"], 21);
        assert_eq!(items[0]["restcode"], "199990093");
        assert!(items[0]["received_at"].as_str().unwrap().ends_with('Z'));
        app.stop().await;
    }
}

#[tokio::test]
async fn duplicate_is_stored_once_and_answered_200_twice() {
    for b in backends() {
        let app = spawn_app(b).await;
        let first = app.ingest(event(G1, 1, 21)).await;
        let second = app.ingest(event(G1, 1, 21)).await;
        assert_eq!(first["status"], "stored");
        assert_eq!(second["status"], "duplicate");
        assert_eq!(first["offset"], second["offset"]);
        let log = app.get_json("/api/events?after=0&limit=10").await;
        assert_eq!(log["items"].as_array().unwrap().len(), 1);
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("tillgate_events_duplicate_total"),
            "{metrics}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn seqnumber_jump_is_a_gap_but_a_new_guid_from_one_is_not() {
    for b in backends() {
        let app = spawn_app(b).await;
        app.ingest(event(G1, 1, 1)).await;
        app.ingest(event(G1, 2, 21)).await;
        app.ingest(event(G1, 7, 10)).await; // 3..6 lost
        app.ingest(event(G2, 1, 1)).await; // cash server restarted: new run
        app.ingest(event(G2, 2, 21)).await;
        let gaps = app.get_json("/api/gaps").await;
        let items = gaps["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{gaps}");
        assert_eq!(items[0]["stream_guid"], G1);
        assert_eq!(items[0]["from_seq"], 3);
        assert_eq!(items[0]["to_seq"], 6);
        assert_eq!(items[0]["missing"], 4);
        app.stop().await;
    }
}

#[tokio::test]
async fn unreadable_bodies_are_quarantined_verbatim_with_200() {
    for b in backends() {
        let app = spawn_app(b).await;
        let bodies: Vec<(&[u8], &str)> = vec![
            (b"not xml at all", ""),
            (b"<a RestCode=\"1\" Situation=\"3\" seqnumber=\"1\" guid=\"{81A89081-D394-4070-BD37-A8E54CCA7B56}\"><Order orderSum=", ""),
            (b"<b/>", ""),
            (b"<a Situation=\"x\" seqnumber=\"1\" guid=\"{81A89081-D394-4070-BD37-A8E54CCA7B56}\"/>", ""),
            (b"<a Situation=\"3\" guid=\"{81A89081-D394-4070-BD37-A8E54CCA7B56}\"/>", "seqnumber"),
            (b"", "empty"),
            (&[0xff, 0xfe, 0x00, 0x01], ""),
        ];
        for (body, reason_part) in &bodies {
            let r = app.post_event("/rkevent", body.to_vec()).await;
            assert_eq!(r.status(), 200);
            let ack: serde_json::Value = r.json().await.unwrap();
            assert_eq!(ack["status"], "quarantined", "{ack}");
            let _ = reason_part;
        }
        let q = app.get_json("/api/quarantine?limit=100").await;
        let items = q["items"].as_array().unwrap();
        assert_eq!(items.len(), bodies.len());
        for (item, (body, reason_part)) in items.iter().zip(&bodies) {
            assert!(!item["reason"].as_str().unwrap().is_empty());
            assert!(
                item["reason"].as_str().unwrap().contains(reason_part),
                "{item}"
            );
            let id = item["id"].as_i64().unwrap();
            let raw = app
                .get(&format!("/api/quarantine/{id}/raw"))
                .await
                .bytes()
                .await
                .unwrap();
            assert_eq!(&raw[..], *body, "body kept verbatim");
        }
        // Nothing reached the log.
        let log = app.get_json("/api/events?after=0&limit=10").await;
        assert!(log["items"].as_array().unwrap().is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn reject_switch_answers_400_and_limits_and_methods() {
    let app = spawn_app_with(crate::harness::Backend::Sqlite, |c| {
        c.ingest.reject_bad_input = true;
        c.ingest.max_body_bytes = 4096;
    })
    .await;
    let r = app.post_event("/rkevent", "garbage").await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unreadable_event");
    let r = app.post_event("/rkevent", vec![b' '; 5000]).await;
    assert_eq!(r.status(), 413);
    let r = app.client.get(app.url("/rkevent")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = app
        .client
        .put(app.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    app.stop().await;
}

#[tokio::test]
async fn default_body_limit_is_16_mib() {
    let app = spawn_app(crate::harness::Backend::Sqlite).await;
    let r = app
        .post_event("/rkevent", vec![b' '; 16 * 1024 * 1024 + 1])
        .await;
    assert_eq!(r.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn api_token_and_ingest_key() {
    let app = spawn_app_with(crate::harness::Backend::Sqlite, |c| {
        c.api_token = Some("0123456789abcdef-token".to_string().into());
        c.ingest.key = Some("k3y".to_string().into());
    })
    .await;
    // Ingest without / with a wrong / with the right key.
    assert_eq!(
        app.post_event("/rkevent", event(G1, 1, 21)).await.status(),
        401
    );
    assert_eq!(
        app.post_event("/rkevent?key=nope", event(G1, 1, 21))
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_event("/rkevent?key=k3y", event(G1, 1, 21))
            .await
            .status(),
        200
    );
    // API without a token, with a wrong one, with the right one.
    let r = app.client.get(app.url("/api/events")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = app
        .client
        .get(app.url("/api/events"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.get("/api/events").await.status(), 200);
    // Health and metrics stay open for probes.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn without_token_the_api_is_open_on_loopback() {
    let app = spawn_app(crate::harness::Backend::Sqlite).await;
    let r = app.client.get(app.url("/api/events")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn events_survive_a_restart() {
    for b in backends() {
        let app = spawn_app(b).await;
        for i in 1..=20 {
            app.ingest(event(G1, i, 21)).await;
        }
        let (config, dir) = app.stop().await;
        let app = crate::harness::start(config, dir).await;
        let log = app.get_json("/api/events?after=0&limit=100").await;
        assert_eq!(log["items"].as_array().unwrap().len(), 20);
        // Offsets continue after the restart, dedupe still works.
        let dup = app.ingest(event(G1, 20, 21)).await;
        assert_eq!(dup["status"], "duplicate");
        let next = app.ingest(event(G1, 21, 21)).await;
        assert_eq!(next["offset"], 21);
        app.stop().await;
    }
}

#[tokio::test]
async fn retention_prunes_only_what_every_consumer_has_passed() {
    for b in backends() {
        let app = spawn_app(b).await;
        for i in 1..=10 {
            app.ingest(event(G1, i, 21)).await;
        }
        app.wait_consumer("orders").await;
        let (config, _dir) = app.stop().await;
        let db = tillgate::core::store::Db::open(&config.storage)
            .await
            .unwrap();
        // A consumer that stopped at offset 4 (a destination that is down).
        let mut tx = db.write.begin().await.unwrap();
        tillgate::core::log::set_cursor(&mut tx, "lagging", 4)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (log, writer) = tillgate::core::log::writer(db.clone(), 16).await.unwrap();
        let writer = tokio::spawn(writer.run());
        let pruner = tillgate::core::log::Pruner {
            db: db.clone(),
            log,
            retention: std::time::Duration::from_secs(3600),
        };
        // Nothing is old enough yet.
        let now = tillgate::core::clock::now_ms();
        assert_eq!(pruner.run_once(now).await.unwrap(), 0);
        // Two hours later: old enough, but the lagging consumer holds 5..10.
        assert_eq!(pruner.run_once(now + 7_200_000).await.unwrap(), 4);
        let left = tillgate::core::log::read_after(&db, 0, 100, false)
            .await
            .unwrap();
        assert_eq!(left.first().map(|e| e.offset), Some(5));
        assert_eq!(left.len(), 6);
        drop(pruner);
        writer.await.unwrap();
        db.close().await;
    }
}

#[tokio::test]
async fn graceful_shutdown_commits_everything_and_leaves_a_clean_cursor() {
    for b in backends() {
        let app = spawn_app(b).await;
        // Many posts in flight when the shutdown comes.
        let mut posts = tokio::task::JoinSet::new();
        for i in 1..=200u64 {
            let client = app.client.clone();
            let url = app.url("/rkevent");
            posts.spawn(async move {
                let r = client.post(url).body(event(G2, i, 21)).send().await;
                r.map(|r| r.status().is_success()).unwrap_or(false)
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (config, dir) = app.stop().await;
        let mut acked = 0;
        while let Some(ok) = posts.join_next().await {
            acked += ok.unwrap() as i64;
        }
        let db = tillgate::core::store::Db::open(&config.storage)
            .await
            .unwrap();
        let head = tillgate::core::log::head(&db).await.unwrap();
        assert!(head >= acked, "{acked} acknowledged but only {head} stored");
        db.close().await;
        // The order-state consumer stopped at an offset it fully applied:
        // on restart it goes on from there and reaches the head.
        let app = crate::harness::start(config, dir).await;
        app.wait_consumer("orders").await;
        app.stop().await;
    }
}
