//! Real headless Chromium, driven through the browser harness (`support::browser`): it loads
//! the receiver's pages, keys typed into a page reach its scripts, a submitted form sets an
//! `HttpOnly` cookie the test can read, and screenshots are PNGs of the page's viewport.

mod support;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use support::browser::{Browser, Key, WINDOW_SIZE};
use support::receiver::TestReceiver;

/// A page that lists every key pressed while no field has focus; `e` moves the focus to its
/// answer field (the review page's "type the expected answer" key works the same way).
const KEYS_PAGE: &str = r#"<!doctype html>
<html><head><title>keys</title><script src="/keys.js" defer></script></head>
<body><ol id="keys"></ol><input id="answer"></body></html>"#;

const KEYS_SCRIPT: &str = r#"document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement) return;
  if (event.key === "e") {
    event.preventDefault();
    document.getElementById("answer").focus();
    return;
  }
  const item = document.createElement("li");
  item.textContent = event.key;
  document.getElementById("keys").append(item);
});"#;

const FORM_PAGE: &str = r#"<!doctype html>
<html><head><title>sign in</title></head><body>
<form id="sign-in" method="post" action="/sign-in">
<input id="name" name="name"><button type="submit">Sign in</button>
</form></body></html>"#;

/// Signs in whoever the form names: a page greeting them and an `HttpOnly`, `SameSite`
/// session cookie.
async fn sign_in(body: String) -> impl IntoResponse {
    let name = body.strip_prefix("name=").unwrap_or_default().to_owned();
    (
        [(
            header::SET_COOKIE,
            format!("session={name}-token; HttpOnly; SameSite=Strict; Path=/"),
        )],
        Html(format!(
            "<!doctype html><title>signed in</title><p id=\"greeting\">Signed in as {name}</p>"
        )),
    )
}

/// A test-only site on `127.0.0.1:0` with the pages above (its script served from a file,
/// under a Content-Security-Policy without inline scripts, as the console's are); returns
/// its base URL.
async fn test_site() -> String {
    let csp = [(header::CONTENT_SECURITY_POLICY, "script-src 'self'")];
    let app = Router::new()
        .route("/keys", get(move || async move { (csp, Html(KEYS_PAGE)) }))
        .route(
            "/keys.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], KEYS_SCRIPT) }),
        )
        .route("/sign-in", get(|| async { Html(FORM_PAGE) }).post(sign_in));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn chromium_shows_the_receivers_health_counters() {
    let Some(browser) = Browser::start("chromium_shows_the_receivers_health_counters").await else {
        return;
    };
    let receiver = TestReceiver::start(|_| {}).await;
    let generation = support::Generation::default();
    receiver
        .export_spans(vec![support::generation_span(support::ids(), &generation)])
        .await;

    browser.open(&receiver.http_url("/healthz")).await;
    // Chromium shows a JSON response as text in a <pre>.
    let text = browser.text("pre").await;
    let health: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|error| {
        panic!("/healthz as Chromium shows it is not JSON ({error}): {text}")
    });
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["spans"]["accepted"], 1, "{health}");
    assert!(browser.url().await.ends_with("/healthz"));

    browser.close().await;
    receiver.stop().await.unwrap();
}

#[tokio::test]
async fn keys_pressed_in_the_page_reach_its_script() {
    let Some(browser) = Browser::start("keys_pressed_in_the_page_reach_its_script").await else {
        return;
    };
    let site = test_site().await;
    browser.open(&format!("{site}/keys")).await;
    assert_eq!(browser.title().await, "keys");

    for key in ['g', 'b', '3'] {
        browser.press(key).await;
    }
    for key in [Key::Enter, Key::Escape, Key::Down, Key::Up] {
        browser.press(key).await;
    }
    browser.wait_for_text("#keys", "ArrowUp").await;
    let mut pressed = Vec::new();
    for item in browser.find_all("#keys li").await {
        pressed.push(item.text().await.unwrap());
    }
    assert_eq!(
        pressed,
        ["g", "b", "3", "Enter", "Escape", "ArrowDown", "ArrowUp"]
    );

    // `e` focuses the answer field; what is typed next goes into it, not to the list.
    browser.press('e').await;
    browser.type_text("Reset it from the sign-in page").await;
    assert_eq!(
        browser.value("#answer").await,
        "Reset it from the sign-in page"
    );
    assert_eq!(browser.find_all("#keys li").await.len(), pressed.len());

    browser.close().await;
}

#[tokio::test]
async fn a_submitted_form_sets_an_http_only_cookie() {
    let Some(browser) = Browser::start("a_submitted_form_sets_an_http_only_cookie").await else {
        return;
    };
    let site = test_site().await;
    browser.open(&format!("{site}/sign-in")).await;
    // A fresh profile: no cookie from an earlier run.
    assert!(browser.cookies().await.is_empty());

    browser.fill("#name", "ada").await;
    browser.submit("#sign-in").await;
    browser.wait_for_text("#greeting", "Signed in as ada").await;

    let session = browser.cookie("session").await.expect("session cookie set");
    assert_eq!(session.value(), "ada-token");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    // Scripts in the page cannot read it.
    assert_eq!(browser.script("return document.cookie;").await, "");

    browser.close().await;
}

#[tokio::test]
async fn a_screenshot_is_a_png_of_the_window() {
    let Some(browser) = Browser::start("a_screenshot_is_a_png_of_the_window").await else {
        return;
    };
    let receiver = TestReceiver::start(|_| {}).await;
    browser.open(&receiver.http_url("/healthz")).await;
    browser.find("pre").await;

    let png = browser.png().await;
    assert_eq!(png[..8], *b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(png[12..16], *b"IHDR", "PNG header chunk first");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    // The window's width; its height less the toolbar headless Chromium still accounts for.
    let viewport = browser
        .script("return [window.innerWidth, window.innerHeight];")
        .await;
    assert_eq!(serde_json::json!([width, height]), viewport);
    assert_eq!(width, WINDOW_SIZE.0);

    browser.close().await;
    receiver.stop().await.unwrap();
}
