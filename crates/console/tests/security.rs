//! Sign-in, sessions, CSRF and the headers every page carries.

mod support;

use axum::http::{header, StatusCode};
use closedloop_console::{hash_password, UiConfig, UiUser};
use support::TestConsole;

#[tokio::test]
async fn a_page_without_a_session_sends_to_sign_in_with_a_safe_cookie() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let page = console.get("/ui/triage").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/ui/login?next=%2Fui%2Ftriage");
    let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn every_page_forbids_inline_script_and_framing() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let page = console.get("/ui/login").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(!page.body.contains("<script>"), "no inline script");
    let missing = console.get("/ui/no-such-page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing
        .headers
        .contains_key(header::CONTENT_SECURITY_POLICY));
}

#[tokio::test]
async fn a_state_change_without_the_csrf_token_is_refused() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let csrf = console.sign_in("ana", "").await;
    // Signing out is a state change: without the token, or with another session's, refused.
    let refused = console.post("/ui/logout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("CSRF"), "{}", refused.body);
    let forged = console
        .post(
            "/ui/logout",
            &[("csrf", "00112233445566778899aabbccddeeff")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(console.get("/ui/triage").await.status, StatusCode::OK);
    let done = console.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        console.get("/ui/triage").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn signing_in_starts_a_new_session() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let login = console.get("/ui/login").await;
    let before = login.csrf();
    let csrf = console.sign_in("ana", "").await;
    assert_ne!(
        before, csrf,
        "the token from before sign-in is not the session's"
    );
    let page = console.get("/ui/triage").await;
    assert!(page.body.contains(">ana<"), "{}", page.body);
}

#[tokio::test]
async fn open_mode_refuses_a_name_that_is_markup() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let csrf = console.get("/ui/login").await.csrf();
    let page = console
        .post(
            "/ui/login",
            &[("csrf", &csrf), ("name", "<script>alert(1)</script>")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location().starts_with("/ui/login?failed=1"),
        "{}",
        page.location()
    );
}

#[tokio::test]
async fn users_sign_in_with_their_password_only() {
    let ui = UiConfig {
        users: vec![UiUser {
            name: "ana".into(),
            password_hash: hash_password("correct horse").unwrap(),
        }],
        ..UiConfig::default()
    };
    let mut console = TestConsole::new(ui, |_| {});
    let login = console.get("/ui/login").await;
    assert!(login.body.contains("type=\"password\""));
    let csrf = login.csrf();
    let wrong = console
        .post(
            "/ui/login",
            &[("csrf", &csrf), ("name", "ana"), ("password", "wrong")],
        )
        .await;
    assert!(
        wrong.location().starts_with("/ui/login?failed=1"),
        "{}",
        wrong.location()
    );
    assert_eq!(
        console.get("/ui/triage").await.status,
        StatusCode::SEE_OTHER
    );
    console.sign_in("ana", "correct horse").await;
}

#[tokio::test]
async fn sign_in_never_redirects_off_the_console() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let csrf = console.get("/ui/login").await.csrf();
    let page = console
        .post(
            "/ui/login",
            &[
                ("csrf", &csrf),
                ("name", "ana"),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(page.location(), "/ui/");
}

#[tokio::test]
async fn assets_are_served_with_their_content_type() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let css = console.get("/ui/assets/console.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(
        console.get("/ui/assets/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_overview_renders_on_an_empty_store() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    console.sign_in("ana", "").await;
    let page = console.get("/ui/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("No responses in the last 30 days"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn paths_outside_the_console_and_its_assets_start_no_session() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    // A browser fetching /favicon.ico, or a stylesheet beside a page, must not replace the
    // session (and with it the CSRF token of the page's forms).
    for path in ["/favicon.ico", "/ui/assets/console.css"] {
        let page = console.get(path).await;
        assert!(!page.headers.contains_key(header::SET_COOKIE), "{path}");
    }
    assert!(console
        .get("/ui/login")
        .await
        .headers
        .contains_key(header::SET_COOKIE));
}

#[tokio::test]
async fn a_request_outside_the_console_leaves_the_session_alone() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    console.sign_in("ana", "").await;
    // A browser sends the console's cookie (Path=/ui) with /ui requests only: its
    // /favicon.ico comes without one, and must not set a fresh one over the session.
    let session = console.cookie.take();
    let favicon = console.get("/favicon.ico").await;
    assert_eq!(favicon.status, StatusCode::NOT_FOUND);
    assert!(
        !favicon.headers.contains_key(header::SET_COOKIE),
        "{:?}",
        favicon.headers
    );
    console.cookie = session;
    let page = console.get("/ui/triage").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(">ana<"), "{}", page.body);
}

#[tokio::test]
async fn without_passwords_only_loopback_names_are_answered() {
    // A page whose name was rebound to 127.0.0.1 sends its own name as Host.
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let request = axum::http::Request::get("/ui/login")
        .header(header::HOST, "evil.example:4318")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(console.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!response.headers().contains_key(header::SET_COOKIE));
    assert_eq!(console.get("/ui/login").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_state_change_from_another_site_is_refused() {
    let mut console = TestConsole::new(UiConfig::default(), |_| {});
    let csrf = console.sign_in("ana", "").await;
    let request = axum::http::Request::post("/ui/logout")
        .header(header::HOST, support::HOST)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, console.cookie.clone().unwrap())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!("csrf={csrf}")))
        .unwrap();
    let response = tower::ServiceExt::oneshot(console.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // From the console's own origin the same form signs out.
    let request = axum::http::Request::post("/ui/logout")
        .header(header::HOST, support::HOST)
        .header(header::ORIGIN, format!("http://{}", support::HOST))
        .header(header::COOKIE, console.cookie.clone().unwrap())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!("csrf={csrf}")))
        .unwrap();
    let response = tower::ServiceExt::oneshot(console.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}
