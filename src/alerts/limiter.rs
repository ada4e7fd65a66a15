//! Telegram's sending limits, kept in memory: one message a second per
//! chat, 20 a minute per group, 30 a second overall, and a chat blocked
//! after Telegram answered 429. After a restart the first messages may come
//! a little fast, and Telegram's 429 covers that.

use std::collections::{HashMap, VecDeque};

use super::settings::Limits;

/// The limits and what was sent recently (clock ms).
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    per_chat: HashMap<i64, VecDeque<i64>>,
    global: VecDeque<i64>,
    blocked_until: HashMap<i64, i64>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        RateLimiter {
            limits,
            per_chat: HashMap::new(),
            global: VecDeque::new(),
            blocked_until: HashMap::new(),
        }
    }

    /// `Ok` if a message to `chat` may go now, else the time it may.
    pub fn check(&mut self, chat: i64, now: i64) -> Result<(), i64> {
        let mut wait = now;
        if let Some(&until) = self.blocked_until.get(&chat) {
            wait = wait.max(until);
        }
        let interval = self.limits.per_chat_interval.as_millis() as i64;
        let sent = self.per_chat.entry(chat).or_default();
        while sent.front().is_some_and(|&t| t <= now - 60_000) {
            sent.pop_front();
        }
        if let Some(&last) = sent.back() {
            wait = wait.max(last + interval);
        }
        if chat < 0 && sent.len() >= self.limits.group_per_minute as usize {
            let idx = sent.len() - self.limits.group_per_minute as usize;
            wait = wait.max(sent[idx] + 60_000);
        }
        while self.global.front().is_some_and(|&t| t <= now - 1000) {
            self.global.pop_front();
        }
        if self.global.len() >= self.limits.global_per_second as usize {
            let idx = self.global.len() - self.limits.global_per_second as usize;
            wait = wait.max(self.global[idx] + 1000);
        }
        if wait > now { Err(wait) } else { Ok(()) }
    }

    pub fn record(&mut self, chat: i64, now: i64) {
        self.per_chat.entry(chat).or_default().push_back(now);
        self.global.push_back(now);
    }

    /// Telegram said 429 for `chat`: nothing goes there before `until`.
    pub fn block(&mut self, chat: i64, until: i64) {
        self.blocked_until.insert(chat, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            per_chat_interval: Duration::from_millis(1000),
            group_per_minute: 20,
            global_per_second: 30,
            max_backoff: Duration::from_secs(300),
        }
    }

    #[test]
    fn per_chat_interval_and_group_minute() {
        let mut l = RateLimiter::new(limits());
        let mut now = 0;
        // A group: 20 messages, one per second, then the 21st waits for the
        // first to leave the one-minute window.
        for i in 0..20 {
            assert_eq!(l.check(-7, now), Ok(()));
            l.record(-7, now);
            let next = if i < 19 { now + 1000 } else { 60_000 };
            assert_eq!(l.check(-7, now), Err(next));
            now += 1000;
        }
        assert_eq!(l.check(-7, now), Err(60_000));
        assert_eq!(l.check(-7, 60_000), Ok(()));
        // A private chat has no per-minute cap.
        let mut now = 0;
        for _ in 0..30 {
            assert_eq!(l.check(5, now), Ok(()));
            l.record(5, now);
            now += 1000;
        }
    }

    #[test]
    fn global_thirty_per_second_and_429_block() {
        let mut l = RateLimiter::new(limits());
        for chat in 0..30 {
            assert_eq!(l.check(chat, 100), Ok(()));
            l.record(chat, 100);
        }
        assert_eq!(l.check(99, 100), Err(1100));
        assert_eq!(l.check(99, 1100), Ok(()));
        l.block(99, 9000);
        assert_eq!(l.check(99, 1100), Err(9000));
        assert_eq!(l.check(98, 1100), Ok(()));
    }
}
