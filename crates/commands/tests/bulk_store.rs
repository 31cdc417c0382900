//! A store filled by `closedloop_store::bulk::populate` reads back through the commands'
//! read paths as the rows it says it wrote.

use closedloop_commands::evalset::{self, EvalsetQuery};
use closedloop_commands::report::{self, ReportQuery};
use closedloop_commands::review::{self, ReviewFilter};
use closedloop_commands::triage::{self, ListFilter};
use closedloop_engine::vocab::TriageStatus;
use closedloop_store::bulk::{populate, Spec};
use closedloop_store::{Access, Connection, StoreConfig};

/// 2026-01-15 18:00 UTC: three quarters of today's traffic is in.
const NOW_S: i64 = 1_768_500_000;

#[test]
fn a_bulk_store_reads_back_through_triage_report_review_and_evalset() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        path: dir.path().join("closedloop.db"),
        ..StoreConfig::default()
    };
    let conn = &mut Connection::open(&config, Access::Writer).unwrap();
    let mut spec = Spec::new(2_000, 100, NOW_S);
    spec.batch = 500;
    // Today holds about 50 of the 2,000.
    spec.review_items = 40;
    let filled = populate(conn, &spec).unwrap();
    assert_eq!((filled.responses, filled.failures), (2_000, 100));
    assert_eq!(filled.today, "2026-01-15");

    // Triage: every record, with the statuses, owners and due times written.
    let records = triage::list(conn, &ListFilter::new(NOW_S)).unwrap();
    assert_eq!(records.len(), 100);
    for (status, count) in &filled.by_status {
        let listed = records
            .iter()
            .filter(|record| record.status == status.as_str())
            .count() as u64;
        assert_eq!(listed, *count, "{status:?}");
    }
    assert!(filled.by_status.iter().all(|(_, count)| *count > 0));
    let overdue = records.iter().filter(|record| record.overdue).count() as u64;
    assert_eq!(overdue, filled.overdue);
    assert!(records.iter().any(|record| record.owner.is_none()));
    assert!(records
        .iter()
        .filter(|record| record.owner.is_some())
        .all(|record| record.due_time.is_some()));
    assert!(records.iter().any(|record| record.revision > 1));
    let resolved = records
        .iter()
        .find(|record| record.status == TriageStatus::Resolved.as_str())
        .unwrap();
    let notes: Vec<&str> = resolved
        .notes
        .iter()
        .map(|note| note.status.as_str())
        .collect();
    assert_eq!(notes, ["acknowledged", "resolved"]);
    let acknowledged = TriageStatus::Acknowledged;
    let filter = ListFilter {
        status: Some(acknowledged),
        ..ListFilter::new(NOW_S)
    };
    assert_eq!(
        triage::list(conn, &filter).unwrap().len() as u64,
        filled.by_status[1].1
    );

    // Report: every response and record, per template version and per day.
    let report = report::report(conn, &ReportQuery::default()).unwrap();
    assert_eq!((report.responses, report.failures), (2_000, 100));
    assert_eq!(report.unattributed_failures, 0);
    let mut versions: Vec<String> = report
        .versions
        .iter()
        .map(|stats| {
            format!(
                "{}@{}",
                stats.version.template_id, stats.version.template_version
            )
        })
        .collect();
    versions.sort();
    let mut written = filled.template_versions.clone();
    written.sort();
    assert_eq!(versions, written);
    assert_eq!(
        report
            .versions
            .iter()
            .map(|stats| stats.failures)
            .sum::<u64>(),
        100
    );
    assert_eq!(report.daily.len(), 30);
    assert_eq!(report.daily[0].day, "2025-12-17");
    assert_eq!(report.daily.last().unwrap().day, "2026-01-15");
    assert!(!report.chunks.is_empty());

    // Review: today's sample, a quarter labelled, query and answer stored.
    let items = review::list(
        conn,
        &ReviewFilter {
            day: Some(filled.today.clone()),
            unlabelled: false,
        },
    )
    .unwrap();
    assert_eq!(items.len() as u64, filled.review_items);
    assert_eq!(filled.review_items, 40);
    let labelled = items.iter().filter(|item| item.label.is_some()).count() as u64;
    assert_eq!(labelled, filled.labelled);
    assert_eq!(labelled, 10);
    assert!(items
        .iter()
        .all(|item| item.query.is_some() && item.output.is_some() && item.model.is_some()));
    assert!(items
        .iter()
        .all(|item| item.received.as_deref().unwrap().starts_with("2026-01-15")));

    // Eval set: one case per record (their queries differ), content where captured.
    let cases = evalset::cases(conn, &EvalsetQuery::default()).unwrap();
    assert_eq!(cases.len(), 100);
    assert!(cases.iter().all(|case| !case.input.is_empty()));

    // A bound keeps the newest records only.
    let bounded = evalset::cases(
        conn,
        &EvalsetQuery {
            max_records: Some(10),
            ..EvalsetQuery::default()
        },
    )
    .unwrap();
    assert_eq!(
        bounded
            .iter()
            .map(|case| case.metadata.count)
            .sum::<usize>(),
        10
    );
    let newest: Vec<&str> = cases[90..]
        .iter()
        .map(|case| case.metadata.failure_id.as_str())
        .collect();
    for case in &bounded {
        assert!(
            newest.contains(&case.metadata.failure_id.as_str()),
            "{}",
            case.metadata.failure_id
        );
    }
}
