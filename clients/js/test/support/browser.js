// Real headless Chromium for the browser tests, driven over chromedriver's W3C WebDriver
// HTTP API with node's fetch. Debian's chromium and chromium-driver, installed by
// scripts/browser.sh; started with the flags the receiver's browser tests use and a fresh
// profile in a temporary directory.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const CHROMEDRIVER = "/usr/bin/chromedriver";
export const CHROMIUM = "/usr/bin/chromium";
/** Set to 1 to make a missing browser a failure rather than a skip. */
export const REQUIRE_VAR = "CLOSEDLOOP_TEST_REQUIRE_BROWSER";

const LISTENING = "ChromeDriver was started successfully on port ";
const WAIT_MS = 15_000;
const POLL_MS = 50;
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

/**
 * Why the browser tests cannot run here, or undefined when they can. Throws when the browser
 * is missing but required.
 */
export function missingBrowser() {
  const missing = [CHROMEDRIVER, CHROMIUM].find((path) => !existsSync(path));
  if (missing === undefined) {
    return undefined;
  }
  const reason = `${missing} is missing; scripts/browser.sh installs it`;
  if (process.env[REQUIRE_VAR] === "1") {
    throw new Error(`${REQUIRE_VAR}=1 but ${reason}`);
  }
  return reason;
}

/** A headless Chromium session. */
export class Browser {
  /**
   * @param {import("node:child_process").ChildProcess} driver
   * @param {string} url
   * @param {string} session
   * @param {string} dir
   */
  constructor(driver, url, session, dir) {
    this.driver = driver;
    this.url = url;
    this.session = session;
    this.dir = dir;
  }

  /** Starts chromedriver on a port the kernel picks and opens a session in Chromium. */
  static async start() {
    const dir = mkdtempSync(join(tmpdir(), "closedloop-browser-"));
    const driver = spawn(
      CHROMEDRIVER,
      ["--port=0", `--log-path=${join(dir, "chromedriver.log")}`],
      {
        stdio: ["ignore", "pipe", "ignore"],
        detached: true,
      },
    );
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("chromedriver did not listen")), WAIT_MS);
      driver.once("error", reject);
      createInterface({ input: driver.stdout }).on("line", (line) => {
        const at = line.indexOf(LISTENING);
        if (at >= 0) {
          clearTimeout(timer);
          resolve(Number.parseInt(line.slice(at + LISTENING.length), 10));
        }
      });
    });
    const url = `http://127.0.0.1:${port}`;
    const args = [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--window-size=1280,900",
      `--user-data-dir=${join(dir, "profile")}`,
    ];
    const browser = new Browser(driver, url, "", dir);
    try {
      const created = await browser.command("POST", "/session", {
        capabilities: {
          alwaysMatch: {
            browserName: "chrome",
            "goog:chromeOptions": { binary: CHROMIUM, args },
          },
        },
      });
      browser.session = created.sessionId;
    } catch (error) {
      await browser.stop();
      throw error;
    }
    return browser;
  }

  /**
   * One WebDriver command; its `value`.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async command(method, path, body) {
    const answer = await fetch(this.url + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await answer.json();
    if (!answer.ok) {
      throw new Error(`WebDriver ${method} ${path}: ${JSON.stringify(json.value)}`);
    }
    return json.value;
  }

  /** @param {string} path */
  sessionPath(path) {
    return `/session/${this.session}${path}`;
  }

  /** Loads `url` and waits until the page has loaded. @param {string} url */
  async open(url) {
    await this.command("POST", this.sessionPath("/url"), { url });
  }

  /**
   * Runs `script` (a function body) in the page and returns its result.
   * @param {string} script
   * @param {unknown[]} [args]
   */
  async execute(script, args = []) {
    return this.command("POST", this.sessionPath("/execute/sync"), { script, args });
  }

  /** Clicks the first element matching the CSS selector, once there is one. @param {string} css */
  async click(css) {
    const element = await this.waitFor(`an element matching ${css}`, async () => {
      try {
        const found = await this.command("POST", this.sessionPath("/element"), {
          using: "css selector",
          value: css,
        });
        return found[ELEMENT];
      } catch {
        return undefined;
      }
    });
    await this.command("POST", this.sessionPath(`/element/${element}/click`), {});
  }

  /**
   * Polls `probe` until it returns something other than undefined or null.
   * @template T
   * @param {string} what
   * @param {() => Promise<T | undefined | null>} probe
   * @returns {Promise<T>}
   */
  async waitFor(what, probe) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const value = await probe();
      if (value !== undefined && value !== null) {
        return value;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Ends the session and kills chromedriver and the Chromium it started. */
  async stop() {
    if (this.session) {
      await this.command("DELETE", this.sessionPath("")).catch(() => {});
    }
    if (this.driver.exitCode === null && this.driver.pid !== undefined) {
      const exited = new Promise((r) => this.driver.once("exit", r));
      process.kill(-this.driver.pid, "SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
