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
//! run gets the error, not a prompt that nobody sees. An interactive caller may opt
//! in to a new login instead ([`SsoLogin::with_relogin`]).
//!
//! With a token cache (`token_cache.rs`, [`SsoLogin::with_cache`]), the login
//! outlives the process, and renewals are serialised across processes too: each
//! takes the cache file's lock, reads the login again, and adopts what another
//! process saved (a rotated refresh token, a fresh ID token) instead of refreshing
//! with a refresh token that is already spent; it then refreshes, writes the login
//! back and lets go. The lock is held for a refresh (one request) and never while
//! the user is asked to log in: a login may take minutes, and a second process
//! should not wait that long for its lock. A login is written when it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::browser::{self, BrowserStart};
use crate::config::Options;
use crate::device;
use crate::error::{Error, Result};
use crate::exchange::{self, Subject};
use crate::oidc::{self, Client, Endpoints, TokenReply};
use crate::prompt::{DeviceEvent, Prompt};
use crate::redact;
use crate::renew::{Credential, Need, Renew, Renewable, Renewing, refresh_at};
use crate::token_cache::{self, Entry, Query, TokenCache};

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

impl SsoConfig {
    /// What the grants need of these settings.
    pub fn client(&self) -> Client<'_> {
        Client {
            client_id: &self.client_id,
            scopes: &self.scopes,
            connector: self.connector.as_deref(),
            options: &self.options,
        }
    }
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
    /// Where the login is kept between processes, when it is.
    disk: Option<Disk>,
    /// Whose login is held, as the token cache keys it; known after a login or a load.
    ident: Mutex<Option<Ident>>,
    /// A dead refresh token starts a new login (prompting the user) instead of the error.
    relogin: bool,
}

/// The token cache as one login uses it.
struct Disk {
    cache: TokenCache,
    /// The API the login is for, saved with it so `kfp-auth token --url` finds it.
    api_url: Option<String>,
    /// Only this user's login may be loaded, when given.
    user: Option<String>,
    /// `false`: never ask the user; without a usable saved login, `Error::LoginRequired`.
    may_log_in: bool,
}

/// The key fields of the login held, and its ID token's expiry.
#[derive(Clone)]
struct Ident {
    issuer: String,
    connector: Option<String>,
    user: String,
    expires: Option<SystemTime>,
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
            exchange::check(&cfg.client())?;
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
            disk: None,
            ident: Mutex::new(None),
            relogin: false,
        })
    }

    /// When the refresh token dies, log in again (the user is shown the prompt again)
    /// instead of answering `Error::LoginRequired`: for interactive use only, where
    /// someone sees the prompt. Token exchange needs none (it renews by exchanging), and
    /// a login that may not log in (`without_login`) still answers the error.
    pub fn with_relogin(mut self, relogin: bool) -> Result<Self> {
        if relogin && matches!(self.cfg.start, Start::Exchange(_)) {
            return Err(Error::invalid(
                "relogin",
                "is for the device and browser logins; token exchange renews by exchanging again",
            ));
        }
        self.relogin = relogin;
        Ok(self)
    }

    /// Whether a dead refresh token is followed by a new login (see [`Self::with_relogin`]).
    fn relogs_in(&self) -> bool {
        self.relogin && self.disk.as_ref().is_none_or(|d| d.may_log_in)
    }

    /// Keep the login in `cache` (see the module's doc): loaded on first use, saved
    /// after every login and refresh. `api_url` is saved with it; with `user`, only
    /// that user's saved login is loaded.
    pub fn with_cache(mut self, cache: TokenCache, api_url: Option<&str>, user: Option<&str>) -> Self {
        self.disk = Some(Disk {
            cache,
            api_url: api_url.map(str::to_owned),
            user: user.map(str::to_owned),
            may_log_in: true,
        });
        self
    }

    /// Never ask the user: only the cache's saved login (refreshed when needed) serves.
    /// For `kfp-auth token`. Without a cache, every login fails.
    pub fn without_login(mut self) -> Self {
        if let Some(d) = &mut self.disk {
            d.may_log_in = false;
        }
        self
    }

    /// The token cache's file, when the login is kept in one.
    pub fn cache_path(&self) -> Option<&std::path::Path> {
        self.disk.as_ref().map(|d| d.cache.path())
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
        if !matches!(self.cfg.start, Start::Exchange(_)) {
            ep.check_scopes(&self.cfg.scopes)?;
        }
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
            Start::Device { poll_interval } => device::obtain(&self.cfg.client(), *poll_interval, &ep, &told).await,
            Start::Exchange(subject) => exchange::obtain(&self.cfg.client(), subject, &ep).await,
            Start::Browser(start) => browser::obtain(&self.cfg.client(), start, &ep, &told).await,
        };
        let outcome = match reply.and_then(|reply| self.keep(reply, &ep, renewing, true)) {
            Ok(Some(token)) => Ok(token),
            Ok(None) => {
                log::debug!(target: "kfp_auth", "login: the ID token expired or came due on its way; refreshing it");
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
    /// when `stale_ok` and the token expired (or came due for renewal) on its way while a
    /// refresh token came with it:
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
        // `stale_ok` is set for a login's answer, not for a refresh's.
        let login = stale_ok;
        let refreshable = match reply.refresh_token.take() {
            Some(r) => {
                *lock(&self.refresh_token) = Some(r);
                true
            }
            None if matches!(self.cfg.start, Start::Exchange(_)) => false,
            // OIDC lets a refresh answer without a new refresh token: the one used stays valid.
            None if !login && lock(&self.refresh_token).is_some() => {
                log::debug!(
                    target: "kfp_auth",
                    "login: the refresh answer has no new refresh token; the one held stays in use"
                );
                true
            }
            None => {
                // A previous login's refresh token is not this login's.
                *lock(&self.refresh_token) = None;
                log::info!(
                    target: "kfp_auth",
                    "the login gave no refresh token (scope `offline_access` missing?): the next renewal is a new login"
                );
                false
            }
        };
        if let Err(e) = oidc::check_unexpired(&claims, started) {
            return if stale_ok && refreshable { Ok(None) } else { Err(e) };
        }
        let issued = claims.issued.filter(|i| *i <= started).unwrap_or(started);
        let renew_at = claims.expires.and_then(|e| refresh_at(issued, e));
        // Due for renewal already: handed out as it is, it could expire between here and
        // the gateway.
        if stale_ok && refreshable && renew_at.is_some_and(|t| t <= started) {
            return Ok(None);
        }
        if let Some(user) = claims.email.clone().or(claims.subject.clone()) {
            let connector = match lock(&self.ident).take() {
                // The same user again: the connector a loaded login named stays.
                Some(held) if held.user == user => held.connector,
                _ => self.cfg.connector.clone(),
            };
            *lock(&self.ident) = Some(Ident {
                issuer: ep.issuer.clone(),
                connector,
                user,
                expires: claims.expires,
            });
        }
        let token = Arc::new(token);
        renewing.keep(token.clone(), renew_at, started);
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
                // Dex 2.45.1: 400 invalid_request for a token rotated away or forgotten (a
                // restart), and for an expired one ("Refresh token expired."); 500
                // invalid_request when the upstream IdP refuses to refresh the identity. Other
                // providers answer invalid_grant. Each needs a new login.
                let dead = Error::LoginRequired {
                    what: format!(
                        "Dex no longer accepts this login's refresh token (HTTP {status}: {}): it was used \
                         elsewhere, revoked or expired, or Dex or the upstream identity provider restarted",
                        body.describe_error()
                    ),
                    hint: "log in again: in Python, `create_kfp_client(force_login=True)` on the KFPClientManager \
                           (with `relogin=True`, it logs in again by itself), or `login()` on the BearerSession; \
                           in a shell, `kfp-auth login --device`. If this recurs right after a login, the admin \
                           must add `offline_access` to the SSO connector's scopes in Dex"
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
        let Some(disk) = &self.disk else {
            return self.renew_in_memory(renewing).await;
        };
        if !matches!(renewing.need, Need::Restart) {
            // Under the cache's lock: another process's renewal cannot overlap this one.
            let mut locked = disk.lock().await?;
            if let Some(token) = self.adopt(disk, &locked, renewing).await? {
                return Ok(token);
            }
            let refresh = lock(&self.refresh_token).clone();
            if let Some(refresh) = refresh {
                let outcome = self.refresh_with(refresh, renewing).await;
                match &outcome {
                    Ok(_) => self.save(disk, Some(locked)).await,
                    Err(Error::LoginRequired { .. }) => {
                        // Spent for every process: the next one is told to log in at once.
                        if let Some(key) = self.key() {
                            let path = disk.cache.path().to_owned();
                            let removed = tokio::task::spawn_blocking(move || locked.remove(&[key])).await;
                            if let Err(e) = removed.map_err(|e| join_error(&path, e)).and_then(|r| r) {
                                log::warn!(target: "kfp_auth", "login: {e}");
                            }
                        }
                    }
                    Err(_) => {}
                }
                match outcome {
                    Err(Error::LoginRequired { .. }) if self.relogs_in() => {
                        log::info!(target: "kfp_auth", "login: the refresh token is dead; logging in again (relogin)");
                    }
                    outcome => return outcome,
                }
            }
        }
        if !disk.may_log_in {
            return Err(self.no_saved_login(disk));
        }
        // The lock is not held while the user logs in (see the module's doc).
        let token = self.renew_in_memory(renewing).await?;
        self.save(disk, None).await;
        Ok(token)
    }
}

impl SsoLogin {
    async fn renew_in_memory(&self, renewing: &Renewing<'_>) -> Result<Credential> {
        // No refresh token, and no person to ask: an exchange with the subject token as it is now.
        if let Start::Exchange(_) = self.cfg.start {
            return self.first_login(renewing).await;
        }
        let refresh = match renewing.need {
            Need::Restart => None,
            _ => lock(&self.refresh_token).clone(),
        };
        if let Some(refresh) = refresh {
            match self.refresh_with(refresh, renewing).await {
                Err(Error::LoginRequired { .. }) if self.relogs_in() => {
                    log::info!(target: "kfp_auth", "login: the refresh token is dead; logging in again (relogin)");
                }
                outcome => return outcome,
            }
        }
        // After a dead refresh token, only an explicit login prompts the user again:
        // a client in the middle of a job gets the error instead of a prompt nobody sees.
        // With relogin, the caller said someone is there to see the prompt.
        if !matches!(renewing.need, Need::Restart)
            && !self.relogs_in()
            && let Some(dead) = lock(&self.dead).clone()
        {
            return Err(dead);
        }
        self.first_login(renewing).await
    }

    fn key(&self) -> Option<String> {
        let ident = lock(&self.ident).clone()?;
        Some(token_cache::key(
            &ident.issuer,
            &self.cfg.client_id,
            ident.connector.as_deref(),
            &ident.user,
        ))
    }

    /// Take what another process saved, under the lock: its refresh token when it differs
    /// from the one held (it was rotated, or a newer login made, since), and its ID token
    /// when that serves the caller. `Some` when the caller is served without a refresh.
    async fn adopt(
        &self,
        disk: &Disk,
        locked: &token_cache::Locked,
        renewing: &Renewing<'_>,
    ) -> Result<Option<Credential>> {
        let stored = match self.key() {
            Some(key) => locked.get(&key),
            None => {
                let dex = self.cfg.dex_url.as_str();
                let endpoints = [dex];
                locked.find(&Query {
                    endpoints: &endpoints,
                    client_id: Some(&self.cfg.client_id),
                    connector: self.cfg.connector.as_deref(),
                    user: disk.user.as_deref(),
                })
            }
        };
        let Some(stored) = stored else { return Ok(None) };
        // Its tokens, from the secret store when they are there (a blocking call).
        let multi = tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        let entry = if stored.in_store() && multi {
            tokio::task::block_in_place(|| locked.with_secrets(stored))?
        } else {
            locked.with_secrets(stored)?
        };
        let entry = &entry;
        let theirs = entry.refresh_token.as_ref().map(|r| r.expose_secret());
        let ours = lock(&self.refresh_token).as_ref().map(|r| r.expose_secret().to_owned());
        if theirs.is_some() && theirs != ours.as_deref() {
            log::debug!(target: "kfp_auth", "login: taking the refresh token saved in {}", locked.path().display());
            *lock(&self.refresh_token) = entry
                .refresh_token
                .as_ref()
                .map(|r| SecretString::from(r.expose_secret()));
            *lock(&self.dead) = None;
        }
        let now = SystemTime::now();
        let usable = match renewing.need {
            Need::Fresh => true,
            Need::Replace(stale) => entry.id_token.expose_secret() != stale,
            Need::New | Need::Restart => false,
        };
        let claims = oidc::check_id_token(&entry.id_token, &entry.issuer, &self.cfg.client_id).ok();
        if lock(&self.ident).is_none() {
            *lock(&self.ident) = Some(Ident {
                issuer: entry.issuer.clone(),
                connector: entry.connector.clone(),
                user: entry.user.clone(),
                expires: claims.as_ref().and_then(|c| c.expires),
            });
        }
        let Some(claims) = claims.filter(|_| usable) else {
            return Ok(None);
        };
        let issued = claims.issued.filter(|i| *i <= now).unwrap_or(entry.saved());
        let renew_at = claims.expires.and_then(|e| refresh_at(issued, e));
        if renew_at.is_none_or(|t| t <= now) {
            return Ok(None);
        }
        log::debug!(target: "kfp_auth", "login: using the ID token saved in {}", locked.path().display());
        let token = Arc::new(SecretString::from(entry.id_token.expose_secret()));
        renewing.keep(token.clone(), renew_at, entry.saved());
        Ok(Some(token))
    }

    /// Write the login held into the cache (taking its lock unless `locked` is given).
    /// A failure is logged, not returned: the login itself worked.
    async fn save(&self, disk: &Disk, locked: Option<token_cache::Locked>) {
        let (Some(ident), Some(token)) = (lock(&self.ident).clone(), self.token.fresh()) else {
            return;
        };
        let entry = Entry {
            issuer: ident.issuer,
            client_id: self.cfg.client_id.clone(),
            connector: ident.connector,
            user: ident.user,
            dex_url: self.cfg.dex_url.to_string(),
            api_url: disk.api_url.clone(),
            id_token: SecretString::from(token.expose_secret()),
            refresh_token: lock(&self.refresh_token)
                .as_ref()
                .map(|r| SecretString::from(r.expose_secret())),
            expires_at: ident
                .expires
                .and_then(|e| e.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            saved_at: 0,
            secrets: None,
        };
        let cache = disk.cache.clone();
        let path = cache.path().to_owned();
        let written = tokio::task::spawn_blocking(move || {
            let mut locked = match locked {
                Some(l) => l,
                None => cache.lock()?,
            };
            locked.put(entry)
        })
        .await
        .map_err(|e| join_error(&path, e))
        .and_then(|r| r);
        match written {
            Ok(()) => log::debug!(target: "kfp_auth", "login: saved in {}", path.display()),
            Err(e) => log::warn!(target: "kfp_auth", "login: not saved for other processes: {e}"),
        }
    }

    fn no_saved_login(&self, disk: &Disk) -> Error {
        let mut which = format!("client {}", self.cfg.client_id);
        if let Some(c) = &self.cfg.connector {
            which.push_str(&format!(", connector {c}"));
        }
        if let Some(u) = &disk.user {
            which.push_str(&format!(", user {u}"));
        }
        let url = disk.api_url.clone().unwrap_or_else(|| redact::url(&self.cfg.dex_url));
        Error::LoginRequired {
            what: format!(
                "no saved login for {} ({which}) in {}",
                redact::url(&self.cfg.dex_url),
                disk.cache.path().display()
            ),
            hint: format!("log in again: run `kfp-auth login --device --url {url}`"),
        }
    }
}

impl Disk {
    /// The cache, locked, waiting off the async threads.
    async fn lock(&self) -> Result<token_cache::Locked> {
        let cache = self.cache.clone();
        let path = cache.path().to_owned();
        tokio::task::spawn_blocking(move || cache.lock())
            .await
            .map_err(|e| join_error(&path, e))?
    }
}

fn join_error(path: &std::path::Path, e: tokio::task::JoinError) -> Error {
    Error::TokenCache {
        path: path.display().to_string(),
        reason: format!("the cache task failed: {e}"),
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
