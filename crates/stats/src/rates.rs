//! Failure rates and their comparison: the statistics of `closedloop report`.
//!
//! - Failure rates carry a 95% **Wilson score interval** ([`wilson`]), which stays inside
//!   [0, 1] and behaves at small counts, unlike the normal (Wald) interval.
//! - Two failure rates are compared with the pooled **two-proportion z-test** when every
//!   expected cell count of the 2×2 table is at least 5, and with **Fisher's exact test**
//!   (two-sided, summing the tables no more likely than the observed one) otherwise
//!   ([`compare_rates`]). A regression is flagged at α = 0.05 when the newer rate is higher.
//! - A shift in the category mix is measured by the **total variation distance** between the
//!   two category distributions ([`total_variation`]), half the sum of absolute differences,
//!   from 0 (same mix) to 1 (disjoint); the report flags it at or above
//!   [`MIX_SHIFT_THRESHOLD`] when both sides have at least [`MIX_MIN_FAILURES`] failures. A
//!   chi-square test of homogeneity ([`chi_square_homogeneity`]) is reported beside it.
//! - A chunk's failure rate is smoothed toward the baseline with a Beta prior of
//!   [`PRIOR_STRENGTH`] pseudo-responses at the baseline rate ([`smoothed_rate`]), so a chunk
//!   seen twice with one failure does not top the list.

/// The two-sided 95% normal quantile.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The significance level of the regression test.
pub const ALPHA: f64 = 0.05;

/// The total variation distance at or above which the category mix counts as shifted.
pub const MIX_SHIFT_THRESHOLD: f64 = 0.2;

/// The fewest failures on each side for a category-mix shift to be flagged.
pub const MIX_MIN_FAILURES: u64 = 5;

/// The weight, in pseudo-responses, of the Beta prior centred on the baseline failure rate
/// that chunk failure rates are smoothed with: α = baseline · strength, β = (1 − baseline) ·
/// strength.
pub const PRIOR_STRENGTH: f64 = 10.0;

/// The smallest expected cell count for which the z-test is used instead of Fisher's test.
pub const Z_TEST_MIN_EXPECTED: f64 = 5.0;

/// The 95% Wilson score interval of `failures` out of `n`; `(0, 1)` when `n` is 0.
pub fn wilson(failures: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    wilson_at(failures as f64 / n as f64, n as f64)
}

/// The 95% Wilson score interval of a proportion `p` observed on a sample of `n`, which may
/// be an effective (fractional) sample size; `(0, 1)` when `n` is not positive.
pub fn wilson_at(p: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let margin = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((centre - margin).max(0.0), (centre + margin).min(1.0))
}

/// Which test [`compare_rates`] used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateTest {
    /// The pooled two-proportion z-test.
    TwoProportionZ,
    /// Fisher's exact test, two-sided.
    FisherExact,
}

/// The comparison of a newer failure rate against an older one.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RateComparison {
    /// The test used.
    pub test: RateTest,
    /// The z statistic (newer minus older), for the z-test.
    pub z: Option<f64>,
    /// The two-sided p-value.
    pub p_value: f64,
    /// Whether the newer rate is higher and p < [`ALPHA`].
    pub regression: bool,
}

/// Compares `new_failures / new_n` against `old_failures / old_n`.
pub fn compare_rates(
    old_failures: u64,
    old_n: u64,
    new_failures: u64,
    new_n: u64,
) -> RateComparison {
    let total = (old_n + new_n) as f64;
    let failures = (old_failures + new_failures) as f64;
    let min_expected = if total == 0.0 {
        0.0
    } else {
        let pooled = failures / total;
        [old_n as f64, new_n as f64]
            .into_iter()
            .flat_map(|n| [n * pooled, n * (1.0 - pooled)])
            .fold(f64::INFINITY, f64::min)
    };
    let worse = new_n > 0
        && old_n > 0
        && (new_failures as f64 / new_n as f64) > (old_failures as f64 / old_n as f64);
    if min_expected >= Z_TEST_MIN_EXPECTED {
        let (z, p_value) = two_proportion_z(old_failures, old_n, new_failures, new_n);
        RateComparison {
            test: RateTest::TwoProportionZ,
            z: Some(z),
            p_value,
            regression: worse && p_value < ALPHA,
        }
    } else {
        let p_value = fisher_exact(
            new_failures,
            new_n.saturating_sub(new_failures),
            old_failures,
            old_n.saturating_sub(old_failures),
        );
        RateComparison {
            test: RateTest::FisherExact,
            z: None,
            p_value,
            regression: worse && p_value < ALPHA,
        }
    }
}

/// The pooled two-proportion z statistic of `x2/n2 − x1/n1` and its two-sided p-value.
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> (f64, f64) {
    if n1 == 0 || n2 == 0 {
        return (0.0, 1.0);
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se == 0.0 {
        return (0.0, 1.0);
    }
    let z = (x2 as f64 / n2f - x1 as f64 / n1f) / se;
    (z, normal_two_sided_p(z))
}

/// The two-sided p-value of a standard normal statistic: erfc(|z|/√2) = Q(½, z²/2).
pub fn normal_two_sided_p(z: f64) -> f64 {
    gamma_q(0.5, z * z / 2.0)
}

/// Fisher's exact test of the 2×2 table `[[a, b], [c, d]]`, two-sided: the probability, with
/// the margins fixed, of every table no more likely than the observed one.
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let row1 = a + b;
    let col1 = a + c;
    let n = a + b + c + d;
    if n == 0 {
        return 1.0;
    }
    let log_p =
        |x: u64| -> f64 { ln_choose(col1, x) + ln_choose(n - col1, row1 - x) - ln_choose(n, row1) };
    let observed = log_p(a);
    let low = row1.saturating_sub(n - col1);
    let high = row1.min(col1);
    let mut p = 0.0;
    for x in low..=high {
        let log = log_p(x);
        // The relative tolerance keeps tables equal to the observed one despite rounding.
        if log <= observed + 1e-7 {
            p += log.exp();
        }
    }
    p.min(1.0)
}

/// Half the sum of absolute differences between two distributions given as counts over the
/// same categories; 0 when either side is empty.
pub fn total_variation(a: &[u64], b: &[u64]) -> f64 {
    let (total_a, total_b) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    if total_a == 0.0 || total_b == 0.0 {
        return 0.0;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 / total_a - y as f64 / total_b).abs())
        .sum::<f64>()
        / 2.0
}

/// The chi-square test of homogeneity of two count vectors over the same categories
/// (categories empty on both sides are left out): (statistic, degrees of freedom, p-value).
pub fn chi_square_homogeneity(a: &[u64], b: &[u64]) -> (f64, u32, f64) {
    let (total_a, total_b) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    let total = total_a + total_b;
    let mut statistic = 0.0;
    let mut categories = 0u32;
    for (&x, &y) in a.iter().zip(b) {
        let column = (x + y) as f64;
        if column == 0.0 {
            continue;
        }
        categories += 1;
        for (observed, row) in [(x as f64, total_a), (y as f64, total_b)] {
            let expected = row * column / total;
            if expected > 0.0 {
                statistic += (observed - expected).powi(2) / expected;
            }
        }
    }
    if total_a == 0.0 || total_b == 0.0 || categories < 2 {
        return (0.0, 0, 1.0);
    }
    let df = categories - 1;
    (statistic, df, chi_square_sf(statistic, f64::from(df)))
}

/// P(X ≥ x) for X chi-square distributed with `df` degrees of freedom.
pub fn chi_square_sf(x: f64, df: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

/// The failure rate smoothed with a Beta(α, β) prior: (failures + α) / (n + α + β).
pub fn smoothed_rate(failures: u64, n: u64, alpha: f64, beta: f64) -> f64 {
    (failures as f64 + alpha) / (n as f64 + alpha + beta)
}

/// The Beta prior of [`PRIOR_STRENGTH`] pseudo-responses centred on `baseline`.
pub fn baseline_prior(baseline: f64) -> (f64, f64) {
    (baseline * PRIOR_STRENGTH, (1.0 - baseline) * PRIOR_STRENGTH)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, &coefficient) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += coefficient / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_fraction(a, x)
    }
}

const EPSILON: f64 = 1e-15;
const MAX_ITERATIONS: usize = 1_000;

fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0 / a;
    let mut sum = term;
    let mut denominator = a;
    for _ in 0..MAX_ITERATIONS {
        denominator += 1.0;
        term *= x / denominator;
        sum += term;
        if term.abs() < sum.abs() * EPSILON {
            break;
        }
    }
    (sum.ln() - x + a * x.ln() - ln_gamma(a)).exp()
}

/// Lentz's continued fraction for Q(a, x), x ≥ a + 1.
fn gamma_q_fraction(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..MAX_ITERATIONS {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < EPSILON {
            break;
        }
    }
    (-x + a * x.ln() - ln_gamma(a)).exp() * h
}

#[cfg(test)]
mod tests;
