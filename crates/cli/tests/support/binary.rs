//! The real `closedloop` binary, serving on ephemeral ports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `closedloop serve` and the HTTP address it bound.
pub struct Serving {
    pub child: Child,
    pub http_addr: SocketAddr,
}

/// `closedloop serve --config CONFIG` on `127.0.0.1:0` for both listeners, stdin and stdout
/// closed. The caller adds flags and environment, then hands it to [`serve`].
pub fn serve_command(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_closedloop"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// Spawns `command` and waits until the receiver logs its bound HTTP address. The receiver's
/// log lines go on to the test's stderr.
pub fn serve(mut command: Command) -> Serving {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn closedloop");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("http_addr="))
            {
                let _ = tx.send(addr.parse::<SocketAddr>().expect("http_addr"));
            }
            eprintln!("closedloop: {line}");
        }
    });
    let http_addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("closedloop logs its listen address");
    Serving { child, http_addr }
}
