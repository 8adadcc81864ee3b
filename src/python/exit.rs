//! The exit guard: calls into Python from threads Python does not know (tokio's),
//! made safe at interpreter exit. While Python finalizes, a foreign thread that asks for the
//! GIL is ended with `pthread_exit`, whose forced unwind runs Rust destructors
//! that touch Python objects without the GIL: a crash at exit, seen when a
//! script ends right after `asyncio.run(...)` of a login (the completion thread
//! was still in `call_soon_threadsafe`). So an `atexit` hook marks Python as
//! exiting and waits, briefly, for every such call in flight to finish; calls
//! that would start later are skipped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

static EXITING: AtomicBool = AtomicBool::new(false);
static IN_PYTHON: AtomicUsize = AtomicUsize::new(0);

/// Counts a call into Python for as long as it lives.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_PYTHON.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Run `f` unless Python is exiting; `None` when it was skipped.
pub fn unless_exiting<R>(f: impl FnOnce() -> R) -> Option<R> {
    let _counted = InFlight::enter();
    // Checked after counting: the exit hook sets the flag, then waits for the count.
    if EXITING.load(Ordering::SeqCst) {
        return None;
    }
    Some(f())
}

/// Python has begun to exit (our hook ran): async calls cannot complete any more.
pub fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}

/// Registered with `os.register_at_fork`: a child starts with no calls in flight
/// (a count copied from the parent would make its exit wait for nothing).
#[pyfunction]
pub fn _after_fork_in_child() {
    EXITING.store(false, Ordering::SeqCst);
    IN_PYTHON.store(0, Ordering::SeqCst);
}

/// `Python::attach` from a foreign thread, unless Python is exiting.
pub fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    unless_exiting(|| Python::attach(f))
}

/// Registered with `atexit`: no new calls into Python from our threads, and
/// those under way may finish (for at most two seconds), with the GIL released.
#[pyfunction]
pub fn _before_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while IN_PYTHON.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// pyo3-log, but only for our own records (decided before Python is asked),
/// and never while Python exits.
pub struct Logger(pub pyo3_log::Logger);

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("kfp_auth") && unless_exiting(|| self.0.enabled(metadata)).unwrap_or(false)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("kfp_auth") {
            unless_exiting(|| self.0.log(record));
        }
    }

    fn flush(&self) {}
}
