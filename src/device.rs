//! Dex's device authorization grant (RFC 8628): a login for notebooks, SSH
//! sessions and anything without a local browser.
//!
//! The user opens the verification URL elsewhere, enters the user code, and logs in
//! with whatever connector Dex offers (SSO included) while we poll Dex's token
//! endpoint. What becomes of the tokens is `sso.rs`'s business.

use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};
use crate::oidc::Client;
use crate::oidc::{self, DEVICE_GRANT, Endpoints, TokenReply};
use crate::prompt::{DeviceEvent, Prompt};
use crate::redact;

/// RFC 8628 §3.2: the interval when the server gives none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 8628 §3.5: what `slow_down` adds to the interval.
const SLOW_DOWN: Duration = Duration::from_secs(5);

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

/// A device login at Dex: the code, shown with `prompt`, then polling until the
/// user has finished (or the code expired, or Dex refused). The answer holds the tokens.
pub(crate) async fn obtain(
    cfg: &Client<'_>,
    poll_interval: Option<Duration>,
    ep: &Endpoints,
    prompt: &dyn Prompt,
) -> Result<TokenReply> {
    ep.check_grant(DEVICE_GRANT, "device login")?;
    let device_url = ep.named(
        &ep.device,
        "device_authorization_endpoint",
        "a Dex older than 2.28, or a provider without the device login",
    )?;
    let code = device_code(cfg, ep, &device_url).await?;
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
    prompt
        .show(DeviceEvent::Code {
            verification_uri: &verification_uri,
            verification_uri_complete: complete.as_deref(),
            user_code: &code.user_code,
            expires_in,
            connector: cfg.connector,
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
    let interval = poll_interval.or_else(|| code.interval.and_then(|s| Duration::try_from_secs_f64(s).ok()));
    poll(cfg, ep, &code, Schedule::new(interval, expires_in, now())).await
}

async fn device_code(cfg: &Client<'_>, ep: &Endpoints, url: &Url) -> Result<DeviceCode> {
    let form = [("client_id", cfg.client_id), ("scope", cfg.scopes)];
    let reply = oidc::send(cfg.options, Method::POST, url, Some(&form)).await?;
    let status = reply.status.as_u16();
    if reply.status.is_success()
        && let Ok(code) = serde_json::from_slice::<DeviceCode>(&reply.body)
    {
        return Ok(code);
    }
    let detail = match TokenReply::parse(&reply) {
        Some(r) if r.error.as_deref() == Some("invalid_scope") => format!(
            "the provider refused the scopes `{}`: {}; pass scopes= with those it offers",
            cfg.scopes,
            r.describe_error()
        ),
        Some(r) => oidc::admin_change(r.error.as_deref().unwrap_or(""), cfg.client_id, DEVICE_GRANT)
            .unwrap_or_else(|| format!("Dex refused the device code request: {}", r.describe_error())),
        None => format!("no device code in the answer; is {} Dex?", redact::url(&ep.base)),
    };
    Err(Error::UnexpectedResponse {
        method: "POST",
        url: redact::url(url),
        status: Some(status),
        detail,
    })
}

/// Poll until tokens come, the code expires, or Dex refuses.
async fn poll(cfg: &Client<'_>, ep: &Endpoints, code: &DeviceCode, mut schedule: Schedule) -> Result<TokenReply> {
    let form = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", code.device_code.expose_secret()),
        ("client_id", cfg.client_id),
    ];
    let expired = || Error::DeviceLogin {
        what: "the device login's code expired before the login was finished".into(),
        hint: format!(
            "log in again, and finish in the browser within {} s. If the browser showed \
             \"Invalid client_id.\" or \"Unregistered redirect_uri.\", Dex lacks the public client `{}`: \
             the admin adds it to Dex's staticClients with `public: true` (see the SSO page of the docs)",
            code.expires_in as u64, cfg.client_id
        ),
    };
    let mut answer = None;
    loop {
        let Some(wait) = schedule.next(answer, now()) else {
            return Err(expired());
        };
        tokio::time::sleep(wait).await;
        let reply = oidc::post_token(cfg.options, &ep.token, &form).await?;
        let error = reply.body.error.clone();
        answer = match error.as_deref() {
            None if reply.ok => return Ok(reply.body),
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
                return Err(reply.unexpected(
                    oidc::admin_change(e, cfg.client_id, DEVICE_GRANT)
                        .unwrap_or_else(|| format!("Dex refused the device login: {}", reply.body.describe_error())),
                ));
            }
            None => return Err(reply.empty()),
        };
    }
}

fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
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
