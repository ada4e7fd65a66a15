//! A local webhook receiver for relay tests: answers from a script (status
//! codes, `Retry-After`, hanging past the timeout), then 200, and records
//! every request it gets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16, &'static str),
    RetryAfter(u16, u64),
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Got {
    pub id: String,
    pub timestamp: String,
    pub signature: Option<String>,
    pub content_type: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The status this request was answered with (0 = hung up on).
    pub answered: u16,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Reply>>,
    got: Mutex<Vec<Got>>,
    fail_all: AtomicBool,
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let next = if inner.fail_all.load(Ordering::SeqCst) {
        Some(Reply::Status(503, "down for maintenance"))
    } else {
        inner.script.lock().unwrap().pop_front()
    };
    let answered = match &next {
        None => 200,
        Some(Reply::Status(s, _)) | Some(Reply::RetryAfter(s, _)) => *s,
        Some(Reply::Hang(_)) => 0,
    };
    inner.got.lock().unwrap().push(Got {
        id: h("webhook-id").unwrap_or_default(),
        timestamp: h("webhook-timestamp").unwrap_or_default(),
        signature: h("webhook-signature"),
        content_type: h("content-type").unwrap_or_default(),
        headers: headers.clone(),
        body,
        at: Instant::now(),
        answered,
    });
    match next {
        None => StatusCode::OK.into_response(),
        Some(Reply::Status(s, text)) => (StatusCode::from_u16(s).unwrap(), text).into_response(),
        Some(Reply::RetryAfter(s, secs)) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    pub async fn start(script: Vec<Reply>) -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script).await
    }

    pub async fn start_on(addr: SocketAddr, script: Vec<Reply>) -> Receiver {
        let inner = Arc::new(Inner::default());
        *inner.script.lock().unwrap() = script.into();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/rkevent"),
            inner,
            task,
        }
    }

    pub fn fail_all(&self, on: bool) {
        self.inner.fail_all.store(on, Ordering::SeqCst);
    }

    pub fn got(&self) -> Vec<Got> {
        self.inner.got.lock().unwrap().clone()
    }

    /// Requests answered 2xx, in arrival order.
    pub fn ok(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| (200..300).contains(&g.answered))
            .collect()
    }

    /// Waits until at least `n` requests were answered 2xx.
    pub async fn wait_ok(&self, n: usize) -> Vec<Got> {
        for _ in 0..1000 {
            let ok = self.ok();
            if ok.len() >= n {
                return ok;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "receiver got {} of {n} deliveries: {:?}",
            self.ok().len(),
            self.got()
                .iter()
                .map(|g| (&g.id, g.answered))
                .collect::<Vec<_>>()
        );
    }

    /// Waits until at least `n` requests arrived, whatever the answer.
    pub async fn wait_got(&self, n: usize) -> Vec<Got> {
        for _ in 0..1000 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("receiver got {} of {n} requests", self.got().len());
    }
}

/// The webhook-ids, i.e. the event offsets, of `got` in order.
pub fn ids(got: &[Got]) -> Vec<String> {
    got.iter().map(|g| g.id.clone()).collect()
}
