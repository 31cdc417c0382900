//! The generator of `closedloop-semconv`: reads the YAML registry in `crates/semconv/model`,
//! lints it, and renders the Rust modules of `closedloop-semconv` and `docs/semconv.md`.
//!
//! The library does no I/O beyond [`Registry::load`]; [`generate`] returns every output as a
//! string, so the binary writes them and the drift test compares them with the files on disk.
//!
//! ```no_run
//! use closedloop_semconv_gen::{generate, Registry};
//!
//! let root = closedloop_semconv_gen::workspace_root();
//! let registry = Registry::load(&root.join(closedloop_semconv_gen::MODEL_DIR))?;
//! for output in generate(&registry)? {
//!     println!("{} ({} bytes)", output.path, output.contents.len());
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod lint;
pub mod model;
pub mod naming;
pub mod render;
pub mod resolved;

use std::path::{Path, PathBuf};

pub use lint::{lint, resolve, Problem, ProblemKind, Problems};
pub use model::Registry;
pub use resolved::Model;

/// The registry directory, relative to the workspace root.
pub const MODEL_DIR: &str = "crates/semconv/model";

/// A generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The path relative to the workspace root, with `/` separators.
    pub path: &'static str,
    /// The full contents.
    pub contents: String,
}

/// Lints the registry and renders every generated file, in a fixed order.
pub fn generate(registry: &Registry) -> Result<Vec<Output>, Problems> {
    let model = resolve(registry)?;
    Ok(vec![
        Output {
            path: "crates/semconv/src/attribute.rs",
            contents: render::attribute_rs(&model),
        },
        Output {
            path: "crates/semconv/src/compat.rs",
            contents: render::compat_rs(&model),
        },
        Output {
            path: "crates/semconv/src/metric.rs",
            contents: render::metric_rs(&model),
        },
        Output {
            path: "crates/semconv/src/span.rs",
            contents: render::span_rs(&model),
        },
        Output {
            path: "docs/semconv.md",
            contents: render::semconv_md(&model),
        },
    ])
}

/// The workspace root, found from this crate's manifest directory at compile time.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}
