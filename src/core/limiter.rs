//! Failed-authentication limiter: failures counted per key (a user or
//! register name, a source address), a key blocked once it has `max`
//! failures inside `window`, forgotten after it. Checked before a password
//! hash is verified, so a burst of wrong passwords costs a map look-up
//! each instead of tens of milliseconds of Argon2.
//!
//! In memory and per process: a restart forgets the counts (it only gives
//! a guesser `max` more tries), and on several instances each counts what
//! it sees.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimiter {
    max: u32,
    window: Duration,
    fails: Mutex<HashMap<String, (u32, Instant)>>,
}

impl FailureLimiter {
    /// `max == 0` never blocks.
    pub fn new(max: u32, window: Duration) -> Self {
        FailureLimiter {
            max,
            window,
            fails: Mutex::default(),
        }
    }

    /// Whether any of `keys` has used up its failures.
    pub fn blocked(&self, keys: &[String]) -> bool {
        self.retry_after(keys).is_some()
    }

    /// How long until every key of `keys` may try again; `None` when none
    /// is blocked.
    pub fn retry_after(&self, keys: &[String]) -> Option<Duration> {
        if self.max == 0 {
            return None;
        }
        self.wait(&mut self.lock(), keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.fails.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets failures older than the window; the longest wait among
    /// `keys` that have used theirs up.
    fn wait(&self, map: &mut HashMap<String, (u32, Instant)>, keys: &[String]) -> Option<Duration> {
        map.retain(|_, (_, since)| since.elapsed() < self.window);
        keys.iter()
            .filter_map(|k| map.get(k))
            .filter(|(n, _)| *n >= self.max)
            .map(|(_, since)| self.window.saturating_sub(since.elapsed()))
            .max()
    }

    fn count(map: &mut HashMap<String, (u32, Instant)>, keys: &[String]) {
        for k in keys {
            map.entry(k.clone()).or_insert((0, Instant::now())).0 += 1;
        }
    }

    /// Counts an attempt as a failure before it is checked, atomically
    /// with the check: concurrent attempts cannot all slip in under the
    /// limit while the first are still being verified. Refused (nothing
    /// counted) with the wait when a key is blocked. A right password then
    /// calls [`Self::forgive`] (or [`Self::succeeded`]).
    pub fn attempt(&self, keys: &[String]) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let mut map = self.lock();
        if let Some(wait) = self.wait(&mut map, keys) {
            return Err(wait);
        }
        Self::count(&mut map, keys);
        Ok(())
    }

    /// Takes back one attempt counted by [`Self::attempt`].
    pub fn forgive(&self, keys: &[String]) {
        let mut map = self.lock();
        for k in keys {
            if let Some((n, _)) = map.get_mut(k) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Forgets every key `which` picks (whatever its count); the keys
    /// forgotten. An operator's unlock: the console's keys carry the user
    /// name, and every address the user failed from is released at once.
    pub fn forget_where(&self, which: impl Fn(&str) -> bool) -> Vec<String> {
        let mut map = self.lock();
        let gone: Vec<String> = map.keys().filter(|k| which(k)).cloned().collect();
        for k in &gone {
            map.remove(k);
        }
        gone
    }

    /// Every key blocked now: what an operator's page shows as locked.
    pub fn blocked_keys(&self) -> Vec<String> {
        if self.max == 0 {
            return Vec::new();
        }
        let mut map = self.lock();
        map.retain(|_, (_, since)| since.elapsed() < self.window);
        map.iter()
            .filter(|(_, (n, _))| *n >= self.max)
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn failed(&self, keys: &[String]) {
        if self.max == 0 {
            return;
        }
        Self::count(&mut self.lock(), keys);
    }

    pub fn succeeded(&self, keys: &[String]) {
        let mut map = self.lock();
        for k in keys {
            map.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_per_key_and_zero_never_blocks() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let keys = vec!["r:a".to_string(), "ip:1".to_string()];
        for _ in 0..3 {
            assert!(!l.blocked(&keys));
            l.failed(&keys);
        }
        assert!(l.blocked(&keys));
        assert!(l.blocked(&["ip:1".to_string()]));
        assert!(!l.blocked(&["r:b".to_string()]));
        let after = l.retry_after(&keys).unwrap();
        assert!(after > Duration::from_secs(58) && after <= Duration::from_secs(60));
        l.succeeded(&keys);
        assert!(!l.blocked(&keys));
        let off = FailureLimiter::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            off.failed(&keys);
        }
        assert!(!off.blocked(&keys));
    }

    #[test]
    fn attempts_count_before_the_check_and_can_be_forgiven() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let k = vec!["r:a".to_string()];
        assert!(l.attempt(&k).is_ok());
        assert!(l.attempt(&k).is_ok());
        // Two attempts in flight use the limit up, before either failed.
        assert!(l.attempt(&k).is_err());
        l.forgive(&k);
        assert!(l.attempt(&k).is_ok());
        assert!(l.attempt(&k).is_err());
    }

    #[test]
    fn keys_can_be_listed_when_blocked_and_forgotten_by_a_predicate() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let ka = vec!["u:anna|1.2.3.4".to_string()];
        let kb = vec!["u:boris|1.2.3.4".to_string()];
        l.failed(&ka);
        l.failed(&ka);
        l.failed(&kb);
        assert_eq!(l.blocked_keys(), ka);
        assert_eq!(l.forget_where(|k| k.starts_with("u:anna|")), ka);
        assert!(l.attempt(&ka).is_ok());
        assert!(l.blocked_keys().is_empty());
        // Boris's one failure is untouched.
        assert!(l.attempt(&kb).is_ok());
        assert!(l.attempt(&kb).is_err());
    }

    #[test]
    fn counts_are_forgotten_after_the_window() {
        let l = FailureLimiter::new(1, Duration::from_millis(30));
        l.failed(&["k".to_string()]);
        assert!(l.blocked(&["k".to_string()]));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!l.blocked(&["k".to_string()]));
    }
}
