//! Token exchange (RFC 8693) at Dex: an ID token the environment already holds (a
//! GitHub Actions OIDC token, a cloud workload identity, a projected Kubernetes
//! token) traded for Dex's own ID token, with no person involved. For CI.
//!
//! Dex (≥ 2.38) verifies the subject token with the `oidc` connector named by
//! `connector_id`: signed by the connector's `issuer`, unexpired; its audience is
//! not checked. The answer has the new token in `access_token` and no refresh
//! token, so a renewal is another exchange with the subject token read anew. What
//! becomes of the token is `sso.rs`'s business.

use std::sync::Arc;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::http::Transport;
use crate::oidc::{self, Client, Endpoints, TokenReply};
use crate::redact;
use crate::token;
use crate::token_file::TokenFile;

pub const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// GitHub Actions' variables for a job's OIDC token (set with `permissions: id-token: write`).
pub const GITHUB_URL_ENV: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub const GITHUB_TOKEN_ENV: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Where the subject token comes from; read anew for every exchange.
pub enum Subject {
    /// A file, e.g. a projected ServiceAccount token that the kubelet rotates.
    File(TokenFile),
    /// Given as a string: renewals exchange it again until it expires.
    Literal(SecretString),
    /// A GitHub Actions job's OIDC token, asked of GitHub for each exchange.
    GithubActions {
        url: Url,
        request_token: SecretString,
        audience: String,
    },
}

/// Names the source, never a token.
impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[derive(Deserialize)]
struct GithubToken {
    value: SecretString,
}

impl Subject {
    /// A token file, read now (a missing or broken file fails at once) and at each exchange.
    pub fn file(path: std::path::PathBuf) -> Result<Self> {
        let file = TokenFile::new(path);
        file.token().map_err(subject_file_error)?;
        Ok(Subject::File(file))
    }

    /// A token given as a string; it must be a JWT (an ID token).
    pub fn literal(token: SecretString) -> Result<Self> {
        let t = token.expose_secret().trim();
        if !token::fits_in_a_header(t) {
            return Err(Error::invalid(
                "subject_token",
                "is empty, or holds whitespace, control or non-ASCII characters; pass the ID token alone",
            ));
        }
        if token::claims(t).is_err() {
            return Err(Error::invalid(
                "subject_token",
                "is not a JWT: token exchange takes an ID token of the identity provider",
            ));
        }
        Ok(Subject::Literal(SecretString::from(t)))
    }

    /// GitHub Actions' OIDC token, from the job's environment.
    pub fn github_actions(audience: String) -> Result<Self> {
        let missing = |name: &str| {
            Error::invalid(
                "subject_token",
                format!(
                    "${name} is not set: this is not a GitHub Actions job, or the job lacks \
                     `permissions: id-token: write`"
                ),
            )
        };
        let url = std::env::var(GITHUB_URL_ENV).map_err(|_| missing(GITHUB_URL_ENV))?;
        let token = std::env::var(GITHUB_TOKEN_ENV).map_err(|_| missing(GITHUB_TOKEN_ENV))?;
        Self::github_actions_at(&url, SecretString::from(token), audience)
    }

    /// GitHub Actions' OIDC token, asked at `url` with `request_token`.
    pub fn github_actions_at(url: &str, request_token: SecretString, audience: String) -> Result<Self> {
        let url = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Error::invalid("subject_token", format!("${GITHUB_URL_ENV} is not an http(s) URL")))?;
        if request_token.expose_secret().is_empty() || !token::fits_in_a_header(request_token.expose_secret()) {
            return Err(Error::invalid(
                "subject_token",
                format!("${GITHUB_TOKEN_ENV} is empty or cannot be sent in a header"),
            ));
        }
        if audience.is_empty() {
            return Err(Error::invalid("subject_audience", "is empty"));
        }
        Ok(Subject::GithubActions {
            url,
            request_token,
            audience,
        })
    }

    /// Where the subject token comes from, safe to show.
    pub fn describe(&self) -> String {
        match self {
            Subject::File(f) => format!("the subject token file {}", f.path().display()),
            Subject::Literal(_) => "the subject token given".to_owned(),
            Subject::GithubActions { url, audience, .. } => {
                format!(
                    "GitHub Actions' OIDC token (audience {audience}) from {}",
                    redact::url(url)
                )
            }
        }
    }

    /// The subject token as it is now.
    async fn read(&self, options: &Options) -> Result<Arc<SecretString>> {
        match self {
            Subject::File(f) => f.reread().map_err(subject_file_error),
            Subject::Literal(t) => Ok(Arc::new(t.clone())),
            Subject::GithubActions {
                url,
                request_token,
                audience,
            } => github_token(options, url, request_token, audience).await,
        }
    }
}

/// A token file's error with the hint for a subject token (the file reader's names kfp's variable).
fn subject_file_error(e: Error) -> Error {
    match e {
        Error::Token { what, .. } => Error::Token {
            what,
            hint: "subject_token_file must hold the identity provider's ID token alone, e.g. a projected \
                   ServiceAccount token whose issuer is the `oidc` connector's"
                .into(),
        },
        e => e,
    }
}

/// `GET <url>&audience=<audience>` with `Authorization: bearer <request token>`: `{"value": <JWT>}`.
async fn github_token(
    options: &Options,
    url: &Url,
    request_token: &SecretString,
    audience: &str,
) -> Result<Arc<SecretString>> {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair("audience", audience);
    let transport = Transport::shared(options)?;
    let reply = transport
        .send_authorized(Method::GET, &url, ("bearer", request_token), &mut Vec::new())
        .await?;
    let refused = |what: String| Error::Token {
        what: format!("GitHub Actions gave no OIDC token: {what}"),
        hint: format!(
            "the job needs `permissions: id-token: write`, and ${GITHUB_URL_ENV} and ${GITHUB_TOKEN_ENV} as \
             GitHub sets them"
        ),
    };
    if !reply.status.is_success() {
        return Err(refused(format!(
            "GET {} answered HTTP {}",
            redact::url(&url),
            reply.status.as_u16()
        )));
    }
    let token = serde_json::from_slice::<GithubToken>(&reply.body)
        .map_err(|_| refused(format!("GET {} answered no `value`", redact::url(&url))))?
        .value;
    if !token::fits_in_a_header(token.expose_secret()) || token::inspect(&token).is_err() {
        return Err(refused(format!(
            "GET {} answered a `value` that is not a JWT",
            redact::url(&url)
        )));
    }
    Ok(Arc::new(token))
}

/// An exchange at Dex: the subject token, read now, for Dex's ID token for the
/// client. The answer holds it as `id_token`, as the other grants' answers do.
pub(crate) async fn obtain(cfg: &Client<'_>, subject: &Subject, ep: &Endpoints) -> Result<TokenReply> {
    ep.check_grant(EXCHANGE_GRANT, "token exchange")?;
    let connector = cfg.connector.ok_or_else(missing_connector)?;
    let token = subject.read(cfg.options).await?;
    let form = [
        ("grant_type", EXCHANGE_GRANT),
        ("client_id", cfg.client_id),
        ("connector_id", connector),
        ("subject_token", token.expose_secret()),
        ("subject_token_type", ID_TOKEN_TYPE),
        ("requested_token_type", ID_TOKEN_TYPE),
        ("scope", cfg.scopes),
    ];
    let mut reply = oidc::post_token(cfg.options, &ep.token, &form).await?;
    let Some(error) = reply.body.error.clone() else {
        if !reply.ok {
            return Err(reply.empty());
        }
        return match reply.body.issued_token_type.as_deref() {
            Some(ID_TOKEN_TYPE) => {
                reply.body.id_token = reply.body.access_token.take();
                log::info!(
                    target: "kfp_auth",
                    "token exchange: Dex's connector `{connector}` took {}",
                    subject.describe()
                );
                Ok(reply.body)
            }
            other => Err(reply.unexpected(format!(
                "Dex issued {} instead of an ID token: it does not do token exchange as Dex ≥ 2.38 does",
                other.map_or_else(
                    || "no issued_token_type".to_owned(),
                    |t| format!("`{}`", redact::text(t))
                )
            ))),
        };
    };
    Err(refusal(
        &error,
        &reply.body,
        reply.status,
        cfg,
        connector,
        subject,
        &token,
        &ep.token,
    ))
}

/// What Dex's refusal means, and whose change it needs.
#[allow(clippy::too_many_arguments)]
fn refusal(
    error: &str,
    body: &TokenReply,
    status: u16,
    cfg: &Client<'_>,
    connector: &str,
    subject: &Subject,
    token: &SecretString,
    url: &Url,
) -> Error {
    let unexpected = |detail: String| Error::UnexpectedResponse {
        method: "POST",
        url: redact::url(url),
        status: Some(status),
        detail,
    };
    let claims = token::inspect(token).ok();
    let issuer = claims
        .as_ref()
        .and_then(|c| c.issuer.as_deref())
        .map_or_else(|| "no issuer".to_owned(), |i| format!("`{}`", redact::text(i)));
    match error {
        "access_denied" => {
            let expiry = match claims.as_ref().and_then(|c| c.expires) {
                Some(exp) if exp <= std::time::SystemTime::now() => {
                    format!("; it expired at {}", httpdate::fmt_http_date(exp))
                }
                Some(_) => String::new(),
                None => "; it has no expiry".to_owned(),
            };
            Error::Token {
                what: format!(
                    "Dex's connector `{connector}` refused the subject token from {} (HTTP {status} \
                     access_denied): it was issued by {issuer}{expiry}",
                    subject.describe()
                ),
                hint: format!(
                    "the subject token must be an unexpired ID token signed by the issuer of the `oidc` connector \
                     `{connector}`: pass the identity provider's token, or the admin sets that connector's \
                     `issuer` to {issuer}"
                ),
            }
        }
        "invalid_request" if body.error_description.as_deref() == Some("Requested connector does not exist.") => {
            unexpected(format!(
                "Dex has no connector `{connector}` that can exchange tokens: dex_auth_type must name a connector \
                 of type `oidc` whose `issuer` is the identity provider that issued the subject token \
                 ({issuer}); the admin adds one to Dex's `connectors` if there is none"
            ))
        }
        "unsupported_grant_type" => unexpected(format!(
            "Dex does not allow token exchange: it needs Dex 2.38 or later, and where Dex's config lists \
             `oauth2.grantTypes`, the admin adds `{EXCHANGE_GRANT}` to it"
        )),
        e => unexpected(
            oidc::admin_change(e, cfg.client_id, EXCHANGE_GRANT)
                .unwrap_or_else(|| format!("Dex refused the token exchange: {}", body.describe_error())),
        ),
    }
}

fn missing_connector() -> Error {
    Error::invalid(
        "dex_auth_type",
        "token exchange needs the id of Dex's `oidc` connector whose issuer signed the subject token",
    )
}

/// Checked when the login is set up, before any request.
pub(crate) fn check(cfg: &Client<'_>) -> Result<()> {
    cfg.connector.map(|_| ()).ok_or_else(missing_connector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::test_jwt as jwt;

    fn cfg() -> Client<'static> {
        Client {
            client_id: "kfp-auth",
            scopes: "openid email",
            connector: Some("github"),
            options: Box::leak(Box::default()),
        }
    }

    fn reply(json: &str) -> TokenReply {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_refusal_names_the_admin_change_or_the_users_mistake() {
        let subject = SecretString::from(jwt(r#"{"iss":"https://token.actions.githubusercontent.com","exp":1}"#));
        let source = Subject::Literal(subject.clone());
        let url = Url::parse("http://gw/dex/token").unwrap();
        let refused = |json: &str, status| {
            let body = reply(json);
            refusal(
                body.error.as_deref().unwrap(),
                &body,
                status,
                &cfg(),
                "github",
                &source,
                &subject,
                &url,
            )
        };
        let denied = refused(r#"{"error":"access_denied"}"#, 401);
        let shown = denied.to_string();
        assert!(matches!(denied, Error::Token { .. }), "{shown}");
        assert!(
            shown.contains("`https://token.actions.githubusercontent.com`")
                && shown.contains("expired at")
                && shown.contains("connector `github`"),
            "{shown}"
        );
        let no_connector = refused(
            r#"{"error":"invalid_request","error_description":"Requested connector does not exist."}"#,
            400,
        )
        .to_string();
        assert!(
            no_connector.contains("type `oidc`") && no_connector.contains("dex_auth_type"),
            "{no_connector}"
        );
        let grant = refused(r#"{"error":"unsupported_grant_type"}"#, 400).to_string();
        assert!(
            grant.contains("oauth2.grantTypes") && grant.contains(EXCHANGE_GRANT),
            "{grant}"
        );
        let client = refused(r#"{"error":"invalid_client"}"#, 401).to_string();
        assert!(client.contains("public: true"), "{client}");
        let other = refused(
            r#"{"error":"request_not_supported","error_description":"Invalid x."}"#,
            400,
        )
        .to_string();
        assert!(other.contains("request_not_supported (Invalid x.)"), "{other}");
        for e in [denied.to_string(), no_connector, grant, client, other] {
            assert!(!e.contains(subject.expose_secret()), "{e}");
        }
    }

    #[test]
    fn a_subject_token_is_checked_when_given() {
        assert!(Subject::literal(SecretString::from(format!(" {}\n", jwt("{}")))).is_ok());
        for bad in ["", "a b", "opaque"] {
            let e = Subject::literal(SecretString::from(bad)).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidArgument {
                        name: "subject_token",
                        ..
                    }
                ),
                "{e}"
            );
        }
        let gh = Subject::github_actions_at(
            "https://gh.example/token?api-version=2.0",
            SecretString::from("request-s3cret"),
            "kfp-auth".into(),
        )
        .unwrap();
        let shown = format!("{gh:?}");
        assert!(
            shown.contains("https://gh.example/token?api-version=…") && !shown.contains("request-s3cret"),
            "{shown}"
        );
        assert!(Subject::github_actions_at("file:///x", SecretString::from("t"), "a".into()).is_err());
        assert!(Subject::github_actions_at("https://gh/x", SecretString::from(""), "a".into()).is_err());
        let mut c = cfg();
        c.connector = None;
        assert!(check(&c).unwrap_err().to_string().contains("dex_auth_type"));
    }
}
