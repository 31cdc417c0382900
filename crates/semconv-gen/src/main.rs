//! Writes the generated files of closedloop-semconv, or with `--check` reports the stale ones.

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use closedloop_semconv_gen::{generate, workspace_root, Registry, MODEL_DIR};

const USAGE: &str = "usage: closedloop-semconv-gen [--check]

Lints the registry in crates/semconv/model and writes the generated Rust modules of
closedloop-semconv and docs/semconv.md. With --check, writes nothing and exits 1 when a
generated file is missing or stale.";

fn main() -> Result<ExitCode> {
    let mut check = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }

    let root = workspace_root();
    let registry = Registry::load(&root.join(MODEL_DIR))?;
    let outputs = generate(&registry)?;

    let mut stale = Vec::new();
    for output in &outputs {
        let path = root.join(output.path);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(output.contents.as_str()) {
            continue;
        }
        if check {
            stale.push(output.path);
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, &output.contents)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", output.path);
        }
    }

    if stale.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("stale generated files (run `cargo run -p closedloop-semconv-gen`):");
    for path in stale {
        eprintln!("  {path}");
    }
    Ok(ExitCode::FAILURE)
}
