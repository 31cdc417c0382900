//! Who is using the console: signed session cookies, sign-in, and CSRF tokens.
//!
//! A session is a cookie the console signs with HMAC-SHA256 (`ui.session_secret`): how people
//! sign in, the user's name (empty before sign-in), a random nonce and an expiry. Nothing is
//! kept on the server, so receivers that share a store and a secret accept each other's
//! sessions; a session from a console that signs in another way (a name-only loopback console
//! with the same secret) is not accepted, nor one whose user is no longer in `[[ui.users]]`.
//! The cookie is `HttpOnly`, `SameSite=Lax` (a link from chat or mail keeps the session; the
//! CSRF tokens guard every state change), scoped to `/ui`, and `Secure` when
//! `ui.secure_cookies` is on.
//!
//! Without passwords (on loopback) the console answers only requests addressed to a loopback
//! name (`Host: localhost`, `127.0.0.1`, `[::1]`), so a web page whose name was rebound to
//! 127.0.0.1 (DNS rebinding) cannot use it; and a state change whose `Origin` is another site
//! is refused in every mode.
//!
//! Every form carries a CSRF token, the HMAC of the session's nonce; a state change whose
//! token does not match the session's is refused ([`CsrfForm`]). Signing in starts a new
//! session (a new nonce), so a token seen before sign-in is worthless after it.
//!
//! The identity on labels and triage notes is the session's, never a form field.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::Sha256;

use crate::config::{valid_user_name, AuthMode, UiConfig};
use crate::error::PageError;
use crate::App;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "closedloop_console";

/// Password checks that run at once; more wait their turn.
const MAX_VERIFYING: usize = 2;

/// The largest form the console accepts, in bytes.
const MAX_FORM_BYTES: usize = 256 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// What the console knows of the person making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    /// The signed-in user, `None` before sign-in.
    pub(crate) user: Option<String>,
    nonce: String,
    expires_s: u64,
}

/// The session keys and how people sign in.
#[derive(Clone)]
pub(crate) struct Auth {
    key: Arc<[u8]>,
    mode: AuthMode,
    users: Arc<[(String, String)]>,
    proxy_header: Option<header::HeaderName>,
    ttl_secs: u64,
    secure: bool,
    /// Bounds the password checks running at once (argon2 takes 19 MiB and a core each).
    verifying: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.mode)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl Auth {
    /// From a validated `[ui]` section.
    pub(crate) fn new(config: &UiConfig) -> Self {
        let key: Arc<[u8]> = match &config.session_secret {
            Some(secret) => secret.expose().as_bytes().into(),
            None => rand::random::<[u8; 32]>().to_vec().into(),
        };
        Self {
            key,
            mode: config.auth_mode(),
            users: config
                .users
                .iter()
                .map(|user| (user.name.clone(), user.password_hash.clone()))
                .collect(),
            proxy_header: config
                .proxy_user_header
                .as_deref()
                .and_then(|name| header::HeaderName::from_bytes(name.as_bytes()).ok()),
            ttl_secs: config.session_ttl_secs,
            secure: config.secure_cookies,
            verifying: Arc::new(tokio::sync::Semaphore::new(MAX_VERIFYING)),
        }
    }

    /// How people sign in.
    pub(crate) fn mode(&self) -> AuthMode {
        self.mode
    }

    fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    /// A new session for `user` (or an anonymous one).
    pub(crate) fn start(&self, user: Option<String>) -> Session {
        Session {
            user,
            nonce: hex::encode(rand::random::<[u8; 16]>()),
            expires_s: now_s().saturating_add(self.ttl_secs),
        }
    }

    fn encode(&self, session: &Session) -> String {
        let payload = format!(
            "v2\n{}\n{}\n{}\n{}",
            self.mode.tag(),
            session.user.as_deref().unwrap_or(""),
            session.nonce,
            session.expires_s
        );
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()))
        )
    }

    fn decode(&self, cookie: &str) -> Option<Session> {
        let (payload, signature) = cookie.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(&payload);
        mac.verify_slice(&signature).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut fields = payload.split('\n');
        if fields.next()? != "v2" || fields.next()? != self.mode.tag() {
            return None;
        }
        let user = fields.next()?;
        if self.mode == AuthMode::Users
            && !user.is_empty()
            && !self.users.iter().any(|(name, _)| name == user)
        {
            return None;
        }
        let nonce = fields.next()?.to_owned();
        let expires_s: u64 = fields.next()?.parse().ok()?;
        if fields.next().is_some() || expires_s <= now_s() {
            return None;
        }
        Some(Session {
            user: (!user.is_empty()).then(|| user.to_owned()),
            nonce,
            expires_s,
        })
    }

    /// The `Set-Cookie` value that keeps `session`.
    pub(crate) fn cookie(&self, session: &Session) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let value = format!(
            "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            self.encode(session),
            self.ttl_secs
        );
        HeaderValue::from_str(&value).expect("the cookie is base64 and ASCII")
    }

    /// The `Set-Cookie` value that ends the session.
    pub(crate) fn expired_cookie(&self) -> HeaderValue {
        HeaderValue::from_static("closedloop_console=; Path=/ui; HttpOnly; SameSite=Lax; Max-Age=0")
    }

    /// The CSRF token of `session`.
    pub(crate) fn csrf_token(&self, session: &Session) -> String {
        let mut payload = b"csrf\n".to_vec();
        payload.extend_from_slice(session.nonce.as_bytes());
        hex::encode(&self.sign(&payload)[..16])
    }

    /// Whether `token` is `session`'s CSRF token (compared in constant time).
    fn csrf_matches(&self, session: &Session, token: &str) -> bool {
        let expected = self.csrf_token(session);
        expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }

    /// The session of a request: its cookie's when valid, the proxy's user in proxy mode, or
    /// a new anonymous one. The second value says whether the cookie must be (re)set.
    pub(crate) fn session_of(&self, headers: &HeaderMap) -> (Session, bool) {
        let from_cookie = cookie_value(headers, COOKIE).and_then(|value| self.decode(value));
        if self.mode == AuthMode::Proxy {
            let proxied = self
                .proxy_header
                .as_ref()
                .and_then(|name| headers.get(name))
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|name| valid_user_name(name))
                .map(str::to_owned);
            return match from_cookie {
                Some(session) if session.user == proxied => (session, false),
                _ => (self.start(proxied), true),
            };
        }
        match from_cookie {
            Some(session) => (session, false),
            None => (self.start(None), true),
        }
    }

    /// Checks `name` and `password` on a blocking thread, a few at a time.
    pub(crate) async fn check(&self, name: String, password: String) -> bool {
        let Ok(_permit) = self.verifying.acquire().await else {
            return false;
        };
        let auth = self.clone();
        tokio::task::spawn_blocking(move || auth.verify(&name, &password))
            .await
            .unwrap_or(false)
    }

    /// Checks `name` and `password` against `[[ui.users]]` (or, in open mode, the name alone).
    /// Runs argon2, so call it off the async reactor.
    pub(crate) fn verify(&self, name: &str, password: &str) -> bool {
        match self.mode {
            AuthMode::Open => valid_user_name(name),
            AuthMode::Proxy => false,
            AuthMode::Users => {
                let stored = self
                    .users
                    .iter()
                    .find(|(user, _)| user == name)
                    .map(|(_, hash)| hash.as_str());
                // An unknown name is checked against a hash too, so it takes as long.
                let hash = stored.unwrap_or_else(|| dummy_hash());
                let verified = PasswordHash::new(hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                });
                verified && stored.is_some()
            }
        }
    }
}

/// The argon2 hash unknown user names are checked against (of a random password).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default())
}

/// An argon2id hash of `password` in PHC form, with a random salt, for `[[ui.users]]`.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Puts the request's [`Session`] in its extensions and (re)sets the cookie when needed.
pub(crate) async fn sessions(
    State(app): State<App>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(error) = app.auth.check_addressing(&request) {
        return error.into_response();
    }
    let (session, fresh) = app.auth.session_of(request.headers());
    // The cookie is sent back for `/ui` paths only: a request elsewhere (the browser's own
    // `/favicon.ico`) carries none, and a fresh cookie for it would replace the session. The
    // console has no fallback route for this reason; the check keeps it so if one is added.
    let in_scope = request.uri().path() == "/ui" || request.uri().path().starts_with("/ui/");
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    // A handler that set its own cookie (sign-in, sign-out) wins.
    if fresh && in_scope && !response.headers().contains_key(header::SET_COOKIE) {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, app.auth.cookie(&session));
    }
    response
}

impl Auth {
    /// Refuses a request the console must not answer: without passwords, one addressed to a
    /// name that is not loopback's (DNS rebinding); in every mode, a state change from a page
    /// of another site.
    fn check_addressing(&self, request: &Request) -> Result<(), PageError> {
        let headers = request.headers();
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| {
                request
                    .uri()
                    .authority()
                    .map(|authority| authority.as_str())
            });
        if self.mode == AuthMode::Open && !host.is_some_and(is_loopback_host) {
            return Err(PageError::Misaddressed(
                "this console signs people in without a password, so it answers only requests \
                 addressed to localhost, 127.0.0.1 or [::1]",
            ));
        }
        if request.method() != axum::http::Method::GET
            && request.method() != axum::http::Method::HEAD
        {
            let origin = headers
                .get(header::ORIGIN)
                .and_then(|value| value.to_str().ok());
            if let (Some(origin), Some(host)) = (origin, host) {
                let origin_host = origin
                    .split_once("://")
                    .map_or(origin, |(_, rest)| rest)
                    .trim_end_matches('/');
                if !origin_host.eq_ignore_ascii_case(host) {
                    return Err(PageError::Csrf);
                }
            }
        }
        Ok(())
    }
}

/// Whether `host` (a `Host` header: a name or address and an optional port) names loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A signed-in user, from the session. Pages that need one redirect to sign-in without it.
#[derive(Clone, Debug)]
pub(crate) struct SignedIn {
    /// The user's name.
    pub(crate) user: String,
    /// The session's CSRF token, for the page's forms.
    pub(crate) csrf: String,
}

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PageError::Internal("no session".into()).into_response())?;
        match session.user.clone() {
            Some(user) => Ok(Self {
                csrf: app.auth.csrf_token(&session),
                user,
            }),
            None if app.auth.mode() == AuthMode::Proxy => Err(PageError::Unauthenticated(
                "the reverse proxy did not name a user",
            )
            .into_response()),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/ui/", |path| path.as_str());
                let target = format!("/ui/login?next={}", urlencode(next));
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// A form whose CSRF token (field `csrf`) matched the session's, and the session's user.
#[derive(Debug)]
pub(crate) struct CsrfForm<T> {
    /// The form.
    pub(crate) form: T,
    /// The signed-in user, if any (sign-in forms are posted before there is one).
    pub(crate) user: Option<String>,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<App> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, app: &App) -> Result<Self, Self::Rejection> {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PageError::Internal("no session".into()))?;
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::BadRequest(
                "expected a form (application/x-www-form-urlencoded)".into(),
            ));
        }
        let body = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| PageError::BadRequest("the form is too large".into()))?;
        check_csrf(app, &session, &body)?;
        let form = serde_urlencoded::from_bytes(&body)
            .map_err(|error| PageError::BadRequest(format!("invalid form: {error}")))?;
        Ok(Self {
            form,
            user: session.user,
        })
    }
}

fn check_csrf(app: &App, session: &Session, body: &Bytes) -> Result<(), PageError> {
    let field: CsrfField = serde_urlencoded::from_bytes(body).unwrap_or(CsrfField {
        csrf: String::new(),
    });
    if app.auth.csrf_matches(session, &field.csrf) {
        Ok(())
    } else {
        Err(PageError::Csrf)
    }
}

/// Percent-encodes `text` for a query value.
pub(crate) fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|pair| pair.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// Where to go after sign-in: a console path, never another site.
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with("/ui/") && !path.starts_with("/ui//") => path,
        _ => "/ui/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&UiConfig::default())
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={value}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_signed_session_round_trips_and_a_forged_one_does_not() {
        let auth = auth();
        let session = auth.start(Some("ana".into()));
        let cookie = auth.encode(&session);
        assert_eq!(
            auth.session_of(&with_cookie(&cookie)),
            (session.clone(), false)
        );
        // Another key (another receiver without the shared secret) does not accept it.
        let (other, fresh) =
            super::Auth::new(&UiConfig::default()).session_of(&with_cookie(&cookie));
        assert!(fresh);
        assert_eq!(other.user, None);
        // A changed user name breaks the signature.
        let (payload, signature) = cookie.split_once('.').unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(text.replace("ana", "bob"));
        let (session, fresh) = auth.session_of(&with_cookie(&format!("{forged}.{signature}")));
        assert!(fresh);
        assert_eq!(session.user, None);
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let auth = auth();
        let one = auth.start(None);
        let two = auth.start(None);
        let token = auth.csrf_token(&one);
        assert!(auth.csrf_matches(&one, &token));
        assert!(!auth.csrf_matches(&two, &token));
        assert!(!auth.csrf_matches(&one, ""));
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        let config = UiConfig {
            users: vec![crate::config::UiUser {
                name: "ana".into(),
                password_hash: hash,
            }],
            ..UiConfig::default()
        };
        let auth = Auth::new(&config);
        assert!(auth.verify("ana", "correct horse"));
        assert!(!auth.verify("ana", "wrong"));
        assert!(!auth.verify("bob", "correct horse"));
    }

    #[test]
    fn proxy_mode_takes_the_user_from_the_header() {
        let config = UiConfig {
            proxy_user_header: Some("X-Forwarded-User".into()),
            ..UiConfig::default()
        };
        let auth = Auth::new(&config);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", HeaderValue::from_static("ana"));
        let (session, fresh) = auth.session_of(&headers);
        assert_eq!((session.user.as_deref(), fresh), (Some("ana"), true));
        // The same cookie with another proxied user is a new session.
        let cookie = auth.encode(&session);
        let mut headers = with_cookie(&cookie);
        headers.insert("x-forwarded-user", HeaderValue::from_static("bob"));
        let (session, fresh) = auth.session_of(&headers);
        assert_eq!((session.user.as_deref(), fresh), (Some("bob"), true));
    }

    #[test]
    fn loopback_hosts_are_told_apart() {
        for host in [
            "localhost",
            "localhost:4318",
            "127.0.0.1:4318",
            "[::1]:4318",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:4318",
            "10.0.0.1:4318",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn a_session_of_another_sign_in_mode_or_a_removed_user_is_refused() {
        let open = Auth::new(&UiConfig {
            session_secret: Some("a shared secret of thirty-two bytes!".into()),
            ..UiConfig::default()
        });
        let hash = hash_password("correct horse").unwrap();
        let users = |names: &[&str]| {
            Auth::new(&UiConfig {
                session_secret: Some("a shared secret of thirty-two bytes!".into()),
                users: names
                    .iter()
                    .map(|name| crate::config::UiUser {
                        name: (*name).into(),
                        password_hash: hash.clone(),
                    })
                    .collect(),
                ..UiConfig::default()
            })
        };
        let minted = open.encode(&open.start(Some("ana".into())));
        let (session, _) = users(&["ana"]).session_of(&with_cookie(&minted));
        assert_eq!(
            session.user, None,
            "an open-mode session is not a password session"
        );
        let with_ana = users(&["ana", "bob"]);
        let cookie = with_ana.encode(&with_ana.start(Some("bob".into())));
        assert_eq!(
            with_ana.session_of(&with_cookie(&cookie)).0.user.as_deref(),
            Some("bob")
        );
        let (session, _) = users(&["ana"]).session_of(&with_cookie(&cookie));
        assert_eq!(session.user, None, "bob was removed");
    }

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(safe_next(Some("/ui/review?day=x")), "/ui/review?day=x");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }
}
