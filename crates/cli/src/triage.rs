//! `closedloop triage`.

use std::io::Write;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::review::direct_settings;
use closedloop_commands::triage::{list, set_status, ListFilter, TriageItem};
use closedloop_engine::vocab::TriageStatus;
use closedloop_receiver::Config;

/// `closedloop triage`: owners, statuses and due times of failure records.
#[derive(Clone, Debug, Subcommand)]
#[non_exhaustive]
pub enum TriageCommand {
    /// Lists failure records, most urgent first.
    List(ListArgs),
    /// Marks a record acknowledged (a new, exported revision).
    Ack(ChangeArgs),
    /// Marks a record resolved, or won't fix (a new, exported revision).
    Resolve(ResolveArgs),
}

/// `closedloop triage list`.
#[derive(Clone, Debug, Args)]
pub struct ListArgs {
    /// Only this owner's records.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only records in this status (open, acknowledged, resolved, wont_fix).
    #[arg(long)]
    pub status: Option<String>,
    /// Only open or acknowledged records past their due time.
    #[arg(long)]
    pub overdue: bool,
    /// Print JSON (one object per line).
    #[arg(long)]
    pub json: bool,
}

/// `closedloop triage ack`.
#[derive(Clone, Debug, Args)]
pub struct ChangeArgs {
    /// The failure record id (`fr_<trace id>_<span id>`).
    pub id: String,
    /// A note stored with the change.
    #[arg(long)]
    pub note: Option<String>,
}

/// `closedloop triage resolve`.
#[derive(Clone, Debug, Args)]
pub struct ResolveArgs {
    /// The record and note.
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Close it as won't fix instead of resolved.
    #[arg(long)]
    pub wont_fix: bool,
}

fn print_item(out: &mut dyn Write, item: &TriageItem) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {:<12} {:<18} {:<8} owner {:<16} due {}{} (rev {})",
        item.id,
        item.status,
        item.category,
        item.severity,
        item.owner.as_deref().unwrap_or("-"),
        item.due_time.as_deref().unwrap_or("-"),
        if item.overdue { " OVERDUE" } else { "" },
        item.revision,
    )?;
    for note in &item.notes {
        writeln!(
            out,
            "    {} {}: {}",
            note.time,
            note.status,
            note.note.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

/// Runs `closedloop triage ...`, printing to `out` (blocking: call from a blocking thread).
pub(crate) fn run(
    command: &TriageCommand,
    config: &Config,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let conn =
        &mut closedloop_engine::direct::connect(&config.store).context("cannot open the store")?;
    let (change, status) = match command {
        TriageCommand::List(args) => {
            let mut filter = ListFilter::new(closedloop_engine::store::writer::unix_now_s());
            filter.owner = args.owner.clone();
            filter.overdue = args.overdue;
            filter.status = args
                .status
                .as_deref()
                .map(|status| {
                    status
                        .parse::<TriageStatus>()
                        .map_err(|_| anyhow::anyhow!("unknown status {status:?}"))
                })
                .transpose()?;
            for item in list(conn, &filter)? {
                if args.json {
                    writeln!(out, "{}", serde_json::to_string(&item)?)?;
                } else {
                    print_item(out, &item)?;
                }
            }
            return Ok(());
        }
        TriageCommand::Ack(args) => (args, TriageStatus::Acknowledged),
        TriageCommand::Resolve(args) if args.wont_fix => (&args.change, TriageStatus::WontFix),
        TriageCommand::Resolve(args) => (&args.change, TriageStatus::Resolved),
    };
    let revision = set_status(
        conn,
        &direct_settings(config)?,
        &change.id,
        status,
        change.note.as_deref(),
        None,
    )
    .with_context(|| format!("cannot change {}", change.id))?;
    writeln!(
        out,
        "{} is {} (revision {revision}).",
        change.id,
        status.as_str()
    )?;
    Ok(())
}
