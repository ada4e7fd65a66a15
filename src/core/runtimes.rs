//! The background workers' own runtime.
//!
//! Consumers, relay workers and the other background jobs talk to the
//! database in many small round trips. On the server's runtime each return
//! trip waited in the queue behind the HTTP tasks, so under load a consumer
//! held the single SQLite write connection for tens of milliseconds while
//! doing well under one of actual work, and the log writer (and every cash
//! server waiting on it) waited for it. On a thread of their own the
//! workers' round trips cost a thread wake-up; the operating system shares
//! the cores between that thread and the server's.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinSet;

/// Long-running workers, spawned on the background runtime; [`crate::run`]
/// waits for all of them at shutdown.
pub struct Runtimes {
    set: JoinSet<()>,
    runtime: Background,
    delivery: Vec<Background>,
    storage: Background,
}

/// Delivery runtimes: relay destinations are spread over them. Two, so
/// deliveries can use both cores of a small machine; each single-threaded,
/// because one multi-threaded runtime measured far worse (its threads
/// hand each request's wake-ups to one another).
const DELIVERY_RUNTIMES: usize = 2;

/// The background workers' thread runs at a lower priority (Linux `nice`
/// of the thread) than the HTTP handlers and the log writer. When the cores
/// are saturated, a cash server waiting for its acknowledgement matters
/// more than order state being current to the millisecond: consumers then
/// fall behind (their lag is a metric) and catch up when the burst passes,
/// instead of taking CPU from the path every acknowledgement waits on.
/// Below saturation the priority changes nothing. Measured with
/// `tillgate bench` (docs/benchmarks.md).
const WORKERS_NICE: i32 = 5;

impl Runtimes {
    pub fn start() -> std::io::Result<Runtimes> {
        Ok(Runtimes {
            set: JoinSet::new(),
            runtime: Background::start_niced("tillgate-workers", WORKERS_NICE)?,
            delivery: (0..DELIVERY_RUNTIMES)
                .map(|i| Background::start(&format!("tillgate-delivery-{i}")))
                .collect::<std::io::Result<_>>()?,
            storage: Background::start("tillgate-storage")?,
        })
    }

    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.set.spawn_on(task, &self.runtime.handle);
    }

    /// A second runtime for workers whose job is waiting on the network
    /// (relay deliveries, one request in flight): a consumer folding a
    /// batch keeps its thread busy for tens of milliseconds, and a delivery
    /// queued behind it would add that much latency to every event.
    pub fn delivery_handles(&self) -> Vec<Handle> {
        self.delivery.iter().map(|b| b.handle.clone()).collect()
    }

    /// A third runtime for request work that is mostly database round
    /// trips (loyalty operations): the HTTP handler hands the operation
    /// over and waits, and the round trips no longer queue behind other
    /// requests on the server's runtime.
    pub fn storage_handle(&self) -> Handle {
        self.storage.handle.clone()
    }

    /// Makes `leases` the ambient leases ([`crate::core::lease::ambient`])
    /// of every background runtime's thread, where the consumers and
    /// workers run. Each runtime is single-threaded on a thread of its own,
    /// so a task spawned there sees what was installed.
    pub async fn install_leases(&self, leases: Option<crate::core::lease::Leases>) {
        let handles = std::iter::once(&self.runtime)
            .chain(&self.delivery)
            .chain(std::iter::once(&self.storage))
            .map(|b| b.handle.clone());
        for h in handles {
            let l = leases.clone();
            if let Err(e) = h.spawn(async move { crate::core::lease::install(l) }).await {
                tracing::error!(error = %e, "cannot install the leases on a runtime");
            }
        }
    }

    /// Waits until every worker spawned through [`Runtimes::spawn`] ended.
    pub async fn join_all(mut self) {
        while self.set.join_next().await.is_some() {}
    }
}

/// A single-threaded runtime on a thread of its own. It stops when dropped
/// (after the workers ended); dropping never blocks the caller.
pub(crate) struct Background {
    pub(crate) handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Background {
    pub(crate) fn start(name: &str) -> std::io::Result<Background> {
        Background::start_niced(name, 0)
    }

    /// [`Background::start`] with the thread's `nice` raised by `nice`
    /// (Linux; elsewhere the priority is left as it is).
    pub(crate) fn start_niced(name: &str, nice: i32) -> std::io::Result<Background> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if nice != 0 {
                    lower_this_thread(nice);
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the workers' thread ended at start"))??;
        Ok(Background {
            handle,
            stop: Some(stop_tx),
        })
    }
}

/// Raises the calling thread's nice value (lower priority). Best effort:
/// a failure leaves the default priority, which is merely slower under load.
#[cfg(target_os = "linux")]
fn lower_this_thread(nice: i32) {
    // SAFETY: gettid and setpriority only read their arguments; on Linux
    // PRIO_PROCESS with a thread id sets that one thread's nice value.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0
    };
    if failed {
        tracing::debug!("could not lower the background workers' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread(_nice: i32) {}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_run_on_their_own_thread_and_are_joined() {
        let mut w = Runtimes::start().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        w.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        });
        w.join_all().await;
        assert_eq!(rx.await.unwrap().as_deref(), Some("tillgate-workers"));
    }
}
