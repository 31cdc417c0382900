//! Watching a rate without the false alarms of peeking at daily p-values: the Bernoulli
//! CUSUM.
//!
//! Testing each day's rate against the baseline at α = 0.05 raises a false alarm every 20
//! days per rate watched, and more with every rate added. Page's cumulative sum (Page,
//! *Biometrika* 41, 1954) instead adds up the evidence for a shift, observation by
//! observation, and forgets evidence against it:
//!
//! Sₜ = max(0, Sₜ₋₁ + log(L₁/L₀)),  an alarm when Sₜ ≥ h,
//!
//! where log(L₁/L₀) is the log-likelihood ratio of the new observations under the rate p₁ the
//! monitor is built to catch against the in-control rate p₀: for x events in n trials,
//! x·log(p₁/p₀) + (n − x)·log((1 − p₁)/(1 − p₀)) (the Bernoulli CUSUM of Reynolds and
//! Stoumbos, *Journal of Quality Technology* 31, 1999). Adding a batch of n at once is the
//! same as adding its observations one by one and looking only at the end, so batches (an
//! hour of responses) raise no more false alarms than single observations.
//!
//! The threshold h sets the **in-control average run length** ARL₀, the mean number of
//! observations between false alarms when the rate stays p₀. Because exp(log-likelihood
//! ratio) is a martingale under p₀, Siegmund's approximation (Siegmund, *Sequential
//! Analysis*, 1985, ch. X) is
//!
//! ARL₀ ≈ (eʰ − h − 1) / K(p₀‖p₁),  K(p‖q) = p·log(p/q) + (1 − p)·log((1 − p)/(1 − q)),
//!
//! without the overshoot correction, which would make it longer: the approximation errs on
//! the side of more false alarms than happen. [`threshold_for_arl0`] inverts it. Once the
//! rate is p₁, the mean delay to the alarm is about (e⁻ʰ + h − 1) / K(p₁‖p₀) observations
//! ([`arl1_observations`]), plus the overshoot.

/// The Kullback–Leibler divergence K(p‖q) of two Bernoulli rates, in nats.
pub fn kl_bernoulli(p: f64, q: f64) -> f64 {
    let term = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
    term(p, q) + term(1.0 - p, 1.0 - q)
}

/// Siegmund's approximation of the in-control average run length, in observations, of a
/// Bernoulli CUSUM from `p0` towards `p1` with threshold `h`.
pub fn arl0_observations(p0: f64, p1: f64, h: f64) -> f64 {
    (h.exp() - h - 1.0) / kl_bernoulli(p0, p1)
}

/// Siegmund's approximation of the mean run length, in observations, of a Bernoulli CUSUM
/// from `p0` towards `p1` with threshold `h` once the rate is `p1`: the detection delay.
pub fn arl1_observations(p0: f64, p1: f64, h: f64) -> f64 {
    ((-h).exp() + h - 1.0) / kl_bernoulli(p1, p0)
}

/// The threshold whose in-control average run length is `observations` (at least one
/// observation; `None` unless 0 < p0, p1 < 1 and p0 ≠ p1).
pub fn threshold_for_arl0(p0: f64, p1: f64, observations: f64) -> Option<f64> {
    if !valid_rate(p0) || !valid_rate(p1) || p0 == p1 || !observations.is_finite() {
        return None;
    }
    let target = observations.max(1.0) * kl_bernoulli(p0, p1);
    // eʰ − h − 1 is increasing for h > 0: bisect.
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    while high.exp() - high - 1.0 < target {
        high *= 2.0;
        if high > 700.0 {
            return None;
        }
    }
    for _ in 0..100 {
        let mid = 0.5 * (low + high);
        if mid.exp() - mid - 1.0 < target {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(high)
}

fn valid_rate(p: f64) -> bool {
    p > 0.0 && p < 1.0
}

/// A one-sided Bernoulli CUSUM from an in-control rate towards another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BernoulliCusum {
    p0: f64,
    p1: f64,
    h: f64,
    statistic: f64,
}

impl BernoulliCusum {
    /// A CUSUM at 0 from `p0` towards `p1` (above for a rise, below for a fall) with
    /// threshold `h`; `None` unless 0 < p0, p1 < 1, p0 ≠ p1 and h > 0.
    pub fn new(p0: f64, p1: f64, h: f64) -> Option<Self> {
        (valid_rate(p0) && valid_rate(p1) && p0 != p1 && h > 0.0 && h.is_finite()).then_some(Self {
            p0,
            p1,
            h,
            statistic: 0.0,
        })
    }

    /// Like [`BernoulliCusum::new`], with the threshold for an in-control average run length
    /// of `observations`.
    pub fn with_arl0(p0: f64, p1: f64, observations: f64) -> Option<Self> {
        Self::new(p0, p1, threshold_for_arl0(p0, p1, observations)?)
    }

    /// The log-likelihood ratio of `events` in `trials` under p₁ against p₀.
    pub fn log_likelihood_ratio(&self, events: u64, trials: u64) -> f64 {
        let events = events.min(trials) as f64;
        let others = trials as f64 - events;
        events * (self.p1 / self.p0).ln() + others * ((1.0 - self.p1) / (1.0 - self.p0)).ln()
    }

    /// Adds a batch; the new statistic.
    pub fn update(&mut self, events: u64, trials: u64) -> f64 {
        self.statistic = (self.statistic + self.log_likelihood_ratio(events, trials)).max(0.0);
        self.statistic
    }

    /// The statistic Sₜ.
    pub fn statistic(&self) -> f64 {
        self.statistic
    }

    /// Sets the statistic (restoring a stored monitor).
    pub fn set_statistic(&mut self, statistic: f64) {
        self.statistic = statistic.max(0.0);
    }

    /// Whether the statistic is at or over the threshold.
    pub fn alarm(&self) -> bool {
        self.statistic >= self.h
    }

    /// The threshold h.
    pub fn threshold(&self) -> f64 {
        self.h
    }

    /// The in-control rate p₀.
    pub fn in_control(&self) -> f64 {
        self.p0
    }

    /// The rate p₁ it is built to catch.
    pub fn out_of_control(&self) -> f64 {
        self.p1
    }
}

#[cfg(test)]
mod tests;
