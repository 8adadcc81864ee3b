//! A login that lasts: the session is kept and reused while it is valid, a
//! fresh login happens once however many callers need one at the same time,
//! and a forked child gets its own HTTP client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use crate::config::LoginConfig;
use crate::error::Result;
use crate::flow;
use crate::http::Transport;

/// How long before a cookie's expiry the session counts as stale: 60 s, or a
/// quarter of its lifetime for short-lived sessions.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Current {
    cookies: Arc<SecretString>,
    /// When to log in again before using it; `None` when the gateway gave no expiry.
    refresh_at: Option<SystemTime>,
}

impl Current {
    fn valid(&self, now: SystemTime) -> bool {
        self.refresh_at.is_none_or(|t| now < t)
    }
}

pub struct Authenticator {
    cfg: LoginConfig,
    transport: Mutex<(u32, Arc<Transport>)>,
    /// Read on every request without waiting; written only under `login_lock`.
    current: RwLock<Option<Current>>,
    /// Held for the whole of a login, so concurrent callers wait for one login.
    login_lock: tokio::sync::Mutex<()>,
    logins: AtomicU64,
}

impl Authenticator {
    pub fn new(cfg: LoginConfig) -> Result<Self> {
        let transport = Transport::new(&cfg.options)?;
        Ok(Authenticator {
            cfg,
            transport: Mutex::new((std::process::id(), Arc::new(transport))),
            current: RwLock::new(None),
            login_lock: tokio::sync::Mutex::new(()),
            logins: AtomicU64::new(0),
        })
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
        let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
        cur.as_ref()
            .filter(|c| c.valid(SystemTime::now()))
            .map(|c| c.cookies.clone())
    }

    /// The session's cookies, logging in first when none is held or it is about to expire.
    pub async fn cookies(&self) -> Result<Arc<SecretString>> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _guard = self.login_lock.lock().await;
        // Whoever held the lock before us may have just logged in.
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        self.login_locked().await
    }

    /// Log in now, whatever is held.
    pub async fn login(&self) -> Result<Arc<SecretString>> {
        let _guard = self.login_lock.lock().await;
        self.login_locked().await
    }

    /// The session `stale` was rejected by the gateway: log in again, unless
    /// another caller already replaced it, in which case that session is returned.
    pub async fn refresh(&self, stale: &str) -> Result<Arc<SecretString>> {
        let _guard = self.login_lock.lock().await;
        if let Some(c) = self.cached()
            && c.expose_secret() != stale
        {
            return Ok(c);
        }
        self.login_locked().await
    }

    /// Forget the session, so the next use logs in.
    pub fn invalidate(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn login_locked(&self) -> Result<Arc<SecretString>> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let transport = self.transport()?;
        let started = SystemTime::now();
        let session = flow::login(&self.cfg, &transport).await?;
        let refresh_at = session.expires.map(|exp| {
            let lifetime = exp.duration_since(started).unwrap_or_default();
            exp - (lifetime / 4).min(MAX_REFRESH_MARGIN)
        });
        let cookies = Arc::new(session.cookies);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Current {
            cookies: cookies.clone(),
            refresh_at,
        });
        Ok(cookies)
    }

    /// The HTTP client of this process: its pooled connections belong to the
    /// runtime of the process that made it, so a forked child makes its own.
    fn transport(&self) -> Result<Arc<Transport>> {
        let mut slot = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if slot.0 != pid {
            *slot = (pid, Arc::new(Transport::new(&self.cfg.options)?));
        }
        Ok(slot.1.clone())
    }
}
