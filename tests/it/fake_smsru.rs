//! A local sms.ru: the three endpoints tillgate uses, answering with
//! sms.ru's JSON shapes and error codes (as its API documents them), recording every
//! message it accepted so tests can count what guests received.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub to: String,
    pub msg: String,
    pub from: Option<String>,
    pub test: bool,
    pub sms_id: String,
}

/// What the next `sms/send` call answers instead of accepting.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Top-level `{"status":"ERROR","status_code":code,...}` with HTTP 200.
    Code(i64),
    /// An HTTP 500 with an HTML body, as a broken front end answers.
    Http500,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Every send request, accepted or not (for "nothing was attempted").
    requests: usize,
    faults: VecDeque<Fault>,
    number_errors: HashMap<String, i64>,
    delay: Duration,
    balance: String,
    delivered: bool,
    next_id: u64,
    /// Requests that carried the api_id in the URL, where proxies and
    /// access logs keep it.
    secret_in_url: usize,
}

#[derive(Clone)]
pub struct FakeSmsRu {
    pub base: String,
    api_id: Arc<String>,
    inner: Arc<Mutex<Inner>>,
}

fn error_text(code: i64) -> &'static str {
    match code {
        200 => "Неправильный api_id",
        201 => "Не хватает средств на лицевом счету",
        202 => "Неправильно указан номер телефона получателя, либо на него нет маршрута",
        207 => "На этот номер нет маршрута для доставки сообщений",
        209 => "Вы добавили этот номер (или один из номеров) в стоп-лист",
        220 => "Сервис временно недоступен, попробуйте чуть позже",
        _ => "Ошибка",
    }
}

fn top_error(code: i64) -> Response {
    Json(json!({"status": "ERROR", "status_code": code, "status_text": error_text(code)}))
        .into_response()
}

impl FakeSmsRu {
    pub async fn start(api_id: &str) -> FakeSmsRu {
        let fake = FakeSmsRu {
            base: String::new(),
            api_id: Arc::new(api_id.to_string()),
            inner: Arc::new(Mutex::new(Inner {
                balance: "123.45".into(),
                delivered: true,
                ..Inner::default()
            })),
        };
        let app = Router::new()
            .route("/sms/send", get(send).post(send))
            .route("/my/balance", get(balance).post(balance))
            .route("/sms/status", get(status).post(status))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSmsRu {
            base: format!("http://{addr}"),
            ..fake
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }
    pub fn secret_in_url(&self) -> usize {
        self.inner.lock().unwrap().secret_in_url
    }
    pub fn fail_next(&self, f: Fault) {
        self.inner.lock().unwrap().faults.push_back(f);
    }
    /// A per-number error inside an otherwise OK answer.
    pub fn number_error(&self, digits: &str, code: i64) {
        self.inner
            .lock()
            .unwrap()
            .number_errors
            .insert(digits.to_string(), code);
    }
    pub fn set_delay(&self, d: Duration) {
        self.inner.lock().unwrap().delay = d;
    }

    /// Waits until at least `n` messages were accepted.
    pub async fn wait_received(&self, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            let r = self.received();
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "fake sms.ru got {} messages, expected {n}",
            self.received().len()
        );
    }
}

/// The request's parameters as sms.ru reads them: the query string and a
/// form body together (either method works there).
fn params(fake: &FakeSmsRu, uri: &Uri, body: &Bytes) -> HashMap<String, String> {
    let mut q: HashMap<String, String> = HashMap::new();
    if let Some(query) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k == "api_id" {
                fake.inner.lock().unwrap().secret_in_url += 1;
            }
            q.insert(k.into_owned(), v.into_owned());
        }
    }
    for (k, v) in url::form_urlencoded::parse(body) {
        q.insert(k.into_owned(), v.into_owned());
    }
    q
}

fn auth_ok(fake: &FakeSmsRu, q: &HashMap<String, String>) -> bool {
    q.get("api_id").is_some_and(|k| k == fake.api_id.as_str())
}

async fn send(State(fake): State<FakeSmsRu>, uri: Uri, body: Bytes) -> Response {
    let q = params(&fake, &uri, &body);
    let delay = fake.inner.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut inner = fake.inner.lock().unwrap();
    inner.requests += 1;
    if !auth_ok(&fake, &q) {
        return top_error(200);
    }
    match inner.faults.pop_front() {
        Some(Fault::Code(c)) => return top_error(c),
        Some(Fault::Http500) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html>502 Bad Gateway</html>",
            )
                .into_response();
        }
        None => {}
    }
    let Some(msg) = q.get("msg").filter(|m| !m.is_empty()).cloned() else {
        return top_error(203);
    };
    let Some(to) = q.get("to").cloned() else {
        return top_error(202);
    };
    let mut per_number = serde_json::Map::new();
    for number in to.split(',') {
        if let Some(code) = inner.number_errors.get(number).copied() {
            per_number.insert(
                number.into(),
                json!({"status": "ERROR", "status_code": code, "status_text": error_text(code)}),
            );
            continue;
        }
        inner.next_id += 1;
        let sms_id = format!("000000-{:06}", inner.next_id);
        inner.received.push(Received {
            to: number.to_string(),
            msg: msg.clone(),
            from: q.get("from").cloned(),
            test: q.get("test").is_some_and(|t| t == "1"),
            sms_id: sms_id.clone(),
        });
        per_number.insert(
            number.into(),
            json!({"status": "OK", "status_code": 100, "sms_id": sms_id}),
        );
    }
    Json(json!({"status": "OK", "status_code": 100, "sms": per_number, "balance": 4122.56}))
        .into_response()
}

async fn balance(State(fake): State<FakeSmsRu>, uri: Uri, body: Bytes) -> Response {
    let q = params(&fake, &uri, &body);
    if !auth_ok(&fake, &q) {
        return top_error(200);
    }
    let b = fake.inner.lock().unwrap().balance.clone();
    // sms.ru writes the balance as a JSON number.
    let body = format!(r#"{{"status":"OK","status_code":100,"balance":{b}}}"#);
    ([("content-type", "application/json")], body).into_response()
}

async fn status(State(fake): State<FakeSmsRu>, uri: Uri, body: Bytes) -> Response {
    let q = params(&fake, &uri, &body);
    if !auth_ok(&fake, &q) {
        return top_error(200);
    }
    let id = q.get("sms_id").cloned().unwrap_or_default();
    let inner = fake.inner.lock().unwrap();
    let known = inner.received.iter().any(|r| r.sms_id == id);
    let one = if !known {
        json!({"status": "ERROR", "status_code": -1, "status_text": "Сообщение не найдено"})
    } else if inner.delivered {
        json!({"status": "OK", "status_code": 103, "status_text": "Сообщение доставлено", "cost": "1.70", "sms": 1})
    } else {
        json!({"status": "OK", "status_code": 102, "status_text": "Сообщение отправлено", "cost": "1.70", "sms": 1})
    };
    Json(json!({"status": "OK", "status_code": 100, "sms": {id: one}, "balance": 4122.56}))
        .into_response()
}
