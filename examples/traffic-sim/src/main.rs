//! `traffic-sim`: sends seeded user sessions to the RAG example and prints a summary.

use anyhow::Context as _;
use clap::Parser;
use closedloop_example_traffic::{run, PersonaMix, SimConfig};

/// Simulates users of the RAG example: satisfied, thumbs-down, rephrasers and abandoners.
#[derive(Debug, Parser)]
#[command(name = "traffic-sim", version)]
struct Args {
    /// Base URL of the RAG service.
    #[arg(long, env = "RAG_BASE_URL", default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// Number of sessions.
    #[arg(long, default_value_t = closedloop_example_traffic::default_sessions())]
    sessions: usize,
    /// Seed; the same seed sends the same sessions.
    #[arg(long, default_value_t = closedloop_example_traffic::default_seed())]
    seed: u64,
    /// Pause between the steps of a session, in milliseconds.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Persona weights as satisfied,thumbs_down,rephraser,abandoner.
    #[arg(long, default_value = "40,25,20,15")]
    mix: String,
}

fn parse_mix(text: &str) -> anyhow::Result<PersonaMix> {
    let weights: Vec<u32> = text
        .split(',')
        .map(|w| w.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--mix {text:?} is not four whole numbers"))?;
    let [satisfied, thumbs_down, rephraser, abandoner] = weights[..] else {
        anyhow::bail!("--mix needs four weights, got {}", weights.len());
    };
    Ok(PersonaMix {
        satisfied,
        thumbs_down,
        rephraser,
        abandoner,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = SimConfig {
        sessions: args.sessions,
        seed: args.seed,
        think_ms: args.think_ms,
        mix: parse_mix(&args.mix)?,
        ..SimConfig::new(args.base_url)
    };
    let summary = run(&config).await.context(
        "is rag-service running? (cargo run -p closedloop-example-rag --bin rag-service)",
    )?;
    println!("{summary}");
    Ok(())
}
