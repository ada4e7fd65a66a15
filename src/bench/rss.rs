//! Resident memory of this process, for the load benchmarks' "memory at
//! full rate" line. Linux only (`/proc/self/status`); elsewhere the
//! benchmarks say nothing about memory rather than guess.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The resident set size now, in bytes.
pub fn current() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The highest resident size seen while it runs, sampled every 50 ms on a
/// thread of its own (the process's own high-water mark would include
/// whatever came before the run, such as generating the workload).
pub struct Peak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peak {
    pub fn start() -> Peak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(current().unwrap_or(0)));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::Builder::new()
                .name("bench-rss".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(now) = current() {
                            peak.fetch_max(now, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .ok()
        };
        Peak { stop, peak, thread }
    }

    /// Stops sampling; the peak in bytes, if it could be read.
    pub fn stop(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Some(self.peak.load(Ordering::Relaxed)).filter(|p| *p > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_peak_sees_memory_taken_during_the_run() {
        let sampler = Peak::start();
        let before = current().unwrap();
        let block = vec![1u8; 64 << 20];
        std::thread::sleep(Duration::from_millis(150));
        std::hint::black_box(&block);
        let peak = sampler.stop().unwrap();
        assert!(peak >= before + (48 << 20), "{before} -> {peak}");
    }
}
