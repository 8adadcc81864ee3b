//! The one error type of the core. Every message is safe to show: it names
//! URL paths and statuses, never a password, cookie value, token or query value.

use std::time::Duration;

pub type Result<T> = std::result::Result<T, Error>;

/// One request of a login as it may be shown to a user: nothing secret in it.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: &'static str,
    pub url: String,
    /// `None` when no answer came.
    pub status: Option<u16>,
    pub elapsed_ms: u64,
}

/// What checked the credentials Dex rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checker {
    /// The connector of a login through Dex's pages (`dex_auth_type`).
    Connector(String),
    /// Dex's password grant, which uses its `oauth2.passwordConnector`.
    PasswordGrant,
}

/// How a browser login failed: each is a Python class of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserFailure {
    /// The loopback port is taken by another program.
    PortInUse,
    /// A request on the callback path without this login's `state`.
    StateMismatch,
    /// No callback came back within the browser timeout.
    Timeout,
    /// Dex sent the browser back with an OAuth error (`access_denied`, `invalid_scope`...).
    Refused,
    /// Anything else: the port could not be opened, Dex refused the code.
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A constructor argument is malformed; raised before any network traffic.
    #[error("invalid `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    /// Dex showed its password form again (or refused a password grant): the username or password is wrong.
    #[error(
        "Dex rejected the username or password {} (HTTP {status} from POST {url}); check {}",
        match checker {
            Checker::Connector(id) => format!("for connector `{id}`"),
            Checker::PasswordGrant => "of the password grant".to_owned(),
        },
        match checker {
            Checker::Connector(_) => "dex_username, dex_password and dex_auth_type",
            Checker::PasswordGrant => "dex_username and dex_password (Dex checks them with its oauth2.passwordConnector)",
        }
    )]
    InvalidCredentials { checker: Checker, status: u16, url: String },

    /// Dex does not offer the requested connector.
    #[error(
        "Dex has no connector `{requested}`; it offers: {}. Set dex_auth_type to one of them",
        if offered.is_empty() { "none that could be read".to_owned() } else { offered.join(", ") }
    )]
    UnknownConnector { requested: String, offered: Vec<String> },

    /// A status or page that no Kubeflow login path produces at that step; or,
    /// with no `status`, an earlier answer that keeps this request from being sent.
    #[error(
        "{}: {detail}",
        match status {
            Some(status) => format!("unexpected answer during login: {method} {url} gave HTTP {status}"),
            None => format!("the login could not go on to {method} {url}"),
        }
    )]
    UnexpectedResponse {
        method: &'static str,
        url: String,
        status: Option<u16>,
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

    /// An answer whose body ended early: the connection closed before `Content-Length`
    /// was reached, or a chunk was missing. Not a connection failure: the server answered.
    #[error(
        "the answer to {method} {url} was cut short: the connection ended before the whole answer \
         arrived ({detail}); the server or a proxy on the way closed it early, try again"
    )]
    IncompleteBody {
        method: &'static str,
        url: String,
        detail: String,
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

    /// The SSO token cache file cannot be used safely, or another process held it too long.
    #[error("token cache {path}: {reason}")]
    TokenCache { path: String, reason: String },

    /// The secret store of the token cache (the OS keyring) failed, or cannot be used.
    #[error("{store}: {reason}")]
    SecretStore { store: String, reason: String },

    /// A bearer token (or its file) that cannot be used.
    #[error("{what}; {hint}")]
    Token { what: String, hint: String },

    /// A device login (RFC 8628) that ended without a token: the code expired
    /// before the user finished, or the user or Dex refused it.
    #[error("{what}; {hint}")]
    DeviceLogin { what: String, hint: String },

    /// A browser login (authorization code with PKCE on a loopback redirect) that
    /// ended without a token; `kind` says how.
    #[error("{what}; {hint}")]
    BrowserLogin {
        kind: BrowserFailure,
        what: String,
        hint: String,
    },

    /// The refresh token of an SSO login is no longer accepted (rotated away,
    /// revoked, expired, Dex restarted): only a new login gives a token.
    /// `hint` starts with "log in again" and says how.
    #[error("{what}; {hint}")]
    LoginRequired { what: String, hint: String },

    /// A login that failed, with the requests it made (redacted), for debugging.
    #[error("{source}")]
    Failed { source: Box<Error>, history: Vec<Step> },

    /// Any other transport failure: of a request, or (with neither `method` nor
    /// `url`) of setting up the HTTP client.
    #[error(
        "{}: {detail}",
        match (method, url) {
            (Some(method), Some(url)) => format!("HTTP request {method} {url} failed"),
            _ => "the HTTP client could not be set up".to_owned(),
        }
    )]
    Http {
        method: Option<&'static str>,
        url: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_checked_the_credentials_and_read_well_without_a_request() {
        let rejected = |checker| {
            Error::InvalidCredentials {
                checker,
                status: 401,
                url: "http://gw/dex/auth/ldap/login".into(),
            }
            .to_string()
        };
        assert_eq!(
            rejected(Checker::Connector("ldap".into())),
            "Dex rejected the username or password for connector `ldap` (HTTP 401 from POST \
             http://gw/dex/auth/ldap/login); check dex_username, dex_password and dex_auth_type"
        );
        let grant = rejected(Checker::PasswordGrant);
        assert!(
            grant.starts_with("Dex rejected the username or password of the password grant (HTTP 401")
                && grant.ends_with(
                    "check dex_username and dex_password (Dex checks them with its oauth2.passwordConnector)"
                ),
            "{grant}"
        );
        let request = Error::Http {
            method: Some("GET"),
            url: Some("http://gw/pipeline".into()),
            detail: "connection reset".into(),
        };
        assert_eq!(
            request.to_string(),
            "HTTP request GET http://gw/pipeline failed: connection reset"
        );
        let setup = Error::Http {
            method: None,
            url: None,
            detail: "no TLS backend".into(),
        };
        assert_eq!(setup.to_string(), "the HTTP client could not be set up: no TLS backend");
        let unsent = Error::UnexpectedResponse {
            method: "GET",
            url: "http://gw/pipeline".into(),
            status: None,
            detail: "a cookie set earlier in the login cannot be sent back as a header".into(),
        };
        assert_eq!(
            unsent.to_string(),
            "the login could not go on to GET http://gw/pipeline: a cookie set earlier in the login cannot be \
             sent back as a header"
        );
    }
}
