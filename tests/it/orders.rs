//! Order, station and shift state from the log, and its API.

use crate::harness::{backends, spawn_app, spawn_app_with};

const STREAM: &str = "{0A6B7C1D-0000-4000-8000-000000000001}";
const REST: &str = "199990093";

/// One notify event about order `order_guid` with the given lines, written
/// the way a cash server writes it (sessions beside the order).
struct Ev<'a> {
    seq: u64,
    situation: i64,
    shift: i64,
    time: &'a str,
    order: Option<&'a str>,
    order_attrs: &'a str,
    sessions: &'a str,
    station: i64,
}

impl Default for Ev<'_> {
    fn default() -> Self {
        Ev {
            seq: 1,
            situation: 3,
            shift: 1,
            time: "2026-11-02T12:00:00",
            order: None,
            order_attrs: "",
            sessions: "",
            station: 15003,
        }
    }
}

fn xml(e: &Ev) -> String {
    let order = match e.order {
        Some(g) => format!(
            r#"<Order visit="1" orderIdent="7" guid="{g}" orderName="T5" {attrs} openTime="2026-11-02T11:00:00"><Waiter id="1" code="7" name="Anna"/><Table id="1" code="5" name="5"/></Order>"#,
            attrs = e.order_attrs
        ),
        None => String::new(),
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="{REST}" DateTime="{time}" Situation="{sit}" seqnumber="{seq}" guid="{STREAM}" name="x" ShiftNum="{shift}" ShiftDate="2026-11-02T00:00:00">
<Station id="{st}" code="1" name="CASH{st}" NetName="CASH{st}"/>
<Server id="15002" code="15002" name="MID" NetName="MID"/>
<Waiter id="1" code="7" name="Anna"/>
{order}{sessions}<Item/></a>"#,
        time = e.time,
        sit = e.situation,
        seq = e.seq,
        shift = e.shift,
        st = e.station,
        sessions = e.sessions,
    )
}

const O1: &str = "{11111111-2222-3333-4444-555555555555}";
const O2: &str = "{66666666-7777-8888-9999-AAAAAAAAAAAA}";

const DISHES: &str = r#"<Session uni="1" state="1"><Dish id="10" code="100" name="Borscht" uni="1" quantity="2000" price="35000" amount="70000"/><Dish id="11" code="101" name="Tea" uni="2" quantity="1000" price="12000" amount="12000"/></Session>"#;

#[tokio::test]
async fn an_order_goes_from_open_through_prebill_to_closed() {
    for b in backends() {
        let app = spawn_app(b).await;
        let mut seq = 0;
        let mut post = async |situation: i64, attrs: &str, sessions: &str| {
            seq += 1;
            app.ingest(xml(&Ev {
                seq,
                situation,
                order: Some(O1),
                order_attrs: attrs,
                sessions,
                ..Ev::default()
            }))
            .await;
        };
        post(3, r#"orderSum="0" unpaidSum="0""#, "").await;
        post(11, r#"orderSum="82000" unpaidSum="82000""#, DISHES).await;
        app.wait_consumer("orders").await;
        let o = app.get_json(&format!("/api/orders/{O1}")).await;
        assert_eq!(o["status"], "open", "{o}");
        assert_eq!(o["order_sum"], 82000);
        assert_eq!(o["dishes"].as_array().unwrap().len(), 2);
        assert_eq!(o["dishes"][0]["quantity"], 2000);

        let prebill = format!(
            r#"{}<Session uni="2"><PrintCheck CheckNum="1" amount="82000" bill="1" printTime="2026-11-02T12:10:00"/></Session>"#,
            DISHES
        );
        post(11, r#"orderSum="82000" unpaidSum="82000""#, &prebill).await;
        app.wait_consumer("orders").await;
        let o = app.get_json(&format!("/api/orders/{O1}")).await;
        assert_eq!(o["status"], "prebill", "{o}");

        let paid = format!(
            r#"{}<Session uni="2"><PrintCheck CheckNum="1" amount="82000" bill="1" printTime="2026-11-02T12:10:00"/><Pay id="1" code="1" name="Cash" amount="82000"/><PrintCheck CheckNum="17" amount="82000" bill="0" printTime="2026-11-02T12:20:00"/></Session>"#,
            DISHES
        );
        post(11, r#"orderSum="82000" unpaidSum="0""#, &paid).await;
        app.wait_consumer("orders").await;
        let o = app.get_json(&format!("/api/orders/{O1}")).await;
        assert_eq!(o["status"], "paid", "{o}");
        assert_eq!(o["paid_sum"], 82000);
        assert_eq!(o["payments"][0]["amount"], 82000);

        post(9, r#"orderSum="82000" unpaidSum="0" finished="1""#, &paid).await;
        app.wait_consumer("orders").await;
        let o = app.get_json(&format!("/api/orders/{O1}")).await;
        assert_eq!(o["status"], "closed", "{o}");
        assert_eq!(o["events"].as_array().unwrap().len(), 5);
        app.stop().await;
    }
}

#[tokio::test]
async fn voids_deleted_receipts_and_deleted_orders_are_kept() {
    for b in backends() {
        let app = spawn_app(b).await;
        let voided = r#"<Session uni="1"><Dish id="10" code="100" name="Borscht" uni="1" quantity="1000" price="35000" amount="35000"><Void id="3" code="3" name="Guest refused" quantity="1000" amount="35000" openName="cold" dateTime="2026-11-02T12:05:00"><Author id="2" code="9" name="Boris"/></Void></Dish></Session>"#;
        app.ingest(xml(&Ev {
            seq: 1,
            situation: 11,
            order: Some(O1),
            order_attrs: r#"orderSum="35000""#,
            sessions: voided,
            ..Ev::default()
        }))
        .await;
        // A later event no longer shows the void; it stays in the order.
        app.ingest(xml(&Ev {
            seq: 2,
            situation: 11,
            order: Some(O1),
            order_attrs: r#"orderSum="35000""#,
            sessions: r#"<Session uni="1"><Dish id="10" code="100" name="Borscht" uni="1" quantity="1000" price="35000" amount="35000"/><PrintCheck CheckNum="5" amount="35000" bill="0" deleted="1" printTime="2026-11-02T12:30:00"><Author id="1" code="7" name="Anna"/><DeleteManager id="2" code="9" name="Boris"/><Reason id="1" code="1" name="wrong table"/></PrintCheck></Session>"#,
            ..Ev::default()
        }))
        .await;
        app.ingest(xml(&Ev {
            seq: 3,
            situation: 11,
            order: Some(O2),
            order_attrs: r#"orderSum="0" deleted="1""#,
            ..Ev::default()
        }))
        .await;
        app.wait_consumer("orders").await;
        let o = app.get_json(&format!("/api/orders/{O1}")).await;
        assert_eq!(o["voids"][0]["who"], "Boris", "{o}");
        assert_eq!(o["voids"][0]["reason"], "cold");
        assert_eq!(o["voids"][0]["amount"], 35000);
        let r = &o["receipts"][0];
        assert_eq!(r["deleted"], true);
        assert_eq!(r["deleted_by"], "Boris");
        assert_eq!(r["reason"], "wrong table");
        assert_eq!(o["paid_sum"], 0, "a deleted receipt pays nothing");
        assert_eq!(o["status"], "open");
        let o2 = app.get_json(&format!("/api/orders/{O2}")).await;
        assert_eq!(o2["status"], "deleted");
        app.stop().await;
    }
}

#[tokio::test]
async fn order_lookup_accepts_any_guid_form_and_404s_cleanly() {
    for b in backends() {
        let app = spawn_app(b).await;
        app.ingest(xml(&Ev {
            order: Some(O2),
            ..Ev::default()
        }))
        .await;
        app.wait_consumer("orders").await;
        let plain = O2.trim_matches(|c| c == '{' || c == '}');
        for form in [
            O2.to_string(),
            O2.to_lowercase(),
            plain.to_string(),
            plain.replace('-', ""),
        ] {
            let o = app.get_json(&format!("/api/orders/{form}")).await;
            assert_eq!(o["guid"], O2, "{form}");
        }
        let r = app
            .get("/api/orders/{00000000-0000-0000-0000-000000000000}")
            .await;
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        let r = app.get("/api/orders/not-a-guid").await;
        assert_eq!(r.status(), 400);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains("GUID"),
            "{body}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn order_list_filters_and_paginates() {
    for b in backends() {
        let app = spawn_app(b).await;
        for i in 0..25u64 {
            let guid = format!("{{11111111-2222-3333-4444-{:012X}}}", i);
            let attrs = if i % 5 == 0 { r#"deleted="1""# } else { "" };
            app.ingest(xml(&Ev {
                seq: i + 1,
                situation: 3,
                time: &format!("2026-11-02T{:02}:00:00", 8 + i % 12),
                order: Some(&guid),
                order_attrs: attrs,
                ..Ev::default()
            }))
            .await;
        }
        app.wait_consumer("orders").await;
        let mut seen = Vec::new();
        let mut path = "/api/orders?limit=10".to_string();
        loop {
            let page = app.get_json(&path).await;
            let items = page["items"].as_array().unwrap();
            seen.extend(
                items
                    .iter()
                    .map(|i| i["guid"].as_str().unwrap().to_string()),
            );
            match page["next"].as_str() {
                Some(next) if !items.is_empty() => {
                    path = format!("/api/orders?limit=10&after={}", urlencode(next))
                }
                _ => break,
            }
        }
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(seen.len(), 25, "every order once across pages");
        assert_eq!(unique.len(), 25);

        let deleted = app.get_json("/api/orders?status=deleted&limit=100").await;
        assert_eq!(deleted["items"].as_array().unwrap().len(), 5);
        let other = app.get_json("/api/orders?restaurant=1&limit=100").await;
        assert!(other["items"].as_array().unwrap().is_empty());
        let r = app.get("/api/orders?status=banana").await;
        assert_eq!(r.status(), 400);
        let r = app.get("/api/orders?limit=-3").await;
        assert_eq!(r.status(), 400);
        let r = app.get("/api/orders?from=yesterday").await;
        assert_eq!(r.status(), 400);
        app.stop().await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn stations_go_online_and_offline_and_shifts_close_on_a_higher_number() {
    for b in backends() {
        let app = spawn_app(b).await;
        for (seq, (sit, shift, station)) in [
            (1, 1, 15003),  // station started
            (21, 1, 15003), // login
            (1, 1, 15004),
            (18, 1, 15004), // station closed
            (1, 2, 15003),  // next day: shift 2
        ]
        .into_iter()
        .enumerate()
        {
            app.ingest(xml(&Ev {
                seq: seq as u64 + 1,
                situation: sit,
                shift,
                station,
                ..Ev::default()
            }))
            .await;
        }
        app.wait_consumer("orders").await;
        let st = app.get_json("/api/stations").await;
        let items = st["items"].as_array().unwrap();
        let find = |id: i64| {
            items
                .iter()
                .find(|i| i["station_id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(find(15003)["online"], true, "{st}");
        assert_eq!(find(15004)["online"], false, "{st}");
        let shifts = app
            .get_json(&format!("/api/shifts?restaurant={REST}"))
            .await;
        let items = shifts["items"].as_array().unwrap();
        let one = items.iter().find(|s| s["shift_num"] == 1).unwrap();
        let two = items.iter().find(|s| s["shift_num"] == 2).unwrap();
        assert_eq!(one["closed"], true, "{shifts}");
        assert_eq!(two["closed"], false);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_api_needs_the_token_off_loopback_and_checks_it() {
    for b in backends() {
        let token = "0123456789abcdef0123";
        let app = spawn_app_with(b, |c| {
            c.api_token = Some(secrecy::SecretString::from(token.to_string()));
        })
        .await;
        for path in [
            "/api/orders",
            "/api/stations",
            "/api/shifts",
            "/api/events",
            "/api/gaps",
        ] {
            let r = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} without token");
            let r = app
                .client
                .get(app.url(path))
                .bearer_auth("wrong-token-wrong-token")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} with a wrong token");
            let r = app
                .client
                .get(app.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} with the token");
        }
        // Health and metrics stay open for probes and Prometheus.
        let r = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        app.stop().await;
    }
}
