//! [`Secret`]: a configuration value that is never printed.

use std::fmt;
use std::ops::Deref;

use serde::Deserialize;

/// What a redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// A credential-bearing configuration value: a signing secret, a header value, a webhook URL
/// (a Slack incoming-webhook URL is itself a bearer secret).
///
/// It reads as the text it holds (`Deref<Target = str>`), but its `Debug` output is
/// `"<redacted>"`, so a configuration printed with `{:?}` (as `closedloop check-config` does,
/// or a log line) never shows it, whichever section or field it is in. It has no `Display`.
///
/// ```
/// use closedloop_engine::secret::Secret;
///
/// let secret = Secret::from("hunter2");
/// assert_eq!(&*secret, "hunter2");
/// assert_eq!(format!("{secret:?}"), "\"<redacted>\"");
/// ```
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The text, for the one place that must use it (signing, a request header, a URL).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(REDACTED, f)
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::from("xoxb-123");
        assert_eq!(secret.expose(), "xoxb-123");
        assert!(!format!("{secret:?} {secret:#?}").contains("xoxb"));
        let nested = Some(vec![("authorization", Secret::from("Bearer abc"))]);
        assert!(!format!("{nested:#?}").contains("abc"));
    }

    #[test]
    fn deserializes_from_a_string() {
        #[derive(Deserialize)]
        struct Holder {
            secret: Secret,
        }
        let holder: Holder = toml::from_str("secret = \"s3cret\"").unwrap();
        assert_eq!(&*holder.secret, "s3cret");
    }
}
