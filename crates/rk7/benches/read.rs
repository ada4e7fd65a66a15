//! Reader throughput against a ceiling measured in the same run.
//!
//! Three inputs the hub sees every day, built with the model and the writer:
//! a small event (~1 KB, a sign-in), a typical order (~5 KB, ten dishes) and a
//! banquet (~200 KB, 500 lines). Each goes through `rk7::read` (the full typed
//! read: decoding check, tokenising, attribute scanning, number, date and
//! GUID parsing, building the model) and, in the same group, through a bare
//! quick-xml event loop that only walks the tags and does nothing with them.
//! That loop is the ceiling: no reader built on quick-xml can beat it, so
//! the ratio of the two MB/s figures says how much the typed read costs.
//!
//! Run: `cargo bench -p rk7 --bench read`. Events/s is 1 / time per read.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rk7::*;

fn dt(s: &str) -> LocalDateTime {
    LocalDateTime::parse(s).expect("bench date-time")
}

fn person(id: i64, name: &str) -> Person {
    Person {
        id: Some(id),
        code: Some(id + 6),
        name: Some(name.into()),
        role: Some(Ref {
            id: Some(100_007),
            code: Some(7),
            name: Some("Официанты".into()),
            extra: Extra::default(),
        }),
        extra: Extra::default(),
    }
}

fn station() -> Station {
    Station {
        id: Some(15003),
        code: Some(1),
        name: Some("Касса 1".into()),
        net_name: Some("MM_CASH_169058".into()),
        extra: Extra::default(),
    }
}

fn header(situation: Situation, seq: u64) -> Event {
    Event {
        rest_code: Some(RestCode("199990093".into())),
        date_time: Some(dt("2019-12-18T17:18:33")),
        seqnumber: Some(seq),
        guid: Some(Guid::from_u128(0x833F0492_E8ED_4F34_81BC_8A9F4D73A995)),
        name: Some("New Order".into()),
        shift_num: Some(1),
        shift_date: Some(dt("2019-11-18T00:00:00")),
        station: Some(station()),
        server: Some(Server {
            id: Some(15002),
            code: Some(15002),
            name: Some("MM_MID".into()),
            net_name: Some("MM_MID".into()),
            extra: Extra::default(),
        }),
        ..Event::new(situation)
    }
}

const NAMES: [&str; 5] = [
    "Борщ с пампушками",
    "Салат «Цезарь» с курицей",
    "Шашлык из свинины",
    "Морс клюквенный 0,5",
    "Хлеб бородинский",
];

fn dish(i: i64) -> Dish {
    let price = 15_000 + (i % 7) * 2_500;
    Dish {
        id: Some(1_000 + i % 40),
        code: Some(100 + i % 40),
        name: Some(NAMES[(i % 5) as usize].into()),
        uni: Some(i + 1),
        line_guid: Some(Guid::from_u128(
            0x39271E37_867D_41FF_99B8_59CB18232300 + i as u128,
        )),
        state: Some(LineState::Fixed),
        price: Some(Kopecks(price)),
        amount: Some(Kopecks(price * 2)),
        quantity: Some(Thousandths(2_000)),
        src_quantity: Some(Thousandths(2_000)),
        paid_amount: Some(Kopecks(0)),
        seat: Some(i % 12 + 1),
        kds_state: Some(KdsState::Sent),
        new: Some(false),
        modis: if i % 10 != 9 {
            vec![Modi {
                id: Some(5),
                code: Some(5),
                name: Some("без лука".into()),
                count: Some(1),
                price: Some(Kopecks(0)),
                amount: Some(Kopecks(0)),
                ..Modi::default()
            }]
        } else {
            Vec::new()
        },
        discounts: if i % 3 == 0 {
            vec![Discount {
                id: Some(7),
                code: Some(7),
                name: Some("Скидка 10%".into()),
                amount: Some(Kopecks(-price / 10)),
                ..Discount::default()
            }]
        } else {
            Vec::new()
        },
        voids: if i % 10 == 9 {
            vec![Void {
                id: Some(4),
                name: Some("Ошибка официанта".into()),
                date_time: Some(dt("2019-12-18T17:25:00")),
                quantity: Some(Thousandths(1_000)),
                amount: Some(Kopecks(price)),
                author: Some(person(2, "Петров Сергей")),
                ..Void::default()
            }]
        } else {
            Vec::new()
        },
        ..Dish::default()
    }
}

fn order(lines: i64) -> Event {
    let mut e = header(Situation::OrderSaved, 42);
    let dishes: Vec<Dish> = (0..lines).map(dish).collect();
    let sum: i64 = dishes.iter().filter_map(|d| d.amount).map(|k| k.0).sum();
    e.waiter = Some(person(1, "Иванова Мария"));
    e.order = Some(Order {
        visit: Some(477_823_977),
        order_ident: Some(256),
        guid: Some(Guid::from_u128(0x763C7F09_875A_438A_B6CB_25F7D3F74741)),
        order_name: Some("Стол 5".into()),
        version: Some(3),
        crc32: Some(1_234_567),
        order_sum: Some(Kopecks(sum)),
        unpaid_sum: Some(Kopecks(sum)),
        discount_sum: Some(Kopecks(0)),
        total_pieces: Some(lines * 2),
        seq_number: Some(1),
        paid: Some(false),
        finished: Some(false),
        open_time: Some(dt("2019-12-18T17:18:32")),
        creator: Some(person(1, "Иванова Мария")),
        waiter: Some(person(1, "Иванова Мария")),
        table: Some(Ref {
            id: Some(1_000_259),
            code: Some(5),
            name: Some("Стол 5".into()),
            extra: Extra::default(),
        }),
        guests: Some(Guests {
            count: Some(4),
            ..Guests::default()
        }),
        ..Order::default()
    });
    e.sessions = vec![Session {
        uni: Some(2),
        line_guid: Some(Guid::from_u128(0x39271E37_867D_41FF_99B8_59CB182323E9)),
        state: Some(LineState::Fixed),
        session_id: Some(2),
        is_draft: Some(false),
        remind_time: Some(dt("2019-12-18T17:18:00")),
        start_service: Some(dt("2019-12-18T17:18:33")),
        printed: Some(true),
        cook_mins: Some(0),
        station: Some(station()),
        author: Some(person(1, "Иванова Мария")),
        dishes,
        ..Session::default()
    }];
    e.items = vec![Item {
        class_name: Some("TOrder".into()),
        extra: Extra::default(),
    }];
    e
}

/// The three inputs: (label, bytes, number of dish lines).
fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut small = header(Situation::StationSignIn, 3);
    small.name = Some("Login".into());
    small.waiter = Some(person(1, "Administrator"));
    small.order = Some(Order {
        visit: Some(477_823_977),
        order_ident: Some(256),
        guid: Some(Guid::from_u128(0x763C7F09_875A_438A_B6CB_25F7D3F74741)),
        order_sum: Some(Kopecks(40_000)),
        open_time: Some(dt("2019-12-18T17:18:32")),
        creator: Some(person(1, "Administrator")),
        table: Some(Ref {
            id: Some(1_000_259),
            code: Some(5),
            name: Some("Стол 5".into()),
            extra: Extra::default(),
        }),
        ..Order::default()
    });
    small.change_log = Some(ChangeLog {
        dishes: vec![ChangeLogDish {
            id: Some(1_001),
            code: Some(101),
            name: Some(NAMES[1].into()),
            uni: Some(2),
            old_value: Some(Thousandths(0)),
            new_value: Some(Thousandths(1_000)),
            new: Some(true),
            extra: Extra::default(),
        }],
        extra: Extra::default(),
    });
    small.items = vec![Item::default()];
    vec![
        ("small_1k", write(&small)),
        ("order_10_dishes", write(&order(10))),
        ("banquet_500_lines", write(&order(500))),
    ]
}

/// The ceiling: quick-xml finds every event and nothing is done with it.
fn bare_loop(bytes: &[u8]) -> usize {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut n = 0usize;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => return n,
            Ok(ev) => {
                black_box(&ev);
                n += 1;
            }
            Err(e) => panic!("bench input is not XML: {e}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    for (label, bytes) in inputs() {
        // Make sure both sides do real work on valid input.
        let event = read(&bytes).expect("bench input reads");
        assert!(bare_loop(&bytes) > 3);
        eprintln!(
            "{label}: {} bytes, {} dish lines",
            bytes.len(),
            event.all_sessions().map(|s| s.dishes.len()).sum::<usize>()
        );
        group.throughput(Throughput::BytesDecimal(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("rk7_read", label), &bytes, |b, bytes| {
            b.iter(|| read(black_box(bytes)).expect("reads"));
        });
        group.bench_with_input(
            BenchmarkId::new("quick_xml_ceiling", label),
            &bytes,
            |b, bytes| b.iter(|| bare_loop(black_box(bytes))),
        );
    }
    group.finish();
}

/// The ratio measured a second way: on a machine shared with other work, the
/// load changes between criterion's runs of the two benchmarks, so here the
/// two are timed in alternating short rounds and the median of the per-round
/// ratios is printed. Runs only under `cargo bench` (not in `--test` mode).
fn interleaved_ratio(c: &mut Criterion) {
    let _ = c;
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for (label, bytes) in inputs() {
        let reps = (200_000 / bytes.len()).max(4);
        let time = |f: &dyn Fn()| {
            let start = std::time::Instant::now();
            for _ in 0..reps {
                f();
            }
            start.elapsed().as_secs_f64() / reps as f64
        };
        let mut ratios = Vec::new();
        let mut typed_best = f64::MAX;
        let mut bare_best = f64::MAX;
        for _ in 0..61 {
            let typed = time(&|| {
                black_box(read(black_box(&bytes)).expect("reads"));
            });
            let bare = time(&|| {
                black_box(bare_loop(black_box(&bytes)));
            });
            typed_best = typed_best.min(typed);
            bare_best = bare_best.min(bare);
            ratios.push(bare / typed);
        }
        ratios.sort_by(f64::total_cmp);
        let mb = bytes.len() as f64 / 1e6;
        eprintln!(
            "interleaved {label}: {} bytes; rk7::read best {:.1} MB/s ({:.0} events/s); \
             quick-xml ceiling best {:.1} MB/s; median ratio {:.0}% (quartiles {:.0}%..{:.0}%)",
            bytes.len(),
            mb / typed_best,
            1.0 / typed_best,
            mb / bare_best,
            100.0 * ratios[30],
            100.0 * ratios[15],
            100.0 * ratios[45],
        );
    }
}

criterion_group!(benches, bench, interleaved_ratio);
criterion_main!(benches);
