//! The HTTP server loop, with the limits a hostile network needs
//! (`[http]`, docs/security.md):
//!
//! * **a header deadline**: a client has `header_timeout` to send a whole
//!   request head, counted from the connection's start or the end of the
//!   previous answer (so an idle keep-alive connection is also closed
//!   then). A slow-loris that trickles a byte at a time is cut off.
//! * **an idle deadline**: a connection on which nothing moves either way
//!   for `idle_timeout` is asked to close (gracefully: a request still in a
//!   handler finishes first).
//! * **a connection cap**: at most `max_connections` at once; more wait in
//!   the kernel's backlog rather than failing every later `accept` with
//!   "too many open files", and the process's file limit is raised to fit.
//!
//! `axum::serve` offers none of the three, so this is the same loop with
//! them: hyper's automatic HTTP/1 / HTTP/2 connection, the router as its
//! service, the client's address as `ConnectInfo`, graceful shutdown on
//! the one cancellation token.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::core::config::HttpConfig;

/// How long a stopping server waits for connections still answering
/// before it drops them (a request body trickling in for ever must not
/// hold a stop).
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown`, then stops accepting and
/// lets every connection finish its request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let cap = fit_file_limit(limits.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let connections = TaskTracker::new();
    let limits = Arc::new(limits.clone());
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // EMFILE and the like: wait rather than spin; the cap
                // should keep this from happening at all.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            connection(stream, remote, app, &limits, shutdown).await;
            drop(permit);
        });
    }
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open {} s after the stop: dropped",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

/// Errors of one connection, not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: &HttpConfig,
    shutdown: CancellationToken,
) {
    let started = Instant::now();
    let activity = Arc::new(Activity {
        started,
        last_ms: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        requests.requests.fetch_add(1, Ordering::Relaxed);
        req.extensions_mut().insert(ConnectInfo(remote));
        let app = app.clone();
        async move {
            let res = app.oneshot(req.map(Body::new)).await;
            Ok::<_, Infallible>(match res {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4).max(Duration::from_millis(50));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, %remote, "connection ended");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                // Before the first request hyper has not yet chosen the
                // protocol, and its header deadline is not running: a
                // client that opened and sent (almost) nothing goes here.
                if activity.requests.load(Ordering::Relaxed) == 0
                    && started.elapsed() > limits.header_timeout
                {
                    tracing::debug!(%remote, "no request head within the header timeout: closed");
                    return;
                }
                if !closing && activity.idle() > limits.idle_timeout {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When bytes last moved on a connection, and how many requests it began.
struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last read or write.
    last_ms: AtomicU64,
    requests: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn idle(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The socket, noting every read and write that moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the process's open-file limit to hold `wanted` connections plus
/// room for the databases, logs and outgoing clients, and returns the cap
/// that fits (lower, with a warning, when the hard limit is lower).
fn fit_file_limit(wanted: usize) -> usize {
    /// Files that are not client connections: SQLite files and WAL,
    /// pools, outgoing HTTP clients, the log file.
    const RESERVE: u64 = 256;
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return wanted;
        }
        let need = wanted as u64 + RESERVE;
        if lim.rlim_cur < need {
            let raised = libc::rlimit {
                rlim_cur: need.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = raised.rlim_cur;
            }
        }
        let fits = lim.rlim_cur.saturating_sub(RESERVE).max(16) as usize;
        if fits < wanted {
            tracing::warn!(
                wanted,
                allowed = fits,
                "the open-file limit holds fewer connections than [http] max_connections: capped at what it holds (raise LimitNOFILE)"
            );
            return fits;
        }
        wanted
    }
    #[cfg(not(unix))]
    {
        let _ = RESERVE;
        wanted
    }
}
