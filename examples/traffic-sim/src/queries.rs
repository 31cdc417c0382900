//! The query bank: realistic questions for the bundled help center, each with paraphrases, and
//! questions the help center cannot answer.

/// One thing a user wants to know, asked several ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// A short name for summaries.
    pub name: &'static str,
    /// The help-center document that answers it; `None` if no document does.
    pub answered_by: Option<&'static str>,
    /// The question as first asked, then paraphrases of it.
    pub phrasings: &'static [&'static str],
}

impl Topic {
    /// Whether the bundled help center answers this topic.
    pub fn is_answerable(&self) -> bool {
        self.answered_by.is_some()
    }
}

/// Topics the bundled help center answers.
pub const ANSWERABLE: &[Topic] = &[
    Topic {
        name: "reset password",
        answered_by: Some("reset-password"),
        phrasings: &[
            "How do I reset my password?",
            "I forgot my password and can't log in",
            "password reset email never arrived",
        ],
    },
    Topic {
        name: "account locked",
        answered_by: Some("account-locked"),
        phrasings: &[
            "My account is locked after too many failed sign-in attempts",
            "it says too many attempts try again later, how long do I wait?",
        ],
    },
    Topic {
        name: "enable 2fa",
        answered_by: Some("two-factor-authentication"),
        phrasings: &[
            "How do I turn on two-factor authentication?",
            "set up 2FA with an authenticator app",
        ],
    },
    Topic {
        name: "lost 2fa phone",
        answered_by: Some("two-factor-authentication"),
        phrasings: &[
            "I lost my phone and my 2FA recovery codes",
            "new phone, can't get the two-factor code anymore",
        ],
    },
    Topic {
        name: "sso setup",
        answered_by: Some("single-sign-on"),
        phrasings: &[
            "How do I set up SAML single sign-on with Okta?",
            "configure SSO for our workspace",
        ],
    },
    Topic {
        name: "change email",
        answered_by: Some("change-email"),
        phrasings: &[
            "How can I change the email address on my account?",
            "update my login email",
        ],
    },
    Topic {
        name: "delete account",
        answered_by: Some("delete-account"),
        phrasings: &[
            "How do I delete my account?",
            "I want to permanently remove my Tallyhive account",
        ],
    },
    Topic {
        name: "transfer ownership",
        answered_by: Some("transfer-ownership"),
        phrasings: &[
            "How do I transfer workspace ownership to a colleague?",
            "make someone else the owner of the workspace",
        ],
    },
    Topic {
        name: "pricing",
        answered_by: Some("plans-and-pricing"),
        phrasings: &[
            "How much does the Team plan cost per seat?",
            "what are your prices",
            "pricing for business plan per user",
        ],
    },
    Topic {
        name: "downgrade",
        answered_by: Some("change-plan"),
        phrasings: &[
            "What happens to my projects if I downgrade to Free?",
            "downgrade plan extra projects read-only?",
        ],
    },
    Topic {
        name: "seat billing",
        answered_by: Some("seats-and-billing"),
        phrasings: &[
            "Am I charged when I add a member mid-month?",
            "how are seats billed when someone joins halfway through the period",
        ],
    },
    Topic {
        name: "update card",
        answered_by: Some("payment-methods"),
        phrasings: &[
            "How do I update the credit card we pay with?",
            "change payment card",
        ],
    },
    Topic {
        name: "vat on invoice",
        answered_by: Some("invoices"),
        phrasings: &[
            "How do I add our VAT number to invoices?",
            "put company tax id on the invoice",
        ],
    },
    Topic {
        name: "refund annual",
        answered_by: Some("refunds"),
        phrasings: &[
            "Can I get a refund on my annual plan?",
            "refund for yearly subscription after renewal",
        ],
    },
    Topic {
        name: "api rate limit",
        answered_by: Some("api-rate-limits"),
        phrasings: &[
            "What are the API rate limits?",
            "I'm getting HTTP 429 Too Many Requests from the API",
            "how many API requests per minute can I make",
        ],
    },
    Topic {
        name: "api key",
        answered_by: Some("api-keys"),
        phrasings: &[
            "How do I create an API key?",
            "where do I generate a token for the REST API",
        ],
    },
    Topic {
        name: "pagination",
        answered_by: Some("api-pagination"),
        phrasings: &[
            "How does pagination work in the API? next_cursor",
            "API only returns 100 tasks, how do I get the next page",
        ],
    },
    Topic {
        name: "webhook signature",
        answered_by: Some("webhooks"),
        phrasings: &[
            "How do I verify a webhook signature?",
            "check the X-Tallyhive-Signature HMAC header",
        ],
    },
    Topic {
        name: "slack stopped",
        answered_by: Some("slack-integration"),
        phrasings: &[
            "Slack notifications stopped arriving in our channel",
            "slack integration not posting task updates anymore",
        ],
    },
    Topic {
        name: "github link",
        answered_by: Some("github-integration"),
        phrasings: &[
            "How do I link GitHub pull requests to tasks?",
            "connect github commits with task keys",
        ],
    },
    Topic {
        name: "export csv",
        answered_by: Some("export-data"),
        phrasings: &[
            "How do I export all our workspace data?",
            "download everything as CSV or JSON",
        ],
    },
    Topic {
        name: "time report pdf",
        answered_by: Some("export-time-reports"),
        phrasings: &[
            "How do I export a time report as PDF for a client?",
            "send timesheet report to client as pdf",
        ],
    },
    Topic {
        name: "import trello",
        answered_by: Some("import-data"),
        phrasings: &[
            "Can I import my boards from Trello?",
            "migrate projects from Jira or Asana",
        ],
    },
    Topic {
        name: "recurring task",
        answered_by: Some("recurring-tasks"),
        phrasings: &[
            "How do I make a task repeat every week?",
            "set up a recurring task",
        ],
    },
    Topic {
        name: "storage limit",
        answered_by: Some("storage-limits"),
        phrasings: &[
            "What is the maximum attachment size?",
            "file upload limit and storage per seat",
        ],
    },
    Topic {
        name: "audit log",
        answered_by: Some("audit-log"),
        phrasings: &[
            "Where can I see the audit log of sign-ins?",
            "security event log for admins",
        ],
    },
];

/// Topics the bundled help center does not answer (or answers only in passing).
pub const UNANSWERABLE: &[Topic] = &[
    Topic {
        name: "self-hosting",
        answered_by: None,
        phrasings: &[
            "Can I self-host Tallyhive on our own servers?",
            "is there an on-premises version",
        ],
    },
    Topic {
        name: "scim",
        answered_by: None,
        phrasings: &[
            "Do you support SCIM user provisioning and deprovisioning?",
            "automatic deprovisioning from Okta via SCIM",
        ],
    },
    Topic {
        name: "linux app",
        answered_by: None,
        phrasings: &[
            "Is there a desktop app for Linux?",
            "ubuntu desktop client download",
        ],
    },
    Topic {
        name: "dark mode",
        answered_by: None,
        phrasings: &["How do I switch to dark mode?", "change the color theme"],
    },
    Topic {
        name: "paypal",
        answered_by: None,
        phrasings: &["Can I pay with PayPal?", "paypal payment option"],
    },
    Topic {
        name: "hipaa",
        answered_by: None,
        phrasings: &[
            "Is Tallyhive HIPAA compliant? Will you sign a BAA?",
            "healthcare compliance BAA",
        ],
    },
    Topic {
        name: "merge workspaces",
        answered_by: None,
        phrasings: &[
            "How do I merge two workspaces into one?",
            "combine workspaces after an acquisition",
        ],
    },
    Topic {
        name: "language",
        answered_by: None,
        phrasings: &[
            "Can I use Tallyhive in Japanese?",
            "change the interface language",
        ],
    },
];

/// Topics nobody asks about until something changes (a launch, an outage, a new market): the
/// new topics of the scenarios' `NewTopic` event. The help center does not answer them.
pub const EMERGING: &[Topic] = &[
    Topic {
        name: "ai summaries",
        answered_by: None,
        phrasings: &[
            "How do I turn off the new AI summaries on my boards?",
            "the AI summary button appeared overnight, can admins disable it",
            "stop AI summaries for our whole organisation",
            "are AI generated summaries trained on our data",
        ],
    },
    Topic {
        name: "price change",
        answered_by: None,
        phrasings: &[
            "Why did my invoice go up this month after the pricing update?",
            "new per-seat price announced, does it apply to annual contracts",
            "can we keep the legacy pricing tier",
            "explain the pricing change email we received",
        ],
    },
    Topic {
        name: "outage",
        answered_by: None,
        phrasings: &[
            "Attachments fail to upload since this morning, is there an outage?",
            "uploads stuck at 99 percent today",
            "is file upload down right now",
            "error 503 when attaching files",
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_paraphrase_and_answerability_is_consistent() {
        for topic in ANSWERABLE.iter().chain(UNANSWERABLE).chain(EMERGING) {
            assert!(topic.phrasings.len() >= 2, "{}", topic.name);
        }
        assert!(ANSWERABLE.iter().all(Topic::is_answerable));
        assert!(!UNANSWERABLE
            .iter()
            .chain(EMERGING)
            .any(Topic::is_answerable));
    }
}
