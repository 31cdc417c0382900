//! The console's pages, one module each, and what they share: the page chrome, sign-in, and
//! time formatting.

mod evalset;
mod overview;
mod records;
mod report;
mod review;
mod triage;

use askama::Template;
use axum::extract::Query;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use crate::auth::{safe_next, CsrfForm, Session, SignedIn};
use crate::config::AuthMode;
use crate::error::PageError;
use crate::{assets, App};

pub(crate) use overview::OverviewCache;

/// Every page's routes.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .merge(overview::routes())
        .merge(records::routes())
        .merge(review::routes())
        .merge(triage::routes())
        .merge(report::routes())
        .merge(evalset::routes())
        // Not a fallback: merged into the receiver's router, a fallback would answer (and
        // start sessions on) every path of the listener.
        .route(
            "/ui/{*rest}",
            get(|| async { PageError::NotFound("no such page".into()) }),
        )
}

/// What the layout (`base.html`) shows around every page: the navigation, the user, the
/// sign-out form's CSRF token and the asset URLs.
#[derive(Clone, Debug)]
pub(crate) struct Chrome {
    /// The page title.
    pub(crate) title: String,
    /// The navigation entry to highlight: `overview`, `records`, `review`, `triage`, `report`
    /// or `evalset`.
    pub(crate) nav: &'static str,
    /// The signed-in user.
    pub(crate) user: String,
    /// The session's CSRF token, for every form on the page.
    pub(crate) csrf: String,
    /// The stylesheet's URL.
    pub(crate) css: String,
    /// The script's URL.
    pub(crate) js: String,
}

impl Chrome {
    pub(crate) fn new(signed: &SignedIn, nav: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            nav,
            user: signed.user.clone(),
            csrf: signed.csrf.clone(),
            css: assets::url("console.css"),
            js: assets::url("console.js"),
        }
    }
}

/// Renders a page template to a response.
pub(crate) fn render(page: &impl Template) -> Result<Response, PageError> {
    Ok(Html(page.render()?).into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    css: String,
    csrf: String,
    next: String,
    with_password: bool,
    failed: bool,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    failed: Option<u8>,
}

/// `GET /ui/login`.
async fn login_page(
    axum::extract::State(app): axum::extract::State<App>,
    Extension(session): Extension<Session>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    if app.auth.mode() == AuthMode::Proxy {
        return Err(PageError::Unauthenticated(
            "sign-in is done by the reverse proxy in front of the console",
        ));
    }
    render(&LoginPage {
        css: assets::url("console.css"),
        csrf: app.auth.csrf_token(&session),
        next: safe_next(query.next.as_deref()).to_owned(),
        with_password: app.auth.mode() == AuthMode::Users,
        failed: query.failed.is_some(),
    })
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    name: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /ui/login`: a new session for the user on success, back to the form otherwise.
async fn login(
    axum::extract::State(app): axum::extract::State<App>,
    CsrfForm { form, .. }: CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    if app.auth.mode() == AuthMode::Proxy {
        return Err(PageError::Unauthenticated(
            "sign-in is done by the reverse proxy in front of the console",
        ));
    }
    let name = form.name.trim().to_owned();
    let verified = app.auth.check(name.clone(), form.password).await;
    let next = safe_next(form.next.as_deref()).to_owned();
    if !verified {
        tracing::info!("Console sign-in refused.");
        let target = format!("/ui/login?failed=1&next={}", crate::auth::urlencode(&next));
        return Ok(Redirect::to(&target).into_response());
    }
    tracing::info!(user = %name, "Console sign-in.");
    let session = app.auth.start(Some(name));
    let mut response = Redirect::to(&next).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, app.auth.cookie(&session));
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct LogoutForm {}

/// `POST /ui/logout`.
async fn logout(
    axum::extract::State(app): axum::extract::State<App>,
    CsrfForm { .. }: CsrfForm<LogoutForm>,
) -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, app.auth.expired_cookie());
    response
}

/// `when` relative to `now` in words: `in 3 h`, `5 min ago`, `2 d ago`.
pub(crate) fn relative(when_s: i64, now_s: i64) -> String {
    let delta = when_s - now_s;
    let magnitude = delta.unsigned_abs();
    let amount = match magnitude {
        0..=59 => {
            return if delta >= 0 {
                "now".into()
            } else {
                "just now".into()
            }
        }
        60..=3_599 => format!("{} min", magnitude / 60),
        3_600..=172_799 => format!("{} h", magnitude / 3_600),
        _ => format!("{} d", magnitude / 86_400),
    };
    if delta >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// The start of a window of the last `days` UTC days, today included (`None` for 0: all).
pub(crate) fn window_start_s(days: u32) -> Option<i64> {
    const DAY_SECS: i64 = closedloop_engine::timefmt::DAY_SECS;
    (days > 0).then(|| (now_s().div_euclid(DAY_SECS) - i64::from(days) + 1) * DAY_SECS)
}

/// The current time in Unix seconds.
pub(crate) fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(1_000 + 3 * 3_600, 1_000), "in 3 h");
        assert_eq!(relative(1_000 - 300, 1_000), "5 min ago");
        assert_eq!(relative(1_000 - 3 * 86_400, 1_000), "3 d ago");
        assert_eq!(relative(1_010, 1_000), "now");
    }
}
