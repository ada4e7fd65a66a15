//! The emulated cash server's HTTPS side: the XML interface and the
//! subscription endpoint, answering the way r_keeper does (the outcome in
//! `Status`, HTTP 200 even on errors, 401 for a wrong password, a form body
//! read as empty), from what has happened so far.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;

use super::{Shared, State as Cash};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(rk7::xmlapi::PATH, post(xml_interface))
        .route(rk7::xmlapi::SUBSCRIBE_PATH, any(subscribe))
        .with_state(shared)
}

/// HTTP Basic with the configured employee, or the 401 r_keeper gives.
fn authorised(s: &Cash, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|up| up == format!("{}:{}", s.opts.user, s.opts.password));
    if ok {
        Ok(())
    } else {
        Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"RK7\"")],
                "Unauthorized",
            )
                .into_response(),
        ))
    }
}

/// The checks every request meets first: the password, then the faults
/// the operator switched on (a hang, then garbage or a refusing Status).
async fn gate(shared: &Shared, headers: &HeaderMap, cmd: &str) -> Result<(), Box<Response>> {
    let faults = {
        let s = shared.lock();
        authorised(&s, headers)?;
        s.faults.clone()
    };
    if let Some(h) = faults.hang {
        tokio::time::sleep(h).await;
    }
    if faults.garble {
        return Err(Box::new(xml(
            "<?xml version=\"1.0\"?><RK7QueryResult Status=\"Ok\"><SystemInfo RestCode=\"".into(),
        )));
    }
    if let Some((status, error)) = &faults.status {
        let n = if error.contains("2172") {
            " RK7ErrorN=\"2172\""
        } else {
            ""
        };
        return Err(Box::new(xml(result(
            &shared.lock(),
            status,
            cmd,
            error,
            n,
            "",
        ))));
    }
    Ok(())
}

fn xml(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn result(s: &Cash, status: &str, cmd: &str, error: &str, attrs: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<RK7QueryResult ServerVersion=\"{}\" XmlVersion=\"246\" NetName=\"{}\" Status=\"{status}\" CMD=\"{cmd}\" ErrorText=\"{}\" DateTime=\"{}\" WorkTime=\"0\" Processed=\"1\"{attrs}>{inner}</RK7QueryResult>",
        esc(&s.opts.server_version),
        esc(&s.server_name),
        esc(error),
        chrono::Local::now()
            .naive_local()
            .format("%Y-%m-%dT%H:%M:%S"),
    )
}

/// The value of attribute `name` in the request text.
fn attr(text: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = text.find(&key)? + key.len();
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}

async fn xml_interface(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A body sent as a form is read as empty, as r_keeper does.
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let text = if form {
        String::new()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let cmd = attr(&text, "CMD");
    if let Err(r) = gate(&shared, &headers, cmd.as_deref().unwrap_or("")).await {
        return *r;
    }
    let s = shared.lock();
    let Some(cmd) = cmd else {
        return xml(result(&s, "Query Parse Error", "", "Empty query", "", ""));
    };
    let answer = match cmd.as_str() {
        "GetSystemInfo" | "GetSystemInfo2" => system_info(&s, &cmd),
        "GetOrderList" => order_list(&s, &text),
        "GetOrder" => order(&s, &text),
        "GetRefData" => ref_data(&s, &text),
        other => result(&s, "Bad Query Parameters", other, "Unknown command", "", ""),
    };
    xml(answer)
}

fn system_info(s: &Cash, cmd: &str) -> String {
    let date = s.shift_date.clone().unwrap_or_default();
    let mut inner = format!(
        "<SystemInfo NetName=\"{}\" RestCode=\"{}\" ShiftDate=\"{}\"><CashGroup id=\"1\" code=\"1\" name=\"{}\"/><Restaurant id=\"1\" code=\"1\" name=\"Restaurant {}\"/>",
        esc(&s.server_name),
        esc(&s.rest_code),
        esc(&date),
        esc(&s.server_name),
        esc(&s.rest_code),
    );
    if cmd == "GetSystemInfo2"
        && let Some(n) = s.shift_num
    {
        let _ = write!(
            inner,
            "<CommonShift ShiftDate=\"{}\" ShiftNum=\"{n}\"/>",
            esc(&date)
        );
    }
    inner.push_str("</SystemInfo>");
    result(s, "Ok", cmd, "", "", &inner)
}

fn order_list(s: &Cash, text: &str) -> String {
    let only_opened = attr(text, "onlyOpened").as_deref() == Some("1");
    let lastversion = attr(text, "lastversion").and_then(|v| v.parse::<i64>().ok());
    let version = format!(" lastversion=\"{}\"", s.list_version);
    if lastversion == Some(s.list_version) {
        return result(s, "No changes", "GetOrderList", "", &version, "");
    }
    let mut inner = String::new();
    for (guid, o) in &s.orders {
        let finished = o.closed || o.order.finished == Some(true) || o.order.deleted == Some(true);
        if only_opened && finished {
            continue;
        }
        let oo = &o.order;
        let _ = write!(
            inner,
            "<Visit VisitID=\"{}\" Finished=\"{}\"><Orders><Order OrderID=\"{}\" guid=\"{}\" Version=\"{}\" OrderSum=\"{}\" ToPaySum=\"{}\" Finished=\"{}\" CreateTime=\"{}\"/></Orders></Visit>",
            oo.visit.unwrap_or(0),
            u8::from(finished),
            oo.order_ident.unwrap_or(0),
            esc(guid),
            oo.version.unwrap_or(0),
            oo.order_sum.map_or(0, |k| k.0),
            oo.unpaid_sum.map_or(0, |k| k.0),
            u8::from(finished),
            oo.open_time
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        );
    }
    result(s, "Ok", "GetOrderList", "", &version, &inner)
}

fn order(s: &Cash, text: &str) -> String {
    let guid = attr(text, "guid").map(|g| g.to_ascii_uppercase());
    let Some(o) = guid.as_ref().and_then(|g| s.orders.get(g)) else {
        return result(
            s,
            "Query Executing Error",
            "GetOrder",
            "Order not found",
            "",
            "",
        );
    };
    let mut order = o.order.clone();
    if o.closed {
        order.finished = Some(true);
    }
    result(s, "Ok", "GetOrder", "", "", &order_element(order))
}

/// The `<Order>` element exactly as the notify writer writes it.
fn order_element(order: rk7::Order) -> String {
    let mut ev = rk7::Event::new(rk7::Situation::OrderChanged);
    ev.order = Some(order);
    let text = String::from_utf8_lossy(&rk7::write(&ev)).into_owned();
    match (text.find("<Order"), text.rfind("</Order>")) {
        (Some(a), Some(b)) => text[a..b + "</Order>".len()].to_string(),
        _ => String::new(),
    }
}

fn ref_data(s: &Cash, text: &str) -> String {
    let name = attr(text, "RefName").unwrap_or_default();
    let items: Vec<(i64, String)> = match name.as_str() {
        "CASHES" => s.stations.iter().map(|(c, n)| (*c, n.clone())).collect(),
        "EMPLOYEES" => s.employees.iter().map(|(c, n)| (*c, n.clone())).collect(),
        "RESTAURANTS" => vec![(1, format!("Restaurant {}", s.rest_code))],
        _ => {
            return result(
                s,
                "Bad Query Parameters",
                "GetRefData",
                "Unknown reference",
                "",
                "",
            );
        }
    };
    let mut inner = format!(
        "<RK7Reference DataVersion=\"1\" ClassName=\"{name}\" Name=\"{name}\" TotalItemCount=\"{}\"><Items>",
        items.len()
    );
    for (code, n) in items {
        let _ = write!(
            inner,
            "<Item Ident=\"{code}\" Code=\"{code}\" Name=\"{}\" Status=\"3\"/>",
            esc(&n)
        );
    }
    inner.push_str("</Items></RK7Reference>");
    result(s, "Ok", "GetRefData", "", "", &inner)
}

#[derive(serde::Deserialize)]
struct SubscribeQuery {
    service: Option<String>,
    url: Option<String>,
}

/// The subscription endpoint: GET lists, POST adds, DELETE removes.
async fn subscribe(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    headers: HeaderMap,
    Query(q): Query<SubscribeQuery>,
) -> Response {
    if let Err(r) = gate(&shared, &headers, "subscribe").await {
        return *r;
    }
    {
        let s = shared.lock();
        if !rk7::xmlapi::supports_subscriptions(&s.opts.server_version) {
            return (StatusCode::NOT_FOUND, "Not found").into_response();
        }
        if q.service.as_deref() != Some("httpnotf") {
            return xml(result(
                &s,
                "Bad Query Parameters",
                "subscribe",
                "unknown service",
                "",
                "",
            ));
        }
    }
    let url = q.url.filter(|u| !u.trim().is_empty());
    match (method.as_str(), url) {
        ("GET", _) => {
            let s = shared.lock();
            let mut inner = String::from("<Subscriptions>");
            for u in &s.subscriptions {
                let _ = write!(
                    inner,
                    "<Subscription service=\"httpnotf\" url=\"{}\"/>",
                    esc(u)
                );
            }
            inner.push_str("</Subscriptions>");
            xml(result(&s, "Ok", "subscribe", "", "", &inner))
        }
        ("POST", Some(u)) => {
            shared.add_destination(&u);
            xml(result(&shared.lock(), "Ok", "subscribe", "", "", ""))
        }
        ("DELETE", Some(u)) => {
            let removed = shared.remove_destination(&u);
            let s = shared.lock();
            if removed {
                xml(result(&s, "Ok", "subscribe", "", "", ""))
            } else {
                xml(result(
                    &s,
                    "Query Executing Error",
                    "subscribe",
                    "no such subscription",
                    "",
                    "",
                ))
            }
        }
        (_, None) => xml(result(
            &shared.lock(),
            "Bad Query Parameters",
            "subscribe",
            "url is required",
            "",
            "",
        )),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "").into_response(),
    }
}
