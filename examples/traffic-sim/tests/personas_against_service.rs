//! The simulator against the RAG service in-process: the request mix follows the personas, and
//! the service's spans show it.

use closedloop_example_rag::Config;
use closedloop_example_traffic::{plan, run, Persona, SimConfig, Step};
use closedloop_tracing::{ClosedloopLayer, FeedbackRecorder};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personas_produce_the_expected_request_mix() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("traffic-sim-test")))
        .with(ClosedloopLayer::new());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let config = Config::new(b"traffic-sim test secret, 32 bytes or more".to_vec())
        .with_feedback_recorder(FeedbackRecorder::new(&provider));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(closedloop_example_rag::serve(
        listener,
        config,
        std::future::pending(),
    ));

    let sim = SimConfig {
        sessions: 60,
        seed: 42,
        ..SimConfig::new(format!("http://{addr}"))
    };
    let sessions = plan(&sim);
    let count = |p: Persona| sessions.iter().filter(|s| s.persona == p).count();
    let signal = |name: &str| {
        sessions
            .iter()
            .flat_map(|s| &s.steps)
            .filter(|step| matches!(step, Step::Feedback { signal, .. } if *signal == name))
            .count()
    };
    for persona in Persona::ALL {
        assert!(count(persona) > 0, "{persona:?} missing from the plan");
    }

    let summary = run(&sim).await.unwrap();
    println!("{summary}");
    assert_eq!(summary.errors, 0);
    assert_eq!(summary.feedback_skipped, 0);
    assert_eq!(summary.asks, sim.sessions + count(Persona::Rephraser));
    assert_eq!(
        summary.feedback.get("thumbs_down").copied().unwrap_or(0),
        count(Persona::ThumbsDown)
    );
    assert_eq!(
        summary.feedback.get("thumbs_up").copied().unwrap_or(0)
            + summary.feedback.get("copy").copied().unwrap_or(0),
        count(Persona::Satisfied)
    );
    assert_eq!(
        summary.feedback.get("thumbs_up").copied().unwrap_or(0),
        signal("thumbs_up")
    );
    assert_eq!(
        summary.template_versions.len(),
        2,
        "{:?}",
        summary.template_versions
    );
    assert!(
        summary.not_found_answers > 0,
        "v2 refuses some unanswerable questions"
    );

    // The service saw the same mix: one generation span per ask, one feedback span per
    // feedback request.
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let named = |prefix: &str| spans.iter().filter(|s| s.name.starts_with(prefix)).count();
    assert_eq!(named("chat "), summary.asks);
    assert_eq!(named("feedback thumbs_down"), count(Persona::ThumbsDown));
    assert_eq!(
        named("feedback "),
        count(Persona::Satisfied) + count(Persona::ThumbsDown)
    );
}

#[tokio::test]
async fn an_unreachable_service_is_an_error() {
    // Bind and drop, so the port is (almost certainly) closed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sim = SimConfig {
        sessions: 2,
        ..SimConfig::new(format!("http://{addr}"))
    };
    assert!(run(&sim).await.is_err());
}
