//! The console's stylesheet and script, compiled into the binary and served with a content
//! hash in their URL, so browsers cache them for good and a new build is fetched at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/console.js"),
    },
];

/// The URL of asset `name` with its content hash, e.g. `/ui/assets/console.css?v=3f2a…`.
pub(crate) fn url(name: &str) -> String {
    static HASHES: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let hashes = HASHES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body.as_bytes());
                (asset.name, hex::encode(&digest[..6]))
            })
            .collect()
    });
    let version = hashes
        .iter()
        .find(|(asset, _)| *asset == name)
        .map_or("", |(_, hash)| hash.as_str());
    format!("/ui/assets/{name}?v={version}")
}

/// `GET /ui/assets/{name}`.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
