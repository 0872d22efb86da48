//! Exponential backoff with jitter for transient network failures.
//!
//! Delay number `n` (0-based) is drawn uniformly from
//! `[d/2, d]` with `d = min(base × 2ⁿ, cap)` ("equal jitter"): a fleet that
//! lost its server at the same instant does not come back in lockstep, and
//! no delay is shorter than half the nominal one. After `max_attempts`
//! delays the run gives up (the daemon tries again at its next poll).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Retry policy and state.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First nominal delay.
    pub base: Duration,
    /// Largest nominal delay.
    pub cap: Duration,
    /// Retries allowed before giving up (consecutive failures without progress).
    pub max_attempts: u32,
    attempt: u32,
}

impl Default for Backoff {
    /// 2 s doubling to 5 min, 8 attempts (about 10 minutes of trying).
    fn default() -> Self {
        Backoff::new(Duration::from_secs(2), Duration::from_secs(300), 8)
    }
}

impl Backoff {
    /// A fresh policy.
    pub fn new(base: Duration, cap: Duration, max_attempts: u32) -> Backoff {
        Backoff {
            base,
            cap,
            max_attempts,
            attempt: 0,
        }
    }

    /// The delay before the next retry, or `None` when the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.max_attempts {
            return None;
        }
        let nominal = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt += 1;
        let half = nominal / 2;
        let span = u64::try_from((nominal - half).as_micros()).unwrap_or(u64::MAX);
        let jitter = if span == 0 {
            0
        } else {
            random_u64() % (span + 1)
        };
        Some(half + Duration::from_micros(jitter))
    }

    /// Progress was made: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Retries used since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// A random number from the standard library's per-process random hash keys
/// mixed with the clock (jitter needs spread, not cryptographic strength).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(now);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_then_cap_then_stop() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800), 6);
        let nominal = [100u64, 200, 400, 800, 800, 800];
        for n in nominal {
            let d = b.next_delay().unwrap().as_millis() as u64;
            assert!(d >= n / 2 && d <= n, "{d} not in [{}, {n}]", n / 2);
        }
        assert_eq!(b.next_delay(), None);
        b.reset();
        assert!(b.next_delay().unwrap() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10), 1);
            seen.insert(b.next_delay().unwrap().as_micros());
        }
        assert!(seen.len() > 40, "only {} distinct delays", seen.len());
    }
}
