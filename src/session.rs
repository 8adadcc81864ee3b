//! A login that lasts: the session is kept and reused while it is valid, a
//! fresh login happens once however many callers need one at the same time,
//! and a forked child gets its own HTTP client and login lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use crate::cache::{Entry, SessionCache};
use crate::config::LoginConfig;
use crate::error::{Error, Result};
use crate::flow;
use crate::http::Transport;
use crate::runtime::{ProcessLock, SharedFailure};

/// How long before a cookie's expiry the session counts as stale: 60 s, or a
/// quarter of its lifetime for short-lived sessions.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Current {
    cookies: Arc<SecretString>,
    /// When to log in again before using it; `None` when the gateway gave no expiry.
    refresh_at: Option<SystemTime>,
    /// When this session was obtained (by a login here, or saved by another process).
    obtained: SystemTime,
}

impl Current {
    fn valid(&self, now: SystemTime) -> bool {
        self.refresh_at.is_none_or(|t| now < t)
    }
}

pub struct Authenticator {
    cfg: LoginConfig,
    /// Read on every request without waiting; written only under the login lock.
    current: RwLock<Option<Current>>,
    /// Held for the whole of a login, so concurrent callers wait for one login.
    login_lock: ProcessLock,
    /// A failed login is the answer for those who waited for it.
    failures: SharedFailure,
    logins: AtomicU64,
    /// The opt-in session cache on disk, shared with other processes.
    disk: Option<SessionCache>,
    /// Things the caller should warn about (a corrupt cache file replaced).
    warnings: Mutex<Vec<String>>,
}

/// Which session from the disk cache a renewal may take instead of logging in.
enum FromDisk {
    /// Any valid one.
    Any,
    /// Any valid one but this, which the gateway rejected, saved after this time.
    NewerThan(String, SystemTime),
    /// None: a fresh login was asked for.
    No,
}

impl Authenticator {
    /// Cheap: the HTTP client is made (or shared) at the first login, off the caller's thread.
    pub fn new(cfg: LoginConfig) -> Result<Self> {
        Transport::check(&cfg.options)?;
        Ok(Authenticator {
            cfg,
            current: RwLock::new(None),
            login_lock: ProcessLock::default(),
            failures: SharedFailure::default(),
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
    pub fn cached(&self) -> Option<Arc<SecretString>> {
        let cur = self.current_read();
        cur.as_ref()
            .filter(|c| c.valid(SystemTime::now()))
            .map(|c| c.cookies.clone())
    }

    /// The session's cookies, logging in first when none is held or it is about to expire.
    pub async fn cookies(&self) -> Result<Arc<SecretString>> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let ticket = self.failures.ticket();
        let lock = self.login_lock();
        let _guard = lock.lock().await;
        // Whoever held the lock before us may have just logged in, or failed to.
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        if let Some(e) = self.failures.since(ticket) {
            return self.after_shared_failure(e, FromDisk::Any).await;
        }
        self.renew(FromDisk::Any).await
    }

    /// Log in now, whatever is held.
    pub async fn login(&self) -> Result<Arc<SecretString>> {
        let lock = self.login_lock();
        let _guard = lock.lock().await;
        self.renew(FromDisk::No).await
    }

    /// The session `stale` was rejected by the gateway: log in again, unless
    /// another caller already replaced it, in which case that session is returned.
    pub async fn refresh(&self, stale: &str) -> Result<Arc<SecretString>> {
        let ticket = self.failures.ticket();
        let lock = self.login_lock();
        let _guard = lock.lock().await;
        if let Some(c) = self.cached()
            && c.expose_secret() != stale
        {
            return Ok(c);
        }
        // A session another process saved is worth trying only if it is newer
        // than the rejected one: an older one was voided by the same event.
        let held_since = self
            .current_read()
            .as_ref()
            .map_or(SystemTime::UNIX_EPOCH, |c| c.obtained);
        let from_disk = FromDisk::NewerThan(stale.to_owned(), held_since);
        if let Some(e) = self.failures.since(ticket) {
            return self.after_shared_failure(e, from_disk).await;
        }
        self.renew(from_disk).await
    }

    fn login_lock(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.login_lock.get()
    }

    fn current_read(&self) -> std::sync::RwLockReadGuard<'_, Option<Current>> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget the session, so the next use logs in.
    pub fn invalidate(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A new session, from the disk cache when allowed and valid, else from a
    /// login. Called with `login_lock` held; with a disk cache, the file lock is
    /// held across the login, so processes sharing the file log in once.
    async fn renew(&self, from_disk: FromDisk) -> Result<Arc<SecretString>> {
        let outcome = self.renew_once(from_disk).await;
        self.failures.record(&outcome);
        outcome
    }

    async fn renew_once(&self, from_disk: FromDisk) -> Result<Arc<SecretString>> {
        if self.disk.is_none() {
            return Ok(self.login_now().await?.0);
        }
        let mut locked = self.disk_lock().await?;
        if let Some(cookies) = self.take_from_disk(&locked, &from_disk) {
            return Ok(cookies);
        }
        let (cookies, refresh_at) = self.login_now().await?;
        let entry = Entry {
            cookies: SecretString::from(cookies.expose_secret().to_owned()),
            refresh_at,
            saved: SystemTime::now(),
        };
        let key = self.cache_key();
        tokio::task::spawn_blocking(move || locked.put(&key, &entry))
            .await
            .map_err(join_error)??;
        Ok(cookies)
    }

    /// A login this caller waited for failed with `shared`. With a disk cache, a
    /// session another process saved since may still serve; otherwise the error does.
    async fn after_shared_failure(&self, shared: Error, from_disk: FromDisk) -> Result<Arc<SecretString>> {
        if self.disk.is_none() {
            return Err(shared);
        }
        let locked = self.disk_lock().await?;
        self.take_from_disk(&locked, &from_disk).ok_or(shared)
    }

    /// The disk cache, locked (the caller checked that there is one).
    async fn disk_lock(&self) -> Result<crate::cache::Locked> {
        let disk = self.disk.clone().ok_or_else(|| Error::SessionCache {
            path: "-".into(),
            reason: "no session cache".into(),
        })?;
        let mut locked = tokio::task::spawn_blocking(move || disk.lock())
            .await
            .map_err(join_error)??;
        if let Some(w) = locked.warning.take() {
            self.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(w);
        }
        Ok(locked)
    }

    /// The cached session, if `from_disk` allows it; it becomes the current one.
    fn take_from_disk(&self, locked: &crate::cache::Locked, from_disk: &FromDisk) -> Option<Arc<SecretString>> {
        let entry = locked.get(&self.cache_key())?;
        let usable = match from_disk {
            FromDisk::Any => true,
            FromDisk::NewerThan(stale, since) => entry.cookies.expose_secret() != stale && entry.saved > *since,
            FromDisk::No => false,
        };
        if !usable {
            return None;
        }
        log::debug!(target: "kfp_auth", "reusing the session cached in {}", self.disk.as_ref().map(|d| d.path().display().to_string()).unwrap_or_default());
        let cookies = Arc::new(entry.cookies);
        self.set_current(cookies.clone(), entry.refresh_at, entry.saved);
        Some(cookies)
    }

    fn cache_key(&self) -> String {
        SessionCache::key(self.cfg.api_url.as_str(), &self.cfg.username, &self.cfg.connector)
    }

    async fn login_now(&self) -> Result<(Arc<SecretString>, Option<SystemTime>)> {
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
        self.set_current(cookies.clone(), refresh_at, started);
        Ok((cookies, refresh_at))
    }

    fn set_current(&self, cookies: Arc<SecretString>, refresh_at: Option<SystemTime>, obtained: SystemTime) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Current {
            cookies,
            refresh_at,
            obtained,
        });
    }

    /// The HTTP client of this process for these options (see `Transport::shared`).
    fn transport(&self) -> Result<Arc<Transport>> {
        Transport::shared(&self.cfg.options)
    }
}

/// When to renew a credential obtained at `started` that expires at `expires`:
/// 60 s before, or a quarter of its lifetime before for short-lived ones. An
/// expiry already past means our clock and the server's disagree: `None`
/// (unknown) rather than renewing on every call.
pub(crate) fn refresh_at(started: SystemTime, expires: SystemTime) -> Option<SystemTime> {
    let lifetime = expires.duration_since(started).ok().filter(|l| !l.is_zero())?;
    Some(expires - (lifetime / 4).min(MAX_REFRESH_MARGIN))
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::SessionCache {
        path: "-".into(),
        reason: format!("the cache task failed: {e}"),
    }
}
