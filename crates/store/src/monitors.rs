//! What the monitors read (responses, failures, negative signals and query fingerprints per
//! tick) and the alerts they raise.

use closedloop_semconv::attribute::FeedbackSignal;

use crate::db::values;
use crate::error::Result;
use crate::records::SpanRef;
use crate::typed::{parse, span};
use crate::Connection;

/// The responses of one tick and group, with how many have a failure record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickCounts {
    /// The tick: `received_s / tick_secs`.
    pub tick: i64,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// `gen_ai.request.model`.
    pub model: Option<String>,
    /// `gen_ai.data_source.id`.
    pub data_source: Option<String>,
    /// Responses received in the tick.
    pub responses: u64,
    /// Of those, with a failure record.
    pub failed: u64,
}

/// The responses of one tick with negative feedback of one signal (from anyone but a
/// reviewer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalTick {
    /// The tick: `received_s / tick_secs`.
    pub tick: i64,
    /// `closedloop.feedback.signal`.
    pub signal: FeedbackSignal,
    /// Responses received in the tick with such feedback.
    pub responses: u64,
}

/// The labels of one tick (by the time they were given) and template version, of the
/// uniform review sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelTick {
    /// The tick: `labelled_s / tick_secs`.
    pub tick: i64,
    /// `closedloop.prompt.template.id`.
    pub template_id: Option<String>,
    /// `closedloop.prompt.template.version`.
    pub template_version: Option<String>,
    /// Labels given in the tick.
    pub labelled: u64,
    /// Of those, `bad`.
    pub bad: u64,
}

/// An alert a monitor raised.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The alert's row.
    pub id: i64,
    /// The monitor and group it watches, e.g. `failure_rate/template_version/answer@3`.
    pub monitor: String,
    /// What it watches: `failure_rate`, `signal_rate`, `query_drift`.
    pub kind: String,
    /// The group's dimension (`template_version`, `model`, `data_source`, `signal`, `all`).
    pub dimension: String,
    /// The group's value.
    pub value: String,
    /// `rise` or `fall`.
    pub direction: String,
    /// When it fired (the end of the tick that crossed the threshold), Unix seconds.
    pub fired_s: i64,
    /// When it resolved, once it has.
    pub resolved_s: Option<i64>,
    /// The baseline rate.
    pub baseline_rate: f64,
    /// The rate over the excursion when it fired (or resolved).
    pub observed_rate: f64,
    /// The excursion's events.
    pub events: u64,
    /// The excursion's trials.
    pub trials: u64,
    /// The CUSUM statistic when it fired.
    pub statistic: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// Who owns it.
    pub owner: Option<String>,
    /// When it is due, Unix seconds.
    pub due_s: Option<i64>,
    /// More about it, as JSON (the new query clusters of a drift alert).
    pub detail: Option<String>,
}

const ALERT_COLUMNS: &str = "SELECT id, monitor, kind, dimension, value, direction, fired_s,
        resolved_s, baseline_rate, observed_rate, events, trials, statistic, threshold, owner,
        due_s, detail FROM alerts";

fn alert(row: &crate::db::Row<'_>) -> Result<Alert> {
    Ok(Alert {
        id: row.get(0)?,
        monitor: row.get(1)?,
        kind: row.get(2)?,
        dimension: row.get(3)?,
        value: row.get(4)?,
        direction: row.get(5)?,
        fired_s: row.get(6)?,
        resolved_s: row.get(7)?,
        baseline_rate: row.get(8)?,
        observed_rate: row.get(9)?,
        events: row.get::<i64>(10)?.max(0) as u64,
        trials: row.get::<i64>(11)?.max(0) as u64,
        statistic: row.get(12)?,
        threshold: row.get(13)?,
        owner: row.get(14)?,
        due_s: row.get(15)?,
        detail: row.get(16)?,
    })
}

impl Connection {
    /// The responses received in `[from_s, to_s)` counted by tick of `tick_secs`, template
    /// version, model and data source, with how many have a failure record.
    pub fn monitor_ticks(
        &mut self,
        from_s: i64,
        to_s: i64,
        tick_secs: i64,
    ) -> Result<Vec<TickCounts>> {
        self.db.query(
            "SELECT r.received_s / ?3, ti.value, tv.value, m.value, ds.value, count(*),
                CAST(COALESCE(SUM(CASE WHEN f.trace_id IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT)
             FROM responses r
             LEFT JOIN strings ti ON ti.id = r.template_id
             LEFT JOIN strings tv ON tv.id = r.template_version
             LEFT JOIN strings m ON m.id = r.model
             LEFT JOIN strings ds ON ds.id = r.data_source
             LEFT JOIN failures f ON f.trace_id = r.trace_id AND f.span_id = r.span_id
             WHERE r.received_s >= ?1 AND r.received_s < ?2
             GROUP BY r.received_s / ?3, ti.value, tv.value, m.value, ds.value
             ORDER BY 1",
            values![from_s, to_s, tick_secs.max(1)],
            |row| {
                Ok(TickCounts {
                    tick: row.get(0)?,
                    template_id: row.get(1)?,
                    template_version: row.get(2)?,
                    model: row.get(3)?,
                    data_source: row.get(4)?,
                    responses: row.get::<i64>(5)?.max(0) as u64,
                    failed: row.get::<i64>(6)?.max(0) as u64,
                })
            },
        )
    }

    /// The responses received in `[from_s, to_s)` with negative feedback (from anyone but a
    /// reviewer), counted by tick of `tick_secs` and signal.
    pub fn monitor_signal_ticks(
        &mut self,
        from_s: i64,
        to_s: i64,
        tick_secs: i64,
    ) -> Result<Vec<SignalTick>> {
        self.db.query(
            "SELECT r.received_s / ?3, fb.signal, count(DISTINCT r.id)
             FROM responses r
             JOIN feedback fb ON fb.target_trace_id = r.trace_id AND fb.target_span_id = r.span_id
             WHERE r.received_s >= ?1 AND r.received_s < ?2 AND fb.state IN (1, 2)
               AND fb.source <> 'reviewer'
             GROUP BY r.received_s / ?3, fb.signal
             ORDER BY 1, 2",
            values![from_s, to_s, tick_secs.max(1)],
            |row| {
                Ok(SignalTick {
                    tick: row.get(0)?,
                    signal: parse(row, 1, "a feedback signal")?,
                    responses: row.get::<i64>(2)?.max(0) as u64,
                })
            },
        )
    }

    /// The labels of the uniform review sample given in `[from_s, to_s)`, counted by tick of
    /// `tick_secs` (of the label's time) and the response's template version.
    pub fn monitor_label_ticks(
        &mut self,
        from_s: i64,
        to_s: i64,
        tick_secs: i64,
    ) -> Result<Vec<LabelTick>> {
        self.db.query(
            "SELECT q.labelled_s / ?3, ti.value, tv.value, count(*),
                CAST(COALESCE(SUM(CASE WHEN q.label = 'bad' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM review_queue q
             JOIN responses r ON r.trace_id = q.trace_id AND r.span_id = q.span_id
             LEFT JOIN strings ti ON ti.id = r.template_id
             LEFT JOIN strings tv ON tv.id = r.template_version
             WHERE q.label IS NOT NULL AND q.stratum = 'uniform'
               AND q.labelled_s >= ?1 AND q.labelled_s < ?2
             GROUP BY q.labelled_s / ?3, ti.value, tv.value
             ORDER BY 1",
            values![from_s, to_s, tick_secs.max(1)],
            |row| {
                Ok(LabelTick {
                    tick: row.get(0)?,
                    template_id: row.get(1)?,
                    template_version: row.get(2)?,
                    labelled: row.get::<i64>(3)?.max(0) as u64,
                    bad: row.get::<i64>(4)?.max(0) as u64,
                })
            },
        )
    }

    /// Calls `each` with the receive time, response span and query fingerprint of every
    /// response received in `[from_s, to_s)` that has one, in arrival order.
    pub fn monitor_fingerprints(
        &mut self,
        from_s: i64,
        to_s: i64,
        mut each: impl FnMut(i64, SpanRef, String),
    ) -> Result<()> {
        self.db.query(
            "SELECT received_s, trace_id, span_id, fingerprint FROM responses
             WHERE received_s >= ?1 AND received_s < ?2 AND fingerprint IS NOT NULL
             ORDER BY id",
            values![from_s, to_s],
            |row| {
                each(row.get(0)?, span(row, 1)?, row.get(3)?);
                Ok(())
            },
        )?;
        Ok(())
    }

    /// The query fingerprints of the eval set (the responses with a failure record) received
    /// before `before_s`: queries a drift monitor knows without a recent neighbour.
    pub fn evalset_fingerprints(&mut self, before_s: i64) -> Result<Vec<String>> {
        self.db.query(
            "SELECT DISTINCT r.fingerprint FROM failures f
             JOIN responses r ON r.trace_id = f.trace_id AND r.span_id = f.span_id
             WHERE r.fingerprint IS NOT NULL AND r.received_s < ?1",
            values![before_s],
            |row| row.get(0),
        )
    }

    /// Stores a fired alert; its id, or `None` when the monitor already has an open alert or
    /// this one was stored before (by this receiver or another on the same store).
    pub fn insert_alert(&mut self, alert: &Alert) -> Result<Option<i64>> {
        crate::db::insert_id!(
            self.db,
            "INSERT INTO alerts (monitor, kind, dimension, value, direction, fired_s,
                baseline_rate, observed_rate, events, trials, statistic, threshold, owner, due_s,
                detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT DO NOTHING",
            values![
                &alert.monitor,
                &alert.kind,
                &alert.dimension,
                &alert.value,
                &alert.direction,
                alert.fired_s,
                alert.baseline_rate,
                alert.observed_rate,
                alert.events as i64,
                alert.trials as i64,
                alert.statistic,
                alert.threshold,
                alert.owner.as_deref(),
                alert.due_s,
                alert.detail.as_deref(),
            ],
        )
    }

    /// Resolves the open alert of `monitor` at `resolved_s` with the excursion's final rate;
    /// the alert, or `None` when it had none open.
    pub fn resolve_alert(
        &mut self,
        monitor: &str,
        resolved_s: i64,
        observed_rate: f64,
    ) -> Result<Option<Alert>> {
        let changed = self.db.execute(
            "UPDATE alerts SET resolved_s = ?2, observed_rate = ?3
             WHERE monitor = ?1 AND resolved_s IS NULL",
            values![monitor, resolved_s, observed_rate],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        self.db.query_opt(
            &format!(
                "{ALERT_COLUMNS} WHERE monitor = ?1 AND resolved_s = ?2 ORDER BY id DESC LIMIT 1"
            ),
            values![monitor, resolved_s],
            alert,
        )
    }

    /// The open alert of `monitor`, if any.
    pub fn open_alert(&mut self, monitor: &str) -> Result<Option<Alert>> {
        self.db.query_opt(
            &format!("{ALERT_COLUMNS} WHERE monitor = ?1 AND resolved_s IS NULL"),
            values![monitor],
            alert,
        )
    }

    /// The alerts fired at or after `since_s`, newest first.
    pub fn alerts(&mut self, since_s: i64) -> Result<Vec<Alert>> {
        self.db.query(
            &format!("{ALERT_COLUMNS} WHERE fired_s >= ?1 ORDER BY fired_s DESC, id DESC"),
            values![since_s],
            alert,
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::review::{ReviewLabel, ReviewLabelUpdate, ReviewStratum};
    use crate::testing::{
        both_engines, insert_failure, insert_feedback, insert_response, key, Failure, Response,
    };

    fn sample_alert(monitor: &str, fired_s: i64) -> Alert {
        Alert {
            id: 0,
            monitor: monitor.into(),
            kind: "failure_rate".into(),
            dimension: "template_version".into(),
            value: "answer@3".into(),
            direction: "rise".into(),
            fired_s,
            resolved_s: None,
            baseline_rate: 0.1,
            observed_rate: 0.2,
            events: 40,
            trials: 200,
            statistic: 12.5,
            threshold: 9.7,
            owner: Some("answers-team".into()),
            due_s: Some(fired_s + 3_600),
            detail: None,
        }
    }

    pub(crate) fn ticks_and_alerts(conn: &mut Connection) {
        for (n, received_s, version) in [
            (1, 3_600, Some("v1")),
            (2, 3_700, Some("v1")),
            (3, 3_800, Some("v2")),
            (4, 7_300, Some("v1")),
            (5, 20, Some("v1")),
        ] {
            insert_response(
                conn,
                key(n),
                &Response {
                    received_s,
                    template_id: Some("answer"),
                    template_version: version,
                    fingerprint: Some("mh64v2:"),
                    ..Response::default()
                },
            );
        }
        insert_failure(conn, &Failure::new(key(2), 3_700));
        insert_feedback(conn, "a", key(2), "explicit", "thumbs_down", 1, 3_700);
        insert_feedback(conn, "b", key(2), "explicit", "thumbs_down", 1, 3_701);
        insert_feedback(conn, "c", key(4), "implicit", "rephrase", 2, 7_400);
        insert_feedback(conn, "d", key(3), "explicit", "thumbs_down", 3, 3_900);

        let ticks = conn.monitor_ticks(3_600, 10_800, 3_600).unwrap();
        let summary: Vec<(i64, Option<&str>, u64, u64)> = ticks
            .iter()
            .map(|t| (t.tick, t.template_version.as_deref(), t.responses, t.failed))
            .collect();
        let mut summary = summary;
        summary.sort();
        assert_eq!(
            summary,
            vec![
                (1, Some("v1"), 2, 1),
                (1, Some("v2"), 1, 0),
                (2, Some("v1"), 1, 0)
            ]
        );
        let signals = conn.monitor_signal_ticks(3_600, 10_800, 3_600).unwrap();
        assert_eq!(
            signals,
            vec![
                SignalTick {
                    tick: 1,
                    signal: FeedbackSignal::ThumbsDown,
                    responses: 1,
                },
                SignalTick {
                    tick: 2,
                    signal: FeedbackSignal::Rephrase,
                    responses: 1,
                },
            ]
        );
        let mut seen = Vec::new();
        conn.monitor_fingerprints(3_600, 7_200, |at, key, fp| seen.push((at, key, fp)))
            .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], (3_600, key(1), "mh64v2:".to_owned()));
        assert_eq!(
            conn.evalset_fingerprints(3_701).unwrap(),
            vec!["mh64v2:".to_owned()]
        );
        assert!(conn.evalset_fingerprints(3_700).unwrap().is_empty());

        for (n, label, labelled_s) in [
            (1, ReviewLabel::Bad, 3_650),
            (2, ReviewLabel::Good, 3_660),
            (3, ReviewLabel::Bad, 7_300),
        ] {
            conn.queue_review_item("1970-01-01", key(n), ReviewStratum::Uniform, 10)
                .unwrap();
            let id = conn
                .review_items(None, false)
                .unwrap()
                .into_iter()
                .find(|item| item.key == key(n))
                .unwrap()
                .id;
            let update = ReviewLabelUpdate {
                label,
                labelled_s,
                category: None,
                expected: None,
                note: None,
                feedback_id: "review",
                reviewer: None,
            };
            conn.set_review_label(id, &update).unwrap();
        }
        let mut labels = conn.monitor_label_ticks(3_600, 10_800, 3_600).unwrap();
        labels.sort_by_key(|tick| (tick.tick, tick.template_version.clone()));
        let labels: Vec<(i64, Option<&str>, u64, u64)> = labels
            .iter()
            .map(|t| (t.tick, t.template_version.as_deref(), t.labelled, t.bad))
            .collect();
        assert_eq!(labels, vec![(1, Some("v1"), 2, 1), (2, Some("v2"), 1, 1)]);

        // One open alert per monitor; once resolved, the next excursion may fire.
        let first = conn.insert_alert(&sample_alert("m", 100)).unwrap();
        assert!(first.is_some());
        assert_eq!(conn.insert_alert(&sample_alert("m", 200)).unwrap(), None);
        assert!(conn
            .insert_alert(&sample_alert("other", 200))
            .unwrap()
            .is_some());
        let open = conn.open_alert("m").unwrap().unwrap();
        assert_eq!(open.owner.as_deref(), Some("answers-team"));
        assert_eq!((open.events, open.trials), (40, 200));
        let resolved = conn.resolve_alert("m", 500, 0.11).unwrap().unwrap();
        assert_eq!(
            (resolved.resolved_s, resolved.observed_rate),
            (Some(500), 0.11)
        );
        assert_eq!(conn.resolve_alert("m", 600, 0.1).unwrap(), None);
        assert_eq!(conn.open_alert("m").unwrap(), None);
        // The same excursion again (a replay after a restart) is not stored twice.
        assert_eq!(conn.insert_alert(&sample_alert("m", 100)).unwrap(), None);
        assert!(conn
            .insert_alert(&sample_alert("m", 900))
            .unwrap()
            .is_some());
        assert_eq!(conn.alerts(0).unwrap().len(), 3);
        assert_eq!(conn.alerts(150).unwrap().len(), 2);
    }

    both_engines!(ticks_and_alerts,);
}
