use super::*;

fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

/// SplitMix64: a seeded generator for the run-length checks.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn divergence_and_likelihood_ratio_match_hand_computation() {
    // K(0.1‖0.15) = 0.1·ln(0.1/0.15) + 0.9·ln(0.9/0.85) = −0.0405465 + 0.0514426 = 0.0108961.
    close(kl_bernoulli(0.1, 0.15), 0.010_896_1, 1e-7);
    // K(0.15‖0.1) = 0.15·ln 1.5 + 0.85·ln(0.85/0.9) = 0.0608198 − 0.0485847 = 0.0122351.
    close(kl_bernoulli(0.15, 0.1), 0.012_235_1, 1e-7);
    close(kl_bernoulli(0.2, 0.2), 0.0, 1e-15);
    let mut cusum = BernoulliCusum::new(0.1, 0.15, 5.0).unwrap();
    // 3 events in 10: 3·ln 1.5 + 7·ln(0.85/0.9) = 1.2163953 − 0.4001089 = 0.8162864.
    close(cusum.update(3, 10), 0.816_286_4, 1e-7);
    // No events in 100: 100·ln(0.85/0.9) = −5.7158; the sum stops at 0.
    assert_eq!(cusum.update(0, 100), 0.0);
    assert!(!cusum.alarm());
    cusum.update(40, 100);
    assert!(cusum.alarm());
    assert!(BernoulliCusum::new(0.0, 0.1, 5.0).is_none());
    assert!(BernoulliCusum::new(0.1, 0.1, 5.0).is_none());
    assert!(BernoulliCusum::new(0.1, 0.2, 0.0).is_none());
}

#[test]
fn the_threshold_inverts_the_run_length() {
    // ARL₀ = 730 days of 2,000: e^h − h − 1 = 1,460,000 · 0.0108961 = 15,908.25, h = 9.67526.
    let h = threshold_for_arl0(0.1, 0.15, 1_460_000.0).unwrap();
    close(h, 9.675_26, 1e-4);
    close(arl0_observations(0.1, 0.15, h), 1_460_000.0, 1e-3);
    assert!(threshold_for_arl0(0.1, 0.1, 1_000.0).is_none());
    assert!(threshold_for_arl0(0.1, 0.05, 1_000.0).unwrap() > 0.0);
}

/// Observations until the first alarm, at most `cap`.
fn run_length(cusum: &mut BernoulliCusum, rate: f64, rng: &mut SplitMix, cap: u64) -> u64 {
    cusum.set_statistic(0.0);
    for t in 1..=cap {
        cusum.update(u64::from(rng.next_f64() < rate), 1);
        if cusum.alarm() {
            return t;
        }
    }
    cap
}

/// The approximation errs towards false alarms: the mean in-control run length of 300 runs
/// is at least the ARL₀ asked for (its standard error is about 6%), and a shift to p₁ is
/// caught in about Siegmund's out-of-control run length plus the overshoot.
#[test]
fn run_lengths_agree_with_siegmund() {
    let mut rng = SplitMix(11);
    for (p0, p1) in [(0.1, 0.15), (0.05, 0.025)] {
        let mut cusum = BernoulliCusum::with_arl0(p0, p1, 2_000.0).unwrap();
        let runs = 300;
        let mean = (0..runs)
            .map(|_| run_length(&mut cusum, p0, &mut rng, 100_000) as f64)
            .sum::<f64>()
            / f64::from(runs);
        assert!(
            mean >= 2_000.0,
            "{p0} -> {p1}: in-control mean run length {mean}"
        );
        assert!(
            mean < 4_000.0,
            "{p0} -> {p1}: in-control mean run length {mean}"
        );
        let expected = arl1_observations(p0, p1, cusum.threshold());
        let delay = (0..runs)
            .map(|_| run_length(&mut cusum, p1, &mut rng, 100_000) as f64)
            .sum::<f64>()
            / f64::from(runs);
        assert!(
            delay >= 0.9 * expected && delay <= 1.5 * expected,
            "{p0} -> {p1}: delay {delay}, Siegmund {expected}"
        );
    }
}
