//! Triage commands and the background task: the routing itself (owner, due time) is the
//! engine's ([`closedloop_engine::triage`]).
//!
//! A status change ([`set_status`]) is a new revision of the record, exported like the
//! others. A background task of the running receiver counts records past their due time
//! (the `closedloop.triage.overdue` gauge), queues one webhook notification per SLA breach,
//! and delivers the notification queue (see [`NotifyConfig`]).

mod notify;
pub(crate) mod store;

pub(crate) use closedloop_engine::triage::{payload, TriageShared};
pub use closedloop_engine::triage::{NotifyConfig, TriageConfig, TriageRule};
pub(crate) use notify::background;
pub use store::{list, set_status, ListFilter, TriageError, TriageItem, TriageNote};
