//! Logging in without a password: Dex's ID token, obtained once by a login the
//! user finishes in a browser (the device grant, `device.rs`), and renewed by its
//! refresh token before it expires and when the API refuses it; or obtained by
//! token exchange (`exchange.rs`), which has no refresh token and renews by
//! exchanging again.
//!
//! Renewals go through the one renewal sequence (`renew.rs`): Dex rotates
//! refresh tokens on every use and refuses the old one, so renewals must never
//! overlap. A refresh token Dex no longer accepts ends in `Error::LoginRequired`,
//! and stays the answer until a new login is asked for: a job in the middle of a
//! run gets the error, not a prompt that nobody sees.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::browser::{self, BrowserStart};
use crate::config::Options;
use crate::device::{self, DeviceEvent, Prompt};
use crate::error::{Error, Result};
use crate::exchange::{self, Subject};
use crate::oidc::{self, Endpoints, TokenReply};
use crate::redact;
use crate::renew::{Credential, Need, Renew, Renewable, Renewing, refresh_at};

/// The client Kubeflow's admin registers for kfp-auth (a public one).
pub const DEFAULT_CLIENT_ID: &str = "kfp-auth";
/// `offline_access` for a refresh token; `groups` for Kubeflow's group-based access.
pub const DEFAULT_SCOPES: &str = "openid email profile groups offline_access";

/// How the first login (and any login after the refresh token died) is made.
#[derive(Debug, Clone)]
pub enum Start {
    /// RFC 8628: the user opens a page anywhere and enters a code.
    Device {
        /// Seconds between polls instead of Dex's `interval` (`slow_down` still applies).
        poll_interval: Option<Duration>,
    },
    /// Authorization code with PKCE: the user's browser comes back to a loopback port
    /// (the device login where no browser can be opened).
    Browser(BrowserStart),
    /// RFC 8693: an ID token the environment holds, traded with the connector
    /// `SsoConfig::connector`; no person involved, and every renewal is an exchange.
    Exchange(Arc<Subject>),
}

/// An SSO login's settings; everything here is safe to print.
#[derive(Debug, Clone)]
pub struct SsoConfig {
    /// Where Dex is reached (discovery is read there; endpoints under the issuer map onto it).
    pub dex_url: Url,
    pub client_id: String,
    /// Space-separated; `openid` is required, `offline_access` gives the refresh token.
    pub scopes: String,
    /// The Dex connector to log in with, when the caller named one.
    pub connector: Option<String>,
    pub start: Start,
    pub options: Options,
}

/// The ID token and refresh token of an SSO login, renewed by refresh.
pub struct SsoLogin {
    cfg: SsoConfig,
    prompt: Arc<dyn Prompt>,
    /// Discovered at each login, reused by the refreshes that follow it.
    endpoints: Mutex<Option<Arc<Endpoints>>>,
    /// Replaced on every refresh (Dex rotates it); only touched under the renewal lock.
    refresh_token: Mutex<Option<SecretString>>,
    /// Why the last refresh token died: the answer until the next login.
    dead: Mutex<Option<Error>>,
    token: Renewable,
    logins: AtomicU64,
    refreshes: AtomicU64,
}

impl SsoLogin {
    pub fn new(cfg: SsoConfig, prompt: Arc<dyn Prompt>) -> Result<Self> {
        if cfg.client_id.is_empty() {
            return Err(Error::invalid("dex_client_id", "is empty"));
        }
        if !cfg.scopes.split_whitespace().any(|s| s == "openid") {
            return Err(Error::invalid("scopes", "must include `openid`"));
        }
        if let Some(c) = &cfg.connector {
            crate::config::check_connector_id(c)?;
        }
        if let Start::Exchange(_) = cfg.start {
            exchange::check(&cfg)?;
        }
        cfg.options.check()?;
        crate::http::Transport::check(&cfg.options)?;
        Ok(SsoLogin {
            cfg,
            prompt,
            endpoints: Mutex::new(None),
            refresh_token: Mutex::new(None),
            dead: Mutex::new(None),
            token: Renewable::default(),
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &SsoConfig {
        &self.cfg
    }

    pub fn cached(&self) -> Option<Credential> {
        self.token.fresh()
    }

    /// The token to send: held, refreshed, or (never logged in yet) a login.
    pub async fn token(&self) -> Result<Credential> {
        self.token.get(self).await
    }

    /// The API refused `stale`: a refreshed token, unless another caller already got one.
    pub async fn refresh(&self, stale: &str) -> Result<Credential> {
        self.token.replace(self, stale).await
    }

    /// A refreshed token now (a login when no refresh token is held).
    pub async fn renew(&self) -> Result<Credential> {
        self.token.renew_now(self).await
    }

    /// A new login now, whatever is held.
    pub async fn login(&self) -> Result<Credential> {
        self.token.restart(self).await
    }

    /// `"dex-device"` or `"dex-token-exchange"`.
    pub fn kind(&self) -> &'static str {
        match self.cfg.start {
            Start::Device { .. } => "dex-device",
            Start::Browser(_) => "dex-browser",
            Start::Exchange(_) => "dex-token-exchange",
        }
    }

    /// Logins made (each asked the user; for token exchange, each exchange).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Refreshes made.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    pub fn describe(&self) -> String {
        let how = match &self.cfg.start {
            Start::Device { .. } => "device login".to_owned(),
            Start::Browser(_) => "browser login".to_owned(),
            Start::Exchange(subject) => format!(
                "token exchange of {} (connector `{}`)",
                subject.describe(),
                self.cfg.connector.as_deref().unwrap_or("")
            ),
        };
        format!(
            "Dex's {how} at {} for the client {}",
            redact::url(&self.cfg.dex_url),
            self.cfg.client_id
        )
    }

    async fn first_login(&self, renewing: &Renewing<'_>) -> Result<Credential> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let ep = Arc::new(Endpoints::discover(&self.cfg.dex_url, &self.cfg.options).await?);
        *lock(&self.endpoints) = Some(ep.clone());
        // Once the user was shown something, they see how it ended, also when the
        // caller stops waiting.
        let told = Told {
            prompt: &*self.prompt,
            shown: AtomicBool::new(false),
        };
        let mut shown = Shown {
            told: &told,
            ended: false,
        };
        let reply = match &self.cfg.start {
            Start::Device { poll_interval } => device::obtain(&self.cfg, *poll_interval, &ep, &told).await,
            Start::Exchange(subject) => exchange::obtain(&self.cfg, subject, &ep).await,
            Start::Browser(start) => browser::obtain(&self.cfg, start, &ep, &told).await,
        };
        let outcome = match reply.and_then(|reply| self.keep(reply, &ep, renewing, true)) {
            Ok(Some(token)) => Ok(token),
            Ok(None) => {
                log::debug!(target: "kfp_auth", "login: the ID token expired on its way; refreshing it");
                let refresh = lock(&self.refresh_token).clone();
                match refresh {
                    Some(refresh) => self.refresh_with(refresh, renewing).await,
                    None => Err(oidc::bad_token("expired before it could be used".into())),
                }
            }
            Err(e) => Err(e),
        };
        shown.ended = true;
        if told.shown.load(Ordering::Relaxed) {
            let _ = match &outcome {
                Ok(_) => self.prompt.show(DeviceEvent::Done),
                Err(e) => self.prompt.show(DeviceEvent::Failed(&e.to_string())),
            };
        }
        if outcome.is_ok() {
            *lock(&self.dead) = None;
        }
        outcome
    }

    /// Check the answer's ID token and hold it, with the answer's refresh token. `None`
    /// when `stale_ok` and the token expired on its way while a refresh token came with it:
    /// Dex answers a device poll with the token it made when the user finished, up to an
    /// interval earlier, which is past a short ID token's life.
    fn keep(
        &self,
        mut reply: TokenReply,
        ep: &Endpoints,
        renewing: &Renewing<'_>,
        stale_ok: bool,
    ) -> Result<Option<Credential>> {
        let started = SystemTime::now();
        let Some(token) = oidc::id_token(&mut reply) else {
            return Err(Error::UnexpectedResponse {
                method: "POST",
                url: redact::url(&ep.token),
                status: Some(200),
                detail: "Dex's answer holds no ID token: the scopes must include `openid`".into(),
            });
        };
        let claims = oidc::check_id_token(&token, &ep.issuer, &self.cfg.client_id)?;
        let refreshable = match reply.refresh_token.take() {
            Some(r) => {
                *lock(&self.refresh_token) = Some(r);
                true
            }
            None if matches!(self.cfg.start, Start::Exchange(_)) => false,
            None => {
                log::info!(
                    target: "kfp_auth",
                    "Dex gave no refresh token (scope `offline_access` missing?): the next renewal is a new login"
                );
                false
            }
        };
        if let Err(e) = oidc::check_unexpired(&claims, started) {
            return if stale_ok && refreshable { Ok(None) } else { Err(e) };
        }
        let issued = claims.issued.filter(|i| *i <= started).unwrap_or(started);
        let token = Arc::new(token);
        renewing.keep(
            token.clone(),
            claims.expires.and_then(|e| refresh_at(issued, e)),
            started,
        );
        Ok(Some(token))
    }

    async fn refresh_with(&self, refresh: SecretString, renewing: &Renewing<'_>) -> Result<Credential> {
        let ep = lock(&self.endpoints).clone();
        let ep = match ep {
            Some(ep) => ep,
            None => Arc::new(Endpoints::discover(&self.cfg.dex_url, &self.cfg.options).await?),
        };
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
            ("client_id", self.cfg.client_id.as_str()),
        ];
        let reply = oidc::send(&self.cfg.options, Method::POST, &ep.token, Some(&form)).await?;
        let status = reply.status.as_u16();
        let body = TokenReply::parse(&reply);
        match body {
            Some(body) if reply.status.is_success() && body.error.is_none() => {
                let token = self
                    .keep(body, &ep, renewing, false)?
                    .ok_or_else(|| oidc::bad_token("expired before it could be used".into()))?;
                log::debug!(target: "kfp_auth", "login: the ID token was refreshed");
                Ok(token)
            }
            Some(body) if body.error.is_some() => {
                let error = body.error.as_deref().unwrap_or("");
                if let Some(detail) = oidc::admin_change(error, &self.cfg.client_id, "refresh_token") {
                    return Err(Error::UnexpectedResponse {
                        method: "POST",
                        url: redact::url(&ep.token),
                        status: Some(status),
                        detail,
                    });
                }
                // Dex: 400 invalid_request for a token rotated away or forgotten (a restart),
                // invalid_grant for an expired one, 500 invalid_request when the upstream IdP
                // refuses to refresh the identity. Each needs a new login.
                let dead = Error::LoginRequired {
                    what: format!(
                        "Dex no longer accepts this login's refresh token (HTTP {status}: {}): it was used \
                         elsewhere, revoked or expired, or Dex or the upstream identity provider restarted",
                        body.describe_error()
                    ),
                    hint: "log in again (in Python: `create_kfp_client(force_login=True)` on the \
                           KFPClientManager, or `login()` on the BearerSession). If this recurs right after a \
                           login, the admin must add `offline_access` to the SSO connector's scopes in Dex"
                        .into(),
                };
                *lock(&self.refresh_token) = None;
                *lock(&self.dead) = Some(dead.clone());
                log::warn!(target: "kfp_auth", "login: {dead}");
                Err(dead)
            }
            _ => Err(Error::UnexpectedResponse {
                method: "POST",
                url: redact::url(&ep.token),
                status: Some(status),
                detail: "no tokens in the answer to a refresh; the refresh token is kept for the next try".into(),
            }),
        }
    }
}

/// A renewal is a refresh; a first login (or a forced one) is a new login. For
/// token exchange, each is an exchange.
impl Renew for SsoLogin {
    async fn renew(&self, renewing: &Renewing<'_>) -> Result<Credential> {
        // No refresh token, and no person to ask: an exchange with the subject token as it is now.
        if let Start::Exchange(_) = self.cfg.start {
            return self.first_login(renewing).await;
        }
        let refresh = match renewing.need {
            Need::Restart => None,
            _ => lock(&self.refresh_token).clone(),
        };
        if let Some(refresh) = refresh {
            return self.refresh_with(refresh, renewing).await;
        }
        // After a dead refresh token, only an explicit login prompts the user again:
        // a client in the middle of a job gets the error instead of a prompt nobody sees.
        if !matches!(renewing.need, Need::Restart)
            && let Some(dead) = lock(&self.dead).clone()
        {
            return Err(dead);
        }
        self.first_login(renewing).await
    }
}

/// The prompt, remembering whether the user was shown anything.
struct Told<'a> {
    prompt: &'a dyn Prompt,
    shown: AtomicBool,
}

impl Prompt for Told<'_> {
    fn show(&self, event: DeviceEvent<'_>) -> std::result::Result<(), String> {
        let r = self.prompt.show(event);
        if r.is_ok() {
            self.shown.store(true, Ordering::Relaxed);
        }
        r
    }
}

/// Tells the prompt that the caller stopped waiting, when dropped before the end.
struct Shown<'a> {
    told: &'a Told<'a>,
    ended: bool,
}

impl Drop for Shown<'_> {
    fn drop(&mut self) {
        if !self.ended && self.told.shown.load(Ordering::Relaxed) {
            let _ = self.told.prompt.show(DeviceEvent::Cancelled);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
