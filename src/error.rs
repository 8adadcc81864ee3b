//! The one error type of the core. Every message is safe to show: it names
//! URL paths and statuses, never a password, cookie value, token or query value.

use std::time::Duration;

use crate::http::Step;

pub type Result<T> = std::result::Result<T, Error>;

/// The `connector` of an `InvalidCredentials` from Dex's password grant.
pub const PASSWORD_GRANT: &str = "password grant";

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A constructor argument is malformed; raised before any network traffic.
    #[error("invalid `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    /// Dex showed its password form again (or refused a password grant): the username or password is wrong.
    #[error(
        "Dex rejected the username or password {} (HTTP {status} from POST {url}); check {}",
        if connector == PASSWORD_GRANT { "of the password grant".to_owned() } else { format!("for connector `{connector}`") },
        if connector == PASSWORD_GRANT {
            "dex_username and dex_password (Dex checks them with its oauth2.passwordConnector)"
        } else {
            "dex_username, dex_password and dex_auth_type"
        }
    )]
    InvalidCredentials {
        connector: String,
        status: u16,
        url: String,
    },

    /// Dex does not offer the requested connector.
    #[error(
        "Dex has no connector `{requested}`; it offers: {}. Set dex_auth_type to one of them",
        if offered.is_empty() { "none that could be read".to_owned() } else { offered.join(", ") }
    )]
    UnknownConnector { requested: String, offered: Vec<String> },

    /// A status or page that no Kubeflow login path produces at that step.
    #[error("unexpected answer during login: {method} {url} gave HTTP {status}: {detail}")]
    UnexpectedResponse {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
    },

    /// Redirects went on longer than the bound, or the flow did not converge.
    #[error(
        "login did not finish within {limit} {what} (last: {url}); \
         the gateway or Dex is probably misconfigured"
    )]
    TooManySteps {
        what: &'static str,
        limit: usize,
        url: String,
    },

    /// A response body was larger than the cap.
    #[error(
        "the answer to {method} {url} is larger than {limit} bytes; \
         this is not a Kubeflow login page (raise max_body_bytes if it is)"
    )]
    BodyTooLarge {
        method: &'static str,
        url: String,
        limit: usize,
    },

    /// The TLS handshake failed, usually on certificate verification.
    #[error("TLS failed for {url}: {detail}. {remedy}")]
    Tls {
        url: String,
        detail: String,
        /// What to do, by cause: a CA bundle for an unknown issuer, renewal for an expired certificate...
        remedy: &'static str,
    },

    /// No TCP connection could be made, or it broke.
    #[error("could not connect to {url}: {detail}; check api_url and that the gateway is reachable")]
    Connect { url: String, detail: String },

    /// A request took longer than the timeout.
    #[error("{method} {url} timed out after {:.1} s; the server did not answer (raise `timeout` if it is just slow)", .after.as_secs_f64())]
    Timeout {
        method: &'static str,
        url: String,
        after: Duration,
    },

    /// The whole login took longer than the timeout, whatever each request took.
    #[error(
        "the login timed out after {:.1} s: `timeout` bounds the whole login, and its {requests} requests \
         (the last: {url}) took that long. The gateway or Dex is too slow, or sends the login round in \
         circles (raise `timeout` if it is just slow)",
        .after.as_secs_f64()
    )]
    LoginTimeout {
        after: Duration,
        requests: usize,
        url: String,
    },

    /// The session cache file cannot be used safely.
    #[error("session cache {path}: {reason}")]
    SessionCache { path: String, reason: String },

    /// A bearer token (or its file) that cannot be used.
    #[error("{what}; {hint}")]
    Token { what: String, hint: String },

    /// A login that failed, with the requests it made (redacted), for debugging.
    #[error("{source}")]
    Failed { source: Box<Error>, history: Vec<Step> },

    /// Any other transport failure.
    #[error("HTTP request {method} {url} failed: {detail}")]
    Http {
        method: &'static str,
        url: String,
        detail: String,
    },
}

impl Error {
    /// The error itself, without the login history around it.
    pub fn root(&self) -> &Error {
        match self {
            Error::Failed { source, .. } => source.root(),
            e => e,
        }
    }

    /// The requests of the failed login, when it got that far.
    pub fn history(&self) -> &[Step] {
        match self {
            Error::Failed { history, .. } => history,
            _ => &[],
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}
