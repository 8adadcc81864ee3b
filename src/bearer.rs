//! Bearer tokens that last as long as the program: a fixed token, a token file
//! re-read when it is rotated, Dex's password grant renewed before its ID
//! token expires, or a device login renewed by its refresh token. Callers ask for the token before each request (cheap when
//! nothing changed) and call `refresh` with the token the server refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use cookie_store::CookieStore;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::Options;
use crate::error::{Checker, Error, Result};
use crate::http::Transport;
use crate::renew::{Credential, Renew, Renewable, Renewing, refresh_at};
use crate::sso::SsoLogin;
use crate::token::{self, Claims};
use crate::token_file::TokenFile;

/// Where the token comes from.
pub enum Source {
    /// Given as a string: it never changes.
    Fixed(Arc<SecretString>),
    /// A file, re-read when it changes on disk.
    File(TokenFile),
    /// Dex's password grant.
    Grant(Box<PasswordGrant>),
    /// An SSO login (device or browser) renewed by its refresh token.
    Sso(Box<SsoLogin>),
}

pub struct Bearer {
    source: Source,
}

impl Bearer {
    /// A token given as a string, e.g. from `kubectl create token`. It need
    /// not be a JWT (claims are then unknown), but it must fit in a header.
    pub fn fixed(token: SecretString) -> Result<Self> {
        let t = token.expose_secret().trim();
        if t.is_empty() {
            return Err(Error::invalid("existing_token", "is empty"));
        }
        if !token::fits_in_a_header(t) {
            return Err(Error::invalid(
                "existing_token",
                "holds whitespace, control or non-ASCII characters, so it cannot be sent in a header; \
                 pass the token alone",
            ));
        }
        Ok(Bearer {
            source: Source::Fixed(Arc::new(SecretString::from(t))),
        })
    }

    /// A token file, read now (so a missing or broken file fails at once) and
    /// again whenever it changes.
    pub fn file(path: PathBuf) -> Result<Self> {
        let file = TokenFile::new(path);
        file.token()?;
        Ok(Bearer {
            source: Source::File(file),
        })
    }

    /// Dex's password grant; the first grant happens on first use.
    pub fn grant(cfg: GrantConfig) -> Result<Self> {
        if cfg.client_id.is_empty() {
            return Err(Error::invalid("dex_client_id", "is empty"));
        }
        cfg.options.check()?;
        Transport::check(&cfg.options)?;
        Ok(Bearer {
            source: Source::Grant(Box::new(PasswordGrant::new(cfg))),
        })
    }

    /// An SSO login; the first login happens on first use (or on `login`).
    pub fn sso(login: SsoLogin) -> Self {
        Bearer {
            source: Source::Sso(Box::new(login)),
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The token to send now.
    pub async fn token(&self) -> Result<Arc<SecretString>> {
        match &self.source {
            Source::Fixed(t) => Ok(t.clone()),
            Source::File(f) => f.token(),
            Source::Grant(g) => g.token().await,
            Source::Sso(d) => d.token().await,
        }
    }

    /// The token without any network traffic, if one is at hand: always for
    /// fixed tokens and files, and for a grant while its token is valid.
    pub fn cached(&self) -> Option<Result<Arc<SecretString>>> {
        match &self.source {
            Source::Fixed(t) => Some(Ok(t.clone())),
            Source::File(f) => Some(f.token()),
            Source::Grant(g) => g.cached().map(Ok),
            Source::Sso(d) => d.cached().map(Ok),
        }
    }

    /// The server refused `stale`: a new token, unless none can be had (a
    /// fixed token, or a file that still holds the refused token), which is
    /// an error saying so.
    pub async fn refresh(&self, stale: &str) -> Result<Arc<SecretString>> {
        let fresh = match &self.source {
            Source::Fixed(t) => t.clone(),
            Source::File(f) => f.reread()?,
            Source::Grant(g) => g.refresh(stale).await?,
            Source::Sso(d) => d.refresh(stale).await?,
        };
        if fresh.expose_secret() == stale {
            return Err(self.refused(&fresh));
        }
        Ok(fresh)
    }

    /// Force a new token now (a new grant, or a re-read of the file).
    pub async fn renew(&self) -> Result<Arc<SecretString>> {
        match &self.source {
            Source::Fixed(t) => Ok(t.clone()),
            Source::File(f) => f.reread(),
            Source::Grant(g) => g.grant_now().await,
            Source::Sso(d) => d.renew().await,
        }
    }

    /// A new login now: a device login for that source; otherwise as `renew`.
    pub async fn login(&self) -> Result<Arc<SecretString>> {
        match &self.source {
            Source::Sso(d) => d.login().await,
            _ => self.renew().await,
        }
    }

    fn refused(&self, token: &SecretString) -> Error {
        let expiry = match token::inspect(token).ok().and_then(|c| c.expires) {
            Some(exp) if exp <= SystemTime::now() => format!(" It expired at {}.", httpdate::fmt_http_date(exp)),
            Some(exp) => format!(" It is valid until {} by its own claims.", httpdate::fmt_http_date(exp)),
            None => String::new(),
        };
        let what = format!(
            "the API refused the bearer token from {} (HTTP 401).{expiry}",
            self.describe()
        );
        let hint = match &self.source {
            Source::Fixed(_) => "Pass a new token (e.g. from `kubectl create token`), or a token file that is rotated",
            Source::File(_) => {
                "The file still holds the refused token: check that it is being rotated, and its audience"
            }
            Source::Grant(_) | Source::Sso(_) => {
                "Dex issued a token the gateway does not accept: check its issuer and audience (for oauth2-proxy \
                 without Istio, `--oidc-extra-audience` must name the client)"
            }
        };
        Error::Token {
            what,
            hint: hint.to_owned(),
        }
    }

    /// The claims of the current token, when it is a JWT and one is at hand.
    pub fn claims(&self) -> Option<Claims> {
        let token = self.cached()?.ok()?;
        token::inspect(&token).ok()
    }

    /// Where the token comes from, safe to show.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Fixed(_) => "the token given (existing_token)".to_owned(),
            Source::File(f) => format!("the token file {}", f.path().display()),
            Source::Grant(g) => format!(
                "Dex's password grant at {} for {}",
                crate::redact::url(&g.cfg.token_url),
                g.cfg.username
            ),
            Source::Sso(d) => d.describe(),
        }
    }

    /// Reads of the token file, or grants made: how often the source was consulted for real.
    pub fn fetches(&self) -> u64 {
        match &self.source {
            Source::Fixed(_) => 0,
            Source::File(f) => f.reads(),
            Source::Grant(g) => g.grants.load(Ordering::Relaxed),
            Source::Sso(d) => d.logins() + d.refreshes(),
        }
    }

    /// Tokens renewed by a refresh token (device logins); 0 for the other sources.
    pub fn refreshes(&self) -> u64 {
        match &self.source {
            Source::Sso(d) => d.refreshes(),
            _ => 0,
        }
    }
}

/// Dex's password grant (`grant_type=password` at its token endpoint), which
/// Dex allows only when `oauth2.passwordConnector` is set in its config.
#[derive(Debug)]
pub struct GrantConfig {
    /// Dex's token endpoint, e.g. `https://kubeflow.example.com/dex/token`.
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    pub username: String,
    pub password: SecretString,
    /// Space-separated; `openid` is required by Dex.
    pub scopes: String,
    pub options: Options,
}

pub struct PasswordGrant {
    cfg: GrantConfig,
    /// The ID token, and the one grant at a time that renews it.
    token: Renewable,
    grants: AtomicU64,
}

#[derive(Deserialize)]
struct TokenReply {
    id_token: Option<SecretString>,
    expires_in: Option<f64>,
    error: Option<String>,
    error_description: Option<String>,
}

impl PasswordGrant {
    fn new(cfg: GrantConfig) -> Self {
        PasswordGrant {
            cfg,
            token: Renewable::default(),
            grants: AtomicU64::new(0),
        }
    }

    fn cached(&self) -> Option<Credential> {
        self.token.fresh()
    }

    async fn token(&self) -> Result<Credential> {
        self.token.get(self).await
    }

    async fn refresh(&self, stale: &str) -> Result<Credential> {
        self.token.replace(self, stale).await
    }

    async fn grant_now(&self) -> Result<Credential> {
        self.token.renew_now(self).await
    }
}

/// A renewal is a grant.
impl Renew for PasswordGrant {
    async fn renew(&self, renewing: &Renewing<'_>) -> Result<Credential> {
        self.grants.fetch_add(1, Ordering::Relaxed);
        let transport = Transport::shared(&self.cfg.options)?;
        let started = SystemTime::now();
        let password = self.cfg.password.expose_secret();
        let secret = self.cfg.client_secret.expose_secret();
        // Client credentials go in the form (client_secret_post), which Dex
        // accepts like Basic auth; the form body is zeroised after sending.
        let form = [
            ("grant_type", "password"),
            ("username", self.cfg.username.as_str()),
            ("password", password),
            ("scope", self.cfg.scopes.as_str()),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", secret),
        ];
        let mut history = Vec::new();
        let mut jar = CookieStore::default();
        let reply = transport
            .send(Method::POST, &self.cfg.token_url, Some(&form), &mut jar, &mut history)
            .await?;
        let url = crate::redact::url(&self.cfg.token_url);
        let status = reply.status.as_u16();
        let parsed: Option<TokenReply> = serde_json::from_slice(&reply.body).ok().filter(|_| reply.is_json());
        let unexpected = |detail: String| Error::UnexpectedResponse {
            method: "POST",
            url: url.clone(),
            status: Some(status),
            detail,
        };
        let Some(body) = parsed else {
            return Err(unexpected(format!(
                "not Dex's token endpoint (no JSON answer); if Dex is not at {} pass its URL as dex_url=",
                url.trim_end_matches("/token")
            )));
        };
        let token = match (body.id_token, body.error.as_deref()) {
            (Some(t), None) if status == 200 => t,
            (_, Some("access_denied")) => {
                return Err(Error::InvalidCredentials {
                    checker: Checker::PasswordGrant,
                    status,
                    url,
                });
            }
            (_, Some("unsupported_grant_type")) => {
                return Err(unexpected(
                    "Dex does not allow the password grant: set `oauth2.passwordConnector` (e.g. to `local`) \
                     in Dex's config; Kubeflow does not set it"
                        .into(),
                ));
            }
            (_, Some("invalid_client")) => {
                return Err(unexpected(
                    "Dex rejected the client: check dex_client_id and dex_client_secret".into(),
                ));
            }
            (_, error) => {
                let description = body.error_description.map(|d| format!(": {d}")).unwrap_or_default();
                return Err(unexpected(format!(
                    "Dex answered {}{description}",
                    error.unwrap_or("no ID token")
                )));
            }
        };
        let token = Arc::new(token);
        let expires = token::inspect(&token).ok().and_then(|c| c.expires).or_else(|| {
            body.expires_in
                .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                .map(|d| started + d)
        });
        log::info!(
            target: "kfp_auth",
            "Dex's password grant at {url} gave a token for {}",
            self.cfg.username
        );
        renewing.keep(token.clone(), expires.and_then(|e| refresh_at(started, e)), started);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(sub: &str) -> String {
        crate::token::test_jwt(&format!(r#"{{"sub":"{sub}"}}"#))
    }

    #[test]
    fn debug_never_shows_the_password_the_client_secret_or_a_token() {
        let cfg = GrantConfig {
            token_url: Url::parse("https://gw.example/dex/token").unwrap(),
            client_id: "kf".into(),
            client_secret: SecretString::from("client-s3cret"),
            username: "u".into(),
            password: SecretString::from("hunter2-pw"),
            scopes: "openid".into(),
            options: Options::default(),
        };
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("client-s3cret") && !shown.contains("hunter2-pw"),
            "{shown}"
        );
        let b = Bearer::fixed(SecretString::from(jwt("someone"))).unwrap();
        let t = b.cached().unwrap().unwrap();
        assert!(!format!("{t:?}").contains(&jwt("someone")));
        assert!(!b.describe().contains(&jwt("someone")));
        let reply: TokenReply = serde_json::from_str(&format!(r#"{{"id_token":"{}"}}"#, jwt("x"))).unwrap();
        assert_eq!(reply.id_token.unwrap().expose_secret(), jwt("x"));
        let refused: TokenReply = serde_json::from_str(r#"{"error":"access_denied"}"#).unwrap();
        assert!(refused.id_token.is_none() && refused.error.as_deref() == Some("access_denied"));
    }

    #[test]
    fn a_fixed_token_must_fit_in_a_header() {
        assert!(Bearer::fixed(SecretString::from(" abc.def.ghi\n")).is_ok());
        for bad in ["", "  ", "a b", "a\nb", "é"] {
            let e = Bearer::fixed(SecretString::from(bad)).err().unwrap().to_string();
            assert!(e.contains("existing_token"), "{e}");
        }
    }

    #[tokio::test]
    async fn refusing_a_token_that_cannot_change_is_an_error_naming_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, jwt("a")).unwrap();
        let b = Bearer::file(p.clone()).unwrap();
        let t = b.token().await.unwrap();
        let e = b.refresh(t.expose_secret()).await.unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()) && e.contains("401"), "{e}");
        assert!(!e.contains(&jwt("a")), "{e}");
        // A rotated file gives the new token.
        std::fs::write(&p, jwt("b")).unwrap();
        assert_eq!(b.refresh(t.expose_secret()).await.unwrap().expose_secret(), jwt("b"));
    }
}
