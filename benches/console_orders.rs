//! The console's Orders page rendered on the server with 100,000 orders
//! stored: the query, the template and the HTML, as a browser would get
//! them from `GET /orders`, timed per request. The bar: p95 under
//! 50 ms. `cargo bench --bench console_orders` prints p50/p95/p99 per view
//! and fails when a p95 is over the bar.
//!
//! The orders are written straight into the order-state table (as the
//! orders consumer writes them: indexed columns and the JSON snapshot),
//! which takes seconds; feeding 100,000 events through ingest would
//! measure ingest, not the page.

use std::sync::Arc;
use std::time::Instant;

use tillgate::console::orders::{ListQuery, render_list};
use tillgate::console::users::{Role, Session, User};
use tillgate::console::{Console, api::Api, render::Pages};
use tillgate::core::book::{DishLine, OrderSnapshot, OrderStatus};
use tillgate::core::clock::SharedClock;
use tillgate::core::config::Storage;
use tillgate::core::store::Db;

const ORDERS: usize = 100_000;
const RUNS: usize = 300;
const BAR_MS: f64 = 50.0;

fn order(i: usize) -> OrderSnapshot {
    let statuses = [
        OrderStatus::Closed,
        OrderStatus::Open,
        OrderStatus::Paid,
        OrderStatus::Deleted,
    ];
    let day = 1 + (i / 4000) % 28;
    let minute = i % 1440;
    OrderSnapshot {
        guid: format!("{:08x}-0000-4000-8000-{:012x}", i, i),
        rest_code: Some(format!("{}", 100 + i % 20)),
        visit: Some(i as i64),
        order_ident: Some(i as i64),
        order_name: Some(format!("T{}", i % 300)),
        table: Some(format!("{}", i % 40)),
        waiter: Some("Анна".into()),
        status: statuses[i % statuses.len()],
        opened_at: Some(format!(
            "2026-10-{day:02}T{:02}:{:02}:00",
            minute / 60,
            minute % 60
        )),
        updated_at: None,
        shift_num: Some((i / 4000) as i64),
        order_sum: 123_450 + i as i64,
        paid_sum: 123_450,
        dishes: vec![DishLine {
            uni: Some(1),
            code: Some(100),
            name: Some("Борщ".into()),
            quantity: 1000,
            price: 123_450,
            amount: 123_450,
            state: Some(1),
            kds_state: None,
        }],
        events: vec![i as i64 + 1],
        ..OrderSnapshot::default()
    }
}

async fn fill(db: &Db) {
    let mut tx = db.write.begin().await.unwrap();
    for i in 0..ORDERS {
        let o = order(i);
        sqlx::query(
            "INSERT INTO orders (order_guid, rest_code, status, opened_at, updated_at, shift_num, order_sum, paid_sum, receipts, is_return, last_offset, snapshot) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, 0, 0, $8, $9)",
        )
        .bind(&o.guid)
        .bind(o.rest_code.as_deref())
        .bind(o.status.as_str())
        .bind(o.opened_at.as_deref())
        .bind(o.shift_num)
        .bind(o.order_sum)
        .bind(o.paid_sum)
        .bind(i as i64 + 1)
        .bind(serde_json::to_string(&o).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

fn q(restaurant: Option<&str>, status: Option<&str>, after: Option<&str>) -> ListQuery {
    ListQuery {
        restaurant: restaurant.map(str::to_string),
        status: status.map(str::to_string),
        after: after.map(str::to_string),
        ..ListQuery::default()
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL in a scratch database when TILLGATE_BENCH_DATABASE_URL
        // names a server, SQLite otherwise.
        let pg = std::env::var("TILLGATE_BENCH_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let (storage, scratch) = match &pg {
            Some(admin) => {
                let (url, name) = tillgate::core::store::create_scratch_database(admin, "tg_bench")
                    .await
                    .unwrap();
                (Storage::Postgres { url: url.into() }, Some(name))
            }
            None => (
                Storage::Sqlite {
                    path: dir.path().join("bench.db"),
                },
                None,
            ),
        };
        println!(
            "storage: {}",
            if pg.is_some() { "PostgreSQL" } else { "SQLite" }
        );
        let db = Db::open(&storage).await.unwrap();
        tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
            .await
            .unwrap();
        let t = Instant::now();
        fill(&db).await;
        println!(
            "stored {ORDERS} orders in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let console = Console {
            db: db.clone(),
            api: Api::new(axum::Router::new()),
            clock: SharedClock::system(),
            limiter: Arc::default(),
            pages: Arc::new(Pages::new()),
            providers: Arc::default(),
            http: Arc::default(),
        };
        let admin = Session {
            user: User {
                name: "admin".into(),
                role: Role::Admin,
                restaurants: vec![],
            },
            csrf: "x".into(),
        };
        let manager = Session {
            user: User {
                name: "m".into(),
                role: Role::Manager,
                restaurants: vec!["106".into()],
            },
            csrf: "x".into(),
        };
        // A cursor deep in the list (page 1,000 of the unfiltered list).
        let deep = {
            let o = order(50_000);
            format!("{}|{}", o.opened_at.unwrap(), o.guid)
        };
        let views: Vec<(&str, &Session, ListQuery)> = vec![
            (
                "admin, all restaurants, first page",
                &admin,
                q(None, None, None),
            ),
            ("admin, one restaurant", &admin, q(Some("113"), None, None)),
            ("admin, status=open", &admin, q(None, Some("open"), None)),
            (
                "admin, deep page (keyset)",
                &admin,
                q(None, None, Some(&deep)),
            ),
            (
                "manager, own restaurant, status=paid",
                &manager,
                q(None, Some("paid"), None),
            ),
        ];
        let mut worst = 0.0f64;
        for (name, who, query) in &views {
            let mut ms = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let t = Instant::now();
                let res =
                    render_list(&console, who, tillgate::console::i18n::Lang::Ru, query).await;
                let body = axum::body::to_bytes(res.into_body(), 1 << 24)
                    .await
                    .unwrap();
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(
                    body.len() > 10_000,
                    "{name}: a page of orders ({} bytes)",
                    body.len()
                );
            }
            ms.sort_by(f64::total_cmp);
            let p = |x: f64| ms[((ms.len() as f64 * x) as usize).min(ms.len() - 1)];
            println!(
                "{name:40} p50 {:6.2} ms  p95 {:6.2} ms  p99 {:6.2} ms",
                p(0.50),
                p(0.95),
                p(0.99)
            );
            worst = worst.max(p(0.95));
        }
        db.close().await;
        if let (Some(admin), Some(name)) = (&pg, &scratch) {
            tillgate::core::store::drop_scratch_database(admin, name).await;
        }
        println!("worst p95 {worst:.2} ms (bar {BAR_MS} ms)");
        if worst > BAR_MS {
            eprintln!("FAIL: p95 over {BAR_MS} ms");
            std::process::exit(1);
        }
    });
}
