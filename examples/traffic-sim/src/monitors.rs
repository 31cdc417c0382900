//! How closedloop's default monitors behave on simulated traffic: how often they fire when
//! nothing changes, and how soon they notice a change that did come.
//!
//! [`run_monitors`] puts a [`Traffic`] through the monitors the receiver runs by default, one
//! hourly tick at a time, each a [`RateMonitor`]:
//!
//! - **failure_rate** (rise), one per template version, per model and per data source: the
//!   share of the group's responses with a failure record;
//! - **signal_rate** (fall), one per negative signal ([`Signal::is_negative`]): the share of
//!   all responses with that signal (a broken button, a detector switched off);
//! - **query_drift** (rise): the share of queries with no near neighbour in the last 28 days
//!   ([`NoveltyIndex`]), among those with band keys;
//! - **label_rate** (rise), one per template version: the share of its reviewed responses
//!   labelled bad (counted at the response's time; the receiver counts a label when it is
//!   given).
//!
//! The novelty index has no history at the start of a run, so every benchmark run begins with
//! [`WARMUP_DAYS`] of stationary traffic that the monitors learn from and whose alarms are not
//! counted. [`bench()`] measures, over seeded runs, the false alarms per 30 stationary days and
//! the delay from a regression, a new topic and a silent thumbs-down button to the alarm of
//! the monitor meant to catch it.
//!
//! ```
//! use closedloop_example_traffic::monitors::{run_monitors, MonitorSettings};
//! use closedloop_example_traffic::scenario::Scenario;
//!
//! let traffic = Scenario::stationary(1, 2).generate();
//! let alarms = run_monitors(&traffic, &MonitorSettings::default());
//! // Each alarm resolves, if at all, after it fired.
//! assert!(alarms.iter().all(|alarm| alarm
//!     .resolved_at_s
//!     .is_none_or(|resolved| resolved > alarm.fired_at_s)));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use closedloop_stats::monitor::{Direction, Excursion, RateMonitor, RateMonitorConfig, Transition};
use closedloop_tracing::novelty::NoveltyIndex;

use crate::scenario::{Scenario, Signal, Traffic, DAY_SECS, EPOCH_S};

/// Seconds in a tick.
pub const TICK_SECS: i64 = 3_600;

/// Ticks in a day.
const TICKS_PER_DAY: u64 = (DAY_SECS / TICK_SECS) as u64;

/// The stationary days before every benchmark run: the novelty index's window, so that the
/// query-drift monitor does not start from an empty history.
pub const WARMUP_DAYS: u32 = 28;

/// The novelty index's window, in days.
pub const NOVELTY_WINDOW_DAYS: u64 = 28;

/// The novelty index's bound on keys.
pub const NOVELTY_MAX_KEYS: usize = 2_000_000;

/// The settings shared by every default monitor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MonitorSettings {
    /// The relative change each monitor is built to catch.
    pub relative_change: f64,
    /// The in-control average run length of each monitor, in days.
    pub in_control_days: f64,
    /// The days of baseline.
    pub baseline_days: u32,
    /// The most recent hours left out of the baseline.
    pub guard_hours: u32,
    /// The fewest events the baseline needs.
    pub min_baseline_events: u64,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            relative_change: 0.5,
            in_control_days: 730.0,
            baseline_days: 28,
            guard_hours: 24,
            min_baseline_events: 20,
        }
    }
}

impl MonitorSettings {
    fn config(&self, direction: Direction) -> RateMonitorConfig {
        RateMonitorConfig {
            direction,
            relative_change: self.relative_change,
            in_control_ticks: self.in_control_days * TICKS_PER_DAY as f64,
            baseline_ticks: self.baseline_days as usize * TICKS_PER_DAY as usize,
            guard_ticks: self.guard_hours as usize,
            min_baseline_events: self.min_baseline_events,
        }
    }
}

/// Which default monitor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MonitorId {
    /// The failure rate of a template version (`template_id@version`).
    TemplateVersion(String),
    /// The failure rate of a model.
    Model(String),
    /// The failure rate of a data source.
    DataSource(String),
    /// The rate of a negative signal.
    Signal(Signal),
    /// The share of novel queries.
    QueryDrift,
    /// The share of a template version's reviewed responses labelled bad.
    Labels(String),
}

impl fmt::Display for MonitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorId::TemplateVersion(version) => write!(f, "failure_rate[template={version}]"),
            MonitorId::Model(model) => write!(f, "failure_rate[model={model}]"),
            MonitorId::DataSource(source) => write!(f, "failure_rate[data_source={source}]"),
            MonitorId::Signal(signal) => write!(f, "signal_rate[{}]", signal.as_str()),
            MonitorId::QueryDrift => f.write_str("query_drift"),
            MonitorId::Labels(version) => write!(f, "label_rate[template={version}]"),
        }
    }
}

/// One alarm of one monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    /// The monitor.
    pub monitor: MonitorId,
    /// The tick it fired in, from the start of day 0.
    pub tick: u64,
    /// When it fired: the end of its tick, Unix seconds.
    pub fired_at_s: i64,
    /// When it resolved (the end of that tick), if it did.
    pub resolved_at_s: Option<i64>,
    /// The excursion when it fired.
    pub excursion: Excursion,
}

/// One monitor and what it counts in the current tick.
struct Watched {
    id: MonitorId,
    monitor: RateMonitor,
    tick: (u64, u64),
    /// The index into the alarms of its open alarm.
    open: Option<usize>,
}

/// The alarms of the default monitors over `traffic`, in the order they fired.
pub fn run_monitors(traffic: &Traffic, settings: &MonitorSettings) -> Vec<Alarm> {
    let rise = settings.config(Direction::Rise);
    let fall = settings.config(Direction::Fall);
    let watched = |id: MonitorId, config: RateMonitorConfig| Watched {
        id,
        monitor: RateMonitor::new(config),
        tick: (0, 0),
        open: None,
    };
    // Each monitor's index, and each response group's monitors.
    let mut monitors: Vec<Watched> = Vec::new();
    let mut index_of: BTreeMap<MonitorId, usize> = BTreeMap::new();
    let mut group = |id: MonitorId, config| {
        *index_of.entry(id.clone()).or_insert_with(|| {
            monitors.push(watched(id, config));
            monitors.len() - 1
        })
    };
    let version_groups: Vec<[usize; 3]> = traffic
        .versions
        .iter()
        .map(|version| {
            [
                group(
                    MonitorId::TemplateVersion(format!(
                        "{}@{}",
                        version.template_id, version.template_version
                    )),
                    rise,
                ),
                group(MonitorId::Model(version.model.clone()), rise),
                group(MonitorId::DataSource(version.data_source.clone()), rise),
            ]
        })
        .collect();
    let signal_groups: Vec<(Signal, usize)> = Signal::ALL
        .into_iter()
        .filter(|signal| signal.is_negative())
        .map(|signal| (signal, group(MonitorId::Signal(signal), fall)))
        .collect();
    let drift = group(MonitorId::QueryDrift, rise);
    let label_groups: Vec<usize> = traffic
        .versions
        .iter()
        .map(|version| {
            group(
                MonitorId::Labels(format!(
                    "{}@{}",
                    version.template_id, version.template_version
                )),
                rise,
            )
        })
        .collect();

    let mut novelty = NoveltyIndex::new(NOVELTY_WINDOW_DAYS * TICKS_PER_DAY, NOVELTY_MAX_KEYS);
    let mut alarms: Vec<Alarm> = Vec::new();
    let tick_of = |at_s: i64| ((at_s - EPOCH_S).max(0) / TICK_SECS) as u64;
    let close_tick = |monitors: &mut [Watched], tick: u64, alarms: &mut Vec<Alarm>| {
        let end_s = EPOCH_S + (tick as i64 + 1) * TICK_SECS;
        for watched in monitors.iter_mut() {
            let (events, trials) = std::mem::take(&mut watched.tick);
            match watched.monitor.observe(events, trials) {
                Some(Transition::Fired(excursion)) => {
                    watched.open = Some(alarms.len());
                    alarms.push(Alarm {
                        monitor: watched.id.clone(),
                        tick,
                        fired_at_s: end_s,
                        resolved_at_s: None,
                        excursion,
                    });
                }
                Some(Transition::Resolved(_)) => {
                    if let Some(open) = watched.open.take() {
                        alarms[open].resolved_at_s = Some(end_s);
                    }
                }
                None => {}
            }
        }
    };
    let mut current = 0u64;
    for response in &traffic.responses {
        let tick = tick_of(response.at_s);
        while current < tick {
            close_tick(&mut monitors, current, &mut alarms);
            current += 1;
        }
        let failed = u64::from(response.failed);
        for &monitor in &version_groups[response.version] {
            let counts = &mut monitors[monitor].tick;
            counts.0 += failed;
            counts.1 += 1;
        }
        for &(signal, monitor) in &signal_groups {
            let counts = &mut monitors[monitor].tick;
            counts.0 += u64::from(response.signals.contains(&signal));
            counts.1 += 1;
        }
        // A label counts at the time of its response (the receiver counts it when it is
        // given, a day or so later: the same series, shifted).
        if let Some(bad) = response.reviewed {
            let counts = &mut monitors[label_groups[response.version]].tick;
            counts.0 += u64::from(bad);
            counts.1 += 1;
        }
        let fingerprint = &traffic.query(response).fingerprint;
        if let Some(novel) = novelty.is_novel(fingerprint, tick) {
            let counts = &mut monitors[drift].tick;
            counts.0 += u64::from(novel);
            counts.1 += 1;
            novelty.insert(fingerprint, tick);
        }
    }
    if !traffic.responses.is_empty() {
        close_tick(&mut monitors, current, &mut alarms);
    }
    alarms
}

/// What the stationary runs of [`bench()`] say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FalseAlarms {
    /// The runs.
    pub runs: u32,
    /// The days measured per run, after the warm-up.
    pub days: u32,
    /// The alarms fired after the warm-up, per monitor.
    pub by_monitor: BTreeMap<String, u32>,
}

impl FalseAlarms {
    /// All alarms.
    pub fn total(&self) -> u32 {
        self.by_monitor.values().sum()
    }

    /// Alarms per 30 days of traffic, across all monitors.
    pub fn per_30_days(&self) -> f64 {
        f64::from(self.total()) * 30.0 / f64::from((self.runs * self.days).max(1))
    }
}

/// What the runs of one change scenario of [`bench()`] say.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// The scenario.
    pub scenario: &'static str,
    /// The monitor meant to catch it.
    pub monitor: String,
    /// The days measured after the change.
    pub days_after: u32,
    /// Per run, the hours from the change to that monitor's first alarm after it, if any.
    pub delays_hours: Vec<Option<f64>>,
    /// Alarms of any monitor after the warm-up and before the change.
    pub before_change: u32,
    /// In how many runs each other monitor fired after the change.
    pub others: BTreeMap<String, u32>,
}

impl Detection {
    /// The runs detected within `days` days of the change.
    pub fn within_days(&self, days: f64) -> usize {
        self.delays_hours
            .iter()
            .filter(|delay| delay.is_some_and(|hours| hours <= days * 24.0))
            .count()
    }

    /// The median and the longest delay in hours over the detected runs, if any was.
    pub fn median_and_max_hours(&self) -> Option<(f64, f64)> {
        let mut delays: Vec<f64> = self.delays_hours.iter().flatten().copied().collect();
        if delays.is_empty() {
            return None;
        }
        delays.sort_by(f64::total_cmp);
        Some((delays[delays.len() / 2], delays[delays.len() - 1]))
    }
}

/// How [`bench()`] runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchConfig {
    /// The first seed.
    pub seed: u64,
    /// The runs of each scenario.
    pub runs: u64,
    /// The measured days of each stationary run, after the warm-up.
    pub stationary_days: u32,
    /// The measured days before each change, after the warm-up.
    pub days_before: u32,
    /// The measured days after each change.
    pub days_after: u32,
    /// The new topics' share of the traffic.
    pub topic_share: f64,
    /// The monitors' settings.
    pub settings: MonitorSettings,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            runs: 20,
            stationary_days: 30,
            days_before: 2,
            days_after: 14,
            topic_share: 0.05,
            settings: MonitorSettings::default(),
        }
    }
}

/// What [`bench()`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Bench {
    /// The stationary runs.
    pub false_alarms: FalseAlarms,
    /// The regression, new-topic and silent-thumbs runs.
    pub detections: Vec<Detection>,
}

/// The seeds of `config`, each through `run`, on every core.
fn per_seed<T: Send>(config: &BenchConfig, run: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let seeds: Vec<u64> = (config.seed..config.seed + config.runs).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = seeds.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .chunks(chunk)
            .map(|chunk| scope.spawn(|| chunk.iter().map(|&seed| run(seed)).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Measures the default monitors over seeded runs (see the module docs).
pub fn bench(config: &BenchConfig) -> Bench {
    let settings = config.settings;
    let warmup_s = EPOCH_S + i64::from(WARMUP_DAYS) * DAY_SECS;
    let stationary = per_seed(config, |seed| {
        let traffic = Scenario::stationary(seed, WARMUP_DAYS + config.stationary_days).generate();
        run_monitors(&traffic, &settings)
            .into_iter()
            .filter(|alarm| alarm.fired_at_s > warmup_s)
            .map(|alarm| alarm.monitor.to_string())
            .collect::<Vec<_>>()
    });
    let mut false_alarms = FalseAlarms {
        runs: stationary.len() as u32,
        days: config.stationary_days,
        by_monitor: BTreeMap::new(),
    };
    for monitor in stationary.into_iter().flatten() {
        *false_alarms.by_monitor.entry(monitor).or_default() += 1;
    }

    let change_day = WARMUP_DAYS + config.days_before;
    let days = change_day + config.days_after;
    type Make = fn(u64, u32, u32, f64) -> Scenario;
    let scenarios: [(&'static str, MonitorId, Make); 4] = [
        (
            "regression",
            MonitorId::TemplateVersion("support-answer@3".to_owned()),
            |seed, days, day, _| Scenario::regression(seed, days, day),
        ),
        (
            "regression",
            MonitorId::Labels("support-answer@3".to_owned()),
            |seed, days, day, _| Scenario::regression(seed, days, day),
        ),
        ("new_topic", MonitorId::QueryDrift, Scenario::new_topic),
        (
            "silent_thumbs",
            MonitorId::Signal(Signal::ThumbsDown),
            |seed, days, day, _| Scenario::silent_thumbs(seed, days, day),
        ),
    ];
    let change_s = EPOCH_S + i64::from(change_day) * DAY_SECS;
    let detections = scenarios
        .into_iter()
        .map(|(scenario, target, make)| {
            let runs = per_seed(config, |seed| {
                let traffic = make(seed, days, change_day, config.topic_share).generate();
                run_monitors(&traffic, &settings)
            });
            let mut detection = Detection {
                scenario,
                monitor: target.to_string(),
                days_after: config.days_after,
                delays_hours: Vec::new(),
                before_change: 0,
                others: BTreeMap::new(),
            };
            for alarms in runs {
                let after = || alarms.iter().filter(|alarm| alarm.fired_at_s > change_s);
                detection.before_change += alarms
                    .iter()
                    .filter(|alarm| alarm.fired_at_s > warmup_s && alarm.fired_at_s <= change_s)
                    .count() as u32;
                detection.delays_hours.push(
                    after()
                        .find(|alarm| alarm.monitor == target)
                        .map(|alarm| (alarm.fired_at_s - change_s) as f64 / TICK_SECS as f64),
                );
                let mut fired: Vec<String> = after()
                    .filter(|alarm| alarm.monitor != target)
                    .map(|alarm| alarm.monitor.to_string())
                    .collect();
                fired.sort();
                fired.dedup();
                for monitor in fired {
                    *detection.others.entry(monitor).or_default() += 1;
                }
            }
            detection
        })
        .collect();
    Bench {
        false_alarms,
        detections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three regression runs, two measured days before the change and two after: the
    /// version's failure-rate monitor catches it within 2 days in every run, and no monitor
    /// fires on the stationary days before it (the 13 monitors are built for one alarm per 730
    /// days each, about 0.1 over 3 × 2 days).
    #[test]
    fn regressions_are_caught_and_stationary_traffic_is_quiet() {
        let change_day = WARMUP_DAYS + 2;
        let warmup_s = EPOCH_S + i64::from(WARMUP_DAYS) * DAY_SECS;
        let change_s = EPOCH_S + i64::from(change_day) * DAY_SECS;
        let version = MonitorId::TemplateVersion("support-answer@3".to_owned());
        for seed in 40..43 {
            let traffic = Scenario::regression(seed, change_day + 2, change_day).generate();
            let alarms = run_monitors(&traffic, &MonitorSettings::default());
            let before: Vec<_> = alarms
                .iter()
                .filter(|alarm| alarm.fired_at_s > warmup_s && alarm.fired_at_s <= change_s)
                .collect();
            assert!(before.is_empty(), "seed {seed}: {before:?}");
            let caught = alarms
                .iter()
                .find(|alarm| alarm.monitor == version && alarm.fired_at_s > change_s);
            let Some(caught) = caught else {
                panic!("seed {seed}: not caught: {alarms:?}");
            };
            assert!(
                caught.fired_at_s - change_s <= 2 * DAY_SECS,
                "seed {seed}: {caught:?}"
            );
            assert!(caught.excursion.observed > caught.excursion.baseline * 1.2);
        }
    }
}
