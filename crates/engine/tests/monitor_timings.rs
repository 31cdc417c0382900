//! What the monitors cost on a store of benchmark size (1M responses over 30 days, 50K
//! failure records): the start-up replay and an hourly check. It prints numbers and asserts
//! only what was read. Run it in release mode:
//!
//! ```sh
//! cargo test --release -p closedloop-engine --test monitor_timings -- --ignored --nocapture
//! ```

use std::time::Instant;

use closedloop_engine::monitors::{MonitorSpec, MonitoringConfig, Monitors};
use closedloop_engine::triage::{NotifyConfig, TriageConfig};
use closedloop_store::bulk::{populate, Spec};
use closedloop_store::{Access, Connection, StoreConfig};

#[test]
#[ignore = "a measurement, not a test"]
fn monitors_on_the_benchmark_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        path: dir.path().join("closedloop.db"),
        ..StoreConfig::default()
    };
    let mut conn = Connection::open(&config, Access::Writer).unwrap();
    let now_s = 1_768_500_000;
    let filled = populate(&mut conn, &Spec::benchmark(now_s)).unwrap();
    let mut monitors = Monitors::new(
        &MonitoringConfig::default(),
        &MonitorSpec::defaults(),
        &TriageConfig::default(),
        &NotifyConfig::default(),
    );
    // The baseline: one pass over every response as `closedloop report` reads them.
    let started = Instant::now();
    let mut read = 0u64;
    conn.report_responses(0, |_| read += 1).unwrap();
    let pass_s = started.elapsed().as_secs_f64();
    assert_eq!(read, filled.responses);
    let started = Instant::now();
    let replay = monitors.check(&mut conn, now_s).unwrap();
    let replay_s = started.elapsed().as_secs_f64();
    assert!(replay.ticks > 600, "{replay:?}");
    let started = Instant::now();
    let hourly = monitors.check(&mut conn, now_s + 3_600).unwrap();
    let hourly_s = started.elapsed().as_secs_f64();
    assert_eq!(hourly.ticks, 1);
    println!(
        "monitors on {} responses: the report's pass over them {:.3} s; start-up replay of {} \
         ticks with {} monitors {:.2} s ({:.2}x the pass, {} fired); an hourly check {:.3} s \
         ({:.2}x the pass)",
        filled.responses,
        pass_s,
        replay.ticks,
        monitors.keys().len(),
        replay_s,
        replay_s / pass_s,
        replay.fired,
        hourly_s,
        hourly_s / pass_s,
    );
}
