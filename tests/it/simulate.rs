//! The cash-server emulator: generated days, driver-like sending, files, CLI.
//!
//! The day checks re-read every event with `rk7::read` and recompute the
//! sums from the XML, then compare with the generator's `Truth`, which was
//! computed from its own bookkeeping: two independent computations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use rk7::{KdsState, Situation};
use tillgate_simulate::{
    Generated, Scenario, SendOptions, ServerStream, generate, send, write_out,
};

use crate::harness::{Backend, backends, spawn_app};

fn small() -> Scenario {
    Scenario {
        stations: 1,
        orders: 8,
        ..Scenario::default()
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let s = Scenario {
        cash_servers: 2,
        days: 2,
        ..small()
    };
    let a = generate(&s);
    let b = generate(&s);
    let c = generate(&Scenario {
        seed: 2,
        ..s.clone()
    });
    let bytes = |g: &Generated| -> Vec<Vec<u8>> {
        g.servers
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.xml.clone()))
            .collect()
    };
    assert_eq!(bytes(&a), bytes(&b));
    assert_eq!(a.truth.orders, b.truth.orders);
    assert_eq!(a.truth.shifts, b.truth.shifts);
    assert_ne!(bytes(&a), bytes(&c));
}

#[test]
fn every_event_reads_back_equal_to_the_generated_one() {
    let g = generate(&Scenario {
        cash_servers: 2,
        days: 3,
        ..small()
    });
    let mut n = 0;
    for s in &g.servers {
        for e in &s.events {
            let back = rk7::read(&e.xml)
                .unwrap_or_else(|err| panic!("{err}\n{}", String::from_utf8_lossy(&e.xml)));
            assert_eq!(back, e.event);
            assert_eq!(rk7::write(&back), e.xml);
            n += 1;
        }
    }
    assert!(n > 200, "{n} events");
}

/// What the XML says about one order, recomputed from the events.
#[derive(Default, Debug)]
struct Seen {
    last: Option<rk7::Event>,
    kds: Vec<String>,
    events: u32,
}

fn amount(k: Option<rk7::Kopecks>) -> i64 {
    k.map_or(0, |k| k.0)
}

/// Re-reads every event and checks the day is consistent and matches truth.
fn check_consistent(g: &Generated) {
    let mut orders: BTreeMap<String, Seen> = BTreeMap::new();
    for s in &g.servers {
        let mut last_time = None;
        let mut stream: Option<(String, u64)> = None;
        for e in &s.events {
            let ev = rk7::read(&e.xml).expect("reads");
            // seqnumber counts from 1 within each driver run (stream guid).
            let guid = ev.guid.as_ref().expect("stream guid").canonical();
            let seq = ev.seqnumber.expect("seqnumber");
            match &stream {
                Some((g, prev)) if *g == guid => assert_eq!(seq, prev + 1),
                _ => {
                    assert_eq!(seq, 1, "a new driver run starts at 1");
                    assert_eq!(ev.situation, Situation::ServerOrStationStarted);
                    assert!(ev.station.is_none(), "the run starts with the cash server");
                }
            }
            stream = Some((guid, seq));
            let t = ev.date_time.expect("DateTime").value();
            if let Some(prev) = last_time {
                assert!(t >= prev, "events of a cash server are in time order");
            }
            last_time = Some(t);
            assert_eq!(
                ev.rest_code.as_ref().map(|r| r.0.as_str()),
                Some(s.rest_code.as_str())
            );
            if let Some(o) = &ev.order {
                let key = o.guid.as_ref().expect("order guid").canonical();
                let seen = orders.entry(key).or_default();
                seen.events += 1;
                if let Some(k) = &o.kds_state
                    && seen.kds.last().map(String::as_str) != Some(k.as_str())
                {
                    seen.kds.push(k.as_str().to_string());
                }
                if !ev.sessions.is_empty() || seen.last.is_none() {
                    seen.last = Some(ev.clone());
                } else if let Some(l) = &mut seen.last {
                    // A header-only event (Open Order) keeps the lines.
                    l.order = ev.order.clone();
                }
            }
        }
    }
    assert_eq!(
        orders.keys().collect::<Vec<_>>(),
        g.truth.orders.keys().collect::<Vec<_>>(),
        "the truth lists exactly the orders in the events"
    );
    let mut shift_revenue: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut shift_receipts: BTreeMap<(String, i64), u32> = BTreeMap::new();
    for (guid, seen) in &orders {
        let truth = &g.truth.orders[guid];
        let ev = seen.last.as_ref().unwrap();
        let o = ev.order.as_ref().unwrap();
        assert_eq!(seen.events, truth.events, "{guid}");
        // Every order opened is closed or deleted.
        assert!(
            o.finished == Some(true) || o.deleted == Some(true),
            "{guid} left open: {truth:?}"
        );
        let mut dish_sum = 0;
        let mut discounts = 0;
        let mut paid = 0;
        let mut receipts = 0;
        let mut receipt_sum = 0;
        let mut lines = 0;
        for s in &ev.sessions {
            for d in &s.dishes {
                assert_eq!(
                    amount(d.amount),
                    amount(d.price) * d.quantity.unwrap().0 / 1000,
                    "amount = price × quantity"
                );
                dish_sum += amount(d.amount);
                if d.quantity.unwrap().0 != 0 {
                    lines += 1;
                }
            }
            discounts += s.discounts.iter().map(|d| amount(d.amount)).sum::<i64>();
            paid += s
                .pays
                .iter()
                .filter(|p| p.deleted != Some(true))
                .map(|p| amount(p.amount))
                .sum::<i64>();
            for pc in s
                .print_checks
                .iter()
                .filter(|p| p.bill != Some(true) && p.deleted != Some(true))
            {
                receipts += 1;
                receipt_sum += amount(pc.amount);
            }
        }
        assert_eq!(
            dish_sum + discounts,
            amount(o.order_sum),
            "{guid}: dishes − discounts = orderSum"
        );
        assert_eq!(amount(o.discount_sum), discounts, "{guid}");
        assert_eq!(truth.discount, -discounts, "{guid}");
        assert_eq!(truth.dish_count, lines, "{guid}");
        assert_eq!(truth.kds_steps, seen.kds, "{guid}");
        assert_eq!(truth.receipts, receipts, "{guid}");
        assert_eq!(truth.paid, receipt_sum, "{guid}");
        let phone = o
            .external_props
            .iter()
            .find(|p| p.name.as_deref() == Some("phone"))
            .and_then(|p| p.value.clone());
        assert_eq!(truth.phone, phone, "{guid}");
        match truth.status {
            "deleted" => {
                assert_eq!(o.deleted, Some(true));
                assert_eq!((truth.total, truth.paid, receipts), (0, 0, 0));
            }
            "closed" | "return" => {
                assert_eq!(o.finished, Some(true));
                assert_eq!(truth.total, amount(o.order_sum), "{guid}");
                assert_eq!(paid, truth.total, "{guid}: payments = total");
                assert_eq!(receipt_sum, truth.total, "{guid}: receipts = total");
                assert_eq!(amount(o.unpaid_sum), 0, "{guid}");
                assert_eq!(truth.status == "return", o.purchase == Some(true), "{guid}");
                if truth.status == "return" {
                    assert!(truth.total < 0 && o.source_order.is_some());
                }
            }
            other => panic!("{guid}: status {other} at the end of the day"),
        }
        let key = (truth.rest_code.clone(), truth.shift_num);
        *shift_revenue.entry(key.clone()).or_default() += receipt_sum;
        *shift_receipts.entry(key).or_default() += receipts;
    }
    // Shift totals equal the sum of their orders.
    for s in &g.truth.shifts {
        let key = (s.rest_code.clone(), s.shift_num);
        assert_eq!(
            s.revenue,
            shift_revenue.get(&key).copied().unwrap_or(0),
            "{key:?}"
        );
        assert_eq!(
            s.receipts,
            shift_receipts.get(&key).copied().unwrap_or(0),
            "{key:?}"
        );
        assert_eq!(
            s.payments_by_currency.values().sum::<i64>(),
            s.revenue,
            "{key:?}"
        );
        assert_eq!(s.sales_by_hour.values().sum::<i64>(), s.revenue, "{key:?}");
    }
}

#[test]
fn a_default_day_is_consistent_and_has_every_kind_of_operation() {
    let g = generate(&Scenario::default());
    check_consistent(&g);
    let t = &g.truth;
    assert!(!t.deleted_receipts.is_empty(), "deleted receipt");
    assert!(!t.cancelled_prebills.is_empty(), "cancelled pre-bill");
    assert!(!t.voids_after_print.is_empty(), "void after print");
    assert!(!t.unsaved_deletions.is_empty(), "unsaved deletion");
    assert!(!t.discounts.is_empty(), "discount");
    assert_eq!(t.returns.len(), 1, "one return order a day");
    let statuses: BTreeSet<&str> = t.orders.values().map(|o| o.status).collect();
    assert_eq!(statuses, BTreeSet::from(["closed", "deleted", "return"]));
    let shift = &t.shifts[0];
    assert!(
        shift.payments_by_currency.len() == 2,
        "cash and card: {shift:?}"
    );
    assert!(shift.payments_by_currency.values().all(|v| *v > 0));
    assert!(
        t.orders
            .values()
            .any(|o| o.kds_steps == ["sent", "started", "ready", "taken"])
    );
    assert!(t.orders.values().any(|o| o.phone.is_some()));
    assert!(t.orders.values().any(|o| o.phone.is_none()));
    // Station life: sign-in, logoff and closing for both stations.
    for sit in [21, 10, 18] {
        assert_eq!(
            t.station_events
                .iter()
                .filter(|e| e.situation == sit)
                .count(),
            2,
            "{sit}"
        );
    }
    let situations: BTreeSet<i64> = g.servers[0]
        .events
        .iter()
        .map(|e| e.event.situation.code())
        .collect();
    assert_eq!(
        situations,
        BTreeSet::from([1, 3, 4, 5, 9, 10, 11, 12, 13, 14, 18, 21, 24]),
        "every Situation the notify driver sends occurs"
    );
    // KDS on the dishes too.
    let kds_dishes = g.servers[0]
        .events
        .iter()
        .flat_map(|e| e.event.sessions.iter().flat_map(|s| s.dishes.iter()))
        .filter(|d| d.kds_state == Some(KdsState::Ready))
        .count();
    assert!(kds_dishes > 0);
}

#[test]
fn multi_day_run_numbers_shifts_and_restarts_the_cash_servers() {
    let s = Scenario {
        restaurants: 2,
        cash_servers: 2,
        stations: 2,
        orders: 4,
        days: 3,
        ..Scenario::default()
    };
    let g = generate(&s);
    check_consistent(&g);
    assert_eq!(g.servers.len(), 4);
    for stream in &g.servers {
        // Shift numbers 1, 2, 3 in order; the date follows; one driver run a day.
        let mut per_shift: BTreeMap<i64, (String, BTreeSet<String>)> = BTreeMap::new();
        let mut last = 0;
        for e in &stream.events {
            let n = e.event.shift_num.unwrap();
            assert!(n >= last, "shift numbers never go back");
            last = n;
            let date = e.event.shift_date.unwrap().to_string();
            let entry = per_shift
                .entry(n)
                .or_insert((date.clone(), BTreeSet::new()));
            assert_eq!(entry.0, date);
            entry.1.insert(e.event.guid.as_ref().unwrap().canonical());
            assert_eq!(
                e.event.date_time.unwrap().value().date(),
                e.event.shift_date.unwrap().value().date(),
                "events of a shift happen on its day"
            );
        }
        assert_eq!(per_shift.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(per_shift[&1].0, "2026-11-02T00:00:00");
        assert_eq!(per_shift[&3].0, "2026-11-04T00:00:00");
        assert!(per_shift.values().all(|(_, guids)| guids.len() == 1));
        let runs: BTreeSet<_> = per_shift.values().flat_map(|(_, g)| g.iter()).collect();
        assert_eq!(runs.len(), 3, "a new stream guid each morning");
    }
    // Both cash servers of a restaurant share RestCode and shift numbers:
    // one ShiftTruth per restaurant and day.
    assert_eq!(g.truth.shifts.len(), 6);
    let rests: BTreeSet<_> = g.servers.iter().map(|s| s.rest_code.clone()).collect();
    assert_eq!(rests.len(), 2);
    // Banquets with hundreds of lines, now and then.
    assert!(!g.truth.banquets.is_empty());
    for b in &g.truth.banquets {
        let o = &g.truth.orders[&b.order_guid];
        assert!(o.banquet && o.dish_count >= 300, "{o:?}");
        assert_eq!(o.status, "closed");
    }
    let biggest = g
        .servers
        .iter()
        .flat_map(|s| s.events.iter())
        .map(|e| e.xml.len())
        .max()
        .unwrap();
    assert!(biggest > 50_000, "a banquet event is big: {biggest} bytes");
}

// ---------------------------------------------------------------------------
// Sending like the driver.

/// A fake receiver: records bodies per destination (RestCode + server id),
/// measures concurrency per destination, answers `fail_first` requests with
/// 503 and everything with `status` after that.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<BTreeMap<String, Vec<Vec<u8>>>>>,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    max_in_flight: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    delay: Duration,
    fail_first: usize,
    status: StatusCode,
}

fn dest_key(body: &[u8]) -> String {
    let e = rk7::read(body).expect("the emulator sends readable events");
    format!(
        "{}/{}",
        e.rest_code.unwrap().0,
        e.server.and_then(|s| s.id).unwrap()
    )
}

async fn receive(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    let n = r.requests.fetch_add(1, Ordering::SeqCst);
    let key = dest_key(&body);
    {
        let mut f = r.in_flight.lock().unwrap();
        let c = f.entry(key.clone()).or_default();
        *c += 1;
        r.max_in_flight.fetch_max(*c, Ordering::SeqCst);
    }
    tokio::time::sleep(r.delay).await;
    r.in_flight
        .lock()
        .unwrap()
        .entry(key.clone())
        .and_modify(|c| *c -= 1);
    if n < r.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if r.status.is_success() {
        r.got
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(body.to_vec());
    }
    r.status
}

async fn start_receiver(
    delay: Duration,
    fail_first: usize,
    status: StatusCode,
) -> (String, Receiver) {
    let r = Receiver {
        got: Default::default(),
        in_flight: Default::default(),
        max_in_flight: Default::default(),
        requests: Default::default(),
        delay,
        fail_first,
        status,
    };
    let app = Router::new()
        .route("/rkevent", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/rkevent"), r)
}

fn expected(streams: &[ServerStream]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut m: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for s in streams {
        for e in &s.events {
            m.entry(dest_key(&e.xml)).or_default().push(e.xml.clone());
        }
    }
    m
}

fn quick(url: String) -> SendOptions {
    SendOptions {
        retries: 3,
        retry_pause: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
        ..SendOptions::new(url)
    }
}

#[tokio::test]
async fn send_keeps_fifo_per_destination_with_one_request_in_flight() {
    let g = generate(&Scenario {
        cash_servers: 3,
        orders: 2,
        ..small()
    });
    let total = g.event_count() as u64;
    let (url, r) = start_receiver(Duration::from_millis(1), 0, StatusCode::OK).await;
    let want = expected(&g.servers);
    let lens: Vec<u64> = g.servers.iter().map(|s| s.events.len() as u64).collect();
    let summary = send(g.servers, quick(url)).await;
    assert_eq!(
        (summary.sent, summary.failed, summary.dropped),
        (total, 0, 0),
        "{summary}"
    );
    let sent: Vec<u64> = summary.destinations.iter().map(|d| d.sent).collect();
    assert_eq!(sent, lens);
    assert_eq!(
        *r.got.lock().unwrap(),
        want,
        "each destination got its events in order"
    );
    assert_eq!(
        r.max_in_flight.load(Ordering::SeqCst),
        1,
        "one request in flight per destination"
    );
    assert!(summary.rate() > 0.0);
    assert!(summary.log.is_empty(), "{:?}", summary.log);
}

#[tokio::test]
async fn a_full_queue_drops_the_newest_events_with_the_driver_log_line() {
    let g = generate(&Scenario {
        orders: 2,
        ..small()
    });
    let total = g.event_count() as u64;
    let all: Vec<Vec<u8>> = g.servers[0].events.iter().map(|e| e.xml.clone()).collect();
    // The receiver takes 20 ms an event; the cash server makes 1000 a second.
    let (url, r) = start_receiver(Duration::from_millis(20), 0, StatusCode::OK).await;
    let opts = SendOptions {
        rate: Some(1000.0),
        queue_max: 4,
        ..quick(url)
    };
    let summary = send(g.servers, opts).await;
    assert!(summary.dropped > 0, "{summary}");
    assert_eq!(summary.sent + summary.dropped, total, "{summary}");
    assert_eq!(summary.failed, 0);
    assert!(summary.destinations[0].max_queue_depth <= 4);
    assert!(
        summary
            .log
            .iter()
            .any(|l| l.ends_with("XML: Can't add command. Max queue size: 4")),
        "{:?}",
        summary.log
    );
    // What arrived is the oldest events first, in order, without the dropped ones:
    // the first four always fit in the queue, whenever the sender takes one.
    let got = r.got.lock().unwrap().values().next().unwrap().clone();
    assert_eq!(got.len() as u64, summary.sent);
    assert!(got[..4] == all[..4], "the oldest events are delivered");
    let mut it = all.iter();
    for g in &got {
        assert!(
            it.any(|a| a == g),
            "received events are a subsequence in order"
        );
    }
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_then_counts_as_failed() {
    let mut g = generate(&small());
    g.servers[0].events.truncate(3);
    let (url, r) = start_receiver(Duration::ZERO, 0, StatusCode::INTERNAL_SERVER_ERROR).await;
    let opts = SendOptions {
        retries: 1,
        ..quick(url)
    };
    let summary = send(g.servers, opts).await;
    assert_eq!(
        (summary.sent, summary.failed, summary.dropped),
        (0, 3, 0),
        "{summary}"
    );
    assert_eq!(summary.post_errors, 6, "each event tried twice");
    assert_eq!(r.requests.load(Ordering::SeqCst), 6);
    assert_eq!(summary.log.len(), 6);
    assert!(
        summary.log[0].ends_with("HTTP: Post error: HTTP/1.1 500 Internal Server Error"),
        "{:?}",
        summary.log
    );
}

#[tokio::test]
async fn a_refused_connection_is_logged_like_the_driver_and_the_run_gives_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut g = generate(&small());
    g.servers[0].events.truncate(5);
    let opts = SendOptions {
        retries: 0,
        give_up_after: Some(2),
        ..quick(format!("http://127.0.0.1:{port}/rkevent"))
    };
    let summary = send(g.servers, opts).await;
    assert_eq!((summary.sent, summary.failed), (0, 5), "{summary}");
    assert_eq!(
        summary.post_errors, 2,
        "two tries, then the rest is given up"
    );
    assert_eq!(summary.log.len(), 3, "{:?}", summary.log);
    assert!(
        summary.log[..2]
            .iter()
            .all(|l| l.ends_with("HTTP: Post error: Socket Error # 10061 (connection refused)")),
        "{:?}",
        summary.log
    );
    assert!(summary.log[2].contains("giving up on this destination"));
}

#[tokio::test]
async fn a_retried_event_is_sent_again_before_the_next_one() {
    let g = generate(&Scenario {
        orders: 1,
        ..small()
    });
    let total = g.event_count() as u64;
    let want = expected(&g.servers);
    let (url, r) = start_receiver(Duration::ZERO, 2, StatusCode::OK).await;
    let summary = send(g.servers, quick(url)).await;
    assert_eq!((summary.sent, summary.failed), (total, 0), "{summary}");
    assert_eq!(summary.post_errors, 2);
    assert!(
        summary
            .log
            .iter()
            .all(|l| l.contains("HTTP: Post error: HTTP/1.1 503"))
    );
    assert_eq!(*r.got.lock().unwrap(), want);
}

#[test]
fn out_dir_gets_one_file_per_event_in_sending_order() {
    let g = generate(&Scenario {
        cash_servers: 2,
        ..small()
    });
    let dir = tempfile::tempdir().unwrap();
    let n = write_out(&g.servers, dir.path()).unwrap();
    assert_eq!(n, g.event_count());
    for s in &g.servers {
        let sub = dir
            .path()
            .join(format!("{}_{}", s.rest_code, s.server_name));
        let mut names: Vec<_> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), s.events.len());
        assert_eq!(names[0], "000001_s1.xml");
        for (name, e) in names.iter().zip(&s.events) {
            assert_eq!(std::fs::read(sub.join(name)).unwrap(), e.xml);
        }
    }
    // A path that cannot be a directory is an error, not a panic.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(write_out(&g.servers, &file).is_err());
}

/// `tillgate simulate ARGS` as the binary parses it.
fn parse(args: &[&str]) -> Result<tillgate_simulate::SimulateArgs, String> {
    use clap::{Args, FromArgMatches};
    let mut all = vec!["simulate"];
    all.extend_from_slice(args);
    let m = tillgate_simulate::SimulateArgs::augment_args(clap::Command::new("simulate"))
        .try_get_matches_from(all)
        .map_err(|e| e.to_string())?;
    tillgate_simulate::SimulateArgs::from_arg_matches(&m).map_err(|e| e.to_string())
}

#[test]
fn cli_rejects_bad_arguments_with_clear_messages() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--to <URL>|--out <DIR>"),
        (
            &["--to", "http://127.0.0.1:1/rkevent", "--out", "x"],
            "cannot be used with",
        ),
        (&["--to", "http://exa mple/x"], "not a URL"),
        (
            &["--to", "127.0.0.1:11130/rkevent"],
            "has no scheme; write it as http://127.0.0.1:11130/rkevent",
        ),
        (&["--to", "ftp://host/x"], "scheme must be http or https"),
        (
            &["--out", "d", "--restaurants", "0"],
            "0 is not in 1..=1000",
        ),
        (&["--out", "d", "--stations", "0"], "0 is not in 1..=99"),
        (&["--out", "d", "--orders", "many"], "invalid digit"),
        (
            &["--to", "http://h/x", "--rate", "0"],
            "rate must be a positive number",
        ),
        (
            &["--to", "http://h/x", "--rate", "fast"],
            "not a number of events per second",
        ),
        (&["--out", "d", "--start", "2026-13-01"], "--start"),
        (
            &["--out", "d", "--phone-share", "101"],
            "101 is not in 0..=100",
        ),
    ];
    for (args, want) in cases {
        let err = parse(args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} parsed"));
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let ok = parse(&[
        "--to",
        "http://127.0.0.1:11130/rkevent",
        "--restaurants",
        "2",
        "--seed",
        "7",
    ])
    .unwrap();
    let s = ok.scenario();
    assert_eq!((s.restaurants, s.seed, s.stations, s.orders), (2, 7, 2, 20));
}

#[tokio::test]
async fn cli_out_writes_files_and_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("day");
    let cli = parse(&[
        "--out",
        out.to_str().unwrap(),
        "--orders",
        "3",
        "--stations",
        "1",
    ])
    .unwrap();
    let a = cli;
    tillgate_simulate::run_cli(a).await.unwrap();
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("truth.json")).unwrap()).unwrap();
    assert!(truth["orders"].as_object().unwrap().len() >= 3);
    assert!(out.join("199990100_MID1/000001_s1.xml").exists());
}

#[tokio::test]
async fn cli_fails_when_nothing_can_be_delivered() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/rkevent");
    let cli = parse(&[
        "--to",
        &url,
        "--orders",
        "1",
        "--stations",
        "1",
        "--retries",
        "0",
        "--no-progress",
    ])
    .unwrap();
    let a = cli;
    let err = tillgate_simulate::run_cli(a).await.unwrap_err().to_string();
    assert!(err.contains("could not be delivered"), "{err}");
}

// ---------------------------------------------------------------------------
// End to end: a simulated day through a real tillgate.

#[tokio::test]
async fn a_simulated_day_lands_in_tillgate_with_the_right_statuses_and_totals() {
    for b in backends() {
        let app = spawn_app(b).await;
        let g = generate(&Scenario {
            stations: 2,
            orders: 6,
            ..Scenario::default()
        });
        let total = g.event_count();
        let truth = g.truth.clone();
        let summary = send(g.servers, quick(app.url("/rkevent"))).await;
        assert_eq!(
            (summary.sent, summary.failed),
            (total as u64, 0),
            "{summary}"
        );

        let mut seen = 0;
        let mut after = 0;
        loop {
            let page = app
                .get_json(&format!("/api/events?after={after}&limit=1000"))
                .await;
            let items = page["items"].as_array().unwrap();
            if items.is_empty() {
                break;
            }
            seen += items.len();
            after = page["next_after"].as_i64().unwrap();
        }
        assert_eq!(seen, total, "every event is in the log");

        app.wait_consumer("orders").await;
        let mut got = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let mut path = "/api/orders?limit=500".to_string();
            if let Some(n) = &next {
                path.push_str(&format!("&after={}", urlencode(n)));
            }
            let page = app.get_json(&path).await;
            for o in page["items"].as_array().unwrap() {
                got.insert(o["guid"].as_str().unwrap().to_string(), o.clone());
            }
            match page["next"].as_str() {
                Some(n) => next = Some(n.to_string()),
                None => break,
            }
        }
        assert_eq!(got.len(), truth.orders.len());
        for (guid, t) in &truth.orders {
            let o = &got[guid];
            assert_eq!(o["status"], t.status, "{guid}: {o}");
            assert_eq!(o["shift_num"], t.shift_num, "{guid}");
            assert_eq!(o["paid_sum"], t.paid, "{guid}");
            if t.status != "deleted" {
                assert_eq!(o["order_sum"], t.total, "{guid}");
            }
            assert_eq!(o["discount_sum"], -t.discount, "{guid}");
            let lines = o["dishes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["quantity"].as_i64() != Some(0))
                .count();
            assert_eq!(lines, t.dish_count, "{guid}");
            assert_eq!(
                o["external_props"]["phone"].as_str(),
                t.phone.as_deref(),
                "{guid}"
            );
        }
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

/// Reads every page of `/api/shifts` into (rest_code, shift_num) → item.
async fn shifts(app: &crate::harness::TestApp) -> BTreeMap<(String, i64), serde_json::Value> {
    let v = app.get_json("/api/shifts").await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                (
                    s["rest_code"].as_str().unwrap().to_string(),
                    s["shift_num"].as_i64().unwrap(),
                ),
                s.clone(),
            )
        })
        .collect()
}

async fn send_and_wait(app: &crate::harness::TestApp, s: &Scenario) -> Generated {
    let g = generate(s);
    let total = g.event_count() as u64;
    let summary = send(g.servers.clone(), quick(app.url("/rkevent"))).await;
    assert_eq!((summary.sent, summary.failed), (total, 0), "{summary}");
    app.wait_consumer("orders").await;
    g
}

fn two_servers_two_days() -> Scenario {
    Scenario {
        cash_servers: 2,
        stations: 2,
        orders: 3,
        days: 2,
        ..Scenario::default()
    }
}

#[tokio::test]
async fn a_multi_day_run_closes_every_station_and_shares_the_restaurant() {
    for b in backends() {
        let app = spawn_app(b).await;
        send_and_wait(&app, &two_servers_two_days()).await;
        // Both cash servers are known; every station ends the day closed.
        let servers = app.get_json("/api/cash-servers").await;
        assert_eq!(servers["items"].as_array().unwrap().len(), 2);
        let stations = app.get_json("/api/stations").await;
        let stations = stations["items"].as_array().unwrap();
        assert_eq!(stations.len(), 4);
        for s in stations {
            assert_eq!(s["online"], false, "{s}");
            assert_eq!(s["last_situation"], 18, "{s}");
        }
        app.stop().await;
    }
}

async fn check_shifts(b: Backend) {
    let app = spawn_app(b).await;
    let g = send_and_wait(&app, &two_servers_two_days()).await;
    let got = shifts(&app).await;
    let want: Vec<_> = g
        .truth
        .shifts
        .iter()
        .map(|s| (s.rest_code.clone(), s.shift_num))
        .collect();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), want);
    for t in &g.truth.shifts {
        let s = &got[&(t.rest_code.clone(), t.shift_num)];
        // No event closes a shift: the next ShiftNum does.
        assert_eq!(s["closed"], t.shift_num == 1, "{s}");
        assert_eq!(s["shift_date"], t.shift_date.as_str(), "{s}");
        let orders = g
            .truth
            .orders
            .values()
            .filter(|o| o.rest_code == t.rest_code && o.shift_num == t.shift_num)
            .count();
        assert_eq!(s["totals"]["orders"], orders as i64, "{s}");
        assert_eq!(s["totals"]["receipts"], t.receipts as i64, "{s}");
        assert_eq!(s["totals"]["open_orders"], 0, "{s}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_multi_day_run_closes_shifts_by_the_next_shift_number() {
    for b in backends() {
        check_shifts(b).await;
    }
}

/// A return's receipt carries a negative amount, so it lowers revenue.
#[tokio::test]
async fn shift_revenue_in_tillgate_equals_the_truth() {
    for b in backends() {
        let app = spawn_app(b).await;
        let g = send_and_wait(&app, &two_servers_two_days()).await;
        let got = shifts(&app).await;
        for t in &g.truth.shifts {
            let s = &got[&(t.rest_code.clone(), t.shift_num)];
            assert_eq!(s["totals"]["revenue"], t.revenue, "{s}\n{t:?}");
        }
        app.stop().await;
    }
}
