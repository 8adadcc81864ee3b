//! Running core futures for Python: blocking with the GIL released (Ctrl-C
//! still interrupts), or as an asyncio awaitable, on one tokio runtime.
//!
//! A forked child (multiprocessing's default start method on Linux) inherits
//! the parent's runtime without its worker threads, and anything blocked on it
//! would wait forever. So the runtime is per process: a child builds its own,
//! and the parent's copy is left alone (dropping it would join threads that do
//! not exist in the child).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3_async_runtimes::{TaskLocals, generic};
use secrecy::{ExposeSecret, SecretString};
use tokio::runtime::{Builder, Runtime};

use super::errors::kfp_auth_error;
use super::exit;

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's runtime, made on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    process_runtime().map_err(|e| kfp_auth_error(format!("could not start the I/O runtime: {e}")))
}

fn process_runtime() -> std::io::Result<&'static Runtime> {
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

/// Run a core future on the runtime with the GIL released, waking every
/// 100 ms to let Python handle signals, so Ctrl-C interrupts a login promptly.
/// The future runs as a task on the runtime's threads, which also see its I/O:
/// polled on this thread instead, every I/O event would cost two thread wake-ups
/// (15 per login, a third of a login's CPU). An interrupt aborts the task.
pub fn block_on<T: Send + 'static>(
    py: Python<'_>,
    fut: impl Future<Output = crate::Result<T>> + Send + 'static,
) -> PyResult<T> {
    let rt = runtime()?;
    let outcome: PyResult<crate::Result<T>> = py.detach(|| {
        let mut task = rt.spawn(fut);
        rt.block_on(async {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_millis(100),
                Duration::from_millis(100),
            );
            loop {
                tokio::select! {
                    r = &mut task => return r.map_err(|e| {
                        kfp_auth_error(format!("kfp-auth's task ended without an answer ({e})"))
                    }),
                    _ = tick.tick() => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            task.abort();
                            // The task's cleanup runs before the interrupt reaches Python
                            // (a device login tells its prompt it was cancelled); bounded,
                            // as a task stuck outside an await point cannot be aborted.
                            let _ = tokio::time::timeout(Duration::from_secs(1), &mut task).await;
                            return Err(e);
                        }
                    }
                }
            }
        })
    });
    Ok(outcome??)
}

/// What hands out a secret: a Dex session (cookies) or a bearer source (tokens).
pub trait Credentials: Send + Sync + 'static {
    /// Runs with the GIL held after each call, before its outcome reaches Python.
    fn after_call(&self, _py: Python<'_>) -> PyResult<()> {
        Ok(())
    }
}

/// A secret handed to Python as a `str`, made straight from the secret's bytes: no
/// intermediate Rust `String` is left unwiped in freed memory on each call (the cookie
/// clients ask for the session before every request). Python's `str` is the caller's.
pub fn secret_to_py<'py>(py: Python<'py>, secret: &SecretString) -> Bound<'py, PyString> {
    PyString::new(py, secret.expose_secret())
}

/// A call on `held` that yields a secret, run with the GIL released.
pub fn blocking<'py, C, F, Fut>(py: Python<'py>, held: &Arc<C>, call: F) -> PyResult<Bound<'py, PyString>>
where
    C: Credentials,
    F: FnOnce(Arc<C>) -> Fut,
    Fut: Future<Output = crate::Result<Arc<SecretString>>> + Send + 'static,
{
    let secret = block_on(py, call(held.clone()));
    held.after_call(py)?;
    Ok(secret_to_py(py, &*secret?))
}

/// A call on `held` that yields a secret, as a Python awaitable on our runtime.
/// Cancelling the awaiting task drops the Rust future, which aborts its requests.
pub fn awaitable<'py, C, F, Fut>(py: Python<'py>, held: &Arc<C>, call: F) -> PyResult<Bound<'py, PyAny>>
where
    C: Credentials,
    F: FnOnce(Arc<C>) -> Fut,
    Fut: Future<Output = crate::Result<Arc<SecretString>>> + Send + 'static,
{
    runtime()?;
    // An atexit handler that runs after ours would wait forever for the result.
    if exit::exiting() {
        return Err(kfp_auth_error(
            "Python is exiting: async calls can no longer complete; use the blocking method here",
        ));
    }
    let (fut, held) = (call(held.clone()), held.clone());
    generic::future_into_py::<KfpRuntime, _, Py<PyString>>(py, async move {
        let result = fut.await;
        let done = exit::attach(|py| {
            held.after_call(py)?;
            Ok(secret_to_py(py, &*result?).unbind())
        });
        // Python is exiting: nobody awaits this any more.
        done.unwrap_or_else(|| Err(kfp_auth_error("Python is exiting")))
    })
}

/// pyo3-async-runtimes' view of our runtime: async calls run on the same
/// per-process runtime as blocking ones.
struct KfpRuntime;

tokio::task_local! {
    static TASK_LOCALS: std::sync::OnceLock<TaskLocals>;
}

impl generic::Runtime for KfpRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F: Future<Output = ()> + Send + 'static>(fut: F) -> Self::JoinHandle {
        current().spawn(fut)
    }

    /// pyo3-async-runtimes hands results to asyncio from here: skipped once Python exits
    /// (the closure, holding Python objects, is leaked rather than dropped without the GIL).
    fn spawn_blocking<F: FnOnce() + Send + 'static>(f: F) -> Self::JoinHandle {
        current().spawn_blocking(move || {
            let mut f = Some(f);
            exit::unless_exiting(|| (f.take().expect("run once"))());
            std::mem::forget(f);
        })
    }
}

/// The runtime, which `awaitable` made before any future reaches the spawns above.
fn current() -> &'static Runtime {
    process_runtime().expect("runtime created before spawning")
}

impl generic::ContextExt for KfpRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS.try_with(|c| c.get().cloned()).unwrap_or_default()
    }
}
