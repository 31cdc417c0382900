use super::*;

fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

#[test]
fn wilson_matches_hand_computation() {
    // 2/10: p = 0.2, z² = 3.841459, denominator = 1 + z²/10 = 1.3841459,
    // centre = (0.2 + z²/20) / 1.3841459 = 0.3920729 / 1.3841459 = 0.2832600,
    // margin = z·√(0.016 + z²/400) / 1.3841459 = 1.959964·0.1600117 / 1.3841459 = 0.2265778.
    let (low, high) = wilson(2, 10);
    close(low, 0.056_682, 1e-6);
    close(high, 0.509_838, 1e-6);
    // 0/10: centre = margin = (z²/20) / 1.3841459 = 0.1387664, so (0, 0.2775328).
    let (low, high) = wilson(0, 10);
    close(low, 0.0, 1e-12);
    close(high, 0.277_533, 1e-6);
    assert_eq!(wilson(0, 0), (0.0, 1.0));
}

#[test]
fn z_test_matches_hand_computation() {
    // 15/100 against 30/100: pooled 0.225, se = √(0.225·0.775·0.02) = 0.0590551,
    // z = 0.15 / 0.0590551 = 2.540003, p = erfc(2.540003/√2) = 0.011085.
    let (z, p) = two_proportion_z(15, 100, 30, 100);
    close(z, 2.540_003, 1e-6);
    close(p, 0.011_085, 1e-6);
    close(normal_two_sided_p(Z_95), 0.05, 1e-9);
    let comparison = compare_rates(15, 100, 30, 100);
    assert_eq!(comparison.test, RateTest::TwoProportionZ);
    assert!(comparison.regression);
    // The same difference the other way is an improvement, not a regression.
    assert!(!compare_rates(30, 100, 15, 100).regression);
}

#[test]
fn fisher_matches_hand_computation() {
    // [[3, 1], [1, 3]]: tables with a = 0..4 have probabilities 1, 16, 36, 16, 1 (/70); the
    // observed one has 16/70, so p = (1 + 16 + 16 + 1) / 70 = 0.4857143.
    close(fisher_exact(3, 1, 1, 3), 34.0 / 70.0, 1e-9);
    // [[1, 9], [11, 3]] (the textbook example): p = 0.0027595.
    close(fisher_exact(1, 9, 11, 3), 0.002_759_456, 1e-8);
    // Small counts go to Fisher: 1/4 against 4/4.
    let comparison = compare_rates(1, 4, 4, 4);
    assert_eq!(comparison.test, RateTest::FisherExact);
    // [[4, 0], [1, 3]] (row 1 the newer version), margins 4 and 5 of 8: tables a = 1..4 have
    // probabilities 5, 30, 30, 5 (/70); the observed a = 4 has 5/70, so p = 10/70 = 0.142857.
    close(comparison.p_value, 10.0 / 70.0, 1e-9);
    assert!(!comparison.regression, "not significant at 0.05");
}

#[test]
fn chi_square_matches_closed_forms() {
    close(chi_square_sf(3.841_458_820_694_124, 1.0), 0.05, 1e-9);
    close(chi_square_sf(2.0, 2.0), (-1.0f64).exp(), 1e-12);
    // df = 4: e^{-x/2}(1 + x/2); x = 6 gives 4e^{-3} = 0.1991483.
    close(chi_square_sf(6.0, 4.0), 4.0 * (-3.0f64).exp(), 1e-12);
    // [10, 20] against [20, 10]: every expected count is 15, statistic = 4·25/15 = 6.6667,
    // df = 1, p = erfc(√(6.6667/2)) = 0.0098233.
    let (statistic, df, p) = chi_square_homogeneity(&[10, 20], &[20, 10]);
    close(statistic, 20.0 / 3.0, 1e-12);
    assert_eq!(df, 1);
    close(p, 0.009_823_27, 1e-7);
}

#[test]
fn distances_and_smoothing() {
    // [5, 5, 0] against [0, 5, 5]: |0.5 − 0| + |0.5 − 0.5| + |0 − 0.5| = 1, halved: 0.5.
    close(total_variation(&[5, 5, 0], &[0, 5, 5]), 0.5, 1e-12);
    close(total_variation(&[1, 2], &[2, 4]), 0.0, 1e-12);
    assert_eq!(total_variation(&[], &[]), 0.0);
    // Baseline 0.25: α = 2.5, β = 7.5; 1 failure in 2: (1 + 2.5) / (2 + 10) = 0.2916667.
    let (alpha, beta) = baseline_prior(0.25);
    close(alpha, 2.5, 1e-12);
    close(beta, 7.5, 1e-12);
    close(smoothed_rate(1, 2, alpha, beta), 3.5 / 12.0, 1e-12);
    close(ln_gamma(5.0), 24f64.ln(), 1e-12);
    close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-12);
}
