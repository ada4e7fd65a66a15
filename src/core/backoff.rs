//! How long to wait before trying again: the one retry schedule every
//! worker uses (relay deliveries, Telegram, SMS, consumers, pollers).
//!
//! Two shapes cover every caller: doubling from a base up to a cap, or an
//! explicit list of steps (relay's `retry_schedule`, the last step repeating).
//! Jitter spreads the retries of many destinations that failed at the same
//! moment, so they do not all come back in the same millisecond. A server's
//! `Retry-After` (HTTP) or `retry_after` (Telegram) is a floor: we never
//! retry sooner than the other side asked, though a runaway value is capped.

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` honoured: a server asking for a day is broken,
/// and an hour is as long as an alert or an event should sit.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    steps: Steps,
    /// Fraction of the step added or taken away at random: 0.25 gives
    /// 75 %..125 % of the step. 0 is exact (tests, schedules people read).
    jitter: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Steps {
    Doubling { base: Duration, max: Duration },
    Schedule(Vec<Duration>),
}

impl Backoff {
    /// `base`, `2·base`, `4·base`, ... never more than `max`.
    pub fn doubling(base: Duration, max: Duration) -> Self {
        Backoff {
            steps: Steps::Doubling {
                base,
                max: max.max(base),
            },
            jitter: 0.0,
        }
    }

    /// The steps in order; attempts past the end wait the last step. An
    /// empty list waits one second.
    pub fn schedule(steps: Vec<Duration>) -> Self {
        Backoff {
            steps: Steps::Schedule(steps),
            jitter: 0.0,
        }
    }

    /// Adds ± `fraction` random jitter (clamped to 0..=1).
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The step before attempt `attempt + 1`, where `attempt` (1-based) is
    /// the number of attempts that failed so far, without jitter.
    pub fn step(&self, attempt: u32) -> Duration {
        let n = attempt.max(1) - 1;
        match &self.steps {
            Steps::Doubling { base, max } => base
                .saturating_mul(2u32.saturating_pow(n.min(30)))
                .min(*max),
            Steps::Schedule(s) => s
                .get(n as usize)
                .or(s.last())
                .copied()
                .unwrap_or(Duration::from_secs(1)),
        }
    }

    /// The wait after `attempt` failed attempts: the step with jitter, and
    /// never shorter than what the other side asked for (capped at
    /// [`MAX_RETRY_AFTER`]).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let step = self.step(attempt);
        let wait = if self.jitter > 0.0 {
            step.mul_f64(rand::rng().random_range(1.0 - self.jitter..=1.0 + self.jitter))
        } else {
            step
        };
        match retry_after {
            Some(ra) => wait.max(ra.min(MAX_RETRY_AFTER)),
            None => wait,
        }
    }

    /// [`Backoff::delay`] in milliseconds, for schedules stored as due times.
    pub fn delay_ms(&self, attempt: u32, retry_after: Option<Duration>) -> i64 {
        self.delay(attempt, retry_after).as_millis() as i64
    }
}

/// Reads an HTTP `Retry-After` value: delay-seconds, or an HTTP date
/// (RFC 9110 §10.2.3) turned into the time left from now.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let left = at.timestamp_millis() - super::clock::now_ms();
    Some(Duration::from_millis(left.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubling_caps_at_max() {
        let b = Backoff::doubling(S(1), S(10));
        let got: Vec<u64> = (1..=6).map(|a| b.step(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.step(0), S(1), "attempt 0 is treated as the first");
        assert_eq!(b.step(u32::MAX), S(10), "no overflow");
    }

    #[test]
    fn schedule_repeats_its_last_step() {
        let b = Backoff::schedule(vec![S(1), S(5), S(30)]);
        let got: Vec<u64> = (1..=5).map(|a| b.step(a).as_secs()).collect();
        assert_eq!(got, [1, 5, 30, 30, 30]);
        assert_eq!(Backoff::schedule(vec![]).step(3), S(1));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let b = Backoff::doubling(S(8), S(8)).with_jitter(0.25);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = b.delay(1, None);
            assert!(d >= S(6) && d <= S(10), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 10, "jitter varies the delay");
    }

    #[test]
    fn retry_after_is_a_floor_with_a_cap() {
        let b = Backoff::doubling(S(1), S(60)).with_jitter(0.25);
        assert!(b.delay(1, Some(S(40))) >= S(40));
        assert_eq!(
            Backoff::doubling(S(1), S(1)).delay(1, Some(S(86_400))),
            MAX_RETRY_AFTER
        );
        // A shorter Retry-After does not shorten the schedule.
        assert_eq!(Backoff::doubling(S(30), S(30)).delay(1, Some(S(1))), S(30));
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after(" 120 "), Some(S(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }
}
