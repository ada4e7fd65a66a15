//! The whole cash server, emulated: besides sending notify events it serves
//! the XML interface (`/rk7api/v0/xmlinterface.xml`) and the subscription
//! endpoint (`/rk7api/v1/subscribe.xml`) over HTTPS with a self-signed
//! certificate, all from the same seeded day.
//!
//! The day "happens" event by event at the chosen rate. Every event that
//! happened is known to the XML interface (the cash server's own tables),
//! whether or not it reached anyone; the subscription list decides where it
//! is sent, one driver-like FIFO queue per destination, so removing and
//! adding a subscription really redirects it. Events whose seqnumber is in a
//! `drop` range are lost the way a full queue loses them: they happened, no
//! destination gets them. Faults (a hang, a refusing Status, an unreadable
//! answer) can be switched on while it runs.

mod answers;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::ServerStream;
use super::send::post;

pub use tls::self_signed;

/// How the emulated cash server runs.
#[derive(Debug, Clone)]
pub struct CashServerOptions {
    /// Where the HTTPS side listens (port 0: any free port).
    pub listen: SocketAddr,
    /// The employee allowed in (HTTP Basic).
    pub user: String,
    pub password: String,
    /// `ServerVersion` of the answers; below 7.6.5.440 there is no
    /// subscription endpoint (it answers 404).
    pub server_version: String,
    /// Destinations subscribed at start (a stale one, say).
    pub subscriptions: Vec<String>,
    /// Seqnumbers lost as a full queue loses them.
    pub drop: Vec<RangeInclusive<u64>>,
    /// Events per second; `None`: as fast as the destinations take them.
    pub rate: Option<f64>,
    /// Queue length per destination (the driver's is 256).
    pub queue_max: usize,
    /// Time limit of one POST to a destination.
    pub timeout: Duration,
    /// Further attempts after a failed POST before the event is lost.
    pub retries: u32,
    pub retry_pause: Duration,
}

impl Default for CashServerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            user: "admin".into(),
            password: "admin".into(),
            server_version: "7.6.5.450".into(),
            subscriptions: Vec::new(),
            drop: Vec::new(),
            rate: None,
            queue_max: 256,
            timeout: Duration::from_secs(10),
            retries: 2,
            retry_pause: Duration::from_millis(200),
        }
    }
}

/// Faults the XML interface can be told to show.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Wait this long before answering (the interface can hang a minute).
    pub hang: Option<Duration>,
    /// Answer every command with this Status (and `ErrorText`).
    pub status: Option<(String, String)>,
    /// Answer with XML that does not read.
    pub garble: bool,
}

/// One order as the cash server knows it now.
#[derive(Debug, Clone)]
pub(crate) struct OrderNow {
    pub order: rk7::Order,
    /// A Situation 9 was seen for it: it is finished.
    pub closed: bool,
}

/// What the cash server knows and does, shared by its tasks.
pub(crate) struct State {
    pub opts: CashServerOptions,
    pub rest_code: String,
    pub server_name: String,
    pub subscriptions: Vec<String>,
    queues: BTreeMap<String, mpsc::Sender<Bytes>>,
    pub orders: BTreeMap<String, OrderNow>,
    /// Bumps with every order change (`lastversion` of GetOrderList).
    pub list_version: i64,
    pub shift_num: Option<i64>,
    pub shift_date: Option<String>,
    pub stations: BTreeMap<i64, String>,
    pub employees: BTreeMap<i64, String>,
    pub faults: Faults,
    pub log: Vec<String>,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Events queued or being posted, over all destinations.
    in_flight: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    client: reqwest::Client,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts sending to `url` (a new driver queue); nothing if already.
    pub fn add_destination(self: &Arc<Self>, url: &str) {
        let mut s = self.lock();
        if s.subscriptions.iter().any(|u| u == url) {
            return;
        }
        s.subscriptions.push(url.to_string());
        let (tx, rx) = mpsc::channel::<Bytes>(s.opts.queue_max.max(1));
        s.queues.insert(url.to_string(), tx);
        s.log.push(format!("SUBSCRIBE: added {url}"));
        tokio::spawn(post_loop(self.clone(), url.to_string(), rx));
    }

    /// Stops sending to `url`; false if it was not subscribed.
    pub fn remove_destination(&self, url: &str) -> bool {
        let mut s = self.lock();
        let before = s.subscriptions.len();
        s.subscriptions.retain(|u| u != url);
        s.queues.remove(url);
        let removed = s.subscriptions.len() < before;
        if removed {
            s.log.push(format!("SUBSCRIBE: removed {url}"));
        }
        removed
    }
}

/// The driver's send thread for one destination: oldest first, one at a
/// time, retried a few times, then lost (as the driver logs it).
async fn post_loop(shared: Arc<Shared>, url: String, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(body) = rx.recv().await {
        let (retries, pause) = {
            let s = shared.lock();
            (s.opts.retries, s.opts.retry_pause)
        };
        let mut attempt = 0;
        loop {
            match post(&shared.client, &url, body.clone()).await {
                Ok(()) => {
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(reason) => {
                    shared
                        .lock()
                        .log
                        .push(format!("{url}: HTTP: Post error: {reason}"));
                    if attempt >= retries {
                        break;
                    }
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                }
            }
        }
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running emulated cash server.
#[derive(Clone)]
pub struct CashServer {
    addr: SocketAddr,
    fingerprint: String,
    shared: Arc<Shared>,
    events: Arc<Vec<super::SimEvent>>,
}

impl CashServer {
    /// Starts the HTTPS side and the queues of the initial subscriptions;
    /// the day does not happen until [`CashServer::play`].
    pub async fn start(stream: ServerStream, opts: CashServerOptions) -> anyhow::Result<Self> {
        let (tls, fingerprint) = self_signed()?;
        let tcp = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let addr = tcp.local_addr()?;
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .build()
            .context("the HTTP client")?;
        let initial = opts.subscriptions.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                opts,
                rest_code: stream.rest_code.clone(),
                server_name: stream.server_name.clone(),
                subscriptions: Vec::new(),
                queues: BTreeMap::new(),
                orders: BTreeMap::new(),
                list_version: 1,
                shift_num: None,
                shift_date: None,
                stations: BTreeMap::new(),
                employees: BTreeMap::new(),
                faults: Faults::default(),
                log: Vec::new(),
            }),
            in_flight: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            client,
        });
        for url in &initial {
            shared.add_destination(url);
        }
        let listener = tls::TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
        };
        let app = answers::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            fingerprint,
            shared,
            events: Arc::new(stream.events),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate's SHA-256 fingerprint, `AB:CD:...`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The current subscriptions.
    pub fn subscriptions(&self) -> Vec<String> {
        self.shared.lock().subscriptions.clone()
    }

    /// Sets the faults the XML interface shows from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// The driver-like log so far.
    pub fn log(&self) -> Vec<String> {
        self.shared.lock().log.clone()
    }

    /// Events delivered, and events lost to `drop` or full queues.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.shared.sent.load(Ordering::Relaxed),
            self.shared.dropped.load(Ordering::Relaxed),
        )
    }

    /// Plays the whole day; returns when every event happened and every
    /// queue is empty.
    pub async fn play(&self) {
        self.play_from(0, self.events.len()).await;
        self.drained().await;
    }

    /// Events `from..to` happen (at the rate) and go to the subscriptions
    /// of that moment.
    pub async fn play_from(&self, from: usize, to: usize) {
        let rate = self.shared.lock().opts.rate.filter(|r| *r > 0.0);
        let start = tokio::time::Instant::now();
        for (n, i) in (from..to.min(self.events.len())).enumerate() {
            if let Some(r) = rate {
                tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / r)).await;
            }
            let ev = &self.events[i];
            let queues: Vec<mpsc::Sender<Bytes>> = {
                let mut s = self.shared.lock();
                s.happen(&ev.event);
                let seq = ev.event.seqnumber.unwrap_or(0);
                if s.opts.drop.iter().any(|r| r.contains(&seq)) {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                s.queues.values().cloned().collect()
            };
            let body = Bytes::from(ev.xml.clone());
            for q in queues {
                self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
                let sent = if rate.is_some() {
                    q.try_send(body.clone()).is_ok()
                } else {
                    q.send(body.clone()).await.is_ok()
                };
                if !sent {
                    self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    let max = self.shared.lock().opts.queue_max;
                    self.shared
                        .lock()
                        .log
                        .push(format!("XML: Can't add command. Max queue size: {max}"));
                }
            }
        }
    }

    /// Waits until no event is queued or being posted.
    pub async fn drained(&self) {
        while self.shared.in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Number of events of the day.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }
}

impl State {
    /// The cash server's own tables take in an event that happened.
    fn happen(&mut self, ev: &rk7::Event) {
        if let Some(n) = ev.shift_num {
            self.shift_num = Some(n);
        }
        if let Some(d) = &ev.shift_date {
            self.shift_date = Some(d.to_string());
        }
        if let Some(st) = &ev.station
            && let Some(code) = st.code
        {
            self.stations
                .insert(code, st.name.clone().unwrap_or_default());
        }
        if let Some(w) = &ev.waiter
            && let Some(code) = w.code
        {
            self.employees
                .insert(code, w.name.clone().unwrap_or_default());
        }
        let Some(order) = &ev.order else { return };
        let Some(guid) = order.guid.as_ref().map(|g| g.canonical()) else {
            return;
        };
        let mut order = order.clone();
        if order.sessions.is_empty() && !ev.sessions.is_empty() {
            order.sessions = ev.sessions.clone();
        }
        let closed = ev.situation == rk7::Situation::OrderClosed;
        let entry = self.orders.entry(guid).or_insert_with(|| OrderNow {
            order: order.clone(),
            closed: false,
        });
        // An event with the header only says nothing about the lines.
        if order.sessions.is_empty() {
            order.sessions = std::mem::take(&mut entry.order.sessions);
        }
        entry.order = order;
        entry.closed |= closed;
        self.list_version += 1;
    }
}
