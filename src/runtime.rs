//! Locks and shared failures for logins and grants that must not run twice at once.

/// An async lock that a forked child does not inherit held: a child forked
/// while the parent held it gets a fresh one (the holder does not exist there).
#[derive(Default)]
pub struct ProcessLock(std::sync::Mutex<(u32, std::sync::Arc<tokio::sync::Mutex<()>>)>);

impl ProcessLock {
    /// This process's lock; hold the returned mutex's guard across the work.
    pub fn get(&self) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if slot.0 != pid {
            *slot = (pid, std::sync::Arc::default());
        }
        slot.1.clone()
    }
}

/// The outcome of the last attempt made under a `ProcessLock`, so that callers
/// who queued behind a failed attempt share its error instead of each trying
/// again: fifty threads with a wrong password make one login, not fifty (which
/// could lock the account in an LDAP directory).
#[derive(Default)]
pub struct SharedFailure {
    attempts: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<Option<(u64, crate::Error)>>,
}

impl SharedFailure {
    /// Taken before waiting for the lock.
    pub fn ticket(&self) -> u64 {
        self.attempts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The error of an attempt that ended after `ticket` was taken, if it failed.
    pub fn since(&self, ticket: u64) -> Option<crate::Error> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().filter(|(n, _)| *n > ticket).map(|(_, e)| e.clone())
    }

    /// Record an attempt's outcome (called with the lock held).
    pub fn record<T>(&self, outcome: &crate::Result<T>) {
        let n = self.attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = outcome.as_ref().err().map(|e| (n, e.clone()));
    }
}
