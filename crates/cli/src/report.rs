//! `closedloop report`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use closedloop_commands::report::{render, report, ReportQuery, TemplateVersion};
use closedloop_engine::timefmt::{parse_rfc3339, DAY_SECS};
use closedloop_receiver::Config;

/// The start of a time window: `--since` or `--since-days`.
#[derive(Clone, Debug, Default, Args)]
pub struct SinceArgs {
    /// Only what happened at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z, or a
    /// date).
    #[arg(long, value_name = "RFC3339", conflicts_with = "since_days")]
    pub since: Option<String>,
    /// Only what happened in the last N days.
    #[arg(long, value_name = "N")]
    pub since_days: Option<u32>,
}

impl SinceArgs {
    /// The window's start in Unix seconds.
    pub(crate) fn since_s(&self) -> anyhow::Result<Option<i64>> {
        if let Some(text) = &self.since {
            return parse_rfc3339(text)
                .map(Some)
                .with_context(|| format!("--since {text:?} is not an RFC 3339 timestamp"));
        }
        Ok(self.since_days.map(|days| {
            closedloop_engine::store::writer::unix_now_s() - i64::from(days) * DAY_SECS
        }))
    }
}

/// `closedloop report`: failure rates per template version, version comparison, chunk lift,
/// signals, daily trend, and the true failure rates and signal calibration the review sample
/// gives.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// The window.
    #[command(flatten)]
    pub since: SinceArgs,
    /// Compare these two versions, older first (`ID@A ID@B`), instead of the last two versions
    /// of each template.
    #[arg(long, num_args = 2, value_names = ["ID@A", "ID@B"])]
    pub compare: Option<Vec<String>>,
    /// The fewest responses a chunk needs to be ranked by failure lift.
    #[arg(long, default_value_t = closedloop_commands::report::DEFAULT_MIN_CHUNK_RESPONSES, value_name = "N")]
    pub min_chunk_responses: u64,
    /// The half-width of the 95% interval the labels needed are counted for (0.02: ±2 points).
    #[arg(long, default_value_t = closedloop_commands::report::DEFAULT_TARGET_HALF_WIDTH, value_name = "FRACTION")]
    pub half_width: f64,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Runs `closedloop report`, printing to `out` (blocking: call from a blocking thread).
pub(crate) fn run(
    args: &ReportArgs,
    config: &Config,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let compare = match &args.compare {
        Some(pair) => {
            let parse = |text: &String| {
                TemplateVersion::parse(text)
                    .with_context(|| format!("--compare {text:?} is not ID@VERSION"))
            };
            match pair.as_slice() {
                [old, new] => Some((parse(old)?, parse(new)?)),
                _ => anyhow::bail!("--compare takes two versions"),
            }
        }
        None => None,
    };
    let query = ReportQuery {
        since_s: args.since.since_s()?,
        compare,
        min_chunk_responses: args.min_chunk_responses,
        target_half_width: args.half_width,
    };
    if !(query.target_half_width > 0.0 && query.target_half_width < 1.0) {
        anyhow::bail!("--half-width {} is not between 0 and 1", args.half_width);
    }
    let mut conn =
        closedloop_engine::direct::connect(&config.store).context("cannot open the store")?;
    let report = report(&mut conn, &query).context("cannot build the report")?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    out.write_all(render(&report).as_bytes())?;
    Ok(())
}
