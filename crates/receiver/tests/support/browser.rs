//! Real headless Chromium, driven over WebDriver, for the browser tests.
//!
//! [`Browser::start`] runs `/usr/bin/chromedriver` on a port the kernel picks and opens a
//! session in `/usr/bin/chromium`: headless, 1280×900, with a fresh profile in a temporary
//! directory. Dropping the [`Browser`] kills both (and the profile goes with the directory).
//! `scripts/browser.sh` installs Debian's `chromium` and `chromium-driver`.
//!
//! Without chromedriver a browser test is skipped with a line on stderr ([`Browser::start`]
//! returns `None`), unless `CLOSEDLOOP_TEST_REQUIRE_BROWSER=1` (as in `scripts/test.sh`),
//! which makes it fail.
//!
//! Every helper that looks for something waits for it, polling until [`WAIT`] has passed,
//! and panics with what it was waiting for: tests never sleep for a fixed time. Keys go to
//! the page (the focused element, `body` when nothing is focused), as a person types them.
//!
//! ```ignore
//! let Some(browser) = Browser::start("review_by_keyboard").await else { return };
//! browser.open(&receiver.http_url("/ui/review")).await;
//! browser.press('g').await;
//! browser.press(Key::Enter).await;
//! browser.wait_for_text("#progress", "1 of 100 reviewed today").await;
//! browser.screenshot("review").await;
//! ```

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

// Aliases rather than `pub use`: each test crate uses a different part of this module.
/// A cookie as the browser holds it.
pub type Cookie = fantoccini::cookies::Cookie<'static>;
/// An element of the page.
pub type Element = fantoccini::elements::Element;
/// Special keys for [`Browser::press`]: `Key::Enter`, `Key::Escape`, `Key::Up`, `Key::Down`,
/// `Key::Left`, `Key::Right`, `Key::Tab`, `Key::Backspace`, ...
pub type Key = fantoccini::key::Key;

/// The WebDriver server Debian's `chromium-driver` installs.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser Debian's `chromium` installs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Set to 1 to make a missing browser a failure rather than a skip.
pub const REQUIRE_VAR: &str = "CLOSEDLOOP_TEST_REQUIRE_BROWSER";
/// Set to 1 to make [`Browser::screenshot`] write `docs/console/<name>.png`.
pub const UPDATE_SCREENSHOTS_VAR: &str = "CLOSEDLOOP_UPDATE_SCREENSHOTS";
/// How long a helper waits for what it looks for (and for Chromium to start).
pub const WAIT: Duration = Duration::from_secs(15);
/// The browser window's size, in CSS pixels. Pages (and screenshots) get its width and its
/// height less the toolbar that headless Chromium still accounts for (1280×761).
pub const WINDOW_SIZE: (u32, u32) = (1280, 900);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);
/// The line chromedriver prints once it listens (`--port=0`: the kernel picked the port).
const LISTENING: &str = "ChromeDriver was started successfully on port ";

/// A headless Chromium session. Dropping it kills Chromium and chromedriver.
pub struct Browser {
    client: Client,
    driver: Driver,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver_pid", &self.driver.child.id())
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile. `None` (with a line
    /// on stderr naming `test`) when chromedriver or Chromium is not installed, unless
    /// [`REQUIRE_VAR`] is 1: then it panics. Panics when they are installed but do not start.
    pub async fn start(test: &str) -> Option<Browser> {
        if let Some(missing) = [CHROMEDRIVER, CHROMIUM]
            .into_iter()
            .find(|path| !Path::new(path).is_file())
        {
            let reason = format!("{missing} is missing; scripts/browser.sh installs it");
            if std::env::var(REQUIRE_VAR).is_ok_and(|value| value == "1") {
                panic!("{test}: {REQUIRE_VAR}=1 but {reason}");
            }
            // Written to stderr itself, past the test harness's capture, so a run shows what
            // it skipped.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{test}: skipped: {reason}");
            return None;
        }
        let driver = tokio::task::spawn_blocking(Driver::start)
            .await
            .expect("chromedriver start-up thread");
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&driver.dir.path().join("profile")))
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "Chromium did not start through chromedriver: {error}\n{}",
                    driver.log()
                )
            });
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(WAIT),
                Some(WAIT),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set the session's timeouts");
        Some(Browser { client, driver })
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads `url` and waits until the page has loaded.
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("current url").into()
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.client.title().await.expect("page title")
    }

    /// The first element matching the CSS selector, once there is one.
    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("an element matching `{css}`"), || async move {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// Every element matching the CSS selector now (no waiting: it may be none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("find `{css}`: {error}"))
    }

    /// Whether an element matches the CSS selector now.
    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// The rendered text of the first element matching the CSS selector, once there is one.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|error| panic!("text of `{css}`: {error}"))
    }

    /// The current value of the form field matching the CSS selector.
    pub async fn value(&self, css: &str) -> String {
        let element = self.find(css).await;
        element
            .prop("value")
            .await
            .unwrap_or_else(|error| panic!("value of `{css}`: {error}"))
            .unwrap_or_default()
    }

    /// Waits until the first element matching the CSS selector shows text containing
    /// `expected`; returns its whole text.
    pub async fn wait_for_text(&self, css: &str, expected: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let shown = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.ok(),
                Err(_) => None,
            };
            match shown {
                Some(text) if text.contains(expected) => return text,
                _ if Instant::now() >= deadline => panic!(
                    "`{css}` did not show {expected:?} within {WAIT:?}; it shows {:?}",
                    shown.as_deref().unwrap_or("(no such element)")
                ),
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Waits until the page's address contains `expected`; returns the address.
    pub async fn wait_for_url(&self, expected: &str) -> String {
        self.wait_for(
            &format!("an address containing {expected:?}"),
            || async move {
                let url = self.url().await;
                url.contains(expected).then_some(url)
            },
        )
        .await
    }

    /// Polls `check` until it returns `Some`, and returns that; panics naming `what` after
    /// [`WAIT`].
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Presses and releases one key in the page: a character (`'g'`, `'3'`) or a [`Key`]
    /// (`Key::Enter`, `Key::Escape`, `Key::Down`).
    pub async fn press(&self, key: impl Into<char>) {
        self.keys([key.into()]).await;
    }

    /// Types `text` into the page, one key after the other (into the focused field, if any).
    pub async fn type_text(&self, text: &str) {
        self.keys(text.chars()).await;
    }

    async fn keys(&self, keys: impl IntoIterator<Item = char>) {
        let actions = keys
            .into_iter()
            .fold(KeyActions::new("keyboard".into()), |actions, key| {
                actions
                    .then(KeyAction::Down { value: key })
                    .then(KeyAction::Up { value: key })
            });
        self.client
            .perform_actions(actions)
            .await
            .expect("perform key actions");
    }

    /// Clicks the first element matching the CSS selector, once there is one.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|error| panic!("click `{css}`: {error}"));
    }

    /// Replaces the value of the form field matching the CSS selector with `value`, typed.
    pub async fn fill(&self, css: &str, value: &str) {
        let element = self.find(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|error| panic!("clear `{css}`: {error}"));
        element
            .send_keys(value)
            .await
            .unwrap_or_else(|error| panic!("type into `{css}`: {error}"));
    }

    /// Submits the form matching the CSS selector by clicking its submit button, as a person
    /// would (its `submit` handlers run). Wait for what the next page shows with
    /// [`Browser::wait_for_text`].
    pub async fn submit(&self, form_css: &str) {
        self.find(form_css).await;
        let form = self
            .client
            .form(Locator::Css(form_css))
            .await
            .unwrap_or_else(|error| panic!("form `{form_css}`: {error}"));
        form.submit()
            .await
            .unwrap_or_else(|error| panic!("submit `{form_css}`: {error}"));
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub async fn script(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Every cookie the page's site has set, `HttpOnly` ones included.
    pub async fn cookies(&self) -> Vec<Cookie> {
        self.client.get_all_cookies().await.expect("read cookies")
    }

    /// The cookie called `name`, if the page's site has set it.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies()
            .await
            .into_iter()
            .find(|cookie| cookie.name() == name)
    }

    /// A PNG of the window as it shows now.
    pub async fn png(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("take a screenshot")
    }

    /// A PNG of the window, also written to `docs/console/<name>.png` when
    /// [`UPDATE_SCREENSHOTS_VAR`] is 1 (so a test run does not change the repository).
    pub async fn screenshot(&self, name: &str) -> Vec<u8> {
        let png = self.png().await;
        if std::env::var(UPDATE_SCREENSHOTS_VAR).is_ok_and(|value| value == "1") {
            let path = screenshot_path(name);
            std::fs::create_dir_all(path.parent().unwrap()).expect("create docs/console");
            std::fs::write(&path, &png)
                .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        }
        png
    }

    /// Ends the session (Chromium quits), then stops chromedriver. Dropping the browser does
    /// the same more abruptly.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        client.close().await.expect("end the WebDriver session");
        drop(driver);
    }
}

/// Where [`Browser::screenshot`] writes the screenshot `name`.
pub fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/console")
        .join(format!("{name}.png"))
}

/// What the session asks chromedriver for: Debian's Chromium, headless, with the profile in
/// `profile` and nothing that reaches the network on its own.
fn capabilities(profile: &Path) -> Capabilities {
    let (width, height) = WINDOW_SIZE;
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    let serde_json::Value::Object(capabilities) = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    }) else {
        unreachable!("a JSON object literal")
    };
    capabilities
}

/// A chromedriver process, in a process group of its own with the Chromium it starts.
struct Driver {
    child: Child,
    port: u16,
    /// The profile and chromedriver's log (`chromedriver.log`, with Chromium's stderr).
    dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a port the kernel picks and waits until it listens.
    fn start() -> Driver {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("chromedriver.log");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log");
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {CHROMEDRIVER}: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (port_tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            // Reads to the end, so chromedriver never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix(LISTENING) {
                    if let Some(port_tx) = port_tx.take() {
                        let _ = port_tx.send(port.trim_end_matches('.').parse::<u16>());
                    }
                }
            }
        });
        let mut driver = Driver {
            child,
            port: 0,
            dir,
        };
        match port_rx.recv_timeout(WAIT) {
            Ok(Ok(port)) => driver.port = port,
            Ok(Err(error)) => panic!("chromedriver printed a bad port ({error})"),
            Err(_) => panic!(
                "chromedriver did not say it listens within {WAIT:?}\n{}",
                driver.log()
            ),
        }
        driver
    }

    /// The end of chromedriver's log and stderr, for failure messages.
    fn log(&self) -> String {
        let mut out = String::new();
        for name in ["chromedriver.log", "stderr.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            out.push_str(&format!("--- {name} (last lines)\n{tail}\n"));
        }
        out
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Kills the process group: chromedriver and every Chromium process it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
