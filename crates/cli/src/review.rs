//! `closedloop review`.

use std::io::Write;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use closedloop_commands::review::{label, list, sample_day, show, Label, ReviewFilter, ReviewItem};
use closedloop_engine::direct::DirectSettings;
use closedloop_engine::timefmt::{parse_day, DAY_SECS};
use closedloop_engine::vocab::FailureCategory;
use closedloop_receiver::Config;

/// `closedloop review`: the daily review sample.
#[derive(Clone, Debug, Subcommand)]
#[non_exhaustive]
pub enum ReviewCommand {
    /// Draws a day's sample into the queue now (the running receiver does this by itself for
    /// each completed day).
    Sample(SampleArgs),
    /// Lists the queue.
    List(ListArgs),
    /// Shows one item.
    Show(ShowArgs),
    /// Labels an item good or bad; a bad label makes or updates its failure record.
    Label(LabelArgs),
}

/// `closedloop review sample`.
#[derive(Clone, Debug, Args)]
pub struct SampleArgs {
    /// The UTC day, `YYYY-MM-DD`; default yesterday.
    #[arg(long, value_name = "DAY")]
    pub day: Option<String>,
    /// The seed (to draw a sample again); default from `review.seed`, else random. The seed
    /// used is recorded and printed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `closedloop review list`.
#[derive(Clone, Debug, Args)]
pub struct ListArgs {
    /// Only this day's sample, `YYYY-MM-DD`.
    #[arg(long, value_name = "DAY")]
    pub day: Option<String>,
    /// Only items without a label.
    #[arg(long)]
    pub unlabelled: bool,
    /// Print JSON (one object per line).
    #[arg(long)]
    pub json: bool,
}

/// `closedloop review show`.
#[derive(Clone, Debug, Args)]
pub struct ShowArgs {
    /// The item id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `closedloop review label`.
#[derive(Clone, Debug, Args)]
#[command(group(clap::ArgGroup::new("verdict").required(true).args(["good", "bad"])))]
pub struct LabelArgs {
    /// The item id.
    pub id: i64,
    /// The response was good.
    #[arg(long)]
    pub good: bool,
    /// The response was bad.
    #[arg(long)]
    pub bad: bool,
    /// The failure category (`closedloop.failure.category`), for a bad response.
    #[arg(long, value_name = "CATEGORY")]
    pub category: Option<String>,
    /// What the answer should have been (goes to the eval set's `expected`).
    #[arg(long, value_name = "TEXT")]
    pub expected: Option<String>,
    /// A note for the team.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

fn print_item(out: &mut dyn Write, item: &ReviewItem, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(item)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "#{} {} [{}] {} {}@{} {}{}",
        item.id,
        item.day,
        item.stratum,
        item.label.as_deref().unwrap_or("unlabelled"),
        item.template_id.as_deref().unwrap_or("-"),
        item.template_version.as_deref().unwrap_or("-"),
        item.trace_id,
        item.failure_id
            .as_ref()
            .map(|id| format!(" failure {id}"))
            .unwrap_or_default(),
    )?;
    Ok(())
}

fn print_details(out: &mut dyn Write, item: &ReviewItem) -> std::io::Result<()> {
    let mut field = |name: &str, value: Option<&str>| match value {
        Some(value) => writeln!(out, "  {name:<18} {value}"),
        None => Ok(()),
    };
    field(
        "trace / span",
        Some(&format!("{} {}", item.trace_id, item.span_id)),
    )?;
    field("received", item.received.as_deref())?;
    field("model", item.model.as_deref())?;
    field(
        "chunks",
        item.chunk_ids.as_ref().map(|ids| ids.join(", ")).as_deref(),
    )?;
    field("query fingerprint", item.fingerprint.as_deref())?;
    field("query", item.query.as_deref())?;
    field("output", item.output.as_deref())?;
    field("category", item.category.as_deref())?;
    field("expected", item.expected.as_deref())?;
    field("note", item.note.as_deref())
}

/// Runs `closedloop review ...`, printing to `out` (blocking: call from a blocking thread).
pub(crate) fn run(
    command: &ReviewCommand,
    config: &Config,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let conn =
        &mut closedloop_engine::direct::connect(&config.store).context("cannot open the store")?;
    match command {
        ReviewCommand::Sample(args) => {
            let day = match &args.day {
                Some(day) => {
                    parse_day(day).with_context(|| format!("--day {day:?} is not YYYY-MM-DD"))?
                }
                None => closedloop_engine::store::writer::unix_now_s().div_euclid(DAY_SECS) - 1,
            };
            let outcome = sample_day(
                conn,
                &config.review,
                config.store.content_retention,
                day,
                args.seed,
            )?;
            writeln!(
                out,
                "Sampled {} of {} responses of {} (seed {}).",
                outcome.sampled, outcome.population, outcome.day, outcome.seed
            )?;
        }
        ReviewCommand::List(args) => {
            let filter = ReviewFilter {
                day: args.day.clone(),
                unlabelled: args.unlabelled,
            };
            for item in list(conn, &filter)? {
                print_item(out, &item, args.json)?;
            }
        }
        ReviewCommand::Show(args) => {
            let item = show(conn, args.id)?;
            print_item(out, &item, args.json)?;
            if !args.json {
                print_details(out, &item)?;
            }
        }
        ReviewCommand::Label(args) => {
            let category = args
                .category
                .as_deref()
                .map(|category| {
                    category
                        .parse::<FailureCategory>()
                        .map_err(|_| anyhow::anyhow!("unknown category {category:?}"))
                })
                .transpose()?;
            let verdict = Label::new(args.good && !args.bad)
                .with_category(category)
                .with_expected(args.expected.clone())
                .with_note(args.note.clone());
            let item = label(conn, &direct_settings(config)?, args.id, &verdict)?;
            print_item(out, &item, false)?;
        }
    }
    Ok(())
}

/// The settings of a direct store write, from the effective configuration.
pub(crate) fn direct_settings(config: &Config) -> anyhow::Result<DirectSettings> {
    config
        .direct_settings()
        .context("invalid export configuration")
}
