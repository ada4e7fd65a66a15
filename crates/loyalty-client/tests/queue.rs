//! The client's queue against local fake servers: unreachable, 5xx, 4xx.

use std::sync::{Arc, Mutex};

use tillgate_loyalty_client::{
    Client, ClientError, Identifier, Line, Purchase, PurchaseOutcome, Settings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn settings(base: String) -> Settings {
    Settings {
        base_url: base,
        register: "till".into(),
        password: "pw-12345678".to_string().into(),
        timeout: std::time::Duration::from_secs(3),
    }
}

fn sale(op: &str) -> Purchase {
    Purchase {
        operation_id: op.into(),
        cashier: "c".into(),
        local_time: "2026-10-03T12:00:00".into(),
        identifier: Identifier::auto("1"),
        lines: vec![Line {
            goods_id: "g".into(),
            price: 100,
            quantity: 1000,
            amount: 100,
        }],
        bonus_spend: 0,
    }
}

/// A fake tillgate answering every request with `status` and `body`,
/// recording the request bodies it saw.
async fn fake(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = l.accept().await else {
                return;
            };
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            seen.lock()
                                .unwrap()
                                .push(text[end + 4..end + 4 + len].to_string());
                            let resp = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = sock.write_all(resp.as_bytes()).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn server_errors_queue_the_sale_and_keep_it_until_answered() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.sqlite");
    let (url, seen) = fake(
        503,
        r#"{"error":{"code":"unavailable","message":"db down"}}"#,
    )
    .await;
    let c = Client::open(settings(url), &q).await.unwrap();
    assert!(matches!(
        c.purchase(&sale("a")).await.unwrap(),
        PurchaseOutcome::Offline { .. }
    ));
    // While queued, later sales queue behind (after one flush attempt).
    assert!(matches!(
        c.purchase(&sale("b")).await.unwrap(),
        PurchaseOutcome::Offline { .. }
    ));
    assert_eq!(c.pending().await.unwrap(), 2);
    let r = c.flush().await.unwrap();
    assert_eq!((r.sent, r.left), (0, 2));
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|b| b.contains("\"offline\":true"))
    );
    c.close().await;

    // A refusal moves the sale aside so it does not block the queue; 2xx
    // empties it. Order is kept: `a` before `b`.
    let (url, seen) = fake(200, r#"{"status":"confirmed"}"#).await;
    let c = Client::open(settings(url), &q).await.unwrap();
    let r = c.flush().await.unwrap();
    assert_eq!((r.sent, r.rejected, r.left), (2, 0, 0));
    let bodies = seen.lock().unwrap().clone();
    assert!(
        bodies[0].contains("\"operation_id\":\"a\"")
            && bodies[1].contains("\"operation_id\":\"b\"")
    );
    c.close().await;

    let (url, _) = fake(
        404,
        r#"{"error":{"code":"unknown_card","message":"no card"}}"#,
    )
    .await;
    let c = Client::open(settings(url), &q).await.unwrap();
    let e = c
        .balance("x", "c", "2026-10-03T12:00:00", &Identifier::auto("1"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Refused { status: 404, ref code, .. } if code == "unknown_card")
    );
    assert!(matches!(
        c.purchase(&sale("c")).await,
        Err(ClientError::Refused { .. })
    ));
    assert_eq!(c.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn garbage_answers_are_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = fake(200, "<html>proxy login</html>").await;
    let c = Client::open(settings(url), &dir.path().join("q.sqlite"))
        .await
        .unwrap();
    let e = c
        .balance("x", "c", "2026-10-03T12:00:00", &Identifier::auto("1"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Protocol(_)), "{e}");
}

#[tokio::test]
async fn an_unusable_queue_path_is_a_clear_error() {
    let e = Client::open(
        settings("http://127.0.0.1:1".into()),
        std::path::Path::new("/nonexistent-dir/q.sqlite"),
    )
    .await
    .err()
    .expect("must fail");
    assert!(e.to_string().contains("offline queue"), "{e}");
}
