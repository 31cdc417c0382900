//! The error of parsing an attribute value into one of the typed enums.

use std::error::Error;
use std::fmt;

/// A string that is not one of the well-known values of an enum attribute.
///
/// Returned by the `FromStr` implementations of the enums in [`crate::attribute`].
///
/// # Examples
///
/// ```
/// use closedloop_semconv::attribute::{FeedbackSignal, CLOSEDLOOP_FEEDBACK_SIGNAL};
///
/// let error = "meh".parse::<FeedbackSignal>().unwrap_err();
/// assert_eq!(error.attribute(), CLOSEDLOOP_FEEDBACK_SIGNAL);
/// assert_eq!(error.value(), "meh");
/// assert_eq!(
///     error.to_string(),
///     "unknown value `meh` for attribute `closedloop.feedback.signal`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    attribute: &'static str,
    value: String,
}

impl UnknownValue {
    pub(crate) fn new(attribute: &'static str, value: &str) -> Self {
        Self {
            attribute,
            value: value.to_owned(),
        }
    }

    /// The attribute whose value was rejected.
    pub fn attribute(&self) -> &'static str {
        self.attribute
    }

    /// The rejected value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value `{}` for attribute `{}`",
            self.value, self.attribute
        )
    }
}

impl Error for UnknownValue {}
