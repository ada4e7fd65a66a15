//! Sends event streams the way the r_keeper HTTP Order Notify driver does.
//!
//! What the driver (`httpnotf.dll`) does, per its documentation, and how it
//! is played:
//!
//! * one queue per destination, strictly FIFO, one request in flight: here a
//!   destination is one cash server (one [`ServerStream`]), with its own
//!   bounded channel and one task that posts the events one after another;
//! * at most `queue_max` (256) events wait in the queue; the one being posted
//!   has left it. When the queue is full, *newer* events are refused and the
//!   driver logs `XML: Can't add command. Max queue size: 256`;
//! * a failed POST (connection refused or reset, timeout, a non-2xx answer)
//!   is logged as `HTTP: Post error: <reason>`, with the socket error numbers
//!   the Windows driver prints (`Socket Error # 10061` refused, `# 10054`
//!   reset). The driver then tries the *same* event again after a pause, so
//!   FIFO holds. The real driver has no documented limit; an emulator has to
//!   finish, so after `retries` further attempts the event counts as failed
//!   and the next one is posted.
//!
//! With `rate` the producer offers events at that many per second in total
//! (split evenly over the destinations) whether or not the receiver keeps
//! up, as a busy restaurant would; a slow receiver then fills the queue and
//! newer events are dropped. Without `rate` the producer waits for room, so
//! nothing is dropped and the run goes as fast as the receiver allows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use super::ServerStream;

/// How to send. Build it with [`SendOptions::new`] and struct-update syntax.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Destination URL every cash server posts to (e.g.
    /// `http://127.0.0.1:11130/rkevent`).
    pub url: String,
    /// Events per second over all destinations; `None` means as fast as the
    /// receiver takes them, never dropping.
    pub rate: Option<f64>,
    /// Queue length per destination; the driver's is 256.
    pub queue_max: usize,
    /// Time limit of one POST. The driver documents none; without one a
    /// receiver that never answers would stall the run forever.
    pub timeout: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Further attempts after a failed POST before the event counts as
    /// failed and the next one is sent.
    pub retries: u32,
    /// Pause before each further attempt.
    pub retry_pause: Duration,
    /// After this many events in a row failed at one destination, its
    /// remaining events count as failed without being tried (logged once).
    /// The driver would go on for ever; an emulator run against a wrong URL
    /// should end in seconds, not hours. `None`: never give up.
    pub give_up_after: Option<u32>,
}

impl SendOptions {
    /// The driver's defaults: queue 256, 10 s timeout, 3 retries 1 s apart,
    /// no rate limit, no progress bar.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            rate: None,
            queue_max: 256,
            timeout: Duration::from_secs(10),
            progress: false,
            retries: 3,
            retry_pause: Duration::from_secs(1),
            give_up_after: Some(10),
        }
    }
}

impl Default for SendOptions {
    fn default() -> Self {
        Self::new("http://127.0.0.1:11130/rkevent")
    }
}

/// What one destination did.
#[derive(Debug, Clone, Default)]
pub struct DestinationSummary {
    /// RestCode of the cash server.
    pub rest_code: String,
    /// Its `<Server name>`.
    pub server_name: String,
    /// Events the receiver answered 2xx to.
    pub sent: u64,
    /// Events given up after every retry failed.
    pub failed: u64,
    /// Events refused because the queue was full.
    pub dropped: u64,
    /// The most events that waited in the queue at once.
    pub max_queue_depth: usize,
}

/// What a [`send`] run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Events the receiver answered 2xx to.
    pub sent: u64,
    /// Events given up after every retry failed.
    pub failed: u64,
    /// Events refused because a queue was full.
    pub dropped: u64,
    /// Failed POST attempts, retries included.
    pub post_errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Per destination, in the order of the streams.
    pub destinations: Vec<DestinationSummary>,
    /// The driver's log lines (`<server>: HTTP: Post error: ...`), the first
    /// [`LOG_KEEP`] of them; all of them also go to `tracing`.
    pub log: Vec<String>,
}

/// How many log lines a [`Summary`] keeps.
pub const LOG_KEEP: usize = 1000;

impl Summary {
    /// Events delivered per second of wall time.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.sent as f64 / secs
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} events, failed {}, dropped {} (queue full), {} post errors, in {:.2} s: {:.1} events/s",
            self.sent,
            self.failed,
            self.dropped,
            self.post_errors,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

/// Shared log sink: keeps the first lines for the summary, sends all to tracing.
#[derive(Clone)]
struct DriverLog {
    lines: Arc<Mutex<Vec<String>>>,
    bar: ProgressBar,
}

impl DriverLog {
    fn line(&self, server: &str, msg: String) {
        let line = format!("{server}: {msg}");
        self.bar
            .suspend(|| tracing::warn!(target: "tillgate::simulate::driver", "{line}"));
        if let Ok(mut l) = self.lines.lock()
            && l.len() < LOG_KEEP
        {
            l.push(line);
        }
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    post_errors: AtomicU64,
}

/// Sends every stream to `opts.url`, one driver queue per stream, and
/// returns when each event was delivered, failed or dropped.
pub async fn send(streams: Vec<ServerStream>, opts: SendOptions) -> Summary {
    let started = Instant::now();
    let total: u64 = streams.iter().map(|s| s.events.len() as u64).sum();
    let bar = if opts.progress {
        let b = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}) {msg}",
        ) {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let log = DriverLog {
        lines: Arc::new(Mutex::new(Vec::new())),
        bar: bar.clone(),
    };
    let client = match reqwest::Client::builder().timeout(opts.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            log.line("-", format!("HTTP: cannot build the client: {e}"));
            return Summary {
                failed: total,
                elapsed: started.elapsed(),
                log: log.lines.lock().map(|l| l.clone()).unwrap_or_default(),
                ..Default::default()
            };
        }
    };
    let all = Arc::new(Counters::default());
    let n = streams.len().max(1) as f64;
    // Seconds between two events of one destination.
    let interval = opts.rate.filter(|r| *r > 0.0).map(|r| n / r);
    let queue_max = opts.queue_max.max(1);

    let mut tasks = tokio::task::JoinSet::new();
    for (idx, stream) in streams.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Bytes>(queue_max);
        let dest = Arc::new(Counters::default());
        let depth = Arc::new(AtomicU64::new(0));
        let name = format!("{}/{}", stream.rest_code, stream.server_name);
        let poster = tokio::spawn(post_loop(
            rx,
            client.clone(),
            opts.clone(),
            name.clone(),
            log.clone(),
            bar.clone(),
            [all.clone(), dest.clone()],
        ));
        let (all, log, bar) = (all.clone(), log.clone(), bar.clone());
        let depth2 = depth.clone();
        tasks.spawn(async move {
            let start = tokio::time::Instant::now();
            for (i, ev) in stream.events.into_iter().enumerate() {
                let body = Bytes::from(ev.xml);
                match interval {
                    Some(iv) => {
                        tokio::time::sleep_until(start + Duration::from_secs_f64(iv * i as f64))
                            .await;
                        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(body) {
                            all.dropped.fetch_add(1, Ordering::Relaxed);
                            dest.dropped.fetch_add(1, Ordering::Relaxed);
                            bar.inc(1);
                            log.line(
                                &name,
                                format!("XML: Can't add command. Max queue size: {queue_max}"),
                            );
                        }
                    }
                    None => {
                        if tx.send(body).await.is_err() {
                            break;
                        }
                    }
                }
                let d = (queue_max - tx.capacity()) as u64;
                depth2.fetch_max(d, Ordering::Relaxed);
            }
            drop(tx);
            let _ = poster.await;
            (
                idx,
                DestinationSummary {
                    rest_code: stream.rest_code,
                    server_name: stream.server_name,
                    sent: dest.sent.load(Ordering::Relaxed),
                    failed: dest.failed.load(Ordering::Relaxed),
                    dropped: dest.dropped.load(Ordering::Relaxed),
                    max_queue_depth: depth.load(Ordering::Relaxed) as usize,
                },
            )
        });
    }
    let mut destinations = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(d) = r {
            destinations.push(d);
        }
    }
    destinations.sort_by_key(|(i, _)| *i);
    bar.finish_and_clear();
    let lines = log.lines.lock().map(|l| l.clone()).unwrap_or_default();
    Summary {
        sent: all.sent.load(Ordering::Relaxed),
        failed: all.failed.load(Ordering::Relaxed),
        dropped: all.dropped.load(Ordering::Relaxed),
        post_errors: all.post_errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        destinations: destinations.into_iter().map(|(_, d)| d).collect(),
        log: lines,
    }
}

/// The driver's send thread for one destination: takes the oldest event,
/// posts it until it is accepted or the retries run out, then the next.
async fn post_loop(
    mut rx: mpsc::Receiver<Bytes>,
    client: reqwest::Client,
    opts: SendOptions,
    name: String,
    log: DriverLog,
    bar: ProgressBar,
    counters: [Arc<Counters>; 2],
) {
    let mut failed_in_a_row = 0u32;
    while let Some(body) = rx.recv().await {
        if opts.give_up_after.is_some_and(|n| failed_in_a_row >= n) {
            for c in &counters {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
            bar.inc(1);
            continue;
        }
        let mut attempt = 0;
        loop {
            match post(&client, &opts.url, body.clone()).await {
                Ok(()) => {
                    for c in &counters {
                        c.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    failed_in_a_row = 0;
                    break;
                }
                Err(reason) => {
                    for c in &counters {
                        c.post_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    log.line(&name, format!("HTTP: Post error: {reason}"));
                    if attempt >= opts.retries {
                        for c in &counters {
                            c.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        failed_in_a_row += 1;
                        if opts.give_up_after.is_some_and(|n| failed_in_a_row >= n) {
                            log.line(
                                &name,
                                format!(
                                    "{failed_in_a_row} events in a row failed: giving up on this destination"
                                ),
                            );
                        }
                        break;
                    }
                    attempt += 1;
                    tokio::time::sleep(opts.retry_pause).await;
                }
            }
        }
        bar.inc(1);
    }
}

/// One POST; the error is the reason text the driver would log.
pub(crate) async fn post(client: &reqwest::Client, url: &str, body: Bytes) -> Result<(), String> {
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status();
    if status.is_success() {
        // Read the answer so the connection can be reused.
        let _ = resp.bytes().await;
        Ok(())
    } else {
        Err(format!(
            "HTTP/1.1 {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ))
    }
}

/// Names a transport error the way the Windows driver does.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "Read timed out".to_string()
    } else if e.is_connect() {
        "Socket Error # 10061 (connection refused)".to_string()
    } else {
        "Socket Error # 10054 (connection reset by peer)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rate_and_text() {
        let s = Summary {
            sent: 100,
            failed: 1,
            dropped: 2,
            elapsed: Duration::from_secs(4),
            ..Default::default()
        };
        assert_eq!(s.rate(), 25.0);
        let text = s.to_string();
        assert!(
            text.contains("sent 100 events, failed 1, dropped 2"),
            "{text}"
        );
        assert_eq!(Summary::default().rate(), 0.0, "no division by zero");
    }

    #[test]
    fn defaults_are_the_drivers() {
        let o = SendOptions::default();
        assert_eq!(o.queue_max, 256);
        assert_eq!(o.rate, None);
        assert_eq!(o.url, "http://127.0.0.1:11130/rkevent");
    }

    #[tokio::test]
    async fn an_empty_run_ends_at_once() {
        let s = send(Vec::new(), SendOptions::default()).await;
        assert_eq!((s.sent, s.failed, s.dropped), (0, 0, 0));
        let s = send(
            vec![ServerStream {
                rest_code: "1".into(),
                server_name: "MID1".into(),
                events: Vec::new(),
            }],
            SendOptions {
                rate: Some(10.0),
                ..SendOptions::default()
            },
        )
        .await;
        assert_eq!(s.destinations.len(), 1);
        assert_eq!(s.sent, 0);
    }
}
