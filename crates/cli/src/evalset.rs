//! `closedloop evalset`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use crate::report::SinceArgs;
use closedloop_commands::evalset::{
    cases, to_csv, to_jsonl, EvalsetQuery, LabelFilter, DEFAULT_MERGE_SIMILARITY,
};
use closedloop_receiver::Config;

/// `closedloop evalset`: the failure records as an eval set.
#[derive(Clone, Debug, Subcommand)]
#[non_exhaustive]
pub enum EvalsetCommand {
    /// Writes every failure record as an eval case (near-duplicate queries merged).
    Export(ExportArgs),
}

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum Format {
    /// JSON Lines: `{"input": ..., "expected": ..., "metadata": {...}}` per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// `closedloop evalset export`.
#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Records created in the window.
    #[command(flatten)]
    pub since: SinceArgs,
    /// Only records of this template (`ID` or `ID@VERSION`).
    #[arg(long, value_name = "ID[@VERSION]")]
    pub template: Option<String>,
    /// Only records of this category.
    #[arg(long, value_name = "CATEGORY")]
    pub category: Option<String>,
    /// Only records a reviewer labelled.
    #[arg(long, conflicts_with = "unlabelled")]
    pub labelled: bool,
    /// Only records no reviewer labelled.
    #[arg(long)]
    pub unlabelled: bool,
    /// The query similarity at or above which records merge into one case.
    #[arg(long, default_value_t = DEFAULT_MERGE_SIMILARITY, value_name = "0..1")]
    pub merge_similarity: f64,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `closedloop evalset ...`, printing to `out` without `--output` (blocking: call from
/// a blocking thread).
pub(crate) fn run(
    command: &EvalsetCommand,
    config: &Config,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let EvalsetCommand::Export(args) = command;
    if let Some(category) = &args.category {
        category
            .parse::<closedloop_engine::vocab::FailureCategory>()
            .map_err(|_| anyhow::anyhow!("unknown category {category:?}"))?;
    }
    let mut query = EvalsetQuery {
        since_s: args.since.since_s()?,
        category: args.category.clone(),
        labels: if args.labelled {
            LabelFilter::Labelled
        } else if args.unlabelled {
            LabelFilter::Unlabelled
        } else {
            LabelFilter::Any
        },
        merge_similarity: args.merge_similarity,
        ..EvalsetQuery::default()
    };
    if let Some(template) = &args.template {
        query = query.with_template(template);
    }
    let mut conn =
        closedloop_engine::direct::connect(&config.store).context("cannot open the store")?;
    let cases = cases(&mut conn, &query).context("cannot read the failure records")?;
    let text = match args.format {
        Format::Jsonl => to_jsonl(&cases),
        Format::Csv => to_csv(&cases),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => out.write_all(text.as_bytes())?,
    }
    eprintln!("{} eval cases.", cases.len());
    Ok(())
}
