//! The one tokio runtime every login runs on, created on first use.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn runtime() -> std::io::Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    // Two workers: logins are I/O-bound, and this machine class has two cores.
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kfp-auth-io")
        .enable_all()
        .build()?;
    // If another thread won the race, ours is dropped here, outside any runtime.
    Ok(RUNTIME.get_or_init(|| rt))
}
