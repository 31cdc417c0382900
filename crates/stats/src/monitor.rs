//! A rate watched tick by tick against its own recent past: a Bernoulli CUSUM whose
//! in-control rate is learnt from a trailing baseline, which fires once per excursion and
//! resolves itself when the rate returns.
//!
//! Each tick (an hour of responses, say) brings `events` of `trials`: responses with a
//! failure record, responses with a thumbs-down, queries never seen before. The monitor:
//!
//! 1. takes the **baseline** rate p₀ from the ticks of the last `baseline_ticks` that were in
//!    control, leaving out the most recent `guard_ticks` (so the start of a slow change is not
//!    learnt as normal before it is caught); a falling rate waits until the baseline holds at
//!    least `min_baseline_events` events, a rising one counts its baseline as at least that
//!    many (a rate near zero can rise too, and the floor errs towards fewer alarms);
//! 2. runs a [`BernoulliCusum`] from p₀ towards p₁ = p₀·(1 ± `relative_change`), with the
//!    threshold whose in-control average run length is `in_control_ticks` ticks of the
//!    baseline's mean volume ([`threshold_for_arl0`]);
//! 3. **fires** when the statistic reaches the threshold: the baseline is then frozen, the
//!    ticks of the excursion never join it, and the statistic is capped at twice the
//!    threshold so that it comes down within about a threshold's worth of evidence once the
//!    rate is back;
//! 4. **resolves** when the statistic is back at 0: the evidence since the alarm says the rate
//!    is p₀ again. One excursion gives one alarm and one resolution.

use std::collections::VecDeque;

use crate::cusum::{threshold_for_arl0, BernoulliCusum};

/// Which way a monitor looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A rate that goes up (failures, new queries).
    Rise,
    /// A rate that goes down (a signal that goes quiet).
    Fall,
}

/// How a [`RateMonitor`] decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateMonitorConfig {
    /// Which way it looks.
    pub direction: Direction,
    /// The relative change it is built to catch: p₁ = p₀·(1 + change) for a rise,
    /// p₀·(1 − change) for a fall.
    pub relative_change: f64,
    /// The in-control average run length, in ticks: the mean time between false alarms.
    pub in_control_ticks: f64,
    /// The ticks the baseline is taken over.
    pub baseline_ticks: usize,
    /// The most recent ticks left out of the baseline.
    pub guard_ticks: usize,
    /// The fewest events the baseline needs before the monitor decides anything.
    pub min_baseline_events: u64,
}

/// What a tick changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transition {
    /// The rate left its baseline.
    Fired(Excursion),
    /// The rate came back.
    Resolved(Excursion),
}

/// An excursion of a rate from its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Excursion {
    /// The baseline rate p₀.
    pub baseline: f64,
    /// The rate over the excursion so far (since the statistic last left 0).
    pub observed: f64,
    /// The events of the excursion so far.
    pub events: u64,
    /// The trials of the excursion so far.
    pub trials: u64,
    /// The CUSUM statistic.
    pub statistic: f64,
    /// The threshold it crossed.
    pub threshold: f64,
}

/// A rate watched for excursions (see the module docs).
#[derive(Clone, Debug)]
pub struct RateMonitor {
    config: RateMonitorConfig,
    /// In-control ticks of the baseline, oldest first.
    baseline: VecDeque<(u64, u64)>,
    /// Sums of `baseline`.
    baseline_sum: (u64, u64),
    /// The most recent ticks, not yet in the baseline.
    guard: VecDeque<(u64, u64)>,
    statistic: f64,
    /// The events and trials since the statistic last left 0.
    run: (u64, u64),
    /// While firing: the frozen baseline and threshold.
    firing: Option<(f64, f64)>,
}

impl RateMonitor {
    /// A monitor with no history.
    pub fn new(config: RateMonitorConfig) -> Self {
        Self {
            config,
            baseline: VecDeque::new(),
            baseline_sum: (0, 0),
            guard: VecDeque::new(),
            statistic: 0.0,
            run: (0, 0),
            firing: None,
        }
    }

    /// Whether it is firing.
    pub fn is_firing(&self) -> bool {
        self.firing.is_some()
    }

    /// The excursion going on, while firing.
    pub fn excursion(&self) -> Option<Excursion> {
        let (baseline, threshold) = self.firing?;
        let (events, trials) = self.run;
        Some(Excursion {
            baseline,
            observed: if trials == 0 {
                0.0
            } else {
                events as f64 / trials as f64
            },
            events,
            trials,
            statistic: self.statistic,
            threshold,
        })
    }

    /// The CUSUM statistic.
    pub fn statistic(&self) -> f64 {
        self.statistic
    }

    /// The baseline rate, once the baseline has enough events.
    pub fn baseline(&self) -> Option<f64> {
        if let Some((p0, _)) = self.firing {
            return Some(p0);
        }
        let (events, trials) = self.baseline_sum;
        let min_events = self.config.min_baseline_events.max(1);
        match self.config.direction {
            // A rate near zero (new queries once the usual ones are known) can still rise: its
            // baseline counts as at least `min_baseline_events`, the most the baseline cannot
            // tell from zero, which errs towards fewer alarms.
            Direction::Rise => {
                (trials > 2 * min_events).then(|| events.max(min_events) as f64 / trials as f64)
            }
            // A rate can fall only from somewhere.
            Direction::Fall => {
                (events >= min_events && trials > events).then(|| events as f64 / trials as f64)
            }
        }
    }

    fn target(&self, p0: f64) -> f64 {
        let change = self.config.relative_change.clamp(0.01, 0.99);
        let p1 = match self.config.direction {
            Direction::Rise => p0 * (1.0 + change),
            Direction::Fall => p0 * (1.0 - change),
        };
        p1.clamp(1e-9, 1.0 - 1e-9)
    }

    /// Adds one tick of `events` in `trials`; what it changed.
    pub fn observe(&mut self, events: u64, trials: u64) -> Option<Transition> {
        let events = events.min(trials);
        let Some(p0) = self.baseline() else {
            self.learn(events, trials);
            return None;
        };
        let p1 = self.target(p0);
        let threshold = match self.firing {
            Some((_, threshold)) => threshold,
            None => {
                let ticks = self.baseline.len().max(1) as f64;
                let per_tick = self.baseline_sum.1 as f64 / ticks;
                let observations = self.config.in_control_ticks * per_tick;
                match threshold_for_arl0(p0, p1, observations) {
                    Some(threshold) => threshold,
                    None => {
                        self.learn(events, trials);
                        return None;
                    }
                }
            }
        };
        let Some(mut cusum) = BernoulliCusum::new(p0, p1, threshold) else {
            self.learn(events, trials);
            return None;
        };
        cusum.set_statistic(self.statistic);
        let statistic = cusum.update(events, trials);
        self.run = if self.statistic == 0.0 {
            (events, trials)
        } else {
            (self.run.0 + events, self.run.1 + trials)
        };
        let excursion = |statistic: f64, run: (u64, u64)| Excursion {
            baseline: p0,
            observed: if run.1 == 0 {
                0.0
            } else {
                run.0 as f64 / run.1 as f64
            },
            events: run.0,
            trials: run.1,
            statistic,
            threshold,
        };
        match self.firing {
            Some(_) => {
                self.statistic = statistic.min(2.0 * threshold);
                if statistic == 0.0 {
                    self.firing = None;
                    let resolved = excursion(0.0, self.run);
                    self.run = (0, 0);
                    return Some(Transition::Resolved(resolved));
                }
                None
            }
            None if statistic >= threshold => {
                self.statistic = statistic.min(2.0 * threshold);
                self.firing = Some((p0, threshold));
                // The ticks just before the alarm are likely the excursion's start.
                self.guard.clear();
                Some(Transition::Fired(excursion(statistic, self.run)))
            }
            None => {
                self.statistic = statistic;
                self.learn(events, trials);
                None
            }
        }
    }

    /// Puts an in-control tick through the guard into the baseline.
    fn learn(&mut self, events: u64, trials: u64) {
        self.guard.push_back((events, trials));
        while self.guard.len() > self.config.guard_ticks {
            let Some(tick) = self.guard.pop_front() else {
                break;
            };
            self.baseline.push_back(tick);
            self.baseline_sum.0 += tick.0;
            self.baseline_sum.1 += tick.1;
        }
        while self.baseline.len() > self.config.baseline_ticks.max(1) {
            let Some((old_events, old_trials)) = self.baseline.pop_front() else {
                break;
            };
            self.baseline_sum.0 -= old_events;
            self.baseline_sum.1 -= old_trials;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(direction: Direction) -> RateMonitorConfig {
        RateMonitorConfig {
            direction,
            relative_change: 0.5,
            in_control_ticks: 730.0 * 24.0,
            baseline_ticks: 28 * 24,
            guard_ticks: 24,
            min_baseline_events: 20,
        }
    }

    /// 100 trials a tick with exactly `per_100` events.
    fn feed(monitor: &mut RateMonitor, ticks: usize, per_100: u64) -> Vec<Transition> {
        (0..ticks)
            .filter_map(|_| monitor.observe(per_100, 100))
            .collect()
    }

    #[test]
    fn fires_once_per_excursion_and_resolves_when_the_rate_returns() {
        let mut monitor = RateMonitor::new(config(Direction::Rise));
        // The baseline needs 20 events and the guard 24 ticks: nothing is decided before.
        assert!(feed(&mut monitor, 26, 10).is_empty());
        assert_eq!(monitor.baseline(), Some(0.1));
        assert!(
            feed(&mut monitor, 200, 10).is_empty(),
            "a steady rate never fires"
        );
        // 10% -> 20%: each tick adds 20·ln 1.5 + 80·ln(0.85/0.9) = 3.535, past h ≈ 10 (the
        // threshold for 730 days of 2,400 a day) on the third tick.
        let fired = feed(&mut monitor, 48, 20);
        assert_eq!(fired.len(), 1, "{fired:?}");
        let Transition::Fired(excursion) = fired[0] else {
            panic!("{fired:?}")
        };
        assert_eq!(excursion.baseline, 0.1);
        assert_eq!(excursion.observed, 0.2);
        assert!(monitor.is_firing());
        assert!(
            feed(&mut monitor, 5, 12).is_empty(),
            "still above the baseline"
        );
        // Back at 10%: each tick takes 100·K-ish ≈ 1.09 off a statistic capped at 2h.
        let resolved = feed(&mut monitor, 40, 10);
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert!(matches!(resolved[0], Transition::Resolved(_)));
        assert!(!monitor.is_firing());
        // The excursion did not move the baseline.
        assert_eq!(monitor.baseline(), Some(0.1));
    }

    #[test]
    fn a_rate_near_zero_can_rise() {
        let mut monitor = RateMonitor::new(config(Direction::Rise));
        // A week without a single event: the baseline counts as 20 in 16,800.
        assert!(feed(&mut monitor, 7 * 24, 0).is_empty());
        let floor = monitor.baseline().unwrap();
        assert!((floor - 20.0 / (144.0 * 100.0)).abs() < 1e-12, "{floor}");
        // A burst of new queries fires within hours.
        let fired = feed(&mut monitor, 6, 3);
        assert_eq!(fired.len(), 1, "{fired:?}");
    }

    #[test]
    fn a_falling_signal_is_caught() {
        let mut monitor = RateMonitor::new(config(Direction::Fall));
        assert!(feed(&mut monitor, 100, 8).is_empty());
        let fired = feed(&mut monitor, 24, 0);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!(
            feed(&mut monitor, 24, 0).is_empty(),
            "one alarm per excursion"
        );
    }
}
