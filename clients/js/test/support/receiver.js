// The real `closedloop` binary for the tests: `closedloop serve` with a temporary config
// and store on ports the kernel picks, and the store commands' JSON outputs.

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

/** The binary: `CLOSEDLOOP_BIN`, else the workspace's debug build. */
export const CLOSEDLOOP_BIN =
  process.env.CLOSEDLOOP_BIN ?? resolve(import.meta.dirname, "../../../../target/debug/closedloop");

/** The feedback token secret the receivers here verify with. */
export const SECRET = "a test feedback secret of at least 32 bytes";

/** How long a wait for the receiver lasts before the test fails. */
const WAIT_MS = 30_000;
const POLL_MS = 50;

/**
 * A running `closedloop serve`.
 * @typedef {object} Receiver
 * @property {string} url the HTTP listener's base URL (OTLP/HTTP, feedback API)
 * @property {(args: string[]) => Promise<string>} cli runs a store command on its config
 * @property {() => Promise<void>} stop stops it and removes its directory
 */

/**
 * Starts `closedloop serve` on `127.0.0.1:0` with a fresh SQLite store.
 * @param {{ feedback?: string[] }} [options] more lines for the config's `[feedback]` table
 * @returns {Promise<Receiver>}
 */
export async function startReceiver(options = {}) {
  const dir = mkdtempSync(join(tmpdir(), "closedloop-js-"));
  const config = join(dir, "closedloop.toml");
  writeFileSync(
    config,
    [
      "[store]",
      `path = ${JSON.stringify(join(dir, "closedloop.db"))}`,
      "",
      "[feedback]",
      "rate_limit_per_min = 0",
      ...(options.feedback ?? []),
      "",
      "[export]",
      "use_env = false",
      "",
    ].join("\n"),
  );
  const child = spawn(
    CLOSEDLOOP_BIN,
    ["serve", "--config", config, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
    {
      env: { ...process.env, RUST_LOG: "info", CLOSEDLOOP_FEEDBACK_TOKEN_SECRET: SECRET },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  const log = [];
  const address = await new Promise((resolveAddress, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`closedloop did not log its address:\n${log.join("\n")}`)),
      WAIT_MS,
    );
    child.once("error", reject);
    child.once("exit", (code) =>
      reject(new Error(`closedloop serve exited (${code}):\n${log.join("\n")}`)),
    );
    createInterface({ input: child.stderr }).on("line", (line) => {
      log.push(line);
      const field = line.split(/\s+/).find((f) => f.startsWith("http_addr="));
      if (field !== undefined) {
        clearTimeout(timer);
        resolveAddress(field.slice("http_addr=".length));
      }
    });
  });
  child.removeAllListeners("exit");
  const run = promisify(execFile);
  return {
    url: `http://${address}`,
    cli: async (args) => {
      const [command, ...rest] = args;
      const { stdout } = await run(CLOSEDLOOP_BIN, [command, ...rest, "--config", config]);
      return stdout;
    },
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The failure records as `closedloop triage list --json` prints them.
 * @param {Receiver} receiver
 * @returns {Promise<any[]>}
 */
export async function triageList(receiver) {
  const out = await receiver.cli(["triage", "list", "--json"]);
  return out
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));
}

/**
 * The eval cases as `closedloop evalset export` prints them (JSON Lines).
 * @param {Receiver} receiver
 * @returns {Promise<any[]>}
 */
export async function evalsetExport(receiver) {
  const out = await receiver.cli(["evalset", "export"]);
  return out
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));
}

/**
 * Polls `probe` until it returns something other than undefined, or fails after the wait.
 * @template T
 * @param {string} what what is waited for, for the failure message
 * @param {() => Promise<T | undefined>} probe
 * @returns {Promise<T>}
 */
export async function eventually(what, probe) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) {
        return value;
      }
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
