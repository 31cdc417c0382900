//! `traffic-sim`: sends seeded user sessions to the RAG example and prints a summary.

use anyhow::Context as _;
use clap::Parser;
use closedloop_example_traffic::monitors::{BenchConfig, MonitorSettings};
use closedloop_example_traffic::scenario::{Scenario, Traffic};
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Measures the report's failure-rate estimates on many seeded runs of stationary traffic:
    /// per template version, how often each 95% interval covers the true rate, how wide it is,
    /// and the signal rate's bias.
    Coverage {
        /// The number of runs (seeds `--seed` onwards).
        #[arg(long, default_value_t = 100)]
        runs: u64,
        /// Days per run.
        #[arg(long, default_value_t = 14)]
        days: u32,
    },
    /// Measures the default monitors on seeded runs of simulated traffic: false alarms per 30
    /// stationary days, and the delay from a regression, a new topic and a silent thumbs-down
    /// button to the alarm of the monitor meant to catch it.
    Monitors {
        /// The runs of each scenario (seeds `--seed` onwards).
        #[arg(long, default_value_t = 20)]
        runs: u64,
        /// Measured days of each stationary run, after the 28-day warm-up.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Measured days after each change.
        #[arg(long, default_value_t = 14)]
        days_after: u32,
        /// The relative change the monitors are built to catch.
        #[arg(long, default_value_t = MonitorSettings::default().relative_change)]
        relative_change: f64,
        /// Each monitor's in-control average run length, in days.
        #[arg(long, default_value_t = MonitorSettings::default().in_control_days)]
        in_control_days: f64,
        /// The hours left out of the baseline.
        #[arg(long, default_value_t = MonitorSettings::default().guard_hours)]
        guard_hours: u32,
        /// The fewest events a monitor's baseline needs before it decides.
        #[arg(long, default_value_t = MonitorSettings::default().min_baseline_events)]
        min_baseline_events: u64,
        /// Measured days before each change, after the warm-up.
        #[arg(long, default_value_t = BenchConfig::default().days_before)]
        days_before: u32,
    },
    /// Scores the rephrase detector on the query bank's phrasings (every two phrasings of a
    /// topic are one question; neighbouring topics are not): lexical, and combined with the
    /// semantic fingerprints of the bundled embedding model when it is installed
    /// (`scripts/embedding-model.sh`).
    Rephrase,
    /// Prints days of simulated production traffic with a known truth, without a service: per
    /// day and template version, the responses, the true failure rate, the share with a
    /// negative signal and the review sample (or every response as JSON Lines with `--jsonl`).
    Scenario {
        /// The scenario.
        #[arg(value_enum)]
        name: ScenarioName,
        /// Number of days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// The day the change comes (regression, new-topic, silent-thumbs).
        #[arg(long, default_value_t = 10)]
        change_day: u32,
        /// Share of the traffic on the new topics (new-topic).
        #[arg(long, default_value_t = 0.05)]
        topic_share: f64,
        /// Print every response as a JSON line instead of the daily table.
        #[arg(long)]
        jsonl: bool,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ScenarioName {
    /// Nothing changes.
    Stationary,
    /// The first template version's failure rate rises from 10% to 15% (signal-based).
    Regression,
    /// Queries on topics never asked before appear.
    NewTopic,
    /// The thumbs-down button breaks.
    SilentThumbs,
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
    if let Some(Command::Rephrase) = args.command {
        print_rephrase();
        return Ok(());
    }
    if let Some(Command::Coverage { runs, days }) = args.command {
        print_coverage(args.seed, runs, days);
        return Ok(());
    }
    if let Some(Command::Monitors {
        runs,
        days,
        days_after,
        relative_change,
        in_control_days,
        guard_hours,
        min_baseline_events,
        days_before,
    }) = args.command
    {
        print_monitors(&BenchConfig {
            seed: args.seed,
            runs,
            stationary_days: days,
            days_before,
            days_after,
            settings: MonitorSettings {
                relative_change,
                in_control_days,
                guard_hours,
                min_baseline_events,
                ..MonitorSettings::default()
            },
            ..BenchConfig::default()
        });
        return Ok(());
    }
    if let Some(Command::Scenario {
        name,
        days,
        change_day,
        topic_share,
        jsonl,
    }) = args.command
    {
        let scenario = match name {
            ScenarioName::Stationary => Scenario::stationary(args.seed, days),
            ScenarioName::Regression => Scenario::regression(args.seed, days, change_day),
            ScenarioName::NewTopic => Scenario::new_topic(args.seed, days, change_day, topic_share),
            ScenarioName::SilentThumbs => Scenario::silent_thumbs(args.seed, days, change_day),
        };
        let traffic = scenario.generate();
        if jsonl {
            print_jsonl(&traffic);
        } else {
            print_days(&traffic, days);
        }
        return Ok(());
    }
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

fn print_rephrase() {
    use closedloop_example_traffic::rephrase;
    let pairs = rephrase::pairs();
    let positives = pairs.iter().filter(|p| p.rephrase).count();
    println!(
        "{} pairs of the query bank ({positives} rephrasings, {} not), default thresholds",
        pairs.len(),
        pairs.len() - positives
    );
    let config = closedloop_engine::detectors::RephraseDetectorConfig::default();
    let show = |name: &str, score: rephrase::Score| {
        println!(
            "  {name:<42} precision {:.3} recall {:.3}",
            score.precision, score.recall
        );
    };
    show(
        "lexical, content off (mh64v3)",
        rephrase::score(&pairs, |p| rephrase::lexical(&config, p, false)),
    );
    show(
        "lexical, content on (texts)",
        rephrase::score(&pairs, |p| rephrase::lexical(&config, p, true)),
    );
    let model = closedloop_embed::find_model_dir(&[std::path::PathBuf::from("target/models")]);
    let Some(dir) = model else {
        println!("  (no embedding model: scripts/embedding-model.sh installs it)");
        return;
    };
    let embedder = match closedloop_embed::Embedder::load(&dir) {
        Ok(embedder) => embedder.with_model_name(closedloop_embed::MODEL_NAME),
        Err(error) => {
            println!(
                "  (the embedding model in {} does not load: {error})",
                dir.display()
            );
            return;
        }
    };
    let hasher =
        closedloop_tracing::SemanticHasher::new(embedder.model_name(), embedder.dimensions())
            .expect("the bundled model's name is valid");
    show(
        "combined (sh512 of all-MiniLM-L6-v2 + mh64v3)",
        rephrase::score(&pairs, |p| {
            rephrase::combined(&config, &hasher, p, |text| embedder.embed(text))
        }),
    );
}

fn print_days(traffic: &Traffic, days: u32) {
    println!(
        "day  version                 responses  true_rate  signal_rate  reviewed  labelled_bad"
    );
    for day in 0..days {
        for (index, version) in traffic.versions.iter().enumerate() {
            let (mut n, mut bad, mut failed, mut reviewed, mut labelled_bad) =
                (0u32, 0u32, 0u32, 0u32, 0u32);
            for response in traffic.days(day..day + 1).filter(|r| r.version == index) {
                n += 1;
                bad += u32::from(response.bad);
                failed += u32::from(response.failed);
                if let Some(label) = response.reviewed {
                    reviewed += 1;
                    labelled_bad += u32::from(label);
                }
            }
            let share = |k: u32| f64::from(k) / f64::from(n.max(1));
            println!(
                "{day:>3}  {:<22}  {n:>9}  {:>9.3}  {:>11.3}  {reviewed:>8}  {labelled_bad:>12}",
                format!("{}@{}", version.template_id, version.template_version),
                share(bad),
                share(failed),
            );
        }
    }
}

fn print_jsonl(traffic: &Traffic) {
    for response in &traffic.responses {
        let version = &traffic.versions[response.version];
        let query = traffic.query(response);
        let line = serde_json::json!({
            "day": response.day,
            "at_s": response.at_s,
            "template_id": version.template_id,
            "template_version": version.template_version,
            "model": version.model,
            "data_source": version.data_source,
            "query": query.text,
            "topic": query.topic,
            "bad": response.bad,
            "signals": response.signals.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "failed": response.failed,
            "reviewed": response.reviewed,
        });
        println!("{line}");
    }
}

fn print_coverage(seed: u64, runs: u64, days: u32) {
    use closedloop_example_traffic::estimates::coverage;
    let scenario = Scenario::stationary(seed, days);
    println!(
        "{runs} runs of {days} days, {} responses and {} reviews a day; 95% intervals",
        scenario.responses_per_day, scenario.review_per_day
    );
    println!(
        "version               true  covered: ppi labels signal  width: ppi labels  ratio  bias: signal    ppi  lambda"
    );
    for (version, result) in scenario
        .versions
        .iter()
        .zip(coverage(seed..seed + runs, days))
    {
        println!(
            "{:<20} {:>5.1}%  {:>13} {:>6} {:>6}  {:>10.4} {:>6.4}  {:>5.3}  {:>+12.4} {:>+6.4}  {:>6.3}",
            format!("{}@{}", version.template_id, version.template_version),
            version.failure_rate * 100.0,
            result.ppi_covered,
            result.labels_covered,
            result.signal_covered,
            result.ppi_width,
            result.labels_width,
            result.ppi_width / result.labels_width,
            result.signal_bias,
            result.ppi_bias,
            result.lambda,
        );
    }
}

fn print_monitors(config: &BenchConfig) {
    use closedloop_example_traffic::monitors::{bench, WARMUP_DAYS};
    let started = std::time::Instant::now();
    let result = bench(config);
    let settings = config.settings;
    println!(
        "{} runs per scenario, each after {WARMUP_DAYS} stationary warm-up days; hourly ticks; \
         relative_change {}, in-control run length {} days per monitor, baseline {} days, \
         guard {} h, min {} baseline events",
        config.runs,
        settings.relative_change,
        settings.in_control_days,
        settings.baseline_days,
        settings.guard_hours,
        settings.min_baseline_events,
    );
    let false_alarms = &result.false_alarms;
    println!(
        "\nstationary: {} alarms in {} runs x {} days = {:.2} per 30 days across all monitors",
        false_alarms.total(),
        false_alarms.runs,
        false_alarms.days,
        false_alarms.per_30_days(),
    );
    for (monitor, alarms) in &false_alarms.by_monitor {
        println!("  {monitor:<40} {alarms:>3}");
    }
    println!(
        "\nchanges on day {} after the warm-up, measured for {} days after",
        config.days_before, config.days_after
    );
    println!(
        "scenario        monitor                              detected  <=2d  <=7d  median_h   max_h  alarms_before"
    );
    for detection in &result.detections {
        let (median, max) = detection
            .median_and_max_hours()
            .map_or(("-".to_owned(), "-".to_owned()), |(median, max)| {
                (format!("{median:.0}"), format!("{max:.0}"))
            });
        println!(
            "{:<15} {:<36} {:>5}/{:<2} {:>5} {:>5} {:>9} {:>7} {:>14}",
            detection.scenario,
            detection.monitor,
            detection.delays_hours.iter().flatten().count(),
            detection.delays_hours.len(),
            detection.within_days(2.0),
            detection.within_days(7.0),
            median,
            max,
            detection.before_change,
        );
        for (monitor, runs) in &detection.others {
            println!("    also fired: {monitor} in {runs} runs");
        }
    }
    println!("\n({:.1} s)", started.elapsed().as_secs_f64());
}
