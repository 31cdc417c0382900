//! A true failure rate from a uniform review sample and a signal on every response.
//!
//! Reviewers label a uniform random sample of responses good or bad; a cheap signal (any
//! implicit or explicit negative feedback) is known for every response. The share of the
//! sample labelled bad is unbiased but wide; the share of responses with a signal is narrow
//! but biased (unhappy users are the ones who click). **Prediction-powered inference**
//! (Angelopoulos, Bates, Fannjiang, Jordan and Zrnic, *Science* 382, 2023; the power-tuned
//! form PPI++ of Angelopoulos, Duchi and Zrnic, 2023) combines them:
//!
//! θ̂ = ȳₙ + λ (f̄_N − f̄ₙ)
//!
//! where ȳₙ is the share of the n labelled responses that reviewers call bad, f̄ₙ the share of
//! them with a signal, and f̄_N the share of all N responses with a signal. The correction
//! term has mean zero for any λ because the sample is uniform, so θ̂ is unbiased whatever the
//! signal's bias. Its variance is λ² Var(f)/N + Var(y − λf)/n, smallest at
//! λ = Cov(y, f) / ((1 + n/N) Var(f)), estimated from the sample and clipped to [0, 1]
//! ([`ppi_proportion`]); λ = 0 is the labels-only estimate, so an uninformative signal costs
//! nothing.
//!
//! The interval is a score interval, the form Wilson's interval takes for a plain rate: the
//! rates p with (θ̂ − p)² ≤ z² V(p), where V(p) is the estimate's variance were the true rate
//! p (see `score_interval`). A normal interval around a rate of a few percent with a few
//! dozen bad labels would reach below zero and cover less than its nominal level; so would a
//! Wilson interval at the effective sample size, which lets the variance shrink with p(1 − p)
//! while the signal's share of it does not. On the simulator's stationary traffic
//! (`traffic-sim coverage`) the score interval covers the true rate of a 5% version in 95%
//! of runs where the effective-sample-size Wilson interval covered 91.5%.
//!
//! [`rogan_gladen`] corrects an observed signal rate for a signal's sensitivity and
//! specificity (Rogan and Gladen, *American Journal of Epidemiology* 107, 1978);
//! [`labels_needed`] says how many labels would bring an interval to a given half-width.

use crate::rates::{wilson, Z_95};

/// The reviewed sample as a 2×2 table: reviewer label against signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LabelledSignals {
    /// Labelled bad, with a signal.
    pub bad_flagged: u64,
    /// Labelled bad, without a signal.
    pub bad_unflagged: u64,
    /// Labelled good, with a signal.
    pub good_flagged: u64,
    /// Labelled good, without a signal.
    pub good_unflagged: u64,
}

impl LabelledSignals {
    /// Labelled responses.
    pub fn labelled(&self) -> u64 {
        self.bad_flagged + self.bad_unflagged + self.good_flagged + self.good_unflagged
    }

    /// Labelled bad.
    pub fn bad(&self) -> u64 {
        self.bad_flagged + self.bad_unflagged
    }

    /// Labelled responses with a signal.
    pub fn flagged(&self) -> u64 {
        self.bad_flagged + self.good_flagged
    }

    /// The signal's precision (share of flagged responses labelled bad) with its 95% Wilson
    /// interval; `None` when no labelled response is flagged.
    pub fn precision(&self) -> Option<(f64, f64, f64)> {
        rate_with_interval(self.bad_flagged, self.flagged())
    }

    /// The signal's recall (share of bad responses it flagged) with its 95% Wilson interval;
    /// `None` when no labelled response is bad.
    pub fn recall(&self) -> Option<(f64, f64, f64)> {
        rate_with_interval(self.bad_flagged, self.bad())
    }

    /// The signal's specificity (share of good responses it left alone), point estimate;
    /// `None` when no labelled response is good.
    pub fn specificity(&self) -> Option<f64> {
        let good = self.good_flagged + self.good_unflagged;
        (good > 0).then(|| self.good_unflagged as f64 / good as f64)
    }
}

/// `successes / n` with its 95% Wilson interval, `None` when `n` is 0.
fn rate_with_interval(successes: u64, n: u64) -> Option<(f64, f64, f64)> {
    (n > 0).then(|| {
        let (low, high) = wilson(successes, n);
        (successes as f64 / n as f64, low, high)
    })
}

/// A prediction-powered estimate of a failure rate.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PpiEstimate {
    /// θ̂, clipped to [0, 1].
    pub estimate: f64,
    /// The 95% interval's lower bound.
    pub low: f64,
    /// The 95% interval's upper bound.
    pub high: f64,
    /// The weight λ given to the signal, in [0, 1].
    pub lambda: f64,
    /// The estimate's variance.
    pub variance: f64,
    /// The labels-only sample size with the same variance at this rate.
    pub effective_labels: f64,
}

/// The prediction-powered estimate of the failure rate of `responses` responses of which
/// `flagged` have a signal, given the reviewed sample `sample` (a uniform random subset of
/// them). `None` without labels.
pub fn ppi_proportion(
    flagged: u64,
    responses: u64,
    sample: &LabelledSignals,
) -> Option<PpiEstimate> {
    let n = sample.labelled();
    if n == 0 || responses == 0 {
        return None;
    }
    let n_f = n as f64;
    let big_n = responses.max(n) as f64;
    let y_mean = sample.bad() as f64 / n_f;
    let f_mean = sample.flagged() as f64 / n_f;
    let f_all = flagged.min(responses) as f64 / responses as f64;
    // Sample moments of binary y and f (divided by n − 1 where n > 1).
    let dof = if n > 1 { n_f / (n_f - 1.0) } else { 1.0 };
    let var_y = y_mean * (1.0 - y_mean) * dof;
    let var_f = f_mean * (1.0 - f_mean) * dof;
    let cov = (sample.bad_flagged as f64 / n_f - y_mean * f_mean) * dof;
    let lambda = if var_f > 0.0 {
        (cov / ((1.0 + n_f / big_n) * var_f)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let estimate = (y_mean + lambda * (f_all - f_mean)).clamp(0.0, 1.0);
    let var_residual = (var_y - 2.0 * lambda * cov + lambda * lambda * var_f).max(0.0);
    let var_all = f_all * (1.0 - f_all);
    let variance = lambda * lambda * var_all / big_n + var_residual / n_f;
    let spread = estimate * (1.0 - estimate);
    let effective_labels = if variance > 0.0 && spread > 0.0 {
        spread / variance
    } else {
        n_f
    };
    let sensitivity = if sample.bad() > 0 {
        sample.bad_flagged as f64 / sample.bad() as f64
    } else {
        0.0
    };
    let (low, high) = score_interval(estimate, n_f, lambda, sensitivity, f_mean, f_all, big_n);
    Some(PpiEstimate {
        estimate,
        low,
        high,
        lambda,
        variance,
        effective_labels,
    })
}

/// The 95% score interval of a prediction-powered estimate `estimate`: the rates p with
/// (estimate − p)² ≤ z² V(p), where V(p) is the estimate's variance were the true rate p, the
/// signal's sensitivity `sensitivity` and the sample's signal rate `f_mean` held fixed:
///
/// V(p) = [p(1 − p) − 2λ p (sensitivity − f_mean) + λ² f_mean(1 − f_mean)] / n
///        + λ² f_all(1 − f_all) / N
///
/// (Cov(y, f) = p (sensitivity − f_mean)). With λ = 0 this is Wilson's interval of the labels.
/// The variance at a rate below the estimate does not shrink as p(1 − p) does: the signal's
/// share λ² Var(f) stays, which a Wilson interval at the effective sample size would miss.
fn score_interval(
    estimate: f64,
    n: f64,
    lambda: f64,
    sensitivity: f64,
    f_mean: f64,
    f_all: f64,
    big_n: f64,
) -> (f64, f64) {
    let z2 = Z_95 * Z_95;
    let slope = 1.0 - 2.0 * lambda * (sensitivity - f_mean);
    let fixed = lambda * lambda * (f_mean * (1.0 - f_mean) / n + f_all * (1.0 - f_all) / big_n);
    // p² (1 + z²/n) − p (2θ̂ + z² slope/n) + θ̂² − z² fixed = 0.
    let a = 1.0 + z2 / n;
    let b = 2.0 * estimate + z2 * slope / n;
    let c = estimate * estimate - z2 * fixed;
    let root = (b * b - 4.0 * a * c).max(0.0).sqrt();
    (
        ((b - root) / (2.0 * a)).clamp(0.0, 1.0),
        ((b + root) / (2.0 * a)).clamp(0.0, 1.0),
    )
}

/// The labels needed in all (not more) for a 95% interval of half-width `half_width` when
/// each label contributes variance `per_label_variance` (p(1 − p) for labels alone;
/// Var(y − λf) for a prediction-powered estimate). `None` when the half-width is not positive.
pub fn labels_needed(per_label_variance: f64, half_width: f64) -> Option<u64> {
    (half_width > 0.0).then(|| {
        let needed = Z_95 * Z_95 * per_label_variance.max(0.0) / (half_width * half_width);
        needed.ceil() as u64
    })
}

/// The Rogan–Gladen estimate of a true rate from an observed signal rate and the signal's
/// sensitivity and specificity: (observed + specificity − 1) / (sensitivity + specificity −
/// 1), clipped to [0, 1]. `None` when the signal is no better than chance (Youden's index
/// sensitivity + specificity − 1 not positive).
pub fn rogan_gladen(observed: f64, sensitivity: f64, specificity: f64) -> Option<f64> {
    let youden = sensitivity + specificity - 1.0;
    (youden > 0.0).then(|| ((observed + specificity - 1.0) / youden).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests;
