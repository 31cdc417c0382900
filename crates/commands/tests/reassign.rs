//! A reassignment sticks: triage routing, which follows an open record's revisions, leaves an
//! owner a person chose alone.

use closedloop_commands::triage::{self, ListFilter, NotifyConfig, TriageConfig, TriageRule};
use closedloop_engine::direct::DirectSettings;
use closedloop_engine::vocab::TriageStatus;
use closedloop_store::bulk::{populate, Spec};
use closedloop_store::{Access, Connection, StoreConfig};

const NOW_S: i64 = 1_768_500_000;

#[test]
fn routing_leaves_a_reassigned_owner_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        path: dir.path().join("closedloop.db"),
        ..StoreConfig::default()
    };
    let conn = &mut Connection::open(&config, Access::Writer).unwrap();
    populate(conn, &Spec::new(400, 40, NOW_S)).unwrap();
    let routing = TriageConfig {
        rules: vec![TriageRule {
            owner: "search-team".into(),
            sla_secs: Some(3_600),
            ..TriageRule::default()
        }],
        ..TriageConfig::default()
    };
    let settings = DirectSettings::new(false, false, &routing, &NotifyConfig::default());
    let open = triage::list(conn, &ListFilter::new(NOW_S))
        .unwrap()
        .into_iter()
        .find(|item| item.status == "open")
        .expect("an open record");

    let revision = triage::reassign(
        conn,
        &settings,
        &open.id,
        "bob",
        Some("billing"),
        Some("ana"),
    )
    .unwrap();
    assert_eq!(revision, open.revision + 1);
    let owner = |conn: &mut Connection| {
        triage::list(conn, &ListFilter::new(NOW_S))
            .unwrap()
            .into_iter()
            .find(|item| item.id == open.id)
            .unwrap()
    };
    let after = owner(conn);
    assert_eq!(after.owner.as_deref(), Some("bob"));
    let note = after.notes.last().unwrap();
    assert_eq!(
        (
            note.by.as_deref(),
            note.owner.as_deref(),
            note.note.as_deref()
        ),
        (Some("ana"), Some("bob"), Some("billing"))
    );
    // A later revision of the open record (here a status change and back) keeps bob.
    triage::set_status(
        conn,
        &settings,
        &open.id,
        TriageStatus::Acknowledged,
        None,
        None,
    )
    .unwrap();
    triage::set_status(conn, &settings, &open.id, TriageStatus::Open, None, None).unwrap();
    assert_eq!(owner(conn).owner.as_deref(), Some("bob"));

    // Unknown and malformed ids are told apart.
    assert!(matches!(
        triage::reassign(conn, &settings, "fr_00", "bob", None, None),
        Err(triage::TriageError::BadId(_))
    ));
}
