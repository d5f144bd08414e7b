//! Jittered exponential backoff for redialing nodes and peer services. Pure: the caller sleeps.

use std::time::Duration;

/// How the relay retries a node or peer service it cannot reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Ceiling for the delay; retries never stop while the node is known, but never wait longer.
    pub max: Duration,
    /// Growth factor per consecutive failure.
    pub multiplier: f64,
    /// Each delay is spread uniformly over `±jitter` of itself (0.0..=1.0), so many relays or
    /// nodes that failed together don't retry in lockstep.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// The state of one retry sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// `seed` only decorrelates sequences (e.g. a hash of the address); any value works.
    pub fn new(policy: RetryPolicy, seed: u64) -> Self {
        Self {
            policy,
            attempt: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// Consecutive failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt, and counts the failure.
    pub fn next_delay(&mut self) -> Duration {
        let p = self.policy;
        let exp = p.multiplier.max(1.0).powi(self.attempt.min(64) as i32);
        let base = (p.initial.as_secs_f64() * exp).min(p.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let jitter = p.jitter.clamp(0.0, 1.0);
        // Uniform in [-1, 1).
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        let secs = (base * (1.0 + jitter * u)).clamp(0.0, p.max.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// A seed derived from a string (FNV-1a) and the clock, so two relays differ too.
pub fn seed_for(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    h ^ u64::from(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_within_jitter_and_resets() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.2,
        };
        let mut b = Backoff::new(policy, 42);
        let expected = [100.0, 200.0, 400.0, 800.0, 1000.0, 1000.0, 1000.0];
        for want in expected {
            let got = b.next_delay().as_secs_f64() * 1000.0;
            assert!(got >= want * 0.8 - 1e-6, "{got} < 0.8*{want}");
            assert!(
                got <= (want * 1.2).min(1000.0) + 1e-6,
                "{got} > cap/1.2*{want}"
            );
        }
        assert_eq!(b.attempts(), 7);
        b.reset();
        let first = b.next_delay().as_secs_f64() * 1000.0;
        assert!((80.0..=120.0).contains(&first));
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = RetryPolicy::default();
        let delays: Vec<Duration> = (0..16)
            .map(|seed| Backoff::new(policy, seed * 7919).next_delay())
            .collect();
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 8, "{delays:?}");
    }

    #[test]
    fn zero_jitter_is_exact_and_huge_attempt_counts_do_not_overflow() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let mut b = Backoff::new(policy, 1);
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        for _ in 0..1000 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), policy.max);
    }
}
