//! `closedloop ui`: helpers for the web console's configuration.

use std::io::{BufRead, Write};

use anyhow::Context as _;
use clap::Subcommand;

/// What `closedloop ui` does.
#[derive(Clone, Debug, Subcommand)]
pub enum UiCommand {
    /// Reads a password from standard input (its first line) and prints its argon2id hash,
    /// for `password_hash` in a `[[ui.users]]` entry.
    ///
    /// `printf '%s' 'the password' | closedloop ui hash-password`
    HashPassword,
}

/// Runs `closedloop ui ...`, reading from `input` and printing to `out`.
pub fn run(
    command: &UiCommand,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        UiCommand::HashPassword => {
            let mut password = String::new();
            input
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(
                password.chars().count() >= 8,
                "the password is shorter than 8 characters"
            );
            let hash = closedloop_console::hash_password(password)
                .map_err(|error| anyhow::anyhow!("cannot hash the password: {error}"))?;
            writeln!(out, "{hash}")?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_a_hash_that_verifies() {
        let mut out = Vec::new();
        run(
            &UiCommand::HashPassword,
            &mut &b"correct horse\n"[..],
            &mut out,
        )
        .unwrap();
        let hash = String::from_utf8(out).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let config = closedloop_console::UiConfig {
            users: vec![closedloop_console::UiUser {
                name: "ana".into(),
                password_hash: hash.trim().into(),
            }],
            ..Default::default()
        };
        config.validate().unwrap();
        let short = run(
            &UiCommand::HashPassword,
            &mut &b"short\n"[..],
            &mut Vec::new(),
        );
        assert!(short.is_err());
    }
}
