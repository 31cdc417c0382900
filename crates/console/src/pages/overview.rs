//! The overview page.

use axum::Router;

use crate::App;

pub(super) fn routes() -> Router<App> {
    Router::new()
}
