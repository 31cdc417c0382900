//! The generated Rust is already in rustfmt's layout, so `cargo fmt` never makes it stale.

use std::io::Write as _;
use std::process::{Command, Stdio};

use closedloop_semconv_gen::{generate, workspace_root, Registry, MODEL_DIR};

#[test]
fn generated_rust_is_rustfmt_clean() {
    let registry = Registry::load(&workspace_root().join(MODEL_DIR)).expect("the registry parses");
    let outputs = generate(&registry).unwrap_or_else(|problems| panic!("{problems}"));
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_owned());

    let mut checked = 0;
    for output in outputs.iter().filter(|output| output.path.ends_with(".rs")) {
        let mut child = match Command::new(&rustfmt)
            .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            // The drift test does not need rustfmt; only this check does.
            Err(error) => panic!("running `{rustfmt}` failed ({error}); install it with `rustup component add rustfmt`"),
        };
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(output.contents.as_bytes())
            .expect("rustfmt reads its input");
        let result = child.wait_with_output().expect("rustfmt runs");
        assert!(
            result.status.success(),
            "rustfmt rejected {}: {}",
            output.path,
            String::from_utf8_lossy(&result.stderr)
        );
        let formatted = String::from_utf8(result.stdout).expect("rustfmt writes UTF-8");
        if formatted != output.contents {
            let line = formatted
                .lines()
                .zip(output.contents.lines())
                .position(|(a, b)| a != b)
                .map_or(0, |index| index + 1);
            panic!(
                "rustfmt would change the generated {} (first difference at line {line})",
                output.path
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}
