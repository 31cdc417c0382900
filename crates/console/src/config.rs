//! The `[ui]` section: where the console is served and who may use it.

use std::net::SocketAddr;

use closedloop_engine::secret::Secret;
use serde::Deserialize;

/// The environment variable that overrides `ui.session_secret`.
pub const UI_SESSION_SECRET_ENV: &str = "CLOSEDLOOP_UI_SESSION_SECRET";

/// The console (`[ui]`).
///
/// On by default, under `/ui/` of the receiver's HTTP listener (`server.http_addr`, on
/// loopback by default). A console reachable beyond loopback requires authentication: either
/// `[[ui.users]]` with argon2 password hashes, or `proxy_user_header` behind a reverse proxy
/// that authenticates (on a listener of its own). Without it, a console on its own
/// `listen_addr` refuses to start, and one under `/ui/` of the HTTP listener refuses to serve.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Whether `closedloop serve` serves the console. Default true.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// A listen address of its own for the console (for example `127.0.0.1:4320`). Default:
    /// none, the console is served under `/ui/` of `server.http_addr`.
    #[serde(default)]
    pub listen_addr: Option<SocketAddr>,
    /// A link from a record to its trace in the team's backend: `{trace_id}` (32 hex digits)
    /// and `{span_id}` (16) are replaced. For example Jaeger
    /// `http://jaeger:16686/trace/{trace_id}`, Grafana Tempo
    /// `http://grafana:3000/explore?left={"queries":[{"query":"{trace_id}"}]}`, Phoenix
    /// `http://phoenix:6006/projects/default/traces/{trace_id}`. Default: none (no link).
    #[serde(default)]
    pub trace_url: Option<String>,
    /// The people who may sign in, each with an argon2 password hash in PHC form
    /// (`closedloop ui hash-password` prints one). Default: none.
    #[serde(default)]
    pub users: Vec<UiUser>,
    /// A request header that carries the signed-in user's name, set by a reverse proxy that
    /// authenticates (for example `X-Forwarded-User` from oauth2-proxy, `Remote-User` from
    /// Authelia). Only set this when the console is reachable through that proxy alone: the
    /// console trusts the header. Default: none.
    #[serde(default)]
    pub proxy_user_header: Option<String>,
    /// The key that signs session cookies (at least 32 bytes; `CLOSEDLOOP_UI_SESSION_SECRET`
    /// overrides it). Receivers that share a store and sit behind one address need the same
    /// secret. Default: a random key per start, so sessions end when the receiver restarts.
    #[serde(default)]
    pub session_secret: Option<Secret>,
    /// How long a sign-in lasts, in seconds. Default 43200 (12 hours).
    #[serde(default = "default_session_ttl_secs")]
    pub session_ttl_secs: u64,
    /// Whether session cookies are marked `Secure` (sent over HTTPS only). Turn on when a
    /// proxy terminates TLS in front of the console. Default false: the receiver itself serves
    /// plain HTTP.
    #[serde(default)]
    pub secure_cookies: bool,
}

/// A person who may sign in to the console. `Debug` does not print the password hash.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UiUser {
    /// The name shown on labels and triage notes: letters, digits and `._@+-` (an e-mail
    /// address fits), at most 64.
    pub name: String,
    /// The argon2 hash of the password, in PHC form (`$argon2id$v=19$...`).
    pub password_hash: String,
}

impl std::fmt::Debug for UiUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiUser")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

const fn default_enabled() -> bool {
    true
}

const fn default_session_ttl_secs() -> u64 {
    12 * 60 * 60
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            listen_addr: None,
            trace_url: None,
            users: Vec::new(),
            proxy_user_header: None,
            session_secret: None,
            session_ttl_secs: default_session_ttl_secs(),
            secure_cookies: false,
        }
    }
}

/// Why the `[ui]` section is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UiConfigError {
    /// A user name has characters outside letters, digits and `._@+-`, or is empty or long.
    #[error("ui.users: invalid user name {0:?} (letters, digits and ._@+- only, 1 to 64)")]
    BadUserName(String),
    /// Two users have the same name.
    #[error("ui.users: user {0:?} is listed twice")]
    DuplicateUser(String),
    /// A password hash is not an argon2 PHC string.
    #[error("ui.users: the password hash of {0:?} is not an argon2 PHC string")]
    BadPasswordHash(String),
    /// Both users and a proxy header are configured.
    #[error("ui.users and ui.proxy_user_header are both set; choose one way to sign in")]
    TwoAuthMethods,
    /// The proxy header is not a valid header name.
    #[error("ui.proxy_user_header: {0:?} is not a valid header name")]
    BadHeader(String),
    /// The session secret is shorter than 32 bytes.
    #[error("ui.session_secret is {0} bytes; use at least 32 (e.g. `openssl rand -hex 32`)")]
    ShortSecret(usize),
    /// The session lifetime is zero.
    #[error("ui.session_ttl_secs must be greater than 0")]
    ZeroSessionTtl,
    /// The trace URL template has no `{trace_id}`.
    #[error("ui.trace_url must contain {{trace_id}}")]
    TraceUrlWithoutTraceId,
    /// A proxy's user header would be trusted on the OTLP/HTTP listener, which clients reach
    /// without the proxy.
    #[error(
        "ui.proxy_user_header is set but the console would be served on {0}, the OTLP/HTTP \
         listener that clients reach without the proxy; give the console a listener of its own \
         (ui.listen_addr) that only the proxy can reach"
    )]
    ProxyOnSharedListener(SocketAddr),
    /// The console would be reachable beyond loopback without authentication.
    #[error(
        "the console would be served on {0} without authentication; set [[ui.users]] or \
         ui.proxy_user_header, serve it on loopback (ui.listen_addr = \"127.0.0.1:4320\"), \
         or turn it off (ui.enabled = false)"
    )]
    Unprotected(SocketAddr),
}

/// How people sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthMode {
    /// On loopback without users: people give their name, no password.
    Open,
    /// `[[ui.users]]` with passwords.
    Users,
    /// A trusted reverse proxy names the user in a header.
    Proxy,
}

impl AuthMode {
    /// The mode's mark in a session cookie.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Users => "users",
            Self::Proxy => "proxy",
        }
    }
}

impl UiConfig {
    /// Checks the section on its own (without knowing the address it will be served on).
    pub fn validate(&self) -> Result<(), UiConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for user in &self.users {
            if !valid_user_name(&user.name) {
                return Err(UiConfigError::BadUserName(user.name.clone()));
            }
            if !names.insert(user.name.as_str()) {
                return Err(UiConfigError::DuplicateUser(user.name.clone()));
            }
            if argon2::PasswordHash::new(&user.password_hash).is_err()
                || !user.password_hash.starts_with("$argon2")
            {
                return Err(UiConfigError::BadPasswordHash(user.name.clone()));
            }
        }
        if !self.users.is_empty() && self.proxy_user_header.is_some() {
            return Err(UiConfigError::TwoAuthMethods);
        }
        if let Some(header) = &self.proxy_user_header {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(UiConfigError::BadHeader(header.clone()));
            }
        }
        if let Some(secret) = &self.session_secret {
            if secret.expose().len() < 32 {
                return Err(UiConfigError::ShortSecret(secret.expose().len()));
            }
        }
        if self.session_ttl_secs == 0 {
            return Err(UiConfigError::ZeroSessionTtl);
        }
        if let Some(url) = &self.trace_url {
            if !url.contains("{trace_id}") {
                return Err(UiConfigError::TraceUrlWithoutTraceId);
            }
        }
        Ok(())
    }

    /// Checks that the console may be served on `addr`: beyond loopback only with
    /// authentication, and with a proxy's user header only on a listener of its own
    /// (`ui.listen_addr`), which only the proxy can reach, rather than on the OTLP/HTTP port
    /// that applications and collectors reach directly.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), UiConfigError> {
        if addr.ip().is_loopback() {
            return Ok(());
        }
        match self.auth_mode() {
            AuthMode::Open => Err(UiConfigError::Unprotected(addr)),
            AuthMode::Proxy if self.listen_addr.is_none() => {
                Err(UiConfigError::ProxyOnSharedListener(addr))
            }
            AuthMode::Proxy | AuthMode::Users => Ok(()),
        }
    }

    /// How people sign in, in words (for `closedloop check-config`).
    pub fn sign_in(&self) -> &'static str {
        match self.auth_mode() {
            AuthMode::Open => "a name, no password (loopback only)",
            AuthMode::Users => "ui.users with passwords",
            AuthMode::Proxy => "the reverse proxy's user header",
        }
    }

    pub(crate) fn auth_mode(&self) -> AuthMode {
        if self.proxy_user_header.is_some() {
            AuthMode::Proxy
        } else if self.users.is_empty() {
            AuthMode::Open
        } else {
            AuthMode::Users
        }
    }
}

/// Whether `name` is a user name the console accepts: 1 to 64 of letters, digits and `._@+-`
/// (an e-mail address fits).
pub(crate) fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_console_only_on_loopback() {
        let config = UiConfig::default();
        config.validate().unwrap();
        config
            .check_exposure("127.0.0.1:4318".parse().unwrap())
            .unwrap();
        config
            .check_exposure("[::1]:4318".parse().unwrap())
            .unwrap();
        let wide: SocketAddr = "0.0.0.0:4318".parse().unwrap();
        assert_eq!(
            config.check_exposure(wide),
            Err(UiConfigError::Unprotected(wide))
        );
        let mut proxied = UiConfig {
            proxy_user_header: Some("X-Forwarded-User".into()),
            ..UiConfig::default()
        };
        assert_eq!(
            proxied.check_exposure(wide),
            Err(UiConfigError::ProxyOnSharedListener(wide))
        );
        proxied.listen_addr = Some(wide);
        proxied.check_exposure(wide).unwrap();
    }

    #[test]
    fn users_are_checked() {
        let user = |name: &str, hash: &str| UiUser {
            name: name.into(),
            password_hash: hash.into(),
        };
        let hash = crate::auth::hash_password("correct horse").unwrap();
        let mut config = UiConfig {
            users: vec![user("ana", &hash)],
            ..UiConfig::default()
        };
        config.validate().unwrap();
        config
            .check_exposure("0.0.0.0:4318".parse().unwrap())
            .unwrap();
        config.users.push(user("ana", &hash));
        assert_eq!(
            config.validate(),
            Err(UiConfigError::DuplicateUser("ana".into()))
        );
        config.users = vec![user("a b", &hash)];
        assert_eq!(
            config.validate(),
            Err(UiConfigError::BadUserName("a b".into()))
        );
        config.users = vec![user("ana", "plain-text")];
        assert_eq!(
            config.validate(),
            Err(UiConfigError::BadPasswordHash("ana".into()))
        );
    }
}
