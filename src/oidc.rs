//! What the SSO logins share: Dex's endpoints, found through the gateway; its
//! token endpoint's answers; and the checks an ID token must pass on receipt.
//!
//! Discovery is read from `<dex_url>/.well-known/openid-configuration`, where
//! `dex_url` defaults to `/dex` on the API's origin (Kubeflow's gateway serves Dex
//! there). A Dex whose issuer is the in-cluster URL names that unreachable host in
//! every endpoint, so each endpoint under the issuer is mapped onto `dex_url`: the
//! URL that just answered for that issuer reaches the same Dex.

use cookie_store::CookieStore;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::SystemTime;
use url::Url;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::http::{Reply, Transport};
use crate::redact;
use crate::token::{self, Claims};

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const AUTH_CODE_GRANT: &str = "authorization_code";

/// Who logs in, and how Dex is reached: what each grant needs of an SSO
/// login's settings (`sso::SsoConfig`), lent to it for the login.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub client_id: &'a str,
    /// Space-separated; `openid` is required, `offline_access` gives the refresh token.
    pub scopes: &'a str,
    /// The Dex connector to log in with, when the caller named one.
    pub connector: Option<&'a str>,
    pub options: &'a Options,
}

/// Where Dex is reached: `dex_url`, or `/dex` on `api_url`'s origin; https when `api_url` is.
pub fn dex_base(api_url: &str, dex_url: Option<&str>) -> Result<Url> {
    crate::config::dex_base(api_url, dex_url, "tokens")
}

/// Dex's endpoints as this client reaches them.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The issuer as Dex names it: what the ID tokens' `iss` must be.
    pub issuer: String,
    pub token: Url,
    pub device: Option<Url>,
    /// Where a browser login starts (`authorization_endpoint`).
    pub authorization: Option<Url>,
    /// `grant_types_supported`; empty when Dex did not say.
    pub grants: Vec<String>,
    /// `scopes_supported`; empty when the provider did not say.
    pub scopes: Vec<String>,
    /// Where discovery was read, onto which endpoints under the issuer are mapped.
    pub base: Url,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    token_endpoint: String,
    device_authorization_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    #[serde(default)]
    grant_types_supported: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

impl Endpoints {
    /// Read discovery from `base` and map its endpoints.
    pub async fn discover(base: &Url, options: &Options) -> Result<Self> {
        let url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| Error::invalid("dex_url", e.to_string()))?;
        let reply = send(options, Method::GET, &url, None).await?;
        let shown = redact::url(&url);
        let unexpected = |detail: String| Error::UnexpectedResponse {
            method: "GET",
            url: shown.clone(),
            status: Some(reply.status.as_u16()),
            detail,
        };
        let doc: Discovery = match serde_json::from_slice(&reply.body) {
            Ok(d) if reply.status.is_success() => d,
            _ => {
                return Err(unexpected(format!(
                    "no OpenID discovery document there; if Dex is not at {} pass its URL as dex_url=",
                    redact::url(base)
                )));
            }
        };
        Endpoints::from_discovery(doc, base).map_err(unexpected)
    }

    fn from_discovery(doc: Discovery, base: &Url) -> std::result::Result<Self, String> {
        let map = |name: &str, raw: &str| -> std::result::Result<Url, String> {
            let url = map_onto(raw, &doc.issuer, base).ok_or_else(|| format!("its {name} is not a URL"))?;
            if base.scheme() == "https" && url.scheme() != "https" {
                return Err(format!(
                    "its {name} {} is plain http while Dex is reached over https",
                    redact::url(&url)
                ));
            }
            Ok(url)
        };
        Ok(Endpoints {
            token: map("token_endpoint", &doc.token_endpoint)?,
            device: doc
                .device_authorization_endpoint
                .as_deref()
                .map(|d| map("device_authorization_endpoint", d))
                .transpose()?,
            authorization: doc
                .authorization_endpoint
                .as_deref()
                .map(|a| map("authorization_endpoint", a))
                .transpose()?,
            grants: doc.grant_types_supported,
            scopes: doc.scopes_supported,
            issuer: doc.issuer,
            base: base.clone(),
        })
    }

    /// `raw` (an endpoint or a page Dex names) as this client reaches it.
    pub fn reachable(&self, raw: &str) -> Option<Url> {
        map_onto(raw, &self.issuer, &self.base)
    }

    /// An endpoint that discovery named as `field`, or an error saying it named none, and `why`.
    pub fn named(&self, url: &Option<Url>, field: &str, why: &str) -> Result<Url> {
        url.clone().ok_or_else(|| Error::UnexpectedResponse {
            method: "GET",
            url: format!("{}/.well-known/openid-configuration", redact::url(&self.base)),
            status: Some(200),
            detail: format!("the provider names no {field}: {why}"),
        })
    }

    /// An error naming `scopes` when the provider lists its scopes and `scopes` asks for
    /// one it does not list: Dex refuses such a login on its own page, where a device
    /// login cannot see it (it would wait for its code to expire), and non-Dex providers
    /// may lack Dex's `groups`. Scopes with `:` or `/` (Dex's cross-client
    /// `audience:server:client_id:`, resource URIs) are left for the provider to judge.
    pub fn check_scopes(&self, scopes: &str) -> Result<()> {
        if self.scopes.is_empty() {
            return Ok(());
        }
        let unknown: Vec<&str> = scopes
            .split_whitespace()
            .filter(|s| !s.contains([':', '/']) && !self.scopes.iter().any(|k| k == s))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(
            "scopes",
            format!(
                "asks for `{}`, which the provider at {} does not offer (its scopes_supported: {}); \
                 pass scopes= without it",
                unknown.join(" "),
                redact::url(&self.base),
                self.scopes.join(" ")
            ),
        ))
    }

    /// An error when Dex says it does not offer `grant` (it may not say).
    pub fn check_grant(&self, grant: &str, what: &str) -> Result<()> {
        if self.grants.is_empty() || self.grants.iter().any(|g| g == grant) {
            return Ok(());
        }
        Err(Error::UnexpectedResponse {
            method: "GET",
            url: format!("{}/.well-known/openid-configuration", redact::url(&self.base)),
            status: Some(200),
            detail: format!(
                "Dex does not offer the {what} (`{grant}` is not in its grant_types_supported); \
                 the admin must add it to `oauth2.grantTypes` in Dex's config (or remove that list)"
            ),
        })
    }
}

/// `raw` with its issuer prefix replaced by `base`, when it starts with the issuer.
fn map_onto(raw: &str, issuer: &str, base: &Url) -> Option<Url> {
    let issuer = issuer.trim_end_matches('/');
    match raw.strip_prefix(issuer) {
        Some(rest) if rest.is_empty() || rest.starts_with(['/', '?']) => {
            Url::parse(&format!("{}{rest}", base.as_str().trim_end_matches('/'))).ok()
        }
        _ => Url::parse(raw).ok(),
    }
}

/// One request to Dex, JSON expected back.
pub async fn send(options: &Options, method: Method, url: &Url, form: Option<&[(&str, &str)]>) -> Result<Reply> {
    let transport = Transport::shared(options)?;
    transport
        .send(method, url, form, &mut CookieStore::default(), &mut Vec::new())
        .await
}

/// The token endpoint's answer to one request, parsed.
pub struct Answer<'a> {
    pub url: &'a Url,
    pub status: u16,
    /// A 2xx status.
    pub ok: bool,
    pub body: TokenReply,
}

impl Answer<'_> {
    /// The error for an answer this grant cannot use, naming the endpoint and status.
    pub fn unexpected(&self, detail: String) -> Error {
        Error::UnexpectedResponse {
            method: "POST",
            url: redact::url(self.url),
            status: Some(self.status),
            detail,
        }
    }

    /// The error for an answer with neither tokens nor an OAuth error.
    pub fn empty(&self) -> Error {
        self.unexpected("Dex answered neither tokens nor an error".into())
    }
}

/// POST `form` to the token endpoint `url`: its answer, tokens or an OAuth error;
/// an error when the answer is not JSON (not a token endpoint).
pub async fn post_token<'a>(options: &Options, url: &'a Url, form: &[(&str, &str)]) -> Result<Answer<'a>> {
    let reply = send(options, Method::POST, url, Some(form)).await?;
    let status = reply.status.as_u16();
    match TokenReply::parse(&reply) {
        Some(body) => Ok(Answer {
            url,
            status,
            ok: reply.status.is_success(),
            body,
        }),
        None => Err(Error::UnexpectedResponse {
            method: "POST",
            url: redact::url(url),
            status: Some(status),
            detail: "not Dex's token endpoint (no JSON answer)".into(),
        }),
    }
}

/// An answer of Dex's token endpoint: tokens, or an OAuth error.
#[derive(Deserialize)]
pub struct TokenReply {
    pub id_token: Option<SecretString>,
    /// Token exchange (RFC 8693) answers its token here, its kind in `issued_token_type`.
    pub access_token: Option<SecretString>,
    pub issued_token_type: Option<String>,
    pub refresh_token: Option<SecretString>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl TokenReply {
    /// The answer, when it is JSON (Dex's errors are JSON too).
    pub fn parse(reply: &Reply) -> Option<Self> {
        serde_json::from_slice(&reply.body).ok()
    }

    /// `error: description`, as Dex gave them; never a token.
    pub fn describe_error(&self) -> String {
        let error = self.error.as_deref().unwrap_or("no error code");
        match &self.error_description {
            Some(d) => format!("{error} ({d})"),
            None => error.to_owned(),
        }
    }
}

/// The admin's change when Dex refuses the client or the grant, else `None`.
pub fn admin_change(error: &str, client_id: &str, grant: &str) -> Option<String> {
    match error {
        "invalid_client" | "unauthorized_client" => Some(format!(
            "Dex does not know the public client `{client_id}`: the admin adds it to Dex's staticClients \
             (`id: {client_id}`, `public: true`; see the SSO page of the docs), or pass the id Dex has as \
             dex_client_id"
        )),
        "unsupported_grant_type" => Some(format!(
            "Dex does not allow `{grant}`: the admin adds it to `oauth2.grantTypes` in Dex's config"
        )),
        _ => None,
    }
}

/// The checks on an ID token as it arrives, before it is used: its issuer is the
/// discovered one, it is meant for `client_id`, and it has an expiry. Its
/// signature is not checked here: it came straight from Dex's token endpoint over
/// the connection we opened, and the gateway verifies it on every request.
pub fn check_id_token(token: &SecretString, issuer: &str, client_id: &str) -> Result<Claims> {
    let claims = token::inspect(token).map_err(|_| bad_token("is not a JWT".into()))?;
    let bad = bad_token;
    match claims.issuer.as_deref() {
        Some(iss) if iss.trim_end_matches('/') == issuer.trim_end_matches('/') => {}
        Some(iss) => {
            return Err(bad(format!(
                "was issued by `{iss}`, not by `{issuer}`, the issuer Dex named"
            )));
        }
        None => return Err(bad("names no issuer (`iss`)".into())),
    }
    if !claims.audience.iter().any(|a| a == client_id) {
        return Err(bad(format!(
            "is meant for {:?}, not for the client `{client_id}`",
            claims.audience
        )));
    }
    match claims.expires {
        Some(_) => Ok(claims),
        None => Err(bad("has no expiry (`exp`)".into())),
    }
}

/// An error unless the ID token carries the `nonce` its login sent: a token made for
/// another authorization request (a code injected into the callback) has another one.
pub fn check_nonce(claims: &Claims, sent: &str) -> Result<()> {
    match claims.nonce.as_deref() {
        Some(n) if n == sent => Ok(()),
        Some(_) => Err(bad_token("carries another login's `nonce`".into())),
        None => Err(bad_token("carries no `nonce`, though the login sent one".into())),
    }
}

/// An error unless `claims` (checked by [`check_id_token`]) are still valid at `now`.
pub fn check_unexpired(claims: &Claims, now: SystemTime) -> Result<()> {
    match claims.expires {
        Some(exp) if exp > now => Ok(()),
        Some(exp) => Err(bad_token(format!("expired at {}", httpdate::fmt_http_date(exp)))),
        None => Err(bad_token("has no expiry (`exp`)".into())),
    }
}

/// An ID token that cannot be used, and what to check.
pub fn bad_token(what: String) -> Error {
    Error::Token {
        what: format!("Dex's ID token {what}"),
        hint: "check dex_url and dex_client_id, and that this machine's clock is right".into(),
    }
}

/// A token reply's ID token, when present: wiped on drop, and never shown.
pub fn id_token(reply: &mut TokenReply) -> Option<SecretString> {
    reply.id_token.take().filter(|t| !t.expose_secret().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn doc(issuer: &str) -> Discovery {
        Discovery {
            issuer: issuer.into(),
            token_endpoint: format!("{issuer}/token"),
            device_authorization_endpoint: Some(format!("{issuer}/device/code")),
            authorization_endpoint: Some(format!("{issuer}/auth")),
            grant_types_supported: vec!["refresh_token".into(), DEVICE_GRANT.into()],
            scopes_supported: Vec::new(),
        }
    }

    #[test]
    fn scopes_the_provider_does_not_list_are_refused_naming_scopes() {
        let base = dex_base("http://gw.example:8080/pipeline", None).unwrap();
        let mut d = doc("http://gw.example:8080/dex");
        let e = Endpoints::from_discovery(d, &base).unwrap();
        assert!(
            e.check_scopes("openid anything").is_ok(),
            "nothing listed: nothing refused"
        );
        d = doc("http://gw.example:8080/dex");
        d.scopes_supported = ["openid", "email", "profile", "offline_access"]
            .map(String::from)
            .to_vec();
        let e = Endpoints::from_discovery(d, &base).unwrap();
        assert!(
            e.check_scopes("openid email offline_access audience:server:client_id:x api://y/.default")
                .is_ok()
        );
        let err = e.check_scopes("openid email groups offline_access").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "scopes", .. }), "{err}");
        assert!(err.to_string().contains("`groups`"), "{err}");
    }

    #[test]
    fn an_in_cluster_issuer_is_reached_through_the_gateway() {
        let base = dex_base("http://gw.example:8080/pipeline", None).unwrap();
        assert_eq!(base.as_str(), "http://gw.example:8080/dex");
        let e = Endpoints::from_discovery(doc("http://dex.auth.svc.cluster.local:5556/dex"), &base).unwrap();
        assert_eq!(e.token.as_str(), "http://gw.example:8080/dex/token");
        assert_eq!(
            e.device.as_ref().unwrap().as_str(),
            "http://gw.example:8080/dex/device/code"
        );
        assert_eq!(
            e.authorization.as_ref().unwrap().as_str(),
            "http://gw.example:8080/dex/auth"
        );
        assert_eq!(
            e.reachable("http://dex.auth.svc.cluster.local:5556/dex/device?user_code=ABCD-EFGH")
                .unwrap()
                .as_str(),
            "http://gw.example:8080/dex/device?user_code=ABCD-EFGH"
        );
        // A public issuer at the gateway maps onto itself; a URL elsewhere stays as it is.
        let e = Endpoints::from_discovery(doc("http://gw.example:8080/dex"), &base).unwrap();
        assert_eq!(e.token.as_str(), "http://gw.example:8080/dex/token");
        assert_eq!(
            e.reachable("https://idp.example/login").unwrap().as_str(),
            "https://idp.example/login"
        );
        // Only whole path segments: /dexter is not under /dex.
        assert_eq!(
            e.reachable("http://gw.example:8080/dexter").unwrap().as_str(),
            "http://gw.example:8080/dexter"
        );
    }

    #[test]
    fn over_https_every_endpoint_must_be_https() {
        let base = dex_base("https://kf.example/pipeline", None).unwrap();
        let mut d = doc("https://kf.example/dex");
        d.token_endpoint = "http://elsewhere.example/token".into();
        let e = Endpoints::from_discovery(d, &base).unwrap_err();
        assert!(e.contains("plain http"), "{e}");
        assert!(dex_base("https://kf.example/p", Some("http://dex.example/dex")).is_err());
        assert_eq!(
            dex_base("http://h/p", Some("http://dex:5556/dex/?x=1"))
                .unwrap()
                .as_str(),
            "http://dex:5556/dex"
        );
    }

    #[test]
    fn a_grant_dex_does_not_offer_names_the_admin_change() {
        let base = dex_base("http://gw/p", None).unwrap();
        let mut d = doc("http://gw/dex");
        d.grant_types_supported = vec!["authorization_code".into()];
        let e = Endpoints::from_discovery(d, &base)
            .unwrap()
            .check_grant(DEVICE_GRANT, "device login")
            .unwrap_err()
            .to_string();
        assert!(e.contains("oauth2.grantTypes"), "{e}");
        assert!(
            admin_change("invalid_client", "kfp-auth", DEVICE_GRANT)
                .unwrap()
                .contains("public: true")
        );
    }

    fn jwt(payload: &str) -> SecretString {
        SecretString::from(crate::token::test_jwt(payload))
    }

    #[test]
    fn an_id_token_must_fit_issuer_audience_and_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ok = jwt(r#"{"iss":"http://gw/dex","aud":"kfp-auth","exp":2000,"sub":"s"}"#);
        let claims = check_id_token(&ok, "http://gw/dex", "kfp-auth").unwrap();
        assert!(check_unexpired(&claims, now).is_ok());
        let many = jwt(r#"{"iss":"http://gw/dex","aud":["x","kfp-auth"],"exp":2000}"#);
        assert!(check_id_token(&many, "http://gw/dex", "kfp-auth").is_ok());
        for (payload, says) in [
            (
                r#"{"iss":"http://other/dex","aud":"kfp-auth","exp":2000}"#,
                "issued by `http://other/dex`",
            ),
            (r#"{"aud":"kfp-auth","exp":2000}"#, "names no issuer"),
            (
                r#"{"iss":"http://gw/dex","aud":"kubeflow","exp":2000}"#,
                "not for the client `kfp-auth`",
            ),
            (r#"{"iss":"http://gw/dex","aud":"kfp-auth","exp":500}"#, "expired at"),
            (r#"{"iss":"http://gw/dex","aud":"kfp-auth"}"#, "has no expiry"),
        ] {
            let t = jwt(payload);
            let e = check_id_token(&t, "http://gw/dex", "kfp-auth")
                .and_then(|c| check_unexpired(&c, now))
                .unwrap_err();
            let shown = e.to_string();
            assert!(matches!(e, Error::Token { .. }) && shown.contains(says), "{shown}");
            assert!(!shown.contains(t.expose_secret()), "{shown}");
        }
        let with_nonce = jwt(r#"{"iss":"http://gw/dex","aud":"kfp-auth","exp":2000,"nonce":"n-1"}"#);
        let claims = check_id_token(&with_nonce, "http://gw/dex", "kfp-auth").unwrap();
        assert!(check_nonce(&claims, "n-1").is_ok());
        for (sent, claims, says) in [
            ("n-2", claims.clone(), "another login's `nonce`"),
            ("n-1", Claims::default(), "carries no `nonce`"),
        ] {
            let e = check_nonce(&claims, sent).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains("n-1") && !e.contains("n-2"), "{e}");
        }
        let e = check_id_token(&SecretString::from("opaque"), "i", "c").unwrap_err();
        assert!(e.to_string().contains("is not a JWT"));
    }
}
