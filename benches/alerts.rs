//! Alert rules and the shift report over a simulated day, against the cost
//! of only reading the same events (the floor every consumer pays).
//!
//! `cargo bench --bench alerts`. The "ceiling" check at the end prints the
//! ratios measured in the same run.

use std::collections::HashMap;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use tillgate::alerts::payload::Alert;
use tillgate::alerts::report;
use tillgate::alerts::rules::{OrderMemory, order_rules};
use tillgate::alerts::settings::Settings;
use tillgate::core::log::LogEntry;
use tillgate_simulate::{Scenario, generate};

fn day() -> Vec<LogEntry> {
    let g = generate(&Scenario {
        cash_servers: 2,
        stations: 3,
        orders: 30,
        ..Scenario::default()
    });
    let mut out = Vec::new();
    for s in &g.servers {
        for e in &s.events {
            out.push(LogEntry {
                offset: out.len() as i64 + 1,
                received_at: 0,
                stream_guid: String::new(),
                seqnumber: 0,
                situation: e.event.situation.code(),
                rest_code: Some(s.rest_code.clone()),
                event_time: None,
                shift_num: e.event.shift_num,
                order_guid: None,
                body: e.xml.clone().into(),
                parsed: None,
            });
        }
    }
    out
}

fn read_all(entries: &[LogEntry]) -> usize {
    entries
        .iter()
        .filter(|e| rk7::read(&e.body).is_ok())
        .count()
}

fn rules_all(settings: &Settings, entries: &[LogEntry]) -> usize {
    let mut mem: HashMap<String, OrderMemory> = HashMap::new();
    let mut alerts: Vec<Alert> = Vec::new();
    for e in entries {
        let Ok(ev) = rk7::read(&e.body) else { continue };
        if let Some(g) = ev.order.as_ref().and_then(|o| o.guid.as_ref()) {
            let m = mem.entry(g.canonical()).or_default();
            order_rules(settings, m, e, &ev, &mut alerts);
        }
    }
    alerts.len()
}

fn bench(c: &mut Criterion) {
    let entries = day();
    let settings = Settings::default();
    let rest = entries[0].rest_code.clone().unwrap_or_default();
    let mut g = c.benchmark_group(format!("simulated_day_{}_events", entries.len()));
    g.sample_size(20);
    g.bench_function("read_only_floor", |b| b.iter(|| read_all(&entries)));
    g.bench_function("order_rules", |b| b.iter(|| rules_all(&settings, &entries)));
    g.bench_function("shift_report", |b| {
        b.iter(|| report::build(&rest, &rest, 1, &entries))
    });
    let r = report::build(&rest, &rest, 1, &entries);
    g.bench_function("chart_png", |b| b.iter(|| report::chart_png(&r).unwrap()));
    g.finish();

    // Same-run ceiling: the rules and the report may cost at most 3x the
    // parse floor (they parse once and fold in memory).
    let time = |f: &dyn Fn() -> usize| {
        let t = Instant::now();
        for _ in 0..10 {
            std::hint::black_box(f());
        }
        t.elapsed() / 10
    };
    let floor = time(&|| read_all(&entries));
    let rules = time(&|| rules_all(&settings, &entries));
    let rep = time(&|| report::build(&rest, &rest, 1, &entries).receipts as usize);
    println!(
        "events={} floor={floor:?} rules={rules:?} ({:.2}x) report={rep:?} ({:.2}x) ceiling=3.00x",
        entries.len(),
        rules.as_secs_f64() / floor.as_secs_f64(),
        rep.as_secs_f64() / floor.as_secs_f64()
    );
    assert!(rules < floor * 3, "rules exceed 3x the parse floor");
    assert!(rep < floor * 3, "report exceeds 3x the parse floor");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().final_summary();
}
