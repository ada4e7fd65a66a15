//! Property tests of the journal, stock and accumulations on a real SQLite
//! file: any sequence of sales, returns (some asking for more than is left
//! of their sale), arrivals and counts leaves stock equal to the sum of its
//! movements and to a model, no return above its sale, and each card's
//! accumulated total equal to the sum over its receipts.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tillgate::backoffice::commit::JournalWrite;
use tillgate::backoffice::import::{self, Row};
use tillgate::backoffice::journal::Stored;
use tillgate::backoffice::receipt::{Kind, Line, Payments, Receipt};
use tillgate::backoffice::stock;
use tillgate::core::config::Storage;
use tillgate::core::store::Db;
use tillgate::loyalty::accrual::accrue_in_tables;
use tillgate::loyalty::operator::{NewCard, issue_card};

use crate::harness::{Backend, backends};

const GOODS: [&str; 4] = ["g0", "g1", "g2", "g3"];
const PRICE: [i64; 4] = [1_000, 2_490, 333, 10_000];
const CARDS: [&str; 2] = ["900", "901"];

#[derive(Debug, Clone)]
enum Step {
    Sale {
        goods: Vec<(usize, i64)>,
        card: Option<usize>,
    },
    /// Returns `share`/4 of each line of earlier sale number `sale`, plus
    /// `extra` thousandths (which may make it exceed the sale).
    Return {
        sale: usize,
        share: i64,
        extra: i64,
    },
    Arrival {
        goods: usize,
        quantity: i64,
    },
    Count {
        goods: usize,
        quantity: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop::collection::vec((0..4usize, 1..5_000i64), 1..5), prop::option::of(0..2usize))
            .prop_map(|(goods, card)| Step::Sale { goods, card }),
        2 => (0..20usize, 1..5i64, prop_oneof![Just(0i64), 1..2_000i64])
            .prop_map(|(sale, share, extra)| Step::Return { sale, share, extra }),
        1 => (0..4usize, 1..20_000i64).prop_map(|(goods, quantity)| Step::Arrival { goods, quantity }),
        1 => (0..4usize, 0..20_000i64).prop_map(|(goods, quantity)| Step::Count { goods, quantity }),
    ]
}

fn line(g: usize, q: i64) -> Line {
    let amount = (PRICE[g] * q + 500) / 1000;
    Line {
        goods_id: GOODS[g].into(),
        name: GOODS[g].into(),
        quantity: q,
        price: PRICE[g],
        amount,
        discount: 0,
    }
}

fn receipt(
    id: String,
    kind: Kind,
    sale: Option<String>,
    lines: Vec<Line>,
    card: Option<String>,
) -> Receipt {
    let total = lines.iter().map(|l| l.amount).sum();
    Receipt {
        receipt_id: id,
        store: "s1".into(),
        register: "r1".into(),
        cashier: "c1".into(),
        shift: 1,
        local_time: "2026-11-30T12:00:00".into(),
        kind,
        sale_receipt_id: sale,
        lines,
        total,
        payments: Payments {
            cash: total,
            ..Payments::default()
        },
        card,
        loyalty_operation_id: None,
    }
}

async fn take(db: &Db, r: Receipt) -> Stored {
    match r.card.clone() {
        Some(card) => {
            let w = Arc::new(JournalWrite { receipt: r, now: 1 });
            let a = accrue_in_tables(db, &card, w).await.unwrap();
            Stored::from_json(&a.answer)
        }
        None => {
            let mut tx = db.write.begin().await.unwrap();
            let s = tillgate::backoffice::journal::store(
                &mut tx,
                db.backend,
                &r,
                tillgate::backoffice::journal::Source::Register,
                1,
                None,
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            s
        }
    }
}

/// A journaled sale in the model: id, quantity left per goods, card, and
/// the money its card may still lose to returns.
type SaleModel = (String, BTreeMap<usize, i64>, Option<usize>, i64);

async fn run(steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&Storage::Sqlite {
        path: dir.path().join("t.sqlite"),
    })
    .await
    .unwrap();
    tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
        .await
        .unwrap();
    for c in CARDS {
        issue_card(
            &db,
            &NewCard {
                number: c.into(),
                holder_name: "P".into(),
                phone: None,
                barcode: None,
                track: None,
                state: None,
            },
        )
        .await
        .unwrap();
    }
    // The model: stock per goods, what is left to return per sale, each
    // card's accumulated total.
    let mut stock_m = [0i64; 4];
    let mut sales: Vec<SaleModel> = Vec::new();
    let mut acc = [0i64; 2];
    for (i, s) in steps.into_iter().enumerate() {
        match s {
            Step::Sale { goods, card } => {
                let lines: Vec<Line> = goods.iter().map(|(g, q)| line(*g, *q)).collect();
                let r = receipt(
                    format!("s{i}"),
                    Kind::Sale,
                    None,
                    lines.clone(),
                    card.map(|c| CARDS[c].to_string()),
                );
                let total = r.total;
                assert!(matches!(take(&db, r).await, Stored::New { .. }));
                let mut left = BTreeMap::new();
                for (g, q) in &goods {
                    stock_m[*g] -= q;
                    *left.entry(*g).or_default() += q;
                }
                if let Some(c) = card {
                    acc[c] += total;
                }
                sales.push((format!("s{i}"), left, card, total));
            }
            Step::Return { sale, share, extra } => {
                if sales.is_empty() {
                    continue;
                }
                let n = sale % sales.len();
                let (sid, left, card, _) = sales[n].clone();
                let mut lines = Vec::new();
                for (g, q) in &left {
                    let want = q * share / 4 + extra;
                    if want > 0 {
                        lines.push((*g, want));
                    }
                }
                if lines.is_empty() {
                    continue;
                }
                let fits = lines.iter().all(|(g, q)| *q <= left[g]);
                let r = receipt(
                    format!("ret{i}"),
                    Kind::Return,
                    Some(sid),
                    lines.iter().map(|(g, q)| line(*g, *q)).collect(),
                    card.map(|c| CARDS[c].to_string()),
                );
                let total = r.total;
                match take(&db, r).await {
                    Stored::New { .. } => {
                        assert!(fits, "a return above its sale was journaled");
                        for (g, q) in &lines {
                            stock_m[*g] += q;
                            *sales[n].1.get_mut(g).unwrap() -= q;
                        }
                        // Lines are rounded one by one: a return may come
                        // to a kopeck more than is left of its sale, and
                        // takes back no more than that from the card.
                        if let Some(c) = card {
                            let back = total.min(sales[n].3);
                            acc[c] -= back;
                            sales[n].3 -= back;
                        }
                    }
                    Stored::Refused(_) => assert!(!fits, "a return within its sale was refused"),
                    other => panic!("{other:?}"),
                }
            }
            Step::Arrival { goods, quantity } => {
                let row = Row {
                    store: "s1".into(),
                    goods_id: GOODS[goods].into(),
                    name: None,
                    unit: None,
                    kind: "arrival".into(),
                    quantity,
                    local_time: "2026-11-30T09:00:00".into(),
                };
                import::import(&db, &format!("a{i}"), &[row], 1)
                    .await
                    .unwrap();
                stock_m[goods] += quantity;
            }
            Step::Count { goods, quantity } => {
                let row = Row {
                    store: "s1".into(),
                    goods_id: GOODS[goods].into(),
                    name: None,
                    unit: None,
                    kind: "count".into(),
                    quantity,
                    local_time: "2026-11-30T21:00:00".into(),
                };
                import::import(&db, &format!("c{i}"), &[row], 1)
                    .await
                    .unwrap();
                stock_m[goods] = quantity;
            }
        }
    }
    let kept = stock::kept(&db).await.unwrap();
    assert_eq!(
        kept,
        stock::sums_of_movements(&db).await.unwrap(),
        "kept stock = Σ movements"
    );
    for l in &kept {
        let g = GOODS.iter().position(|g| *g == l.goods_id).unwrap();
        assert_eq!(l.quantity, stock_m[g], "{}", l.goods_id);
    }
    for (c, want) in CARDS.iter().zip(acc) {
        let got: i64 =
            sqlx::query_scalar("SELECT accumulated FROM loyalty_cards WHERE number = $1")
                .bind(*c)
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(
            got, want,
            "card {c}: accumulated = Σ what its receipts added"
        );
        let journal: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(accrued) AS BIGINT) FROM backoffice_receipts WHERE card = $1",
        )
        .bind(*c)
        .fetch_one(&db.read)
        .await
        .unwrap();
        assert_eq!(journal.unwrap_or(0), want);
    }
    db.close().await;
}

/// One receipt of a group: a sale under one of a few ids (so ids repeat,
/// with the same body or another), in one of two stores, or a return of an
/// earlier sale of the list.
#[derive(Debug, Clone)]
enum Item {
    Sale {
        id: usize,
        store: usize,
        goods: Vec<(usize, i64)>,
    },
    Return {
        of: usize,
        share: i64,
    },
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        5 => (0..12usize, 0..2usize, prop::collection::vec((0..4usize, 1..3_000i64), 1..4))
            .prop_map(|(id, store, goods)| Item::Sale { id, store, goods }),
        1 => (0..30usize, 1..4i64).prop_map(|(of, share)| Item::Return { of, share }),
    ]
}

fn group_of(items: &[Item]) -> Vec<Receipt> {
    let mut out: Vec<Receipt> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        match it {
            Item::Sale { id, store, goods } => {
                let lines = goods.iter().map(|&(g, q)| line(g, q)).collect();
                let mut r = receipt(format!("s{id}"), Kind::Sale, None, lines, None);
                r.store = format!("s{store}");
                out.push(r);
            }
            Item::Return { of, share } => {
                let Some(sale) = out.iter().filter(|r| r.kind == Kind::Sale).nth(*of) else {
                    continue;
                };
                let lines = sale
                    .lines
                    .iter()
                    .map(|l| {
                        line(
                            GOODS.iter().position(|g| *g == l.goods_id).unwrap(),
                            l.quantity * share / 4,
                        )
                    })
                    .filter(|l| l.quantity > 0)
                    .collect::<Vec<_>>();
                if lines.is_empty() {
                    continue;
                }
                let (id, store) = (sale.receipt_id.clone(), sale.store.clone());
                let mut r = receipt(format!("ret{i}"), Kind::Return, Some(id), lines, None);
                r.store = store;
                out.push(r);
            }
        }
    }
    out
}

async fn fresh_db(dir: &tempfile::TempDir, name: &str, backend: Backend) -> Db {
    let storage = match backend {
        Backend::Sqlite => Storage::Sqlite {
            path: dir.path().join(name),
        },
        Backend::Postgres => Storage::Postgres {
            url: crate::harness::fresh_pg_database().await.into(),
        },
    };
    let db = Db::open(&storage).await.unwrap();
    tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
        .await
        .unwrap();
    db
}

/// What the journal holds, to compare two databases.
async fn journal_rows(db: &Db) -> Vec<(String, String, String, i64)> {
    sqlx::query_as("SELECT id, request, answer, accrued FROM backoffice_receipts ORDER BY id")
        .fetch_all(&db.read)
        .await
        .unwrap()
}

/// A group's receipts stored together (the group commit's path: runs of
/// plain sales a few statements at a time) get exactly the answers, rows
/// and stock they get stored one at a time.
async fn group_equals_one_by_one(items: Vec<Item>) {
    use tillgate::backoffice::journal::{self, Source};
    let receipts = group_of(&items);
    let dir = tempfile::tempdir().unwrap();
    let (one, all) = (
        fresh_db(&dir, "one.sqlite", Backend::Sqlite).await,
        fresh_db(&dir, "all.sqlite", Backend::Sqlite).await,
    );
    let mut singly = Vec::new();
    for r in &receipts {
        singly.push(take(&one, r.clone()).await);
    }
    let mut tx = all.write.begin().await.unwrap();
    let together = journal::store_group(&mut tx, all.backend, &receipts, Source::Register, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(together, singly, "answers");
    assert_eq!(
        journal_rows(&all).await,
        journal_rows(&one).await,
        "journal"
    );
    assert_eq!(
        stock::kept(&all).await.unwrap(),
        stock::kept(&one).await.unwrap(),
        "stock"
    );
    assert_eq!(
        stock::kept(&all).await.unwrap(),
        stock::sums_of_movements(&all).await.unwrap()
    );
    one.close().await;
    all.close().await;
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 50, ..ProptestConfig::default() })]
    #[test]
    fn journal_stock_and_accumulations_add_up(steps in prop::collection::vec(step(), 1..40)) {
        block_on(run(steps));
    }

    #[test]
    fn a_group_answers_as_its_receipts_one_at_a_time(items in prop::collection::vec(item(), 1..40)) {
        block_on(group_equals_one_by_one(items));
    }
}

/// The group path's corners, on both backends: a repeat and a conflict
/// inside one run, a return between runs, two lines of one goods item.
#[tokio::test]
async fn a_group_with_a_repeat_a_conflict_and_a_return() {
    use tillgate::backoffice::journal::{self, Source};
    let items = vec![
        Item::Sale {
            id: 1,
            store: 0,
            goods: vec![(0, 1_000), (1, 2_000)],
        },
        Item::Sale {
            id: 2,
            store: 1,
            goods: vec![(0, 500)],
        },
        Item::Sale {
            id: 1,
            store: 0,
            goods: vec![(0, 1_000), (1, 2_000)],
        },
        Item::Return { of: 0, share: 2 },
        Item::Sale {
            id: 2,
            store: 1,
            goods: vec![(3, 7)],
        },
        Item::Sale {
            id: 3,
            store: 0,
            goods: vec![(0, 250), (0, 250)],
        },
    ];
    let receipts = group_of(&items);
    assert_eq!(receipts.len(), 6);
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let db = fresh_db(&dir, "g.sqlite", backend).await;
        let mut tx = db.write.begin().await.unwrap();
        let s = journal::store_group(&mut tx, db.backend, &receipts, Source::Register, 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let Stored::New { answer: first, .. } = &s[0] else {
            panic!("{:?}", s[0])
        };
        assert!(matches!(s[1], Stored::New { .. }));
        assert_eq!(s[2], Stored::Repeat(first.clone()));
        assert!(matches!(s[3], Stored::New { .. }), "{:?}", s[3]);
        assert_eq!(s[4], Stored::Conflict);
        // Two lines of one goods item: one level, after both.
        let Stored::New { answer, .. } = &s[5] else {
            panic!("{:?}", s[5])
        };
        assert_eq!(answer["stock"].as_array().unwrap().len(), 1);
        // g0 in s0: -1000 (sale 1), +500 (return of half), -500 (sale 3).
        assert_eq!(answer["stock"][0]["quantity"], -1_000);
        db.close().await;
    }
}
