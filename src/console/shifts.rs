//! The Shifts page: each shift of the restaurants this person may see,
//! with its totals.

use axum::extract::{Query, State};
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
