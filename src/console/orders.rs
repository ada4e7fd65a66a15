//! The Orders pages: the list (filters, keyset pages, new events appearing
//! live over Server-Sent Events), and one order with its dishes, voids,
//! discounts, payments, receipts, kitchen state and the raw XML of each of
//! its events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use super::Console;
use super::auth::Signed;
use super::i18n::Lang;
use super::users::User;
use crate::core::book::{OrderSnapshot, OrderStatus};
use crate::core::log;
use crate::orders::store::{self, OrderFilter};

/// A restaurant this person is not assigned.
#[derive(Debug, PartialEq, Eq)]
pub struct NotYours;

/// Orders on one page.
pub const PAGE: i64 = 50;

/// The restaurant a list shows: an admin may ask for any or all; a
/// manager or viewer for one of theirs (their first when they name none).
/// `Err` when they asked for another's.
pub fn scope(user: &User, asked: Option<&str>) -> Result<Option<String>, NotYours> {
    let asked = asked.filter(|r| !r.is_empty());
    if user.is_admin() {
        return Ok(asked.map(str::to_string));
    }
    match asked {
        Some(r) if user.may_see(Some(r)) => Ok(Some(r.to_string())),
        Some(_) => Err(NotYours),
        None => user.restaurants.first().cloned().map(Some).ok_or(NotYours),
    }
}

/// The list's filters, as the form sends them.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub restaurant: Option<String>,
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The keyset cursor of the next page.
    pub after: Option<String>,
}

fn empty_none(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The list page's HTML, apart from the handler: the benchmark renders it.
pub async fn render_list(
    c: &Console,
    s: &super::users::Session,
    lang: Lang,
    q: &ListQuery,
) -> Response {
    let Ok(rest) = scope(&s.user, empty_none(&q.restaurant)) else {
        return c.pages.forbidden(lang, s);
    };
    let status = empty_none(&q.status).filter(|v| OrderStatus::parse(v).is_some());
    let after = empty_none(&q.after).and_then(|a| a.split_once('|'));
    let filter = OrderFilter {
        restaurant: rest.as_deref(),
        status,
        from: empty_none(&q.from),
        to: empty_none(&q.to),
        after,
        // Owners look for what just happened: newest first.
        newest_first: true,
    };
    let page = match store::orders_page(&c.db, &filter, PAGE).await {
        Ok(p) => p,
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    };
    let next = if page.more {
        page.items
            .last()
            .map(|o| format!("{}|{}", page.last_opened_at, o.guid))
    } else {
        None
    };
    c.pages.page(
        StatusCode::OK,
        "orders.html",
        lang,
        Some(s),
        "orders",
        context! {
            orders => page.items,
            next => next,
            restaurant => rest,
            restaurants => &s.user.restaurants,
            status => status,
            from => empty_none(&q.from),
            to => empty_none(&q.to),
            statuses => ["open", "prebill", "paid", "closed", "deleted", "return"],
        },
    )
}

pub async fn list(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    render_list(&c, &s, Lang::of(&headers), &q).await
}

pub async fn detail(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> Response {
    let lang = Lang::of(&headers);
    let not_found = || {
        c.pages.message(
            StatusCode::NOT_FOUND,
            lang,
            Some(&s),
            &format!("no order {guid}"),
        )
    };
    let Some(canon) = crate::core::book::normalise_guid(&guid) else {
        return not_found();
    };
    let order = match store::order(&c.db, &canon).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(),
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    };
    if !s.user.may_see(order.rest_code.as_deref()) {
        tracing::warn!(user = ?s.user.name, order = ?canon, "console: order of another restaurant refused");
        return c.pages.forbidden(lang, &s);
    }
    // The newest events first; an order with hundreds shows its last 200.
    // When tillgate received each: in the restaurant's local time.
    let zones = super::zone::Zones::from_settings(
        &c.api.get("/api/alerts/settings").await.unwrap_or_default(),
    );
    let mut events = Vec::new();
    for offset in order.events.iter().rev().take(200) {
        match log::get(&c.db, *offset).await {
            Ok(Some(e)) => events.push(context! {
                offset => e.offset,
                situation => e.situation,
                event_time => e.event_time,
                received_at => zones.format(e.received_at, order.rest_code.as_deref()),
                // Guests' phones (`<Prop name="phone">`) shown masked to
                // every role: the page is for seeing what the cash server
                // sent, not for reading a guest's number (152-FZ).
                xml => crate::sms::redact::hide_phones(&String::from_utf8_lossy(&e.body)),
            }),
            Ok(None) => {}
            Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
        }
    }
    c.pages.page(
        StatusCode::OK,
        "order.html",
        lang,
        Some(&s),
        "orders",
        context! { o => order, events => events },
    )
}

/// A changed order as the live list shows it.
fn live_row(o: &OrderSnapshot, lang: Lang) -> serde_json::Value {
    serde_json::json!({
        "guid": o.guid,
        "rest_code": o.rest_code,
        "status": o.status.as_str(),
        "opened_at": o.opened_at,
        "waiter": o.waiter,
        "table": o.table,
        "order_sum": super::i18n::money(o.order_sum, lang),
        "paid_sum": super::i18n::money(o.paid_sum, lang),
    })
}

#[derive(Deserialize)]
pub struct LiveQuery {
    restaurant: Option<String>,
}

struct Live {
    c: Console,
    user: User,
    restaurant: Option<String>,
    lang: Lang,
    after: i64,
    ready: VecDeque<serde_json::Value>,
}

impl Live {
    /// The next changed order this person may see; waits for the log.
    async fn next(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(v) = self.ready.pop_front() {
                return Some(v);
            }
            let entries = match log::read_after(&self.c.db, self.after, 200, false).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "console live orders: reading the log failed");
                    Vec::new()
                }
            };
            if entries.is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            for e in &entries {
                self.after = e.offset;
                let (Some(guid), rest) = (&e.order_guid, e.rest_code.as_deref()) else {
                    continue;
                };
                if !self.user.may_see(rest)
                    || self.restaurant.as_deref().is_some_and(|r| Some(r) != rest)
                    || !seen.insert(guid.clone())
                {
                    continue;
                }
                // The order state consumer may be a moment behind the log:
                // give it that moment, then show what it has.
                let mut order = None;
                for _ in 0..10 {
                    match store::order(&self.c.db, guid).await {
                        Ok(Some(o)) if o.events.contains(&e.offset) => {
                            order = Some(o);
                            break;
                        }
                        Ok(found) => order = found,
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if let Some(o) = order {
                    self.ready.push_back(live_row(&o, self.lang));
                }
            }
        }
    }
}

/// `GET /orders/live`: each order that changes from now on, as an SSE
/// `data:` line of JSON, for the restaurants this person may see.
pub async fn live(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Response {
    let lang = Lang::of(&headers);
    let Ok(restaurant) = scope(&s.user, empty_none(&q.restaurant)) else {
        return c.pages.forbidden(lang, &s);
    };
    let after = match log::head(&c.db).await {
        Ok(h) => h,
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    };
    let live = Live {
        c,
        user: s.user,
        restaurant,
        lang,
        after,
        ready: VecDeque::new(),
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        let row = live.next().await?;
        let ev: Result<Event, Infallible> = Ok(Event::default().data(row.to_string()));
        Some((ev, live))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::users::Role;

    #[test]
    fn a_list_is_scoped_to_the_persons_restaurants() {
        let admin = User {
            name: "a".into(),
            role: Role::Admin,
            restaurants: vec![],
        };
        let m = User {
            name: "m".into(),
            role: Role::Manager,
            restaurants: vec!["101".into(), "102".into()],
        };
        assert_eq!(scope(&admin, None), Ok(None));
        assert_eq!(scope(&admin, Some("999")), Ok(Some("999".into())));
        assert_eq!(scope(&m, None), Ok(Some("101".into())));
        assert_eq!(scope(&m, Some("102")), Ok(Some("102".into())));
        assert_eq!(scope(&m, Some("999")), Err(NotYours));
    }
}
