//! The retry delay both deliveries use (the OTLP exporter and the webhook notifier).

use std::time::Duration;

use rand::Rng as _;

/// Exponential backoff with full jitter: after `n` failures in a row the delay is uniform in
/// `[initial, min(max, initial·2ⁿ)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// From the configured first delay and cap (each at least 1 ms, resp. 1 s).
    pub fn new(initial_millis: u64, max_secs: u64) -> Self {
        Self {
            initial: Duration::from_millis(initial_millis.max(1)),
            max: Duration::from_secs(max_secs.max(1)),
        }
    }

    /// The longest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay after `failures` failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << failures.min(20))
            .min(self.max);
        let low = self.initial.min(ceiling);
        Duration::from_micros(
            rand::rng().random_range(low.as_micros()..=ceiling.as_micros()) as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_failures_and_stay_under_the_cap() {
        let backoff = Backoff::new(100, 2);
        for _ in 0..100 {
            assert_eq!(backoff.delay(0), Duration::from_millis(100));
            let third = backoff.delay(3);
            assert!(Duration::from_millis(100) <= third && third <= Duration::from_millis(800));
            let many = backoff.delay(40);
            assert!(Duration::from_millis(100) <= many && many <= Duration::from_secs(2));
        }
    }

    #[test]
    fn zero_settings_are_raised_to_the_minimums() {
        let backoff = Backoff::new(0, 0);
        assert_eq!(backoff.delay(0), Duration::from_millis(1));
        assert_eq!(backoff.max(), Duration::from_secs(1));
    }
}
