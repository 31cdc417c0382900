//! The feedback vocabulary, mirrored from the registry until `closedloop_semconv` generates it.

use std::fmt;
use std::str::FromStr;

macro_rules! vocab_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The attribute value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($value => Ok(Self::$variant),)+
                    _ => Err(UnknownValue),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A value that is not a member of the enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown enum value")]
pub struct UnknownValue;

vocab_enum!(
    /// `closedloop.feedback.signal`.
    FeedbackSignal {
        /// Explicit approval.
        ThumbsUp => "thumbs_up",
        /// Explicit disapproval.
        ThumbsDown => "thumbs_down",
        /// A rating normalised into the value.
        Rating => "rating",
        /// Another answer was requested.
        Regenerate => "regenerate",
        /// The query was asked again differently.
        Rephrase => "rephrase",
        /// The answer was edited.
        Edit => "edit",
        /// The answer was copied.
        Copy => "copy",
        /// The session went quiet.
        Abandon => "abandon",
        /// A human was asked for.
        Escalate => "escalate",
        /// The answer was reported.
        Report => "report",
        /// A reviewer's label.
        Label => "label",
    }
);

vocab_enum!(
    /// `closedloop.feedback.kind`.
    FeedbackKind {
        /// Given on purpose.
        Explicit => "explicit",
        /// Read from behaviour.
        Implicit => "implicit",
    }
);

vocab_enum!(
    /// `closedloop.feedback.source`.
    FeedbackSource {
        /// The end user.
        User => "user",
        /// The application.
        App => "app",
        /// A detector or evaluator.
        Detector => "detector",
        /// A reviewer.
        Reviewer => "reviewer",
    }
);

vocab_enum!(
    /// `closedloop.failure.category`.
    FailureCategory {
        /// The chunks did not match the question.
        IrrelevantContext => "irrelevant_context",
        /// The needed information was not retrieved.
        MissingContext => "missing_context",
        /// The answer is unsupported by its context.
        Hallucination => "hallucination",
        /// The answer is incorrect.
        WrongAnswer => "wrong_answer",
        /// The answer leaves out what was asked.
        Incomplete => "incomplete",
        /// The answer has the wrong form.
        Format => "format",
        /// The model declined.
        Refusal => "refusal",
        /// The answer is unsafe.
        Harmful => "harmful",
        /// No more specific category.
        Other => "other",
    }
);
