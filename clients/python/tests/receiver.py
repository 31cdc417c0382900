"""The real closedloop receiver for the tests: ``closedloop serve`` on free ports, read back
through the CLI's JSON outputs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

SECRET = "a feedback secret of at least thirty-two bytes"

_LISTENING = re.compile(r"Receiver listening\. grpc_addr=(\S+) http_addr=(\S+)")


def closedloop_binary() -> Path:
    """``CLOSEDLOOP_BIN``, else the workspace's debug build."""
    configured = os.environ.get("CLOSEDLOOP_BIN")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "target" / "debug" / "closedloop"


def _receiver_env() -> Dict[str, str]:
    # The receiver reads OTEL_EXPORTER_OTLP_ENDPOINT and CLOSEDLOOP_* itself: the test's
    # configuration file alone must decide.
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "CLOSEDLOOP_"))
    }


class Receiver:
    """One receiver with its own SQLite store in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        store_content: bool = False,
        join_wait_secs: int = 2,
        export_url: Optional[str] = None,
        binary: Optional[Path] = None,
        embedding_model_dir: Optional[Path] = None,
    ) -> None:
        self.binary = binary or closedloop_binary()
        self.directory = directory
        self.store_path = directory / "closedloop.db"
        self.config_path = directory / "closedloop.toml"
        self.log_path = directory / "receiver.log"
        self.config_path.write_text(
            "\n".join(
                [
                    "[server]",
                    'grpc_addr = "127.0.0.1:0"',
                    'http_addr = "127.0.0.1:0"',
                    "[feedback]",
                    f'token_secret = "{SECRET}"',
                    "rate_limit_per_min = 0",
                    "[store]",
                    f"path = {json.dumps(str(self.store_path))}",
                    f"store_content = {'true' if store_content else 'false'}",
                    'content_retention = "all"',
                    "[join]",
                    f"wait_secs = {join_wait_secs}",
                    "[export]",
                    *(
                        [f"endpoint = {json.dumps(export_url)}", 'compression = "none"']
                        if export_url
                        else []
                    ),
                    "initial_backoff_millis = 50",
                    *(
                        [
                            "[detectors.rephrase]",
                            f"embedding_model_dir = {json.dumps(str(embedding_model_dir))}",
                        ]
                        if embedding_model_dir
                        else []
                    ),
                    "",
                ]
            )
        )
        self._process: Optional[subprocess.Popen] = None
        self.http_url = ""
        self.grpc_addr = ""

    def start(self, timeout_secs: float = 30.0) -> "Receiver":
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [str(self.binary), "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_receiver_env(),
        )
        deadline = time.monotonic() + timeout_secs
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.grpc_addr, http_addr = match.groups()
                self.http_url = f"http://{http_addr}"
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the receiver did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def cli(self, *args: str) -> str:
        """Runs ``closedloop <args> --config <this receiver's config>``; its standard output."""
        done = subprocess.run(
            [str(self.binary), *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            env=_receiver_env(),
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"closedloop {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def records(self) -> List[Dict[str, Any]]:
        """``closedloop triage list --json``: every failure record."""
        return [
            json.loads(line)
            for line in self.cli("triage", "list", "--json").splitlines()
            if line.strip()
        ]

    def evalset(self) -> List[Dict[str, Any]]:
        """``closedloop evalset export`` (JSON Lines)."""
        return [
            json.loads(line) for line in self.cli("evalset", "export").splitlines() if line.strip()
        ]

    def report(self) -> Dict[str, Any]:
        """``closedloop report --json``."""
        path = self.directory / "report.json"
        self.cli("report", "--json", str(path))
        return json.loads(path.read_text())

    def wait_for_records(self, count: int, timeout_secs: float = 30.0) -> List[Dict[str, Any]]:
        """Polls until at least ``count`` records exist (or the time is up); returns them."""
        deadline = time.monotonic() + timeout_secs
        records = self.records()
        while len(records) < count and time.monotonic() < deadline:
            time.sleep(0.25)
            records = self.records()
        return records

    def stored_bytes(self) -> bytes:
        """Every byte of the store: the database file, its WAL and its shared memory."""
        data = b""
        for path in sorted(self.directory.glob("closedloop.db*")):
            data += path.read_bytes()
        return data
