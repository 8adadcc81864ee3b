//! The one tokio runtime every login runs on, created on first use.
//!
//! A forked child (multiprocessing's default start method on Linux) inherits
//! the parent's runtime without its worker threads, and anything blocked on it
//! would wait forever. So the runtime is per process: a child builds its own,
//! and the parent's copy is left alone (dropping it would join threads that do
//! not exist in the child).

use std::sync::Mutex;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

pub fn runtime() -> std::io::Result<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, rt)) = *slot
        && owner == pid
    {
        return Ok(rt);
    }
    // Sized by what logins need: they are I/O-bound (they wait on the gateway and
    // Dex), with little CPU of their own (a TLS handshake, a few small pages), so
    // two workers serve many at once, the second keeping one busy login from
    // stalling the rest. More would sit idle in the host program.
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kfp-auth-io")
        .enable_all()
        .build()?;
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}
