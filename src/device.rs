//! Dex's device authorization grant (RFC 8628) with refresh: a login for notebooks,
//! SSH sessions and anything without a local browser.
//!
//! The user opens the verification URL elsewhere, enters the user code, and logs in
//! with whatever connector Dex offers (SSO included) while we poll Dex's token
//! endpoint. The ID token is the bearer token; before it expires, and when the
//! API refuses it, the refresh token renews it, through the one renewal sequence
//! (`renew.rs`): Dex rotates refresh tokens on every use, so renewals must never
//! overlap. A refresh token Dex no longer accepts ends in `Error::LoginRequired`.
//! Tokens live in memory only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::oidc::{self, DEVICE_GRANT, Endpoints, TokenReply};
use crate::redact;
use crate::renew::{Credential, Need, Renew, Renewable, Renewing, refresh_at};

/// The client Kubeflow's admin registers for kfp-auth (a public one).
pub const DEFAULT_CLIENT_ID: &str = "kfp-auth";
/// `offline_access` for a refresh token; `groups` for Kubeflow's group-based access.
pub const DEFAULT_SCOPES: &str = "openid email profile groups offline_access";
/// RFC 8628 §3.2: the interval when the server gives none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 8628 §3.5: what `slow_down` adds to the interval.
const SLOW_DOWN: Duration = Duration::from_secs(5);

/// What the user is shown, as the login goes.
#[derive(Debug, Clone, Copy)]
pub enum DeviceEvent<'a> {
    /// Open `verification_uri` and enter `user_code` (or open `verification_uri_complete`).
    Code {
        verification_uri: &'a str,
        verification_uri_complete: Option<&'a str>,
        user_code: &'a str,
        expires_in: Duration,
        /// The connector to choose on Dex's page, when the caller named one.
        connector: Option<&'a str>,
    },
    /// The login is done.
    Done,
    /// The login ended without a token; the message says why.
    Failed(&'a str),
    /// The caller stopped waiting (Ctrl-C, a cancelled task).
    Cancelled,
}

/// Shows the device login to the user. An error showing the code ends the login
/// (nobody could finish it); errors for the other events are ignored.
pub trait Prompt: Send + Sync {
    fn show(&self, event: DeviceEvent<'_>) -> std::result::Result<(), String>;
}

/// A device login's settings; everything here is safe to print.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Where Dex is reached (discovery is read there; endpoints under the issuer map onto it).
    pub dex_url: Url,
    pub client_id: String,
    /// Space-separated; `openid` is required, `offline_access` gives the refresh token.
    pub scopes: String,
    /// The connector the user should choose on Dex's page (Dex's device flow cannot preselect one).
    pub connector: Option<String>,
    /// Seconds between polls instead of Dex's `interval` (`slow_down` still applies).
    pub poll_interval: Option<Duration>,
    pub options: Options,
}

/// What a poll of the token endpoint said, short of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAnswer {
    Pending,
    SlowDown,
}

/// When to poll: RFC 8628 §3.5. Pure, so the rules are tested without a server.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub interval: Duration,
    /// When the device code expires: polling ends there, whatever the server says.
    pub deadline: tokio::time::Instant,
}

impl Schedule {
    pub fn new(interval: Option<Duration>, expires_in: Duration, now: tokio::time::Instant) -> Self {
        Schedule {
            interval: interval.filter(|i| !i.is_zero()).unwrap_or(DEFAULT_INTERVAL),
            deadline: now + expires_in,
        }
    }

    /// How long to wait before the next poll, after `answer`; `None` once the code
    /// has expired (no poll could succeed), even while the server says pending.
    pub fn next(&mut self, answer: Option<PollAnswer>, now: tokio::time::Instant) -> Option<Duration> {
        if answer == Some(PollAnswer::SlowDown) {
            self.interval += SLOW_DOWN;
        }
        let left = self.deadline.checked_duration_since(now).filter(|l| !l.is_zero())?;
        Some(self.interval.min(left))
    }
}

#[derive(Deserialize)]
struct DeviceCode {
    device_code: SecretString,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: f64,
    interval: Option<f64>,
}

/// The ID token and refresh token of a device login, renewed by refresh.
pub struct DeviceLogin {
    cfg: DeviceConfig,
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

impl DeviceLogin {
    pub fn new(cfg: DeviceConfig, prompt: Arc<dyn Prompt>) -> Result<Self> {
        if cfg.client_id.is_empty() {
            return Err(Error::invalid("dex_client_id", "is empty"));
        }
        if !cfg.scopes.split_whitespace().any(|s| s == "openid") {
            return Err(Error::invalid("scopes", "must include `openid`"));
        }
        if let Some(c) = &cfg.connector {
            crate::config::check_connector_id(c)?;
        }
        cfg.options.check()?;
        crate::http::Transport::check(&cfg.options)?;
        Ok(DeviceLogin {
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

    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    pub fn cached(&self) -> Option<Credential> {
        self.token.fresh()
    }

    /// The token to send: held, refreshed, or (never logged in yet) a device login.
    pub async fn token(&self) -> Result<Credential> {
        self.token.get(self).await
    }

    /// The API refused `stale`: a refreshed token, unless another caller already got one.
    pub async fn refresh(&self, stale: &str) -> Result<Credential> {
        self.token.replace(self, stale).await
    }

    /// A refreshed token now (a device login when no refresh token is held).
    pub async fn renew(&self) -> Result<Credential> {
        self.token.renew_now(self).await
    }

    /// A new device login now, whatever is held.
    pub async fn login(&self) -> Result<Credential> {
        self.token.restart(self).await
    }

    /// Device logins made.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Refreshes made.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    pub fn describe(&self) -> String {
        format!(
            "Dex's device login at {} for the client {}",
            redact::url(&self.cfg.dex_url),
            self.cfg.client_id
        )
    }

    async fn device_login(&self, renewing: &Renewing<'_>) -> Result<Credential> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let ep = Arc::new(Endpoints::discover(&self.cfg.dex_url, &self.cfg.options).await?);
        *lock(&self.endpoints) = Some(ep.clone());
        ep.check_grant(DEVICE_GRANT, "device login")?;
        let device_url = ep.device.clone().ok_or_else(|| Error::UnexpectedResponse {
            method: "GET",
            url: format!("{}/.well-known/openid-configuration", redact::url(&ep.base)),
            status: Some(200),
            detail: "Dex names no device_authorization_endpoint: it is older than 2.28, or not Dex".into(),
        })?;
        let code = self.device_code(&ep, &device_url).await?;
        // Shown as the user can reach it: an in-cluster issuer is mapped onto the gateway.
        // Only http(s): the page becomes a link the user clicks (in Jupyter, HTML).
        let reachable = |raw: &str| match ep.reachable(raw) {
            Some(u) if matches!(u.scheme(), "http" | "https") => Ok(u.to_string()),
            _ => Err(Error::UnexpectedResponse {
                method: "POST",
                url: redact::url(&device_url),
                status: Some(200),
                detail: "the device page Dex named is not an http(s) URL".into(),
            }),
        };
        let verification_uri = reachable(&code.verification_uri)?;
        let complete = code.verification_uri_complete.as_deref().map(reachable).transpose()?;
        let expires_in = Duration::try_from_secs_f64(code.expires_in).unwrap_or(Duration::ZERO);
        self.prompt
            .show(DeviceEvent::Code {
                verification_uri: &verification_uri,
                verification_uri_complete: complete.as_deref(),
                user_code: &code.user_code,
                expires_in,
                connector: self.cfg.connector.as_deref(),
            })
            .map_err(|e| Error::DeviceLogin {
                what: format!("the device login's code could not be shown: {e}"),
                hint: "pass a prompt that can show it".into(),
            })?;
        log::info!(
            target: "kfp_auth",
            "device login: waiting for the user at {} (code valid for {} s)",
            Url::parse(&verification_uri).map_or_else(|_| String::new(), |u| redact::url(&u)),
            expires_in.as_secs()
        );
        // The user sees how it ended, also when the caller stops waiting.
        let mut shown = Shown {
            prompt: &*self.prompt,
            ended: false,
        };
        let interval = self
            .cfg
            .poll_interval
            .or_else(|| code.interval.and_then(|s| Duration::try_from_secs_f64(s).ok()));
        let outcome = self.poll(&ep, &code, Schedule::new(interval, expires_in, now())).await;
        let outcome = match outcome.and_then(|reply| self.keep(reply, &ep, renewing, true)) {
            Ok(Some(token)) => Ok(token),
            Ok(None) => {
                log::debug!(target: "kfp_auth", "device login: the ID token expired on its way; refreshing it");
                let refresh = lock(&self.refresh_token).clone();
                match refresh {
                    Some(refresh) => self.refresh_with(refresh, renewing).await,
                    None => Err(oidc::bad_token("expired before it could be used".into())),
                }
            }
            Err(e) => Err(e),
        };
        shown.ended = true;
        let _ = match &outcome {
            Ok(_) => self.prompt.show(DeviceEvent::Done),
            Err(e) => self.prompt.show(DeviceEvent::Failed(&e.to_string())),
        };
        if outcome.is_ok() {
            *lock(&self.dead) = None;
        }
        outcome
    }

    async fn device_code(&self, ep: &Endpoints, url: &Url) -> Result<DeviceCode> {
        let form = [
            ("client_id", self.cfg.client_id.as_str()),
            ("scope", self.cfg.scopes.as_str()),
        ];
        let reply = oidc::send(&self.cfg.options, Method::POST, url, Some(&form)).await?;
        let status = reply.status.as_u16();
        let unexpected = |detail: String| Error::UnexpectedResponse {
            method: "POST",
            url: redact::url(url),
            status: Some(status),
            detail,
        };
        if reply.status.is_success()
            && let Ok(code) = serde_json::from_slice::<DeviceCode>(&reply.body)
        {
            return Ok(code);
        }
        let detail = match TokenReply::parse(&reply) {
            Some(r) => oidc::admin_change(r.error.as_deref().unwrap_or(""), &self.cfg.client_id, DEVICE_GRANT)
                .unwrap_or_else(|| format!("Dex refused the device code request: {}", r.describe_error())),
            None => format!("no device code in the answer; is {} Dex?", redact::url(&ep.base)),
        };
        Err(unexpected(detail))
    }

    /// Poll until tokens come, the code expires, or Dex refuses.
    async fn poll(&self, ep: &Endpoints, code: &DeviceCode, mut schedule: Schedule) -> Result<TokenReply> {
        let form = [
            ("grant_type", DEVICE_GRANT),
            ("device_code", code.device_code.expose_secret()),
            ("client_id", self.cfg.client_id.as_str()),
        ];
        let expired = || Error::DeviceLogin {
            what: "the device login's code expired before the login was finished".into(),
            hint: format!(
                "log in again, and finish in the browser within {} s. If the browser showed \
                 \"Invalid client_id.\" or \"Unregistered redirect_uri.\", Dex lacks the public client `{}`: \
                 the admin adds it to Dex's staticClients with `public: true` (see the SSO page of the docs)",
                code.expires_in as u64, self.cfg.client_id
            ),
        };
        let mut answer = None;
        loop {
            let Some(wait) = schedule.next(answer, now()) else {
                return Err(expired());
            };
            tokio::time::sleep(wait).await;
            let reply = oidc::send(&self.cfg.options, Method::POST, &ep.token, Some(&form)).await?;
            let status = reply.status.as_u16();
            let Some(body) = TokenReply::parse(&reply) else {
                return Err(Error::UnexpectedResponse {
                    method: "POST",
                    url: redact::url(&ep.token),
                    status: Some(status),
                    detail: "not Dex's token endpoint (no JSON answer)".into(),
                });
            };
            answer = match body.error.as_deref() {
                None if reply.status.is_success() => return Ok(body),
                Some("authorization_pending") => Some(PollAnswer::Pending),
                Some("slow_down") => {
                    log::debug!(
                        target: "kfp_auth",
                        "device login: Dex asked to slow down; polling every {} s",
                        (schedule.interval + SLOW_DOWN).as_secs()
                    );
                    Some(PollAnswer::SlowDown)
                }
                Some("expired_token") => return Err(expired()),
                Some("access_denied") => {
                    return Err(Error::DeviceLogin {
                        what: "the device login was refused (access_denied)".into(),
                        hint: "log in again and approve the access in the browser".into(),
                    });
                }
                Some(e) => {
                    let detail = oidc::admin_change(e, &self.cfg.client_id, DEVICE_GRANT)
                        .unwrap_or_else(|| format!("Dex refused the device login: {}", body.describe_error()));
                    return Err(Error::UnexpectedResponse {
                        method: "POST",
                        url: redact::url(&ep.token),
                        status: Some(status),
                        detail,
                    });
                }
                None => {
                    return Err(Error::UnexpectedResponse {
                        method: "POST",
                        url: redact::url(&ep.token),
                        status: Some(status),
                        detail: "Dex answered neither tokens nor an error".into(),
                    });
                }
            };
        }
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
                log::debug!(target: "kfp_auth", "device login: the ID token was refreshed");
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
                    hint: "start a new device login (in Python: `create_kfp_client(force_login=True)` on the \
                           KFPClientManager, or `login()` on the BearerSession). If this recurs right after a \
                           login, the admin must add `offline_access` to the SSO connector's scopes in Dex"
                        .into(),
                };
                *lock(&self.refresh_token) = None;
                *lock(&self.dead) = Some(dead.clone());
                log::warn!(target: "kfp_auth", "device login: {dead}");
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

/// A renewal is a refresh; a first login (or a forced one) is a device login.
impl Renew for DeviceLogin {
    async fn renew(&self, renewing: &Renewing<'_>) -> Result<Credential> {
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
        self.device_login(renewing).await
    }
}

/// Tells the prompt that the caller stopped waiting, when dropped before the end.
struct Shown<'a> {
    prompt: &'a dyn Prompt,
    ended: bool,
}

impl Drop for Shown<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.prompt.show(DeviceEvent::Cancelled);
        }
    }
}

fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn polls_at_the_interval_and_slow_down_adds_five_seconds_for_good() {
        let t0 = tokio::time::Instant::now();
        let mut s = Schedule::new(Some(secs(5)), secs(300), t0);
        assert_eq!(s.next(None, t0), Some(secs(5)), "the first poll waits an interval");
        assert_eq!(s.next(Some(PollAnswer::Pending), t0 + secs(5)), Some(secs(5)));
        assert_eq!(s.next(Some(PollAnswer::SlowDown), t0 + secs(10)), Some(secs(10)));
        assert_eq!(
            s.next(Some(PollAnswer::Pending), t0 + secs(20)),
            Some(secs(10)),
            "the slower interval stays"
        );
        assert_eq!(s.next(Some(PollAnswer::SlowDown), t0 + secs(30)), Some(secs(15)));
        // No interval given (or zero): RFC 8628's 5 s.
        assert_eq!(Schedule::new(None, secs(300), t0).interval, secs(5));
        assert_eq!(Schedule::new(Some(Duration::ZERO), secs(300), t0).interval, secs(5));
    }

    #[test]
    fn polling_ends_at_expiry_whatever_the_server_says() {
        let t0 = tokio::time::Instant::now();
        let mut s = Schedule::new(Some(secs(5)), secs(12), t0);
        assert_eq!(
            s.next(Some(PollAnswer::Pending), t0 + secs(10)),
            Some(secs(2)),
            "the last wait is cut short"
        );
        assert_eq!(s.next(Some(PollAnswer::Pending), t0 + secs(12)), None);
        assert_eq!(s.next(Some(PollAnswer::SlowDown), t0 + secs(13)), None);
        assert_eq!(Schedule::new(None, Duration::ZERO, t0).next(None, t0), None);
    }
}
