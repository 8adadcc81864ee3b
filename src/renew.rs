//! A credential renewed once however many callers need it at the same time: the
//! session's cookies, a password grant's token, and whatever comes next. The
//! sequence is the same for each, so it is written once here:
//!
//! 1. serve the held credential while it is fresh, without waiting for anything;
//! 2. take a ticket and the renewal lock;
//! 3. check again: whoever held the lock before may have just renewed it;
//! 4. reuse the failure of a renewal that ended while this caller waited;
//! 5. renew, and record the outcome for those queued behind.
//!
//! What is renewed, and how, is the [`Renew`] implementor's business.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

/// A credential as it is handed out: shared, and wiped when the last holder drops it.
pub type Credential = Arc<SecretString>;

/// How long before a credential's expiry it counts as stale: 60 s, or a
/// quarter of its lifetime for short-lived ones.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// When to renew a credential obtained at `started` that expires at `expires`:
/// 60 s before, or a quarter of its lifetime before for short-lived ones. An
/// expiry already past means our clock and the server's disagree: `None`
/// (unknown) rather than renewing on every call.
pub fn refresh_at(started: SystemTime, expires: SystemTime) -> Option<SystemTime> {
    let lifetime = expires.duration_since(started).ok().filter(|l| !l.is_zero())?;
    Some(expires - (lifetime / 4).min(MAX_REFRESH_MARGIN))
}

/// What the caller of a renewal needs.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// A fresh credential; none was held, or the held one is about to expire.
    Fresh,
    /// Any credential but this one, which the server refused.
    Replace(&'a str),
    /// A new credential, whatever is held.
    New,
    /// A new credential from scratch (a new login), not a renewal of the held one:
    /// for sources whose renewal differs from their first login (a refresh token).
    Restart,
}

/// A source of a credential that needs renewing now and then.
pub trait Renew: Sync {
    /// Obtain a new credential and put it in place with [`Renewing::keep`]. Called
    /// with the renewal lock held, so one renewal runs at a time; its outcome is
    /// recorded for the callers queued behind it.
    fn renew(&self, renewing: &Renewing<'_>) -> impl Future<Output = Result<Credential>> + Send;

    /// The answer for a caller that queued behind a renewal which failed with
    /// `shared`: by default that error, so a wrong password is tried once, not
    /// once per caller (which could lock the account in an LDAP directory). A
    /// source may know a better answer without renewing (another process's session).
    fn after_failure(&self, shared: Error, renewing: &Renewing<'_>) -> impl Future<Output = Result<Credential>> + Send {
        let _ = renewing;
        std::future::ready(Err(shared))
    }
}

/// The renewal under way: what its caller needs, and where its credential goes.
pub struct Renewing<'a> {
    pub need: Need<'a>,
    /// When the credential held at the start was obtained, fresh or not.
    pub held_since: Option<SystemTime>,
    slot: &'a RwLock<Option<Held>>,
}

impl Renewing<'_> {
    /// Hold `credential` from now on, until `refresh_at` (`None`: until refused).
    pub fn keep(&self, credential: Credential, refresh_at: Option<SystemTime>, obtained: SystemTime) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Some(Held {
            credential,
            refresh_at,
            obtained,
        });
    }
}

struct Held {
    credential: Credential,
    /// When to renew it before using it; `None` when its expiry is unknown.
    refresh_at: Option<SystemTime>,
    /// When it was obtained (by a renewal here, or by another process).
    obtained: SystemTime,
}

impl Held {
    fn fresh(&self, now: SystemTime) -> bool {
        self.refresh_at.is_none_or(|t| now < t)
    }
}

/// A held credential and the single-flight renewal that replaces it.
#[derive(Default)]
pub struct Renewable {
    /// Read on every call without waiting; written only under the lock.
    held: RwLock<Option<Held>>,
    /// Held for the whole of a renewal, so concurrent callers wait for one.
    lock: ProcessLock,
    /// A failed renewal is the answer for those who waited for it.
    failures: SharedFailure,
}

impl Renewable {
    /// The held credential while it is fresh; never waits, never renews.
    pub fn fresh(&self) -> Option<Credential> {
        let held = self.held.read().unwrap_or_else(|p| p.into_inner());
        held.as_ref()
            .filter(|h| h.fresh(SystemTime::now()))
            .map(|h| h.credential.clone())
    }

    /// Forget the held credential, so the next call renews.
    pub fn forget(&self) {
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A fresh credential: the held one, or one renewal shared by every caller waiting for it.
    pub async fn get(&self, source: &impl Renew) -> Result<Credential> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let ticket = self.failures.ticket();
        let lock = self.lock.get();
        let _guard = lock.lock().await;
        // Whoever held the lock before us may have just renewed, or failed to.
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        self.renew_after(ticket, source, Need::Fresh).await
    }

    /// The server refused `stale`: a new credential, unless another caller
    /// already replaced it, in which case that one is returned.
    pub async fn replace(&self, source: &impl Renew, stale: &str) -> Result<Credential> {
        let ticket = self.failures.ticket();
        let lock = self.lock.get();
        let _guard = lock.lock().await;
        if let Some(c) = self.fresh()
            && c.expose_secret() != stale
        {
            return Ok(c);
        }
        self.renew_after(ticket, source, Need::Replace(stale)).await
    }

    /// A new credential now, whatever is held (no earlier failure is reused).
    pub async fn renew_now(&self, source: &impl Renew) -> Result<Credential> {
        let lock = self.lock.get();
        let _guard = lock.lock().await;
        self.renew(source, &self.renewing(Need::New)).await
    }

    /// A new credential from scratch now ([`Need::Restart`]); no earlier failure is reused.
    pub async fn restart(&self, source: &impl Renew) -> Result<Credential> {
        let lock = self.lock.get();
        let _guard = lock.lock().await;
        self.renew(source, &self.renewing(Need::Restart)).await
    }

    /// With the lock held: the failure of a renewal that ended since `ticket`, or a renewal.
    async fn renew_after(&self, ticket: u64, source: &impl Renew, need: Need<'_>) -> Result<Credential> {
        let renewing = self.renewing(need);
        if let Some(e) = self.failures.since(ticket) {
            return source.after_failure(e, &renewing).await;
        }
        self.renew(source, &renewing).await
    }

    async fn renew(&self, source: &impl Renew, renewing: &Renewing<'_>) -> Result<Credential> {
        let outcome = source.renew(renewing).await;
        self.failures.record(&outcome);
        outcome
    }

    fn renewing<'a>(&'a self, need: Need<'a>) -> Renewing<'a> {
        let held_since = self
            .held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|h| h.obtained);
        Renewing {
            need,
            held_since,
            slot: &self.held,
        }
    }
}

/// An async lock that a forked child does not inherit held: a child forked
/// while the parent held it gets a fresh one (the holder does not exist there).
#[derive(Default)]
struct ProcessLock(Mutex<(u32, Arc<tokio::sync::Mutex<()>>)>);

impl ProcessLock {
    /// This process's lock; hold the returned mutex's guard across the work.
    fn get(&self) -> Arc<tokio::sync::Mutex<()>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if slot.0 != pid {
            *slot = (pid, Arc::default());
        }
        slot.1.clone()
    }
}

/// The outcome of the last renewal made under a `ProcessLock`, so that callers
/// who queued behind a failed one share its error instead of each trying again.
#[derive(Default)]
struct SharedFailure {
    attempts: AtomicU64,
    last: Mutex<Option<(u64, Error)>>,
}

impl SharedFailure {
    /// Taken before waiting for the lock.
    fn ticket(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// The error of a renewal that ended after `ticket` was taken, if it failed.
    fn since(&self, ticket: u64) -> Option<Error> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().filter(|(n, _)| *n > ticket).map(|(_, e)| e.clone())
    }

    /// Record a renewal's outcome (called with the lock held).
    fn record<T>(&self, outcome: &Result<T>) {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = outcome.as_ref().err().map(|e| (n, e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A source that counts its renewals, waits at `gate` inside each (so the
    /// test decides when a renewal ends), and fails while `failing` is set.
    #[derive(Default)]
    struct Source {
        renewals: AtomicU64,
        failing: AtomicBool,
        gate: tokio::sync::RwLock<()>,
        lifetime: Option<Duration>,
    }

    impl Renew for Source {
        async fn renew(&self, renewing: &Renewing<'_>) -> Result<Credential> {
            let n = self.renewals.fetch_add(1, Ordering::SeqCst) + 1;
            drop(self.gate.read().await);
            if self.failing.load(Ordering::SeqCst) {
                return Err(Error::Token {
                    what: format!("renewal {n} failed"),
                    hint: "none".into(),
                });
            }
            let credential = Arc::new(SecretString::from(format!("credential-{n}")));
            let now = SystemTime::now();
            renewing.keep(credential.clone(), self.lifetime.map(|l| now + l), now);
            Ok(credential)
        }
    }

    impl Source {
        fn renewals(&self) -> u64 {
            self.renewals.load(Ordering::SeqCst)
        }
    }

    /// `n` callers of `call`, each on its own task, all waiting on the lock (or
    /// the renewal) by the time this returns: the runtime is single-threaded, so
    /// the sleep lets every task run up to its first wait.
    async fn callers<F, Fut>(n: usize, call: F) -> Vec<tokio::task::JoinHandle<Result<Credential>>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Credential>> + Send + 'static,
    {
        let tasks = (0..n).map(|_| tokio::spawn(call())).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks
    }

    async fn outcomes(tasks: Vec<tokio::task::JoinHandle<Result<Credential>>>) -> Vec<Result<String>> {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().map(|c| c.expose_secret().to_owned()));
        }
        out
    }

    #[tokio::test]
    async fn concurrent_callers_get_one_renewal() {
        let (r, source) = (Arc::new(Renewable::default()), Arc::new(Source::default()));
        let gate = source.gate.write().await;
        let tasks = callers(20, || {
            let (r, source) = (r.clone(), source.clone());
            async move { r.get(&*source).await }
        })
        .await;
        assert_eq!(source.renewals(), 1, "the first caller renews, the others wait");
        drop(gate);
        for o in outcomes(tasks).await {
            assert_eq!(o.unwrap(), "credential-1");
        }
        assert_eq!(source.renewals(), 1);

        // Twenty callers refused the same credential: one replacement serves them all.
        let gate = source.gate.write().await;
        let tasks = callers(20, || {
            let (r, source) = (r.clone(), source.clone());
            async move { r.replace(&*source, "credential-1").await }
        })
        .await;
        drop(gate);
        for o in outcomes(tasks).await {
            assert_eq!(o.unwrap(), "credential-2");
        }
        assert_eq!(source.renewals(), 2);
        // A refusal of a credential already replaced gets the replacement.
        assert_eq!(
            r.replace(&*source, "credential-1").await.unwrap().expose_secret(),
            "credential-2"
        );
        assert_eq!(source.renewals(), 2);
    }

    #[tokio::test]
    async fn a_failure_is_shared_with_the_callers_queued_behind_it_but_not_later_ones() {
        let (r, source) = (Arc::new(Renewable::default()), Arc::new(Source::default()));
        source.failing.store(true, Ordering::SeqCst);
        let gate = source.gate.write().await;
        let tasks = callers(10, || {
            let (r, source) = (r.clone(), source.clone());
            async move { r.get(&*source).await }
        })
        .await;
        drop(gate);
        for o in outcomes(tasks).await {
            assert!(o.unwrap_err().to_string().contains("renewal 1 failed"));
        }
        assert_eq!(
            source.renewals(),
            1,
            "the callers queued behind the failure did not retry"
        );

        // A caller that comes after the failure tries again, and so does a forced renewal.
        let e = r.get(&*source).await.unwrap_err();
        assert!(e.to_string().contains("renewal 2 failed"), "{e}");
        let e = r.renew_now(&*source).await.unwrap_err();
        assert!(e.to_string().contains("renewal 3 failed"), "{e}");
        source.failing.store(false, Ordering::SeqCst);
        assert_eq!(r.get(&*source).await.unwrap().expose_secret(), "credential-4");
        assert_eq!(source.renewals(), 4);
    }

    #[tokio::test]
    async fn a_fresh_credential_is_served_without_locking() {
        let r = Renewable::default();
        let source = Source {
            lifetime: Some(Duration::from_secs(3600)),
            ..Source::default()
        };
        assert_eq!(r.get(&source).await.unwrap().expose_secret(), "credential-1");
        let lock = r.lock.get();
        let _held = lock.lock().await;
        let quick = Duration::from_millis(200);
        let c = tokio::time::timeout(quick, r.get(&source))
            .await
            .expect("served without the lock");
        assert_eq!(c.unwrap().expose_secret(), "credential-1");
        assert_eq!(r.fresh().unwrap().expose_secret(), "credential-1");
        assert_eq!(source.renewals(), 1);
        // Without a fresh credential, a caller waits for the lock.
        r.forget();
        assert!(tokio::time::timeout(quick, r.get(&source)).await.is_err());
        assert_eq!(source.renewals(), 1);
    }

    #[tokio::test]
    async fn a_credential_past_its_refresh_time_is_renewed() {
        let r = Renewable::default();
        let source = Source::default();
        let past = SystemTime::now() - Duration::from_secs(1);
        r.renewing(Need::New)
            .keep(Arc::new(SecretString::from("old")), Some(past), past);
        assert!(r.fresh().is_none());
        assert_eq!(r.get(&source).await.unwrap().expose_secret(), "credential-1");
        // Kept with no expiry: fresh until refused.
        assert_eq!(r.fresh().unwrap().expose_secret(), "credential-1");
    }

    #[test]
    fn refresh_time_is_a_minute_or_a_quarter_of_the_lifetime_before_expiry() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = Duration::from_secs;
        assert_eq!(refresh_at(t, t + secs(3600)), Some(t + secs(3540)));
        assert_eq!(refresh_at(t, t + secs(100)), Some(t + secs(75)));
        assert_eq!(refresh_at(t, t), None, "an expiry that is already past is unknown");
        assert_eq!(refresh_at(t, t - secs(5)), None);
    }
}
