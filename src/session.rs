//! A login that lasts: the session is kept and reused while it is valid, a
//! fresh login happens once however many callers need one at the same time,
//! and a forked child gets its own HTTP client and login lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use crate::cache::{Entry, Locked, SessionCache};
use crate::config::LoginConfig;
use crate::error::{Error, Result};
use crate::flow;
use crate::http::Transport;
use crate::renew::{Credential, Need, Renew, Renewable, Renewing, refresh_at};

pub struct Authenticator {
    cfg: LoginConfig,
    /// The session's cookies, and the one login at a time that renews them.
    session: Renewable,
    logins: AtomicU64,
    /// The opt-in session cache on disk, shared with other processes.
    disk: Option<SessionCache>,
    /// Things the caller should warn about (a corrupt cache file replaced).
    warnings: Mutex<Vec<String>>,
}

impl Authenticator {
    /// Cheap: the HTTP client is made (or shared) at the first login, off the caller's thread.
    pub fn new(cfg: LoginConfig) -> Result<Self> {
        Transport::check(&cfg.options)?;
        Ok(Authenticator {
            cfg,
            session: Renewable::default(),
            logins: AtomicU64::new(0),
            disk: None,
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// Keep sessions in `cache` too, so other processes can reuse them.
    pub fn with_disk_cache(mut self, cache: SessionCache) -> Self {
        self.disk = Some(cache);
        self
    }

    pub fn disk_cache(&self) -> Option<&SessionCache> {
        self.disk.as_ref()
    }

    /// Warnings gathered since the last call.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn config(&self) -> &LoginConfig {
        &self.cfg
    }

    /// Logins this authenticator has made (successful or not).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// The session's cookies if one is held and still valid; never touches the network.
    pub fn cached(&self) -> Option<Credential> {
        self.session.fresh()
    }

    /// The session's cookies, logging in first when none is held or it is about to expire.
    pub async fn cookies(&self) -> Result<Credential> {
        self.session.get(self).await
    }

    /// Log in now, whatever is held.
    pub async fn login(&self) -> Result<Credential> {
        self.session.renew_now(self).await
    }

    /// The session `stale` was rejected by the gateway: log in again, unless
    /// another caller already replaced it, in which case that session is returned.
    pub async fn refresh(&self, stale: &str) -> Result<Credential> {
        self.session.replace(self, stale).await
    }

    /// Forget the session, so the next use logs in.
    pub fn invalidate(&self) {
        self.session.forget();
    }

    /// The disk cache, locked.
    async fn disk_lock(&self, disk: &SessionCache) -> Result<Locked> {
        let path = disk.path().to_owned();
        let disk = disk.clone();
        let mut locked = tokio::task::spawn_blocking(move || disk.lock())
            .await
            .map_err(|e| join_error(&path, e))??;
        if let Some(w) = locked.warning.take() {
            self.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(w);
        }
        Ok(locked)
    }

    /// The cached session, if the renewal may take it instead of logging in; it
    /// becomes the current one.
    fn take_from_disk(&self, disk: &SessionCache, locked: &Locked, renewing: &Renewing<'_>) -> Option<Credential> {
        let entry = locked.get(&self.cache_key())?;
        let usable = match renewing.need {
            Need::Fresh => true,
            // A session another process saved is worth trying only if it is newer
            // than the rejected one: an older one was voided by the same event.
            Need::Replace(stale) => {
                entry.cookies.expose_secret() != stale
                    && entry.saved > renewing.held_since.unwrap_or(SystemTime::UNIX_EPOCH)
            }
            Need::New | Need::Restart => false,
        };
        if !usable {
            return None;
        }
        log::debug!(target: "kfp_auth", "reusing the session cached in {}", disk.path().display());
        let cookies = Arc::new(entry.cookies);
        renewing.keep(cookies.clone(), entry.refresh_at, entry.saved);
        Some(cookies)
    }

    fn cache_key(&self) -> String {
        SessionCache::key(self.cfg.api_url.as_str(), &self.cfg.username, &self.cfg.connector)
    }

    async fn login_now(&self, renewing: &Renewing<'_>) -> Result<(Credential, Option<SystemTime>)> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let transport = self.transport()?;
        let turn = transport.login_turn().await;
        let started = SystemTime::now();
        log::debug!(
            target: "kfp_auth",
            "logging in to {} as {} with connector {}",
            crate::redact::url(&self.cfg.api_url),
            self.cfg.username,
            self.cfg.connector
        );
        let session = flow::login(&self.cfg, &transport).await;
        drop(turn);
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                log::info!(target: "kfp_auth", "login to {} failed: {e}", crate::redact::url(&self.cfg.api_url));
                return Err(e);
            }
        };
        log::info!(
            target: "kfp_auth",
            "logged in to {} as {} in {} requests{}",
            crate::redact::url(&self.cfg.api_url),
            self.cfg.username,
            session.history.len(),
            if session.unsecured { " (unsecured: no login needed)" } else { "" }
        );
        let refresh_at = session.expires.and_then(|exp| refresh_at(started, exp));
        let cookies = Arc::new(session.cookies);
        renewing.keep(cookies.clone(), refresh_at, started);
        Ok((cookies, refresh_at))
    }

    /// The HTTP client of this process for these options (see `Transport::shared`).
    fn transport(&self) -> Result<Arc<Transport>> {
        Transport::shared(&self.cfg.options)
    }
}

/// A renewal is a login: from the disk cache when allowed and valid, else over
/// the network. With a disk cache, the file lock is held across the login, so
/// processes sharing the file log in once.
impl Renew for Authenticator {
    async fn renew(&self, renewing: &Renewing<'_>) -> Result<Credential> {
        let Some(disk) = &self.disk else {
            return Ok(self.login_now(renewing).await?.0);
        };
        let mut locked = self.disk_lock(disk).await?;
        if let Some(cookies) = self.take_from_disk(disk, &locked, renewing) {
            return Ok(cookies);
        }
        let (cookies, refresh_at) = self.login_now(renewing).await?;
        let entry = Entry {
            cookies: SecretString::from(cookies.expose_secret().to_owned()),
            refresh_at,
            saved: SystemTime::now(),
        };
        let key = self.cache_key();
        let path = disk.path().to_owned();
        tokio::task::spawn_blocking(move || locked.put(&key, &entry))
            .await
            .map_err(|e| join_error(&path, e))??;
        Ok(cookies)
    }

    /// A login this caller waited for failed with `shared`. With a disk cache, a
    /// session another process saved since may still serve; otherwise the error does.
    async fn after_failure(&self, shared: Error, renewing: &Renewing<'_>) -> Result<Credential> {
        let Some(disk) = &self.disk else {
            return Err(shared);
        };
        let locked = self.disk_lock(disk).await?;
        self.take_from_disk(disk, &locked, renewing).ok_or(shared)
    }
}

fn join_error(path: &std::path::Path, e: tokio::task::JoinError) -> Error {
    Error::SessionCache {
        path: path.display().to_string(),
        reason: format!("the cache task failed: {e}"),
    }
}
