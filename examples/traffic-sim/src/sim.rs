//! Session plans (deterministic from a seed) and their execution over HTTP.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::queries::{Topic, ANSWERABLE, UNANSWERABLE};

/// How a simulated user behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Persona {
    /// Asks an answerable question, then gives a thumbs up or copies the answer.
    Satisfied,
    /// Asks something the help center answers poorly, then gives a thumbs down with a category.
    ThumbsDown,
    /// Asks, then asks a paraphrase of the same question in the same session.
    Rephraser,
    /// Asks and leaves without a word.
    Abandoner,
}

impl Persona {
    /// All personas, in summary order.
    pub const ALL: [Persona; 4] = [
        Persona::Satisfied,
        Persona::ThumbsDown,
        Persona::Rephraser,
        Persona::Abandoner,
    ];

    /// A lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Satisfied => "satisfied",
            Persona::ThumbsDown => "thumbs_down",
            Persona::Rephraser => "rephraser",
            Persona::Abandoner => "abandoner",
        }
    }
}

/// One thing a simulated user does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `POST /ask` with this query.
    Ask(String),
    /// `POST /feedback` about the previous answer.
    Feedback {
        /// `thumbs_up`, `thumbs_down` or `copy`.
        signal: &'static str,
        /// A failure category, for thumbs down.
        category: Option<&'static str>,
    },
}

/// One simulated session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// `sim-<seed>-<n>`.
    pub session_id: String,
    /// `user-<k>`; several sessions share a user.
    pub user_id: String,
    /// The behaviour.
    pub persona: Persona,
    /// The topic asked about.
    pub topic: &'static str,
    /// What the user does, in order.
    pub steps: Vec<Step>,
}

/// Relative weights of the personas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonaMix {
    /// Weight of [`Persona::Satisfied`].
    pub satisfied: u32,
    /// Weight of [`Persona::ThumbsDown`].
    pub thumbs_down: u32,
    /// Weight of [`Persona::Rephraser`].
    pub rephraser: u32,
    /// Weight of [`Persona::Abandoner`].
    pub abandoner: u32,
}

impl Default for PersonaMix {
    /// 40 % satisfied, 25 % thumbs down, 20 % rephrasers, 15 % abandoners.
    fn default() -> Self {
        PersonaMix {
            satisfied: 40,
            thumbs_down: 25,
            rephraser: 20,
            abandoner: 15,
        }
    }
}

/// The default number of sessions.
pub const fn default_sessions() -> usize {
    40
}

/// The default seed.
pub const fn default_seed() -> u64 {
    7
}

/// What to simulate, and against which service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The RAG service, for example `http://127.0.0.1:8080`.
    pub base_url: String,
    /// How many sessions to run.
    pub sessions: usize,
    /// The seed; the same seed gives the same sessions.
    pub seed: u64,
    /// Persona weights.
    pub mix: PersonaMix,
    /// Pause between the steps of a session, in milliseconds.
    pub think_ms: u64,
}

impl SimConfig {
    /// Defaults against `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        SimConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            sessions: default_sessions(),
            seed: default_seed(),
            mix: PersonaMix::default(),
            think_ms: 0,
        }
    }
}

/// SplitMix64: tiny, seedable and stable across releases, unlike a library RNG's stream.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Categories a thumbs-down user picks for an answer that missed.
const THUMBS_DOWN_CATEGORIES: &[&str] = &["missing_context", "irrelevant_context", "wrong_answer"];

/// The sessions `config` describes; a pure function of the seed, count and mix.
pub fn plan(config: &SimConfig) -> Vec<SessionPlan> {
    let mut rng = Rng(config.seed);
    let mix = config.mix;
    let weights = [
        (Persona::Satisfied, mix.satisfied),
        (Persona::ThumbsDown, mix.thumbs_down),
        (Persona::Rephraser, mix.rephraser),
        (Persona::Abandoner, mix.abandoner),
    ];
    let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    let users = (config.sessions / 3).max(1);
    (0..config.sessions)
        .map(|n| {
            let persona = if total == 0 {
                Persona::Satisfied
            } else {
                let mut roll = rng.next() % total;
                weights
                    .iter()
                    .find(|(_, w)| {
                        let hit = roll < u64::from(*w);
                        roll = roll.saturating_sub(u64::from(*w));
                        hit
                    })
                    .map_or(Persona::Satisfied, |(p, _)| *p)
            };
            let topic: &Topic = match persona {
                Persona::ThumbsDown => rng.pick(UNANSWERABLE),
                Persona::Abandoner if rng.below(2) == 0 => rng.pick(UNANSWERABLE),
                _ => rng.pick(ANSWERABLE),
            };
            let first = rng.below(topic.phrasings.len());
            let ask = Step::Ask(topic.phrasings[first].to_owned());
            let steps = match persona {
                Persona::Satisfied => {
                    let signal = if rng.below(10) < 7 {
                        "thumbs_up"
                    } else {
                        "copy"
                    };
                    vec![
                        ask,
                        Step::Feedback {
                            signal,
                            category: None,
                        },
                    ]
                }
                Persona::ThumbsDown => vec![
                    ask,
                    Step::Feedback {
                        signal: "thumbs_down",
                        category: Some(*rng.pick(THUMBS_DOWN_CATEGORIES)),
                    },
                ],
                Persona::Rephraser => {
                    let other =
                        (first + 1 + rng.below(topic.phrasings.len() - 1)) % topic.phrasings.len();
                    vec![ask, Step::Ask(topic.phrasings[other].to_owned())]
                }
                Persona::Abandoner => vec![ask],
            };
            SessionPlan {
                session_id: format!("sim-{}-{n}", config.seed),
                user_id: format!("user-{}", rng.below(users)),
                persona,
                topic: topic.name,
                steps,
            }
        })
        .collect()
}

/// Why the simulation stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The service could not be reached at all.
    #[error("cannot reach the RAG service at {url}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

/// What the simulation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sessions per persona.
    pub sessions: BTreeMap<Persona, usize>,
    /// `POST /ask` requests sent.
    pub asks: usize,
    /// `POST /feedback` requests accepted, per signal.
    pub feedback: BTreeMap<String, usize>,
    /// Feedback not sent because the answer carried no feedback token.
    pub feedback_skipped: usize,
    /// Answers per template version.
    pub template_versions: BTreeMap<String, usize>,
    /// Answers that said the help center has nothing on the question.
    pub not_found_answers: usize,
    /// Requests that failed (non-2xx or transport errors after the first success).
    pub errors: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.sessions.values().sum();
        writeln!(f, "sessions: {total}")?;
        for persona in Persona::ALL {
            writeln!(
                f,
                "  {:<12} {}",
                persona.as_str(),
                self.sessions.get(&persona).copied().unwrap_or(0)
            )?;
        }
        writeln!(f, "asks: {}", self.asks)?;
        for (version, n) in &self.template_versions {
            writeln!(f, "  template {version:<4} {n}")?;
        }
        writeln!(f, "  \"not found\" answers {}", self.not_found_answers)?;
        let sent: usize = self.feedback.values().sum();
        writeln!(f, "feedback: {sent}")?;
        for (signal, n) in &self.feedback {
            writeln!(f, "  {signal:<12} {n}")?;
        }
        if self.feedback_skipped > 0 {
            writeln!(
                f,
                "  skipped (no feedback token in the answer) {}",
                self.feedback_skipped
            )?;
        }
        write!(f, "errors: {}", self.errors)
    }
}

#[derive(Deserialize)]
struct AskReply {
    answer: String,
    response: Option<serde_json::Value>,
    feedback_token: Option<String>,
    template_version: String,
}

/// Runs the sessions of [`plan`] one after the other against `config.base_url`.
///
/// Returns an error only when the very first request cannot connect (the service is not
/// running); later failures are counted in [`Summary::errors`].
pub async fn run(config: &SimConfig) -> Result<Summary, SimError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let mut summary = Summary::default();
    let mut reached = false;
    for session in plan(config) {
        *summary.sessions.entry(session.persona).or_default() += 1;
        let mut last: Option<AskReply> = None;
        for (i, step) in session.steps.iter().enumerate() {
            if i > 0 && config.think_ms > 0 {
                tokio::time::sleep(Duration::from_millis(config.think_ms)).await;
            }
            let (path, body) = match step {
                Step::Ask(query) => (
                    "/ask",
                    json!({
                        "session_id": session.session_id,
                        "user_id": session.user_id,
                        "query": query,
                    }),
                ),
                Step::Feedback { signal, category } => {
                    let Some(AskReply {
                        response: Some(response),
                        feedback_token: Some(token),
                        ..
                    }) = &last
                    else {
                        summary.feedback_skipped += 1;
                        continue;
                    };
                    (
                        "/feedback",
                        json!({
                            "response": response,
                            "feedback_token": token,
                            "signal": signal,
                            "category": category,
                            "session_id": session.session_id,
                        }),
                    )
                }
            };
            let url = format!("{}{path}", config.base_url);
            let result = client.post(&url).json(&body).send().await;
            let response = match result {
                Ok(r) => r,
                Err(source) if !reached => return Err(SimError::Unreachable { url, source }),
                Err(_) => {
                    summary.errors += 1;
                    continue;
                }
            };
            reached = true;
            if !response.status().is_success() {
                summary.errors += 1;
                continue;
            }
            match step {
                Step::Ask(_) => {
                    summary.asks += 1;
                    match response.json::<AskReply>().await {
                        Ok(reply) => {
                            *summary
                                .template_versions
                                .entry(reply.template_version.clone())
                                .or_default() += 1;
                            if reply.answer.starts_with("I couldn't find") {
                                summary.not_found_answers += 1;
                            }
                            last = Some(reply);
                        }
                        Err(_) => summary.errors += 1,
                    }
                }
                Step::Feedback { signal, .. } => {
                    *summary.feedback.entry((*signal).to_owned()).or_default() += 1;
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_per_seed() {
        let config = SimConfig::new("http://unused");
        assert_eq!(plan(&config), plan(&config));
        let other = SimConfig {
            seed: 8,
            ..config.clone()
        };
        assert_ne!(plan(&config), plan(&other));
        assert_eq!(plan(&config).len(), default_sessions());
    }

    #[test]
    fn personas_follow_their_scripts() {
        let config = SimConfig {
            sessions: 400,
            ..SimConfig::new("http://unused")
        };
        let sessions = plan(&config);
        for s in &sessions {
            match s.persona {
                Persona::Satisfied => assert!(matches!(
                    s.steps.as_slice(),
                    [
                        Step::Ask(_),
                        Step::Feedback {
                            signal: "thumbs_up" | "copy",
                            category: None
                        }
                    ]
                )),
                Persona::ThumbsDown => {
                    assert!(matches!(
                        s.steps.as_slice(),
                        [
                            Step::Ask(_),
                            Step::Feedback {
                                signal: "thumbs_down",
                                category: Some(_)
                            }
                        ]
                    ));
                    assert!(UNANSWERABLE.iter().any(|t| t.name == s.topic));
                }
                Persona::Rephraser => match s.steps.as_slice() {
                    [Step::Ask(a), Step::Ask(b)] => {
                        assert_ne!(a, b);
                        let topic = ANSWERABLE.iter().find(|t| t.name == s.topic).unwrap();
                        assert!(topic.phrasings.contains(&a.as_str()));
                        assert!(topic.phrasings.contains(&b.as_str()));
                    }
                    other => panic!("rephraser steps {other:?}"),
                },
                Persona::Abandoner => assert!(matches!(s.steps.as_slice(), [Step::Ask(_)])),
            }
        }
        // Every persona shows up with roughly its weight.
        for (persona, weight) in [
            (Persona::Satisfied, 40),
            (Persona::ThumbsDown, 25),
            (Persona::Rephraser, 20),
            (Persona::Abandoner, 15),
        ] {
            let n = sessions.iter().filter(|s| s.persona == persona).count();
            let expected = 4 * weight;
            assert!(
                n.abs_diff(expected) < expected / 3,
                "{persona:?}: {n} of 400"
            );
        }
    }

    #[test]
    fn zero_weights_fall_back_to_satisfied() {
        let config = SimConfig {
            mix: PersonaMix {
                satisfied: 0,
                thumbs_down: 0,
                rephraser: 0,
                abandoner: 0,
            },
            ..SimConfig::new("http://unused")
        };
        assert!(plan(&config)
            .iter()
            .all(|s| s.persona == Persona::Satisfied));
    }
}
