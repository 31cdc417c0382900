//! Monitors: rates watched tick by tick, and the alerts they raise.
//!
//! Each `[[monitors]]` entry ([`MonitorSpec`], the defaults without any) becomes one
//! [`RateMonitor`] per group it sees: per template version, model or data source for the
//! failure rate, per signal for the signal rate, one for the query drift, per template
//! version for the reviewers' labels. The receiver's
//! background task calls [`Monitors::check`]; each call reads the ticks completed (and
//! settled) since the last, in order, from the store, and feeds them to the monitors.
//!
//! A monitor that fires is an **alert**: in one transaction it is stored (one open alert per
//! monitor: the store refuses a second, so several receivers on one store raise it once),
//! routed by the triage rules with `monitor` to an owner with an SLA, queued in the outbox as
//! an alert span (with `closedloop.triage.owner` and `closedloop.triage.due_time`) and
//! queued for the webhook. When the rate returns the alert resolves: stored, a child span,
//! a webhook message. Nothing is posted twice for one excursion.
//!
//! Monitor state is memory, rebuilt at start by replaying the last `baseline_days` of the
//! store quietly; the replay's end is then reconciled with the stored alerts (an excursion
//! still going on without an open alert fires, an open alert whose rate is back resolves).

mod config;
pub mod span;

use std::collections::{BTreeMap, HashMap};

use closedloop_stats::monitor::{Direction, Excursion, RateMonitor, RateMonitorConfig, Transition};
use closedloop_store::records::{Alert, SpanRef, TickCounts};
use closedloop_store::{Connection, StoreError};
use closedloop_tracing::novelty::NoveltyIndex;
use closedloop_tracing::Fingerprint;
use serde_json::json;

pub use config::{MonitorGroup, MonitorSpec, MonitoringConfig};

use crate::triage::payload::{alert_payload, KIND_ALERT_FIRED, KIND_ALERT_RESOLVED};
use crate::triage::{route_alert, NotifyConfig, TriageConfig};
use crate::vocab::{AlertKind, AlertStatus};

/// Ticks read from the store at once (a query scans the window: the start-up replay is one).
const CHUNK_TICKS: i64 = 24 * 35;

/// The most recent queries kept for the clusters of a drift alert.
const RECENT_QUERIES: usize = 20_000;

/// The most clusters a drift alert names.
const MAX_CLUSTERS: usize = 5;

/// One group's monitor.
#[derive(Debug)]
struct Stream {
    kind: AlertKind,
    dimension: &'static str,
    value: String,
    direction: Direction,
    monitor: RateMonitor,
}

/// What one check did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Ticks read.
    pub ticks: u64,
    /// Alerts fired (stored for the first time).
    pub fired: u64,
    /// Alerts resolved.
    pub resolved: u64,
}

/// The counts of one tick.
#[derive(Default)]
struct Tick {
    responses: u64,
    /// (group, value) -> (failed, responses).
    groups: HashMap<(MonitorGroup, String), (u64, u64)>,
    /// (group, value) -> (labelled bad, labelled), by the time of the label.
    labels: HashMap<(MonitorGroup, String), (u64, u64)>,
    /// signal -> responses.
    signals: BTreeMap<&'static str, u64>,
    /// (novel, with a fingerprint).
    novel: (u64, u64),
}

/// A recent query, for the clusters of a drift alert.
struct RecentQuery {
    tick: i64,
    response: SpanRef,
    bands: Vec<u64>,
    novel: bool,
}

/// Every monitor of a receiver.
#[derive(Debug)]
pub struct Monitors {
    settings: MonitoringConfig,
    specs: Vec<MonitorSpec>,
    triage: TriageConfig,
    notify: bool,
    streams: BTreeMap<String, Stream>,
    novelty: Option<NoveltyIndex>,
    recent_queries: std::collections::VecDeque<RecentQuery>,
    next_tick: Option<i64>,
}

impl std::fmt::Debug for RecentQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentQuery")
            .field("tick", &self.tick)
            .finish()
    }
}

impl Monitors {
    /// The monitors of `specs` (the defaults when empty) with the `[monitoring]` settings,
    /// routing alerts with `triage` and notifying them when `notify` has a webhook.
    pub fn new(
        settings: &MonitoringConfig,
        specs: &[MonitorSpec],
        triage: &TriageConfig,
        notify: &NotifyConfig,
    ) -> Self {
        let specs = if specs.is_empty() {
            MonitorSpec::defaults()
        } else {
            specs.to_vec()
        };
        let novelty = specs
            .iter()
            .any(|spec| spec.kind == AlertKind::QueryDrift)
            .then(|| {
                NoveltyIndex::new(
                    settings.baseline_days * 86_400 / settings.tick_secs.max(1),
                    settings.max_query_keys,
                )
            });
        Self {
            settings: settings.clone(),
            specs,
            triage: triage.clone(),
            notify: notify.webhook_url.is_some() && notify.on_alert,
            streams: BTreeMap::new(),
            novelty,
            recent_queries: std::collections::VecDeque::new(),
            next_tick: None,
        }
    }

    fn tick_secs(&self) -> i64 {
        self.settings.tick_secs.max(1) as i64
    }

    fn rate_config(&self, spec: &MonitorSpec) -> RateMonitorConfig {
        let ticks_per_day = 86_400.0 / self.tick_secs() as f64;
        RateMonitorConfig {
            direction: spec.direction(),
            relative_change: spec
                .relative_change
                .unwrap_or(self.settings.relative_change),
            in_control_ticks: spec
                .in_control_days
                .unwrap_or(self.settings.in_control_days)
                * ticks_per_day,
            baseline_ticks: (self.settings.baseline_days as f64 * ticks_per_day) as usize,
            guard_ticks: (self.settings.guard_hours as f64 * 3_600.0 / self.tick_secs() as f64)
                .ceil() as usize,
            min_baseline_events: self.settings.min_baseline_events,
        }
    }

    /// Reads the ticks completed and settled by `now_s` that it has not read, feeds them to
    /// the monitors and acts on what they say. The first call replays the last
    /// `baseline_days` quietly, then reconciles with the stored alerts.
    pub fn check(&mut self, conn: &mut Connection, now_s: i64) -> Result<CheckOutcome, StoreError> {
        let tick_secs = self.tick_secs();
        let ready = now_s
            .saturating_sub(self.settings.settle_secs.min(i64::MAX as u64) as i64)
            .div_euclid(tick_secs);
        let replay = self.next_tick.is_none();
        let history = (self.settings.baseline_days as i64 * 86_400 / tick_secs)
            + (self.settings.guard_hours as i64 * 3_600 / tick_secs);
        let start = self.next_tick.unwrap_or(ready - history);
        if replay {
            if let Some(novelty) = &mut self.novelty {
                for text in conn.evalset_fingerprints(start * tick_secs)? {
                    if let Ok(fingerprint) = text.parse::<Fingerprint>() {
                        novelty.insert_forever(&fingerprint);
                    }
                }
            }
        }
        let mut outcome = CheckOutcome::default();
        let mut chunk = start;
        while chunk < ready {
            let end = (chunk + CHUNK_TICKS).min(ready);
            let ticks = self.read(conn, chunk, end)?;
            for (offset, tick) in ticks.into_iter().enumerate() {
                let index = chunk + offset as i64;
                for (key, transition) in self.feed(&tick) {
                    if !replay {
                        self.act(
                            conn,
                            &key,
                            transition,
                            (index + 1) * tick_secs,
                            now_s,
                            &mut outcome,
                        )?;
                    }
                }
                outcome.ticks += 1;
            }
            chunk = end;
        }
        self.next_tick = Some(ready.max(start));
        if replay {
            self.reconcile(conn, ready * tick_secs, now_s, &mut outcome)?;
        }
        Ok(outcome)
    }

    /// The counts of ticks `[from, to)`, one entry per tick.
    fn read(&mut self, conn: &mut Connection, from: i64, to: i64) -> Result<Vec<Tick>, StoreError> {
        let tick_secs = self.tick_secs();
        let mut ticks: Vec<Tick> = (from..to).map(|_| Tick::default()).collect();
        let slot = |tick: i64| usize::try_from(tick - from).ok();
        let groups: Vec<MonitorGroup> = self
            .specs
            .iter()
            .filter(|spec| spec.kind == AlertKind::FailureRate)
            .map(|spec| spec.by.unwrap_or(MonitorGroup::All))
            .collect();
        for counts in conn.monitor_ticks(from * tick_secs, to * tick_secs, tick_secs)? {
            let Some(tick) = slot(counts.tick).and_then(|i| ticks.get_mut(i)) else {
                continue;
            };
            tick.responses += counts.responses;
            for group in &groups {
                if let Some(value) = group_value(*group, &counts) {
                    let entry = tick.groups.entry((*group, value)).or_default();
                    entry.0 += counts.failed;
                    entry.1 += counts.responses;
                }
            }
        }
        let label_groups: Vec<MonitorGroup> = self
            .specs
            .iter()
            .filter(|spec| spec.kind == AlertKind::LabelRate)
            .map(|spec| spec.by.unwrap_or(MonitorGroup::All))
            .collect();
        if !label_groups.is_empty() {
            for labels in conn.monitor_label_ticks(from * tick_secs, to * tick_secs, tick_secs)? {
                let Some(tick) = slot(labels.tick).and_then(|i| ticks.get_mut(i)) else {
                    continue;
                };
                let counts = TickCounts {
                    tick: labels.tick,
                    template_id: labels.template_id,
                    template_version: labels.template_version,
                    model: None,
                    data_source: None,
                    responses: labels.labelled,
                    failed: labels.bad,
                };
                for group in &label_groups {
                    if let Some(value) = group_value(*group, &counts) {
                        let entry = tick.labels.entry((*group, value)).or_default();
                        entry.0 += counts.failed;
                        entry.1 += counts.responses;
                    }
                }
            }
        }
        if self
            .specs
            .iter()
            .any(|spec| spec.kind == AlertKind::SignalRate)
        {
            for signal in conn.monitor_signal_ticks(from * tick_secs, to * tick_secs, tick_secs)? {
                if let Some(tick) = slot(signal.tick).and_then(|i| ticks.get_mut(i)) {
                    *tick.signals.entry(signal.signal.as_str()).or_default() += signal.responses;
                }
            }
        }
        if let Some(novelty) = &mut self.novelty {
            let recent = &mut self.recent_queries;
            conn.monitor_fingerprints(from * tick_secs, to * tick_secs, |at_s, response, text| {
                let Ok(fingerprint) = text.parse::<Fingerprint>() else {
                    return;
                };
                let index = at_s.div_euclid(tick_secs);
                let Some(tick) = slot(index).and_then(|i| ticks.get_mut(i)) else {
                    return;
                };
                let t = u64::try_from(index).unwrap_or(0);
                let Some(novel) = novelty.is_novel(&fingerprint, t) else {
                    return;
                };
                tick.novel.1 += 1;
                tick.novel.0 += u64::from(novel);
                if recent.len() == RECENT_QUERIES {
                    recent.pop_front();
                }
                recent.push_back(RecentQuery {
                    tick: index,
                    response,
                    bands: fingerprint.bands(),
                    novel,
                });
                novelty.insert(&fingerprint, t);
            })?;
        }
        Ok(ticks)
    }

    fn stream(
        &mut self,
        key: String,
        spec: usize,
        dimension: &'static str,
        value: String,
    ) -> &mut Stream {
        let config = self.rate_config(&self.specs[spec]);
        let kind = self.specs[spec].kind;
        self.streams.entry(key).or_insert_with(|| Stream {
            kind,
            dimension,
            value,
            direction: config.direction,
            monitor: RateMonitor::new(config),
        })
    }

    /// Feeds one tick to every monitor; the transitions, by monitor key.
    fn feed(&mut self, tick: &Tick) -> Vec<(String, Transition)> {
        let mut transitions = Vec::new();
        for spec in 0..self.specs.len() {
            let kind = self.specs[spec].kind;
            let mut observations: Vec<(String, &'static str, String, u64, u64)> = Vec::new();
            match kind {
                AlertKind::FailureRate | AlertKind::LabelRate => {
                    let group = self.specs[spec].by.unwrap_or(MonitorGroup::All);
                    let counts = if kind == AlertKind::LabelRate {
                        &tick.labels
                    } else {
                        &tick.groups
                    };
                    // Every group seen before gets the tick, with 0 trials when it had none.
                    let prefix = format!("{}/{}/", kind.as_str(), group.as_str());
                    let mut seen: Vec<String> = self
                        .streams
                        .keys()
                        .filter(|key| key.starts_with(&prefix))
                        .map(|key| key[prefix.len()..].to_owned())
                        .collect();
                    for (_, value) in counts.keys().filter(|(g, _)| *g == group) {
                        if !seen.contains(value) {
                            seen.push(value.clone());
                        }
                    }
                    for value in seen {
                        let (events, trials) = counts
                            .get(&(group, value.clone()))
                            .copied()
                            .unwrap_or((0, 0));
                        observations.push((
                            format!("{prefix}{value}"),
                            group.as_str(),
                            value,
                            events,
                            trials,
                        ));
                    }
                }
                AlertKind::SignalRate => {
                    let wanted = self.specs[spec].signal.map(|signal| signal.as_str());
                    let prefix = format!("{}/signal/", kind.as_str());
                    let mut seen: Vec<String> = self
                        .streams
                        .keys()
                        .filter(|key| key.starts_with(&prefix))
                        .map(|key| key[prefix.len()..].to_owned())
                        .collect();
                    for signal in tick.signals.keys() {
                        if !seen.iter().any(|known| known == signal) {
                            seen.push((*signal).to_owned());
                        }
                    }
                    if let Some(wanted) = wanted {
                        seen.retain(|signal| signal == wanted);
                        if seen.is_empty() {
                            seen.push(wanted.to_owned());
                        }
                    }
                    for signal in seen {
                        let count = tick.signals.get(signal.as_str()).copied().unwrap_or(0);
                        observations.push((
                            format!("{prefix}{signal}"),
                            "signal",
                            signal,
                            count,
                            tick.responses,
                        ));
                    }
                }
                AlertKind::QueryDrift => {
                    let (novel, total) = tick.novel;
                    observations.push((
                        format!("{}/all/all", kind.as_str()),
                        "all",
                        "all".into(),
                        novel,
                        total,
                    ));
                }
                _ => {}
            }
            for (key, dimension, value, events, trials) in observations {
                let stream = self.stream(key.clone(), spec, dimension, value);
                if let Some(transition) = stream.monitor.observe(events, trials) {
                    transitions.push((key, transition));
                }
            }
        }
        transitions
    }

    fn alert(&self, key: &str, excursion: &Excursion, fired_s: i64) -> Option<Alert> {
        let stream = self.streams.get(key)?;
        let mut alert = Alert {
            id: 0,
            monitor: key.to_owned(),
            kind: stream.kind.as_str().to_owned(),
            dimension: stream.dimension.to_owned(),
            value: stream.value.clone(),
            direction: match stream.direction {
                Direction::Rise => "rise",
                Direction::Fall => "fall",
            }
            .to_owned(),
            fired_s,
            resolved_s: None,
            baseline_rate: excursion.baseline,
            observed_rate: excursion.observed,
            events: excursion.events,
            trials: excursion.trials,
            statistic: excursion.statistic,
            threshold: excursion.threshold,
            owner: None,
            due_s: None,
            detail: None,
        };
        let (owner, sla) = route_alert(&self.triage, &alert);
        alert.owner = owner;
        alert.due_s = sla.map(|sla| fired_s.saturating_add(sla.min(i64::MAX as u64) as i64));
        if stream.kind == AlertKind::QueryDrift {
            alert.detail = Some(self.clusters(fired_s).to_string());
        }
        Some(alert)
    }

    /// The largest clusters of new queries in the last day before `fired_s`: the recent
    /// queries linked by shared band keys, each cluster holding at least one new query (the
    /// one that was new, and those asked after it in other words).
    fn clusters(&self, fired_s: i64) -> serde_json::Value {
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let since = (fired_s - 86_400).div_euclid(self.tick_secs());
        let queries: Vec<&RecentQuery> = self
            .recent_queries
            .iter()
            .filter(|query| query.tick >= since)
            .collect();
        let mut parent: Vec<usize> = (0..queries.len()).collect();
        let mut first_with: HashMap<u64, usize> = HashMap::new();
        for (i, query) in queries.iter().enumerate() {
            for band in &query.bands {
                match first_with.get(band) {
                    Some(&j) => {
                        let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                        parent[a] = b;
                    }
                    None => {
                        first_with.insert(*band, i);
                    }
                }
            }
        }
        let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
        for i in 0..queries.len() {
            let r = root(&mut parent, i);
            members.entry(r).or_default().push(i);
        }
        let mut clusters: Vec<Vec<usize>> = members
            .into_values()
            .filter(|members| members.len() > 1 && members.iter().any(|&i| queries[i].novel))
            .collect();
        clusters.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        clusters.truncate(MAX_CLUSTERS);
        json!({
            "new_queries": queries.iter().filter(|query| query.novel).count(),
            "clusters": clusters.iter().map(|cluster| json!({
                "queries": cluster.len(),
                "new_queries": cluster.iter().filter(|&&i| queries[i].novel).count(),
                "examples": cluster.iter().take(3).map(|&i| {
                    let response = queries[i].response;
                    format!("{}:{}", hex(&response.trace_id), hex(&response.span_id))
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn act(
        &mut self,
        conn: &mut Connection,
        key: &str,
        transition: Transition,
        at_s: i64,
        now_s: i64,
        outcome: &mut CheckOutcome,
    ) -> Result<(), StoreError> {
        match transition {
            Transition::Fired(excursion) => {
                let Some(alert) = self.alert(key, &excursion, at_s) else {
                    return Ok(());
                };
                if self.fire(conn, alert, now_s)? {
                    outcome.fired += 1;
                }
            }
            Transition::Resolved(excursion) => {
                if self.resolve(conn, key, at_s, excursion.observed, now_s)? {
                    outcome.resolved += 1;
                }
            }
        }
        Ok(())
    }

    /// Stores, exports and notifies a fired alert, unless its monitor has one open.
    fn fire(
        &self,
        conn: &mut Connection,
        mut alert: Alert,
        now_s: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = conn.transaction()?;
        let Some(id) = tx.insert_alert(&alert)? else {
            return Ok(false);
        };
        alert.id = id;
        tx.insert_outbox(now_s, &span::encode(&alert, AlertStatus::Firing))?;
        if self.notify {
            tx.queue_notification(now_s, KIND_ALERT_FIRED, &alert_payload(&alert, false))?;
        }
        tx.commit()?;
        tracing::info!(monitor = %alert.monitor, baseline = alert.baseline_rate,
            observed = alert.observed_rate, owner = ?alert.owner, "Monitor alert fired.");
        Ok(true)
    }

    /// Resolves the open alert of `key`, exporting and notifying it.
    fn resolve(
        &self,
        conn: &mut Connection,
        key: &str,
        at_s: i64,
        observed: f64,
        now_s: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = conn.transaction()?;
        let Some(alert) = tx.resolve_alert(key, at_s, observed)? else {
            return Ok(false);
        };
        tx.insert_outbox(now_s, &span::encode(&alert, AlertStatus::Resolved))?;
        if self.notify {
            tx.queue_notification(now_s, KIND_ALERT_RESOLVED, &alert_payload(&alert, true))?;
        }
        tx.commit()?;
        tracing::info!(monitor = %alert.monitor, "Monitor alert resolved.");
        Ok(true)
    }

    /// After the replay: fires what is firing without an open alert, resolves open alerts
    /// whose monitor is quiet.
    fn reconcile(
        &mut self,
        conn: &mut Connection,
        at_s: i64,
        now_s: i64,
        outcome: &mut CheckOutcome,
    ) -> Result<(), StoreError> {
        let keys: Vec<String> = self.streams.keys().cloned().collect();
        for key in keys {
            let open = conn.open_alert(&key)?;
            let Some(stream) = self.streams.get(&key) else {
                continue;
            };
            match (stream.monitor.excursion(), open) {
                (Some(excursion), None) => {
                    if let Some(alert) = self.alert(&key, &excursion, at_s) {
                        if self.fire(conn, alert, now_s)? {
                            outcome.fired += 1;
                        }
                    }
                }
                (None, Some(alert))
                    if self.resolve(conn, &key, at_s, alert.observed_rate, now_s)? =>
                {
                    outcome.resolved += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The monitors running, by key.
    pub fn keys(&self) -> Vec<String> {
        self.streams.keys().cloned().collect()
    }
}

fn group_value(group: MonitorGroup, counts: &TickCounts) -> Option<String> {
    match group {
        MonitorGroup::All => Some("all".to_owned()),
        MonitorGroup::TemplateVersion => match (&counts.template_id, &counts.template_version) {
            (Some(id), Some(version)) => Some(format!("{id}@{version}")),
            _ => None,
        },
        MonitorGroup::Model => counts.model.clone(),
        MonitorGroup::DataSource => counts.data_source.clone(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
