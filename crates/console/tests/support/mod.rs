//! A console over a real SQLite store in a temporary directory, driven through its router
//! without a socket, with a cookie jar like a browser's.
#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use closedloop_console::{Console, UiConfig};
use closedloop_engine::direct::DirectSettings;
use closedloop_store::testing::TestStore;
use closedloop_store::{Access, Connection, StoreConfig};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// The address requests name, as a browser on this machine would.
pub const HOST: &str = "127.0.0.1:4318";

/// A console and the store it reads.
pub struct TestConsole {
    pub router: Router,
    pub store: StoreConfig,
    pub cookie: Option<String>,
    _store: Option<TestStore>,
}

/// A SQLite store, and a PostgreSQL one when the tests have a server
/// (`CLOSEDLOOP_TEST_POSTGRES_URL`; see `closedloop_store::testing`), each filled by `fill`.
///
/// PostgreSQL's synchronous client must not run on an async runtime's thread, so tests over
/// both engines are plain `#[test]`s: they fill and drop the stores here, outside any
/// runtime, and drive the console inside [`run`].
pub fn both_engines<T>(
    test: &str,
    mut fill: impl FnMut(&mut Connection) -> T,
) -> Vec<(TestStore, T)> {
    let mut stores = vec![TestStore::sqlite()];
    stores.extend(TestStore::postgres(test));
    stores
        .into_iter()
        .map(|store| {
            let filled = fill(&mut store.open(Access::Writer));
            (store, filled)
        })
        .collect()
}

/// Runs `test` on a fresh single-threaded runtime.
pub fn run<F: std::future::Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

/// A response's status, headers and body text.
pub struct Page {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first `name="csrf"` hidden field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl TestConsole {
    /// A console with `ui` over a fresh, migrated store that `fill` may write to first.
    pub fn new(ui: UiConfig, fill: impl FnOnce(&mut Connection)) -> Self {
        let store = TestStore::sqlite();
        fill(&mut store.open(Access::Writer));
        let mut console = Self::over(store.config(), ui);
        console._store = Some(store);
        console
    }

    /// A console with `ui` over the store `store` (which the caller keeps).
    pub fn over(store: &StoreConfig, ui: UiConfig) -> Self {
        let console = Console::new(&ui, store.clone(), DirectSettings::default()).unwrap();
        Self {
            router: console.router(),
            store: store.clone(),
            cookie: None,
            _store: None,
        }
    }

    async fn send(&mut self, request: Request<Body>) -> Page {
        let response: Response<Body> = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(cookie) = headers.get(header::SET_COOKIE) {
            let pair = cookie
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut request = Request::get(path).header(header::HOST, HOST);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut request = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let body = serde_urlencoded::to_string(form).unwrap();
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// Signs in as `name` (open mode: no password) and returns the session's CSRF token.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> String {
        let login = self.get("/ui/login").await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let csrf = login.csrf();
        let done = self
            .post(
                "/ui/login",
                &[
                    ("csrf", &csrf),
                    ("name", name),
                    ("password", password),
                    ("next", "/ui/triage"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let page = self.get("/ui/triage").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.csrf()
    }
}
