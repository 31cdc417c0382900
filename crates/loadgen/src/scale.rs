//! Store scaling: join latency and bytes on disk per indexed response as the store grows.
//!
//! Responses are indexed through the receiver's own [`Pipeline`] (span reading, group commit,
//! the same SQLite schema a running receiver writes), in process, with requests of generation
//! spans only: the other spans of a trace are read and dropped, so leaving them out changes
//! what is stored by nothing. Ids derive from the response's index, so any indexed response
//! can be judged later. At each checkpoint the pipeline is shut down (SQLite checkpoints and
//! removes the WAL), the file is measured, the pipeline restarts on the same file, and
//! negative feedback on random earlier responses is timed through [`Pipeline::record_feedback`],
//! which returns after the join ran and its failure record was committed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use closedloop_receiver::{
    FeedbackInput, FeedbackSignal, FeedbackSource, Pipeline, PipelineConfig, StoreConfig,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::stats::Percentiles;
use crate::traces::{self, Ids, TraceBuilder, TraceConfig, SPANS_PER_TRACE};

/// What to measure.
#[derive(Clone, Debug)]
pub struct ScaleConfig {
    /// The directory the store file is created in (it must not hold one yet).
    pub dir: PathBuf,
    /// Indexed-response counts to measure at, ascending.
    pub checkpoints: Vec<u64>,
    /// When indexing would run past this, stop at the next segment boundary and measure there.
    pub budget: Duration,
    /// Generation spans per ingest request.
    pub batch_spans: usize,
    /// Ingest requests in flight.
    pub in_flight: usize,
    /// Feedback items timed per checkpoint.
    pub probes: usize,
    /// The seed of ids and attributes.
    pub seed: u64,
}

/// One checkpoint.
#[derive(Clone, Debug, Serialize)]
pub struct Checkpoint {
    /// Indexed responses.
    pub responses: u64,
    /// Database file bytes (after shutdown: no WAL).
    pub file_bytes: u64,
    /// `file_bytes / responses`.
    pub bytes_per_response: f64,
    /// Responses indexed per second since the previous checkpoint.
    pub index_rate_per_sec: f64,
    /// Feedback → joined and committed (one at a time, `synchronous` as configured).
    pub join: Percentiles,
    /// Probes whose failure record was not created at once (the join missed).
    pub join_misses: u64,
    /// Whether this checkpoint is where the time budget ran out, not one that was asked for.
    pub budget_exhausted: bool,
}

/// All checkpoints.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleReport {
    /// In order.
    pub checkpoints: Vec<Checkpoint>,
    /// Seconds spent indexing.
    pub index_secs: f64,
}

/// splitmix64: the ids of response `index`, the same on every call.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The ids of indexed response `index`.
pub fn response_ids(seed: u64, index: u64) -> Ids {
    let base = mix(seed ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93));
    let mut trace_id = [0; 16];
    trace_id[..8].copy_from_slice(&mix(base).to_le_bytes());
    trace_id[8..].copy_from_slice(&mix(base ^ 1).to_le_bytes());
    Ids {
        trace_id,
        span_id: (mix(base ^ 2) | 1).to_le_bytes(),
    }
}

fn file_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).ok()
        })
        .map(|meta| meta.len())
        .sum()
}

/// Indexes responses `[from, to)` with `in_flight` concurrent requests.
async fn index(
    pipeline: &Pipeline,
    config: &ScaleConfig,
    from: u64,
    to: u64,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(from));
    let mut tasks = Vec::new();
    for worker in 0..config.in_flight.max(1) {
        let pipeline = pipeline.clone();
        let next = Arc::clone(&next);
        let batch = config.batch_spans.max(1) as u64;
        let seed = config.seed;
        tasks.push(tokio::spawn(async move {
            let mut builder = TraceBuilder::new(TraceConfig {
                seed: seed ^ (worker as u64) ^ from,
                ..TraceConfig::default()
            });
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= to {
                    return anyhow::Ok(());
                }
                let spans = (start..(start + batch).min(to))
                    .map(|index| {
                        let (trace, ..) = builder.trace();
                        let mut generation = trace
                            .into_iter()
                            .nth(SPANS_PER_TRACE - 1)
                            .expect("the generation span is last");
                        let ids = response_ids(seed, index);
                        generation.trace_id = ids.trace_id.to_vec();
                        generation.span_id = ids.span_id.to_vec();
                        generation.parent_span_id.clear();
                        generation
                    })
                    .collect();
                let outcome = pipeline.ingest(traces::request(spans)).await?;
                if outcome.rejected_spans > 0 {
                    bail!("spans rejected: {}", outcome.error_message);
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("index task failed")??;
    }
    Ok(())
}

/// Times `probes` negative feedback items on distinct random responses among the first `n`.
async fn probe(
    pipeline: &Pipeline,
    config: &ScaleConfig,
    n: u64,
) -> anyhow::Result<(Percentiles, u64)> {
    let mut rng = StdRng::seed_from_u64(config.seed ^ n);
    let mut chosen = HashSet::new();
    let mut samples = Vec::with_capacity(config.probes);
    let before = pipeline.stats().failure_records;
    for probe in 0..config.probes {
        let index = loop {
            let index = rng.random_range(0..n);
            if chosen.insert(index) {
                break index;
            }
        };
        let ids = response_ids(config.seed, index);
        let started = Instant::now();
        pipeline
            .record_feedback(FeedbackInput {
                trace_id: ids.trace_id,
                span_id: ids.span_id,
                response_id: None,
                signal: FeedbackSignal::ThumbsDown,
                kind: None,
                value: Some(0.0),
                category: None,
                comment: None,
                source: FeedbackSource::User,
                idempotency_id: Some(format!("scale-{n}-{probe}")),
                session_id: None,
                user_id: None,
            })
            .await?;
        samples.push(started.elapsed().as_micros() as u64);
    }
    let created = pipeline.stats().failure_records - before;
    Ok((
        Percentiles::from_micros(samples),
        (config.probes as u64).saturating_sub(created),
    ))
}

fn pipeline_config(path: &Path) -> PipelineConfig {
    PipelineConfig {
        store: StoreConfig {
            path: path.to_owned(),
            // Measure growth, not pruning.
            max_size_mib: u64::MAX >> 21,
            ..StoreConfig::default()
        },
        ..PipelineConfig::default()
    }
}

/// Runs the checkpoints.
pub async fn run(config: &ScaleConfig) -> anyhow::Result<ScaleReport> {
    std::fs::create_dir_all(&config.dir).context("cannot create the store directory")?;
    let path = config.dir.join("scale.db");
    if path.exists() {
        bail!("{} exists already", path.display());
    }
    let started = Instant::now();
    let mut index_secs = 0.0;
    let mut pipeline = Pipeline::start(pipeline_config(&path)).await?;
    let mut indexed = 0u64;
    let mut checkpoints = Vec::new();
    const SEGMENT: u64 = 250_000;
    'targets: for &target in &config.checkpoints {
        let segment_started = Instant::now();
        let segment_from = indexed;
        let mut exhausted = false;
        while indexed < target {
            let to = (indexed + SEGMENT).min(target);
            index(&pipeline, config, indexed, to).await?;
            indexed = to;
            eprintln!(
                "indexed {indexed} responses ({:.0}/s in this stretch, {:.0} s so far)",
                (indexed - segment_from) as f64 / segment_started.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
            if indexed < target && started.elapsed() >= config.budget {
                exhausted = true;
                break;
            }
        }
        let segment_secs = segment_started.elapsed().as_secs_f64();
        index_secs += segment_secs;
        pipeline.shutdown().await?;
        let bytes = file_bytes(&path);
        pipeline = Pipeline::start(pipeline_config(&path)).await?;
        let (join, join_misses) = probe(&pipeline, config, indexed).await?;
        checkpoints.push(Checkpoint {
            responses: indexed,
            file_bytes: bytes,
            bytes_per_response: bytes as f64 / indexed.max(1) as f64,
            index_rate_per_sec: (indexed - segment_from) as f64 / segment_secs.max(1e-9),
            join,
            join_misses,
            budget_exhausted: exhausted,
        });
        if exhausted {
            break 'targets;
        }
    }
    pipeline.shutdown().await?;
    Ok(ScaleReport {
        checkpoints,
        index_secs,
    })
}

impl ScaleReport {
    /// A human-readable summary.
    pub fn text(&self) -> String {
        let mut out = String::from(
            "responses   bytes/response   index rate/s   join p50 ms   join p99 ms   misses",
        );
        for checkpoint in &self.checkpoints {
            out.push_str(&format!(
                "\n{:>9}   {:>14.1}   {:>12.0}   {:>11.2}   {:>11.2}   {:>6}{}",
                checkpoint.responses,
                checkpoint.bytes_per_response,
                checkpoint.index_rate_per_sec,
                checkpoint.join.p50_ms,
                checkpoint.join.p99_ms,
                checkpoint.join_misses,
                if checkpoint.budget_exhausted {
                    "   (time budget reached here)"
                } else {
                    ""
                }
            ));
        }
        out
    }
}
