//! The Shifts pages: each shift of the restaurants this person may see,
//! with its totals; one shift's report with the hourly chart the Telegram
//! report sends.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use super::Console;
use super::auth::Signed;
use super::i18n::Lang;
use crate::orders::store;

#[derive(Deserialize)]
pub struct ShiftQuery {
    restaurant: Option<String>,
}

pub async fn page(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<ShiftQuery>,
) -> Response {
    let lang = Lang::of(&headers);
    let Ok(rest) = super::orders::scope(&s.user, q.restaurant.as_deref()) else {
        return c.pages.forbidden(lang, &s);
    };
    let shifts = match store::shifts(&c.db, rest.as_deref()).await {
        Ok(v) => v,
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    };
    let mut rows = Vec::new();
    // Newest first; the 100 latest are enough for a page.
    for sh in shifts.into_iter().rev().take(100) {
        match store::shift_totals(&c.db, &sh.rest_code, sh.shift_num).await {
            Ok(t) => rows.push(context! { s => sh, t => t }),
            Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
        }
    }
    c.pages.page(
        StatusCode::OK,
        "shifts.html",
        lang,
        Some(&s),
        "shifts",
        context! { shifts => rows, restaurant => rest, restaurants => &s.user.restaurants },
    )
}

/// The report of one shift, as the Telegram shift report computes it.
async fn report(
    c: &Console,
    rest: &str,
    num: i64,
) -> Result<crate::alerts::report::ShiftReport, crate::core::store::StoreError> {
    crate::alerts::report::compute(&c.db, &crate::alerts::Settings::default(), rest, num).await
}

/// `GET /shifts/{rest}/{num}`: a shift's report: totals, payments, top
/// dishes, voids, deleted receipts and the hourly chart.
pub async fn detail(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path((rest, num)): Path<(String, i64)>,
) -> Response {
    let lang = Lang::of(&headers);
    if !s.user.may_see(Some(&rest)) {
        return c.pages.forbidden(lang, &s);
    }
    match report(&c, &rest, num).await {
        Ok(r) => c.pages.page(
            StatusCode::OK,
            "shift.html",
            lang,
            Some(&s),
            "shifts",
            context! { r => r },
        ),
        Err(e) => crate::core::api_error::ApiError::from(e).into_response(),
    }
}

/// `GET /shifts/{rest}/{num}/chart.png`: the hourly sales chart the
/// Telegram report sends.
pub async fn chart(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path((rest, num)): Path<(String, i64)>,
) -> Response {
    if !s.user.may_see(Some(&rest)) {
        return c.pages.forbidden(Lang::of(&headers), &s);
    }
    let r = match report(&c, &rest, num).await {
        Ok(r) => r,
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    };
    match tokio::task::spawn_blocking(move || crate::alerts::report::chart_png(&r)).await {
        Ok(Ok(png)) => ([(axum::http::header::CONTENT_TYPE, "image/png")], png).into_response(),
        Ok(Err(e)) => crate::core::api_error::ApiError::internal(e).into_response(),
        Err(e) => crate::core::api_error::ApiError::internal(e).into_response(),
    }
}
