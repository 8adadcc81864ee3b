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
/// and never while Python exits. Made on the first record Python would show:
/// until something imports `logging`, no logger is configured, so Python's own
/// default (`WARNING` and above, to stderr) is all there is to honour. Importing
/// `logging` only then keeps it out of a process that logs nothing, such as
/// `kfp-auth token` (run before every command of a script).
#[derive(Default)]
pub struct Logger(std::sync::OnceLock<pyo3_log::Logger>);

impl Logger {
    /// The logger, once Python's logging is (or must be) in use; `None` until then.
    fn get(&self, level: log::Level) -> Option<&pyo3_log::Logger> {
        if let Some(l) = self.0.get() {
            return Some(l);
        }
        let made = unless_exiting(|| {
            Python::attach(|py| -> PyResult<Option<pyo3_log::Logger>> {
                let imported = py.import("sys")?.getattr("modules")?.contains("logging")?;
                if !imported && level > log::Level::Warn {
                    return Ok(None);
                }
                // Levels are read from Python on each record (no level cache), so logging
                // configured later takes effect; records are rare (a few per login).
                let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?
                    .filter(log::LevelFilter::Off)
                    .filter_target("kfp_auth".to_owned(), log::LevelFilter::Trace);
                Ok(Some(logger))
            })
        })?;
        let logger = made.ok().flatten()?;
        Some(self.0.get_or_init(|| logger))
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("kfp_auth")
            && self
                .get(metadata.level())
                .is_some_and(|l| unless_exiting(|| l.enabled(metadata)).unwrap_or(false))
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("kfp_auth")
            && let Some(l) = self.get(record.level())
        {
            unless_exiting(|| l.log(record));
        }
    }

    fn flush(&self) {}
}
