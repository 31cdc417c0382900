//! closedloop's web console: the pages for the people who close the loop.
//!
//! - **Overview**: the failure rate per template version over days with 95% bands, signals
//!   and categories over time, open and overdue records by owner, today's review progress.
//! - **Failure records**: a filterable list and a page per record with every revision, its
//!   signals, its enrichment, and acknowledge / resolve / won't-fix / reassign.
//! - **Review queue**: the day's uniform sample, one answer at a time, keyboard first.
//! - **Triage board**, **Report** (the per-version comparison) and **Eval set** (with JSONL
//!   and CSV downloads).
//!
//! The console is server-rendered HTML (askama templates, which escape by default) with one
//! small script for keyboard shortcuts; every page works without it. Charts are SVG drawn on
//! the server. Its stylesheet and script are compiled into the binary, so it needs no CDN and
//! no Node toolchain, and its Content-Security-Policy allows no inline script at all.
//!
//! It reads and writes through the same store layer and the same commands as the CLI
//! ([`closedloop_commands`]): a label given here goes through the same join and failure rules
//! as `closedloop review label`, so it works on both store engines.
//!
//! The receiver mounts it under `/ui/`:
//!
//! ```no_run
//! use closedloop_console::{Console, UiConfig};
//! use closedloop_engine::direct::DirectSettings;
//! use closedloop_store::StoreConfig;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let console = Console::new(
//!     &UiConfig::default(),
//!     StoreConfig::default(),
//!     DirectSettings::default(),
//! )?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! console.check_exposure(listener.local_addr()?)?;
//! axum::serve(listener, console.router()).await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod assets;
mod auth;
mod chart;
mod config;
mod error;
mod pages;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use closedloop_engine::direct::DirectSettings;
use closedloop_store::StoreConfig;

pub use auth::hash_password;
pub use config::{UiConfig, UiConfigError, UiUser, UI_SESSION_SECRET_ENV};

/// The console's Content-Security-Policy: scripts and styles from the console only, no
/// inline script or style, no frames, forms posted to the console only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The console, ready to be served.
#[derive(Clone, Debug)]
pub struct Console {
    app: App,
    config: UiConfig,
}

/// What every handler can reach.
#[derive(Clone, Debug)]
pub(crate) struct App {
    pub(crate) store: store::Store,
    pub(crate) settings: Arc<DirectSettings>,
    pub(crate) auth: auth::Auth,
    pub(crate) trace_url: Option<Arc<str>>,
    pub(crate) overview: Arc<pages::OverviewCache>,
}

impl Console {
    /// A console over the store `store`, changing state with `settings` (built from the same
    /// configuration as the receiver's, so a label is judged as the receiver would judge it).
    pub fn new(
        config: &UiConfig,
        store: StoreConfig,
        settings: DirectSettings,
    ) -> Result<Self, UiConfigError> {
        config.validate()?;
        Ok(Self {
            app: App {
                store: store::Store::new(store),
                settings: Arc::new(settings),
                auth: auth::Auth::new(config),
                trace_url: config.trace_url.as_deref().map(Arc::from),
                overview: Arc::default(),
            },
            config: config.clone(),
        })
    }

    /// Checks that the console may be served on `addr`: beyond loopback only with
    /// authentication configured ([`UiConfigError::Unprotected`] otherwise).
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), UiConfigError> {
        self.config.check_exposure(addr)
    }

    /// Routes that answer every console path with 403 and `error`, for a console that may not
    /// be served where it would be (see [`Console::check_exposure`]).
    pub fn refusing(error: &UiConfigError) -> Router {
        let message = format!("The console is not served here: {error}.");
        let refuse = move || {
            let message = message.clone();
            async move { error::PageError::Refused(message).into_response() }
        };
        Router::new()
            .route("/ui", axum::routing::any(refuse.clone()))
            .route("/ui/{*rest}", axum::routing::any(refuse))
            .route_layer(axum::middleware::map_response(security_headers))
    }

    /// The console's routes, all under `/ui/` (and `/ui`, which redirects there).
    pub fn router(self) -> Router {
        let app = self.app;
        // Assets need no session: a stylesheet fetched beside a page must not start a second
        // one.
        let pages = pages::routes().route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::sessions,
        ));
        Router::new()
            .merge(pages)
            .route("/ui/assets/{name}", axum::routing::get(assets::serve))
            .route_layer(axum::middleware::map_response(security_headers))
            .with_state(app)
    }
}

/// Headers every console response carries.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
