//! What a page answers when it cannot do what was asked: one variant per failure, each an
//! HTML page with the right status.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PageError {
    /// The request is malformed (a bad filter, a bad form).
    #[error("{0}")]
    BadRequest(String),
    /// No such record, queue item or page.
    #[error("{0}")]
    NotFound(String),
    /// A state change without the session's CSRF token.
    #[error(
        "this form did not come from this console session (missing or invalid CSRF token); \
         reload the page and try again"
    )]
    Csrf,
    /// A request the console must not answer where it was addressed (DNS rebinding).
    #[error("{0}")]
    Misaddressed(&'static str),
    /// The console refuses to serve where it is (beyond loopback without authentication).
    #[error("{0}")]
    Refused(String),
    /// No signed-in user where one is required.
    #[error("not signed in: {0}")]
    Unauthenticated(&'static str),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(String),
    /// Anything else that is the console's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Csrf | Self::Misaddressed(_) | Self::Refused(_) => StatusCode::FORBIDDEN,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "Console request failed.");
        }
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message: self.to_string(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        }
    }
}

impl From<closedloop_store::StoreError> for PageError {
    fn from(error: closedloop_store::StoreError) -> Self {
        Self::Store(error_chain(&error))
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        Self::Internal(format!("template: {error}"))
    }
}

impl From<closedloop_commands::triage::TriageError> for PageError {
    fn from(error: closedloop_commands::triage::TriageError) -> Self {
        use closedloop_commands::triage::TriageError;
        match error {
            TriageError::BadId(_) => Self::BadRequest(error.to_string()),
            TriageError::NotFound(_) => Self::NotFound(error.to_string()),
            _ => Self::Store(error_chain(&error)),
        }
    }
}

impl From<closedloop_commands::review::ReviewError> for PageError {
    fn from(error: closedloop_commands::review::ReviewError) -> Self {
        use closedloop_commands::review::ReviewError;
        match error {
            ReviewError::NotFound(_) => Self::NotFound(error.to_string()),
            ReviewError::AlreadySampled { .. } => Self::BadRequest(error.to_string()),
            _ => Self::Store(error_chain(&error)),
        }
    }
}

impl From<closedloop_commands::report::ReportError> for PageError {
    fn from(error: closedloop_commands::report::ReportError) -> Self {
        use closedloop_commands::report::ReportError;
        match error {
            ReportError::UnknownVersion(_) => Self::BadRequest(error.to_string()),
            _ => Self::Store(error_chain(&error)),
        }
    }
}

impl From<closedloop_commands::evalset::EvalsetError> for PageError {
    fn from(error: closedloop_commands::evalset::EvalsetError) -> Self {
        Self::Store(error_chain(&error))
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}
