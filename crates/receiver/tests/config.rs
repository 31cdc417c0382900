//! The shipped example configuration parses and documents the defaults.

use closedloop_receiver::Config;

const EXAMPLE: &str = include_str!("../../../closedloop.example.toml");

#[test]
fn example_config_parses() {
    Config::from_toml(EXAMPLE).expect("closedloop.example.toml parses");
}

#[test]
fn example_config_shows_the_defaults() {
    // Every value the example sets is the default, so the file doubles as the reference.
    assert_eq!(Config::from_toml(EXAMPLE).unwrap(), Config::default());
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(Config::from_toml("").unwrap(), Config::default());
}

#[test]
fn a_typo_is_an_error_that_names_the_key() {
    let error = Config::from_toml("[server]\nhttp_adr = \"127.0.0.1:1\"\n").unwrap_err();
    let chain = format!("{:?}", anyhow_chain(&error));
    assert!(chain.contains("http_adr"), "{chain}");
}

fn anyhow_chain(error: &dyn std::error::Error) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut source = error.source();
    while let Some(next) = source {
        chain.push(next.to_string());
        source = next.source();
    }
    chain
}

#[test]
fn the_example_and_the_defaults_pass_validation() {
    Config::from_toml(EXAMPLE).unwrap().validate().unwrap();
    Config::default().validate().unwrap();
}

/// The `[detectors]` sections: empty ones give the defaults, unknown keys and detectors are
/// refused.
#[test]
fn defaults_parse_from_empty_sections() {
    let config = Config::from_toml("[detectors.rephrase]\n[detectors.abandon]\n").unwrap();
    assert_eq!(
        config.detectors,
        closedloop_receiver::DetectorsConfig::default()
    );
    assert!(config.detectors.rephrase.enabled);
    assert!(config.detectors.regenerate.enabled);
    assert!(!config.detectors.abandon.enabled);
    assert!(config.detectors.edit.enabled);
    assert!(config.detectors.regenerate.threshold > config.detectors.rephrase.threshold);
    assert!(Config::from_toml("[detectors.rephrase]\nwindow = 3\n").is_err());
    assert!(Config::from_toml("[detectors.sulk]\n").is_err());
}

/// The semantic settings: thresholds within 0..=1, and a model directory that holds a model.
#[test]
fn semantic_rephrase_settings_are_checked() {
    let config = Config::from_toml("[detectors.rephrase]\nsemantic_threshold = 1.5\n").unwrap();
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("detectors.rephrase.semantic_threshold"),
        "{error}"
    );
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[detectors.rephrase]\nembedding_model_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let config = Config::from_toml(&toml).unwrap();
    let message = config.validate().unwrap_err().to_string();
    assert!(message.contains("embedding_model_dir"), "{message}");
    assert!(message.contains("model.safetensors"), "{message}");
    std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
    Config::from_toml(&toml).unwrap().validate().unwrap();
    // The name must be usable in `sh512:<name>:…`.
    let named = format!("{toml}embedding_model_name = \"my model\"\n");
    let message = Config::from_toml(&named)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(message.contains("embedding_model_name"), "{message}");
    assert!(message.contains("whitespace"), "{message}");
    let named = format!("{toml}embedding_model_name = \"all-MiniLM-L6-v2\"\n");
    Config::from_toml(&named).unwrap().validate().unwrap();
}
