//! The Back office page (read-only): sales by store and day with totals,
//! current stock (negative stock flagged, a store picked by `?store=`),
//! card switches per store and register, cashiers with their rights, and
//! (an admin's) the resync documents. Every figure is the back office's and
//! loyalty's own store functions; the page adds no query of its own.
//!
//! An admin sees every store; a manager or viewer only the stores whose
//! name is in their assigned restaurants.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::Console;
use super::auth::Signed;
use super::i18n::Lang;
use super::zone::Zones;
use crate::backoffice::{reports, resync, stock};
use crate::core::api_error::ApiError;
use crate::loyalty::{cashiers, registers, switches};

/// How many resync documents the page lists, newest first.
const RESYNCS_SHOWN: i64 = 50;

#[derive(Deserialize)]
pub struct BoQuery {
    store: Option<String>,
}

pub async fn page(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<BoQuery>,
) -> Response {
    let lang = Lang::of(&headers);
    let store = q.store.as_deref().map(str::trim).filter(|x| !x.is_empty());
    if let Some(st) = store
        && !s.user.may_see(Some(st))
    {
        return c.pages.forbidden(lang, &s);
    }
    match gather(&c, &s.user, store).await {
        Ok(data) => c.pages.page(
            StatusCode::OK,
            "backoffice.html",
            lang,
            Some(&s),
            "backoffice",
            data,
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn gather(
    c: &Console,
    user: &super::users::User,
    store: Option<&str>,
) -> Result<minijinja::Value, sqlx::Error> {
    let sees = |st: &str| user.may_see(Some(st)) && store.is_none_or(|x| x == st);
    // Read for every role: the zones say how to show tillgate's own times.
    let alerts = c.api.get("/api/alerts/settings").await.unwrap_or(json!({}));
    let zones = Zones::from_settings(&alerts);

    // Sales: the stores the journal knows, then each one's days.
    let by_store = reports::report(&c.db, reports::By::Store, &reports::Filter::default()).await?;
    let mut sales = Vec::new();
    let (mut receipts, mut amount) = (0, 0);
    for st in by_store.rows.iter().filter(|r| sees(&r.key)) {
        let f = reports::Filter {
            store: Some(st.key.clone()),
            ..Default::default()
        };
        let days = reports::report(&c.db, reports::By::Day, &f).await?;
        receipts += days.total.receipts;
        amount += days.total.amount;
        sales.push(context! { store => &st.key, days => days.rows, total => days.total });
    }

    let all_stock = stock::current(&c.db, None, None).await?;
    // The stores to pick from: the journal's and the stock's this person sees.
    let stores: std::collections::BTreeSet<&str> = by_store
        .rows
        .iter()
        .map(|r| r.key.as_str())
        .chain(all_stock.iter().map(|r| r.store.as_str()))
        .filter(|k| user.may_see(Some(k)))
        .collect();
    let stock: Vec<_> = all_stock
        .iter()
        .filter(|r| sees(&r.store))
        .map(|r| context! { negative => r.quantity < 0, r => r })
        .collect();

    // A register's switches belong to the store the register is in.
    let regs = registers::list(&c.db.read).await?;
    let store_of = |scope: &str, id: &str| -> Option<String> {
        if scope == switches::STORE {
            Some(id.to_string())
        } else {
            regs.iter().find(|r| r.id == id).map(|r| r.store.clone())
        }
    };
    let switches: Vec<_> = switches::list(&c.db.read)
        .await?
        .into_iter()
        .filter_map(|w| {
            let st = store_of(&w.scope, &w.id)?;
            sees(&st).then(|| {
                let at = zones.format(w.updated_at, Some(&st));
                let (discount, payment) = (w.discount_cards.map(|v| v != 0), w.payment_cards.map(|v| v != 0));
                context! { discount => discount, payment => payment, w => w, store => st, updated => at }
            })
        })
        .collect();
    let cashiers: Vec<_> = cashiers::list(&c.db.read, store)
        .await?
        .into_iter()
        .filter(|x| sees(&x.store))
        .collect();

    // Resyncs cover cards, not stores: an admin's.
    let resyncs: Vec<_> = if user.is_admin() {
        resync::list(&c.db, RESYNCS_SHOWN)
            .await?
            .into_iter()
            .map(|d| {
                let at = zones.format(d["created_at"].as_i64().unwrap_or(0), None);
                let changed = d["changed"].as_array().map_or(0, Vec::len);
                context! { d => d, at => at, changed => changed }
            })
            .collect()
    } else {
        Vec::new()
    };

    Ok(context! {
        store => store,
        stores => stores,
        sales => sales,
        total => context! { receipts => receipts, amount => amount },
        stock => stock,
        switches => switches,
        cashiers => cashiers,
        resyncs => resyncs,
    })
}
