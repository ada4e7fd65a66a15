//! A local fake of the Telegram Bot API, as strict as the real one where it
//! matters to tillgate: token check, HTML entity parsing, the 4096-character
//! limit, per-chat and per-group rate limits with 429 + retry_after,
//! supergroup migration, getUpdates. Tests can script failures and read what
//! was accepted.

// Handlers answer early with a ready response; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const TOKEN: &str = "123456789:AAFakeTokenForTests_abcdefghijklmno";

#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Text {
        chat: i64,
        text: String,
    },
    Photo {
        chat: i64,
        caption: String,
        png: Vec<u8>,
    },
}

impl Sent {
    pub fn chat(&self) -> i64 {
        match self {
            Sent::Text { chat, .. } | Sent::Photo { chat, .. } => *chat,
        }
    }
    pub fn text(&self) -> &str {
        match self {
            Sent::Text { text, .. } => text,
            Sent::Photo { caption, .. } => caption,
        }
    }
}

/// A scripted answer for the next send call.
#[derive(Debug, Clone)]
pub enum Script {
    TooManyRequests(u64),
    ServerError,
}

#[derive(Default)]
pub struct Inner {
    pub sent: Vec<Sent>,
    pub rejected: Vec<(u16, String)>,
    pub script: VecDeque<Script>,
    pub migrated: HashMap<i64, i64>,
    pub updates: Vec<Value>,
    pub last_by_chat: HashMap<i64, Instant>,
    pub group_window: HashMap<i64, VecDeque<Instant>>,
    pub too_many: u32,
    pub paths: Vec<String>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub base: String,
    pub inner: Arc<Mutex<Inner>>,
}

#[derive(Clone)]
struct S {
    inner: Arc<Mutex<Inner>>,
    per_chat: Duration,
}

fn err(code: u16, description: &str, params: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(p) = params {
        body["parameters"] = p;
    }
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

const ALLOWED: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-spoiler",
    "span",
    "tg-emoji",
];

/// Parses Telegram HTML the way the Bot API does for the cases tillgate can
/// produce: allowed tags only, balanced, entities well formed. Returns the
/// plain text length, or the error description.
pub fn check_html(text: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut len = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '<' => {
                let end = text[i..].find('>').ok_or_else(|| {
                    format!(
                        "Bad Request: can't parse entities: Unclosed start tag at byte offset {i}"
                    )
                })?;
                let inner = &text[i + 1..i + end];
                let (closing, name) = match inner.strip_prefix('/') {
                    Some(n) => (true, n.trim()),
                    None => (false, inner.split_whitespace().next().unwrap_or("")),
                };
                let name = name.to_ascii_lowercase();
                if !ALLOWED.contains(&name.as_str()) {
                    return Err(format!(
                        "Bad Request: can't parse entities: Unsupported start tag \"{name}\" at byte offset {i}"
                    ));
                }
                if closing {
                    if stack.pop().as_deref() != Some(name.as_str()) {
                        return Err(format!(
                            "Bad Request: can't parse entities: Unmatched end tag at byte offset {i}, expected \"</{}>\", found \"</{name}>\"",
                            stack.last().cloned().unwrap_or_default()
                        ));
                    }
                } else {
                    stack.push(name);
                }
                while let Some((j, _)) = chars.peek() {
                    if *j <= i + end {
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            '&' => {
                let rest = &text[i..];
                let end = rest.find(';').filter(|e| *e <= 10);
                let ent = end.map(|e| &rest[1..e]);
                let ok = match ent {
                    Some("lt" | "gt" | "amp" | "quot") => true,
                    Some(e) if e.starts_with('#') => {
                        e[1..]
                            .trim_start_matches('x')
                            .chars()
                            .all(|c| c.is_ascii_hexdigit())
                            && e.len() > 1
                    }
                    _ => false,
                };
                if !ok {
                    return Err(format!(
                        "Bad Request: can't parse entities: Character '&' is reserved and must be escaped at byte offset {i}"
                    ));
                }
                let e = end.unwrap();
                while let Some((j, _)) = chars.peek() {
                    if *j <= i + e {
                        chars.next();
                    } else {
                        break;
                    }
                }
                len += 1;
            }
            _ => len += 1,
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{open}\""
        ));
    }
    Ok(len)
}

impl S {
    /// Shared checks of sendMessage/sendPhoto: migration, rate limits, script.
    fn gate(&self, chat: i64) -> Result<(), Response> {
        let mut g = self.inner.lock().unwrap();
        if let Some(&to) = g.migrated.get(&chat) {
            return Err(err(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                Some(json!({"migrate_to_chat_id": to})),
            ));
        }
        if let Some(s) = g.script.pop_front() {
            match s {
                Script::TooManyRequests(n) => {
                    g.too_many += 1;
                    return Err(err(
                        429,
                        &format!("Too Many Requests: retry after {n}"),
                        Some(json!({"retry_after": n})),
                    ));
                }
                Script::ServerError => return Err(err(502, "Bad Gateway", None)),
            }
        }
        let now = Instant::now();
        if let Some(last) = g.last_by_chat.get(&chat)
            && now.duration_since(*last) < self.per_chat
        {
            g.too_many += 1;
            return Err(err(
                429,
                "Too Many Requests: retry after 1",
                Some(json!({"retry_after": 1})),
            ));
        }
        if chat < 0 {
            let w = g.group_window.entry(chat).or_default();
            while w
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
            {
                w.pop_front();
            }
            if w.len() >= 20 {
                g.too_many += 1;
                return Err(err(
                    429,
                    "Too Many Requests: retry after 30",
                    Some(json!({"retry_after": 30})),
                ));
            }
            w.push_back(now);
        }
        g.last_by_chat.insert(chat, now);
        Ok(())
    }

    fn accept(&self, sent: Sent) -> Response {
        let mut g = self.inner.lock().unwrap();
        let id = g.sent.len() as i64 + 1;
        g.sent.push(sent);
        Json(json!({"ok": true, "result": {"message_id": id, "date": 0, "chat": {"id": 0, "type": "private"}}})).into_response()
    }
}

fn check_token(token: &str) -> Result<(), Response> {
    if token.strip_prefix("bot") == Some(TOKEN) {
        Ok(())
    } else {
        Err(err(401, "Unauthorized", None))
    }
}

async fn send_message(
    State(s): State<S>,
    Path(token): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = check_token(&token) {
        return r;
    }
    s.inner.lock().unwrap().paths.push("sendMessage".into());
    let Some(chat) = body["chat_id"].as_i64() else {
        return err(400, "Bad Request: chat_id is empty", None);
    };
    let text = body["text"].as_str().unwrap_or("").to_string();
    let len = if body["parse_mode"] == "HTML" {
        match check_html(&text) {
            Ok(n) => n,
            Err(d) => {
                s.inner.lock().unwrap().rejected.push((400, d.clone()));
                return err(400, &d, None);
            }
        }
    } else {
        text.chars().count()
    };
    if len == 0 {
        return err(400, "Bad Request: message text is empty", None);
    }
    if len > 4096 {
        s.inner
            .lock()
            .unwrap()
            .rejected
            .push((400, "too long".into()));
        return err(400, "Bad Request: message is too long", None);
    }
    if let Err(r) = s.gate(chat) {
        return r;
    }
    s.accept(Sent::Text { chat, text })
}

async fn send_photo(
    State(s): State<S>,
    Path(token): Path<String>,
    mut form: Multipart,
) -> Response {
    if let Err(r) = check_token(&token) {
        return r;
    }
    let (mut chat, mut caption, mut png) = (None, String::new(), Vec::new());
    while let Ok(Some(field)) = form.next_field().await {
        match field.name().unwrap_or("") {
            "chat_id" => chat = field.text().await.ok().and_then(|t| t.parse::<i64>().ok()),
            "caption" => caption = field.text().await.unwrap_or_default(),
            "photo" => png = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            _ => {}
        }
    }
    let Some(chat) = chat else {
        return err(400, "Bad Request: chat_id is empty", None);
    };
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return err(400, "Bad Request: IMAGE_PROCESS_FAILED", None);
    }
    match check_html(&caption) {
        Ok(n) if n > 1024 => return err(400, "Bad Request: message caption is too long", None),
        Ok(_) => {}
        Err(d) => return err(400, &d, None),
    }
    if let Err(r) = s.gate(chat) {
        return r;
    }
    s.accept(Sent::Photo { chat, caption, png })
}

async fn get_updates(
    State(s): State<S>,
    Path(token): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = check_token(&token) {
        return r;
    }
    let offset = body["offset"].as_i64().unwrap_or(0);
    // Long polling, shortened: wait up to 200 ms for something to arrive.
    for _ in 0..20 {
        let items: Vec<Value> = s
            .inner
            .lock()
            .unwrap()
            .updates
            .iter()
            .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
            .cloned()
            .collect();
        if !items.is_empty() {
            return Json(json!({"ok": true, "result": items})).into_response();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Json(json!({"ok": true, "result": []})).into_response()
}

impl FakeTelegram {
    /// `per_chat`: the fake's own per-chat limit (real Telegram: about 1 s).
    pub async fn start(per_chat: Duration) -> FakeTelegram {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = S {
            inner: inner.clone(),
            per_chat,
        };
        let app = axum::Router::new()
            .route("/{token}/sendMessage", post(send_message))
            .route("/{token}/sendPhoto", post(send_photo))
            .route("/{token}/getUpdates", post(get_updates))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeTelegram {
            base: format!("http://{addr}"),
            inner,
        }
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.inner.lock().unwrap().sent.clone()
    }

    pub fn script(&self, s: Script) {
        self.inner.lock().unwrap().script.push_back(s);
    }

    pub fn migrate(&self, from: i64, to: i64) {
        self.inner.lock().unwrap().migrated.insert(from, to);
    }

    pub fn too_many(&self) -> u32 {
        self.inner.lock().unwrap().too_many
    }

    pub fn push_command(&self, chat: i64, text: &str) {
        let mut g = self.inner.lock().unwrap();
        let id = 1000 + g.updates.len() as i64;
        g.updates.push(json!({
            "update_id": id,
            "message": {"message_id": id, "date": 0, "chat": {"id": chat, "type": "group"}, "text": text}
        }));
    }

    /// Waits (real time, bounded) until `n` messages were accepted.
    pub async fn wait_sent(&self, n: usize) -> Vec<Sent> {
        for _ in 0..1000 {
            let s = self.sent();
            if s.len() >= n {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "fake Telegram got {} messages, expected {n}: {:?}",
            self.sent().len(),
            self.sent()
        );
    }
}
