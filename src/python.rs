//! The thin PyO3 layer: argument conversion, the exception hierarchy, and
//! running core futures on the shared runtime with the GIL released.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3_async_runtimes::{TaskLocals, generic};
use secrecy::{ExposeSecret, SecretString};

use crate::bearer::{Bearer, GrantConfig, Source};
use crate::cache::SessionCache;
use crate::config::{LoginConfig, Options};
use crate::error::Error;
use crate::runtime::runtime;
use crate::session::Authenticator;

create_exception!(
    kfp_auth,
    KFPAuthError,
    PyRuntimeError,
    "Base class of every kfp-auth error."
);
create_exception!(
    kfp_auth,
    InvalidCredentialsError,
    KFPAuthError,
    "Dex rejected the username or password."
);
create_exception!(
    kfp_auth,
    UnknownConnectorError,
    KFPAuthError,
    "Dex does not offer the requested connector (dex_auth_type)."
);
create_exception!(
    kfp_auth,
    UnexpectedResponseError,
    KFPAuthError,
    "A status or page that no Kubeflow login path produces at that step."
);
create_exception!(
    kfp_auth,
    TLSError,
    KFPAuthError,
    "The TLS handshake or certificate verification failed."
);
create_exception!(
    kfp_auth,
    ConnectError,
    KFPAuthError,
    "The server could not be reached, or the connection broke."
);
create_exception!(
    kfp_auth,
    LoginTimeoutError,
    KFPAuthError,
    "The login (all its requests) took longer than `timeout`."
);
create_exception!(
    kfp_auth,
    TokenError,
    KFPAuthError,
    "A bearer token, or its file, cannot be used."
);
create_exception!(
    kfp_auth,
    PermissionDeniedError,
    KFPAuthError,
    "The KFP API denied this user the request (an RBAC denial): a login does not change it."
);
create_exception!(
    kfp_auth,
    SessionCacheError,
    KFPAuthError,
    "The session cache file cannot be used safely."
);

/// Build the Python exception for a core error, with its facts as attributes.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    let root = e.root();
    let err = match root {
        Error::InvalidArgument { .. } => return PyValueError::new_err(msg),
        Error::InvalidCredentials { .. } => InvalidCredentialsError::new_err(msg),
        Error::UnknownConnector { .. } => UnknownConnectorError::new_err(msg),
        Error::UnexpectedResponse { .. } | Error::TooManySteps { .. } | Error::BodyTooLarge { .. } => {
            UnexpectedResponseError::new_err(msg)
        }
        Error::Tls { .. } => TLSError::new_err(msg),
        Error::Connect { .. } | Error::Http { .. } => ConnectError::new_err(msg),
        Error::Timeout { .. } | Error::LoginTimeout { .. } => LoginTimeoutError::new_err(msg),
        Error::SessionCache { .. } => SessionCacheError::new_err(msg),
        Error::Token { .. } => TokenError::new_err(msg),
        Error::Failed { .. } => KFPAuthError::new_err(msg),
    };
    // Attributes are a convenience; a failure to set one must not hide the error.
    let _ = set_attributes(py, err.value(py), &e);
    err
}

/// `.status`, `.url`, `.offered` and `.history` (the redacted requests of the failed login).
fn set_attributes(py: Python<'_>, value: &Bound<'_, pyo3::exceptions::PyBaseException>, e: &Error) -> PyResult<()> {
    let (status, url) = match e.root() {
        Error::InvalidCredentials { status, url, .. } | Error::UnexpectedResponse { status, url, .. } => {
            (Some(*status), Some(url.clone()))
        }
        Error::TooManySteps { url, .. }
        | Error::BodyTooLarge { url, .. }
        | Error::Tls { url, .. }
        | Error::Connect { url, .. }
        | Error::Timeout { url, .. }
        | Error::LoginTimeout { url, .. }
        | Error::Http { url, .. } => (None, Some(url.clone())),
        _ => (None, None),
    };
    value.setattr("status", status)?;
    value.setattr("url", url)?;
    if let Error::UnknownConnector { offered, .. } = e.root() {
        value.setattr("offered", offered.clone())?;
    }
    value.setattr("history", steps_to_py(py, e.history())?)
}

fn steps_to_py<'py>(py: Python<'py>, steps: &[crate::http::Step]) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let list = pyo3::types::PyList::empty(py);
    for step in steps {
        let d = pyo3::types::PyDict::new(py);
        d.set_item("method", step.method)?;
        d.set_item("url", &step.url)?;
        d.set_item("status", step.status)?;
        d.set_item("elapsed_ms", step.elapsed_ms)?;
        list.append(d)?;
    }
    Ok(list)
}

/// Run a core future on the shared runtime with the GIL released, waking every
/// 100 ms to let Python handle signals, so Ctrl-C interrupts a login promptly.
/// The future runs as a task on the runtime's threads, which also see its I/O:
/// polled on this thread instead, every I/O event would cost two thread wake-ups
/// (15 per login, a third of a login's CPU). An interrupt aborts the task.
fn block_on<T: Send + 'static>(
    py: Python<'_>,
    fut: impl Future<Output = crate::Result<T>> + Send + 'static,
) -> PyResult<T> {
    let rt = runtime().map_err(runtime_err)?;
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
                        PyRuntimeError::new_err(format!("kfp-auth's task ended without an answer ({e})"))
                    }),
                    _ = tick.tick() => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            task.abort();
                            return Err(e);
                        }
                    }
                }
            }
        })
    });
    outcome?.map_err(|e| to_py(py, e))
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
        // `DexSession` methods create the runtime before any future reaches here.
        runtime().expect("runtime created before spawning").spawn(fut)
    }

    /// pyo3-async-runtimes hands results to asyncio from here: skipped once Python exits
    /// (the closure, holding Python objects, is leaked rather than dropped without the GIL).
    fn spawn_blocking<F: FnOnce() + Send + 'static>(f: F) -> Self::JoinHandle {
        runtime()
            .expect("runtime created before spawning")
            .spawn_blocking(move || {
                let mut f = Some(f);
                crate::pyexit::unless_exiting(|| (f.take().expect("run once"))());
                std::mem::forget(f);
            })
    }
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

/// A secret handed to Python as a `str`, made straight from the secret's bytes: no
/// intermediate Rust `String` is left unwiped in freed memory on each call (the cookie
/// clients ask for the session before every request). Python's `str` is the caller's.
fn secret_to_py<'py>(py: Python<'py>, secret: &SecretString) -> Bound<'py, PyString> {
    PyString::new(py, secret.expose_secret())
}

fn runtime_err(e: std::io::Error) -> PyErr {
    KFPAuthError::new_err(format!("could not start the I/O runtime: {e}"))
}

/// Turn a core future into a Python awaitable on our runtime, resolving to the
/// secret's text; `after` runs first with the GIL held (to raise warnings).
/// Cancelling the awaiting task drops the Rust future, which aborts its requests.
fn into_awaitable<'py, Fut, After>(py: Python<'py>, fut: Fut, after: After) -> PyResult<Bound<'py, PyAny>>
where
    Fut: Future<Output = crate::Result<Arc<SecretString>>> + Send + 'static,
    After: FnOnce(Python<'_>) -> PyResult<()> + Send + 'static,
{
    runtime().map_err(runtime_err)?;
    // An atexit handler that runs after ours would wait forever for the result.
    if crate::pyexit::exiting() {
        return Err(KFPAuthError::new_err(
            "Python is exiting: async calls can no longer complete; use the blocking method here",
        ));
    }
    generic::future_into_py::<KfpRuntime, _, Py<PyString>>(py, async move {
        let result = fut.await;
        let done = crate::pyexit::attach(|py| {
            after(py)?;
            match result {
                Ok(c) => Ok(secret_to_py(py, &c).unbind()),
                Err(e) => Err(to_py(py, e)),
            }
        });
        // Python is exiting: nobody awaits this any more.
        done.unwrap_or_else(|| Err(KFPAuthError::new_err("Python is exiting")))
    })
}

/// Raise the core's gathered warnings as Python `RuntimeWarning`s.
fn warn_all(py: Python<'_>, auth: &Authenticator) -> PyResult<()> {
    for w in auth.take_warnings() {
        let msg = std::ffi::CString::new(w.replace('\0', " ")).expect("no NUL left");
        PyErr::warn(py, &py.get_type::<pyo3::exceptions::PyRuntimeWarning>(), &msg, 1)?;
    }
    Ok(())
}

fn claims_to_py(py: Python<'_>, c: crate::token::Claims) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let unix = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    let d = pyo3::types::PyDict::new(py);
    d.set_item("subject", c.subject)?;
    d.set_item("issuer", c.issuer)?;
    d.set_item("audience", c.audience)?;
    d.set_item("expires", unix(c.expires))?;
    d.set_item("issued", unix(c.issued))?;
    Ok(d)
}

/// The claims of a JWT (subject, issuer, audience, expires, issued), decoded without verification.
#[pyfunction]
fn inspect_token<'py>(py: Python<'py>, token: &str) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let c = crate::token::claims(token).map_err(|e| to_py(py, e))?;
    claims_to_py(py, c)
}

/// The token file kfp reads in a pod: `$KF_PIPELINES_SA_TOKEN_PATH`, or the default.
#[pyfunction]
fn default_token_path() -> String {
    crate::token::default_token_path().display().to_string()
}

/// The claims of the JWT in a token file, which must exist, be readable, and hold a JWT.
#[pyfunction]
fn inspect_token_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let token = crate::token::read_token_file(&path).map_err(|e| to_py(py, e))?;
    let c = crate::token::inspect(&token).map_err(|e| to_py(py, e))?;
    claims_to_py(py, c)
}

/// The transport options every session takes, checked.
fn options(
    py: Python<'_>,
    skip_tls_verify: bool,
    ssl_ca_cert: Option<std::path::PathBuf>,
    timeout: f64,
    proxy: Option<&str>,
) -> PyResult<Options> {
    let timeout = Duration::try_from_secs_f64(timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| PyValueError::new_err("invalid `timeout`: must be a positive number of seconds"))?;
    let proxy = proxy
        .map(crate::config::parse_proxy_url)
        .transpose()
        .map_err(|e| to_py(py, e))?;
    Ok(Options {
        skip_tls_verify,
        ca_bundle: ssl_ca_cert,
        timeout,
        proxy,
        ..Options::default()
    })
}

/// The default session cache file: `$XDG_CACHE_HOME/kfp-auth/sessions.json` or `~/.cache/...`.
#[pyfunction]
fn default_session_cache() -> Option<String> {
    SessionCache::default_path().map(|p| p.display().to_string())
}

/// A Dex login against one Kubeflow Pipelines endpoint that keeps its session.
/// Holds the password in a zeroising secret; nothing about it ever prints.
#[pyclass(module = "kfp_auth._native", frozen)]
pub struct DexSession {
    auth: Arc<Authenticator>,
}

impl DexSession {
    fn awaitable<'py, F, Fut>(&self, py: Python<'py>, call: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: FnOnce(Arc<Authenticator>) -> Fut,
        Fut: Future<Output = crate::Result<Arc<SecretString>>> + Send + 'static,
    {
        let auth = self.auth.clone();
        into_awaitable(py, call(auth.clone()), move |py| warn_all(py, &auth))
    }

    /// Run a session call with the GIL released, raise its warnings, and hand out the cookies.
    fn blocking<'py, F, Fut>(&self, py: Python<'py>, call: F) -> PyResult<Bound<'py, PyString>>
    where
        F: FnOnce(Arc<Authenticator>) -> Fut,
        Fut: Future<Output = crate::Result<Arc<SecretString>>> + Send + 'static,
    {
        let c = block_on(py, call(self.auth.clone()));
        warn_all(py, &self.auth)?;
        Ok(secret_to_py(py, &*c?))
    }
}

#[pymethods]
impl DexSession {
    #[new]
    #[pyo3(signature = (api_url, username, password, connector = "local", *, skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, max_redirects = 10, max_body_bytes = 1_048_576, session_cache = None, proxy = None, allow_insecure_redirect = false, dex_url = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        api_url: &str,
        username: &str,
        password: &str,
        connector: &str,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<std::path::PathBuf>,
        timeout: f64,
        max_redirects: usize,
        max_body_bytes: usize,
        session_cache: Option<std::path::PathBuf>,
        proxy: Option<&str>,
        allow_insecure_redirect: bool,
        dex_url: Option<&str>,
    ) -> PyResult<Self> {
        let dex_url = dex_url
            .map(|u| crate::config::parse_http_url("dex_url", u))
            .transpose()
            .map_err(|e| to_py(py, e))?;
        let options = Options {
            max_redirects,
            max_body_bytes,
            allow_insecure_redirect,
            dex_url,
            ..options(py, skip_tls_verify, ssl_ca_cert, timeout, proxy)?
        };
        let cfg = LoginConfig::new(api_url, username, SecretString::from(password), connector, options)
            .map_err(|e| to_py(py, e))?;
        let mut auth = Authenticator::new(cfg).map_err(|e| to_py(py, e))?;
        if let Some(path) = session_cache {
            auth = auth.with_disk_cache(SessionCache::new(path));
        }
        Ok(DexSession { auth: Arc::new(auth) })
    }

    /// The session's `Cookie` header value (`""` when unsecured), logging in
    /// only when no valid session is held.
    fn cookies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        if let Some(c) = self.auth.cached() {
            return Ok(secret_to_py(py, &c));
        }
        self.blocking(py, |auth| async move { auth.cookies().await })
    }

    /// Log in now, whatever session is held, and return the new cookies.
    fn login<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.blocking(py, |auth| async move { auth.login().await })
    }

    /// The gateway rejected `stale`: log in again unless another caller already did.
    fn refresh<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyString>> {
        let stale = SecretString::from(stale);
        self.blocking(py, |auth| async move { auth.refresh(stale.expose_secret()).await })
    }

    /// Forget the session, so the next use logs in.
    fn invalidate(&self) {
        self.auth.invalidate();
    }

    fn cookies_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.awaitable(py, |auth| async move { auth.cookies().await })
    }

    fn login_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.awaitable(py, |auth| async move { auth.login().await })
    }

    fn refresh_async<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyAny>> {
        let stale = SecretString::from(stale);
        self.awaitable(py, |auth| async move { auth.refresh(stale.expose_secret()).await })
    }

    /// The session cache file, when one is used.
    #[getter]
    fn session_cache(&self) -> Option<String> {
        self.auth.disk_cache().map(|c| c.path().display().to_string())
    }

    /// Log in as a diagnosis: what guards the endpoint, each request (redacted),
    /// and the verdict. Does not change the session held.
    fn diagnose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let auth = self.auth.clone();
        let d = block_on(py, async move { Ok(crate::diagnose::diagnose(auth.config()).await) })?;
        let out = pyo3::types::PyDict::new(py);
        out.set_item("url", d.url)?;
        out.set_item("tls", d.tls)?;
        out.set_item("gateway", d.gateway)?;
        out.set_item("connectors", d.connectors)?;
        out.set_item("dex", d.dex)?;
        out.set_item("approval", d.approval)?;
        out.set_item("steps", steps_to_py(py, &d.steps)?)?;
        match d.verdict {
            Ok(v) => {
                out.set_item("verdict", v)?;
                out.set_item("error", py.None())?;
            }
            Err(e) => {
                out.set_item("verdict", format!("FAILED: {e}"))?;
                out.set_item("error", to_py(py, e).into_value(py))?;
            }
        }
        Ok(out)
    }

    /// How many logins this session has made.
    #[getter]
    fn logins(&self) -> u64 {
        self.auth.logins()
    }

    #[getter]
    fn api_url(&self) -> String {
        self.auth.config().api_url.to_string()
    }

    #[getter]
    fn username(&self) -> &str {
        &self.auth.config().username
    }

    #[getter]
    fn connector(&self) -> &str {
        &self.auth.config().connector
    }

    #[getter]
    fn skip_tls_verify(&self) -> bool {
        self.auth.config().options.skip_tls_verify
    }

    #[getter]
    fn ssl_ca_cert(&self) -> Option<String> {
        self.auth
            .config()
            .options
            .ca_bundle
            .as_ref()
            .map(|p| p.display().to_string())
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.auth.config().options.timeout.as_secs_f64()
    }

    fn __repr__(&self) -> String {
        let cfg = self.auth.config();
        format!(
            "DexSession(api_url={:?}, username={:?}, password='********', connector={:?})",
            crate::redact::url(&cfg.api_url),
            cfg.username,
            cfg.connector
        )
    }
}

/// A bearer token that stays usable: a fixed token, a token file re-read when
/// rotated, or Dex's password grant renewed before expiry. Never prints it.
#[pyclass(module = "kfp_auth._native", frozen)]
pub struct BearerSession {
    bearer: Arc<Bearer>,
}

#[pymethods]
impl BearerSession {
    /// A token given as a string (e.g. from `kubectl create token`).
    #[staticmethod]
    fn from_token(py: Python<'_>, token: &str) -> PyResult<Self> {
        let bearer = Bearer::fixed(SecretString::from(token)).map_err(|e| to_py(py, e))?;
        Ok(BearerSession {
            bearer: Arc::new(bearer),
        })
    }

    /// A token file, re-read when it changes; `None` reads `$KF_PIPELINES_SA_TOKEN_PATH`
    /// or `/var/run/secrets/kubeflow/pipelines/token`.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn from_file(py: Python<'_>, path: Option<std::path::PathBuf>) -> PyResult<Self> {
        let path = path.unwrap_or_else(crate::token::default_token_path);
        let bearer = py.detach(|| Bearer::file(path)).map_err(|e| to_py(py, e))?;
        Ok(BearerSession {
            bearer: Arc::new(bearer),
        })
    }

    /// Dex's password grant at `dex_url` + `/token` (`dex_url` defaults to `/dex`
    /// on `api_url`'s origin, where Kubeflow's gateway serves Dex).
    #[staticmethod]
    #[pyo3(signature = (api_url, username, password, client_id, client_secret, *, dex_url = None, scopes = "openid email profile groups", skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None))]
    #[allow(clippy::too_many_arguments)]
    fn from_dex_password_grant(
        py: Python<'_>,
        api_url: &str,
        username: &str,
        password: &str,
        client_id: &str,
        client_secret: &str,
        dex_url: Option<&str>,
        scopes: &str,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<std::path::PathBuf>,
        timeout: f64,
        proxy: Option<&str>,
    ) -> PyResult<Self> {
        let api = crate::config::parse_api_url(api_url).map_err(|e| to_py(py, e))?;
        let mut dex = match dex_url {
            Some(u) => crate::config::parse_http_url("dex_url", u).map_err(|e| to_py(py, e))?,
            None => api
                .join("/dex")
                .map_err(|e| PyValueError::new_err(format!("invalid `api_url`: {e}")))?,
        };
        // The password and client secret go to Dex: never in clear when the API itself is https.
        if api.scheme() == "https" && dex.scheme() != "https" {
            return Err(PyValueError::new_err(
                "invalid `dex_url`: it is http while api_url is https; the password and client secret \
                 would travel unencrypted. Use Dex's https URL",
            ));
        }
        dex.set_query(None);
        let path = format!("{}/token", dex.path().trim_end_matches('/'));
        dex.set_path(&path);
        if client_id.is_empty() {
            return Err(PyValueError::new_err("invalid `dex_client_id`: is empty"));
        }
        let cfg = GrantConfig {
            token_url: dex,
            client_id: client_id.to_owned(),
            client_secret: SecretString::from(client_secret),
            username: username.to_owned(),
            password: SecretString::from(password),
            scopes: scopes.to_owned(),
            options: options(py, skip_tls_verify, ssl_ca_cert, timeout, proxy)?,
        };
        let bearer = Bearer::grant(cfg).map_err(|e| to_py(py, e))?;
        Ok(BearerSession {
            bearer: Arc::new(bearer),
        })
    }

    /// The token to send now: re-read if the file changed, re-granted if about to expire.
    fn token<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        if let Some(t) = self.bearer.cached() {
            return Ok(secret_to_py(py, &*t.map_err(|e| to_py(py, e))?));
        }
        let bearer = self.bearer.clone();
        Ok(secret_to_py(py, &*block_on(py, async move { bearer.token().await })?))
    }

    /// The server refused `stale`: a new token, or `TokenError` when none can be had.
    fn refresh<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyString>> {
        let (bearer, stale) = (self.bearer.clone(), SecretString::from(stale));
        Ok(secret_to_py(
            py,
            &*block_on(py, async move { bearer.refresh(stale.expose_secret()).await })?,
        ))
    }

    /// A new token now, whatever is held (a new grant, or a re-read of the file).
    fn renew<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        let bearer = self.bearer.clone();
        Ok(secret_to_py(py, &*block_on(py, async move { bearer.renew().await })?))
    }

    fn token_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let bearer = self.bearer.clone();
        into_awaitable(py, async move { bearer.token().await }, |_| Ok(()))
    }

    fn refresh_async<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyAny>> {
        let (bearer, stale) = (self.bearer.clone(), SecretString::from(stale));
        into_awaitable(py, async move { bearer.refresh(stale.expose_secret()).await }, |_| {
            Ok(())
        })
    }

    /// The current token's claims (subject, issuer, audience, expires, issued),
    /// decoded without verification; `None` before a grant, or for a non-JWT token.
    fn claims<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        self.bearer.claims().map(|c| claims_to_py(py, c)).transpose()
    }

    /// `"token"`, `"file"` or `"dex-password-grant"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.bearer.source() {
            Source::Fixed(_) => "token",
            Source::File(_) => "file",
            Source::Grant(_) => "dex-password-grant",
        }
    }

    /// The token file, for a file source.
    #[getter]
    fn path(&self) -> Option<String> {
        match self.bearer.source() {
            Source::File(f) => Some(f.path().display().to_string()),
            _ => None,
        }
    }

    /// Where the token comes from, in words.
    #[getter]
    fn source(&self) -> String {
        self.bearer.describe()
    }

    /// Reads of the token file, or grants made.
    #[getter]
    fn fetches(&self) -> u64 {
        self.bearer.fetches()
    }

    fn __repr__(&self) -> String {
        format!("BearerSession(kind={:?}, source={:?})", self.kind(), self.source())
    }
}

/// What an RBAC denial from the KFP API says (user, namespace, verb, resource,
/// message), or `None` when the answer is not one.
#[pyfunction]
fn rbac_denial<'py>(py: Python<'py>, status: u16, body: &[u8]) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
    let Some(d) = crate::detect::rbac_denial(status, body) else {
        return Ok(None);
    };
    let out = pyo3::types::PyDict::new(py);
    out.set_item("user", d.user)?;
    out.set_item("namespace", d.namespace)?;
    out.set_item("verb", d.verb)?;
    out.set_item("resource", d.resource)?;
    out.set_item("message", d.message)?;
    Ok(Some(out))
}

/// Raise `ValueError` when `api_url` or a transport setting is unusable: what
/// every session checks at construction, for the modes that make no session.
#[pyfunction]
#[pyo3(signature = (api_url, *, skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None))]
fn check_settings(
    py: Python<'_>,
    api_url: &str,
    skip_tls_verify: bool,
    ssl_ca_cert: Option<std::path::PathBuf>,
    timeout: f64,
    proxy: Option<&str>,
) -> PyResult<()> {
    let url = crate::config::parse_api_url(api_url).map_err(|e| to_py(py, e))?;
    let opts = options(py, skip_tls_verify, ssl_ca_cert, timeout, proxy)?;
    if proxy.is_none()
        && let Some((p, _)) = crate::http::proxy_for(&url, None)
        && !p.starts_with("http")
    {
        return Err(PyValueError::new_err(format!(
            "the environment (ALL_PROXY or HTTPS_PROXY/HTTP_PROXY) gives a {} proxy for api_url; kfp-auth \
             supports http and https proxies only (SOCKS is not supported): set an http proxy, or NO_PROXY \
             for this host",
            p.split(':').next().unwrap_or("non-http")
        )));
    }
    crate::http::Transport::check(&opts).map_err(|e| to_py(py, e))
}

/// The proxy for `url`: `proxy` when given, else the environment's, by the rules
/// the login follows. Returns (proxy URL without credentials, `Proxy-Authorization`
/// value or `None`), or `None` for a direct connection.
#[pyfunction]
#[pyo3(signature = (url, proxy = None))]
fn proxy_for(py: Python<'_>, url: &str, proxy: Option<&str>) -> PyResult<Option<(String, Option<String>)>> {
    let explicit = proxy
        .map(crate::config::parse_proxy_url)
        .transpose()
        .map_err(|e| to_py(py, e))?;
    let url = crate::config::parse_api_url(url).map_err(|e| to_py(py, e))?;
    Ok(
        crate::http::proxy_for(&url, explicit.as_ref())
            .map(|(p, auth)| (p, auth.map(|a| a.expose_secret().to_owned()))),
    )
}

/// `url` as it may be shown: origin and path, query values hidden, user info dropped.
#[pyfunction]
fn redact_url(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| "<not a URL>".to_owned(), |u| crate::redact::url(&u))
}

/// The bytes of `path`, a file kept by the rules for credential files (`private_dir.rs`),
/// or `None` when it does not exist: a regular file of this user's that others cannot
/// write, in a folder (created 0700 when missing) under folders others cannot write.
#[pyfunction]
fn read_private_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Option<Bound<'_, pyo3::types::PyBytes>>> {
    let (dir, name) = private_place(&path)?;
    let bytes = dir.read(name, 0o022, 1 << 20).map_err(|p| private_refusal(&path, p))?;
    Ok(bytes.map(|b| pyo3::types::PyBytes::new(py, &b)))
}

/// Replace `path` with `data`, mode 0600, by the rules of `read_private_file`.
#[pyfunction]
fn write_private_file(path: std::path::PathBuf, data: &[u8]) -> PyResult<()> {
    let (dir, name) = private_place(&path)?;
    let prefix = format!(".{name}.");
    dir.replace(name, data, &prefix).map_err(|p| private_refusal(&path, p))
}

fn private_place(path: &std::path::Path) -> PyResult<(crate::private_dir::PrivateDir, &str)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SessionCacheError::new_err(format!("{}: not a file name", path.display())))?;
    let parent = path.parent().unwrap_or(std::path::Path::new(""));
    let dir = crate::private_dir::PrivateDir::open(parent).map_err(|p| private_refusal(path, p))?;
    Ok((dir, name))
}

fn private_refusal(path: &std::path::Path, p: crate::private_dir::Problem) -> PyErr {
    SessionCacheError::new_err(format!("{}: {p}", path.display()))
}

/// Whether a KFP API response is the gateway asking for a login (see `detect.rs`).
#[pyfunction]
#[pyo3(signature = (status, content_type, location, body))]
fn is_login_response(status: u16, content_type: Option<&str>, location: Option<&str>, body: &[u8]) -> bool {
    crate::detect::is_login_response(status, content_type, location, body)
}

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Our `log` records go to Python's `kfp_auth` logger. Levels are read from
    // Python on each record (no level cache), so logging configured after
    // import takes effect; records are rare (a few per login). Other crates'
    // records are dropped: they are not redacted (hyper and reqwest can log
    // URLs with their query values).
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?
        .filter(log::LevelFilter::Off)
        .filter_target("kfp_auth".to_owned(), log::LevelFilter::Trace);
    if log::set_boxed_logger(Box::new(crate::pyexit::Logger(logger))).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    // Before Python finalizes, our threads stop calling into it (see pyexit.rs).
    let before_exit = wrap_pyfunction!(crate::pyexit::_before_exit, m)?;
    py.import("atexit")?.call_method1("register", (before_exit,))?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item(
        "after_in_child",
        wrap_pyfunction!(crate::pyexit::_after_fork_in_child, m)?,
    )?;
    py.import("os")?.call_method("register_at_fork", (), Some(&kwargs))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<DexSession>()?;
    m.add_class::<BearerSession>()?;
    m.add_function(wrap_pyfunction!(rbac_denial, m)?)?;
    m.add_function(wrap_pyfunction!(check_settings, m)?)?;
    m.add_function(wrap_pyfunction!(proxy_for, m)?)?;
    m.add_function(wrap_pyfunction!(is_login_response, m)?)?;
    m.add_function(wrap_pyfunction!(redact_url, m)?)?;
    m.add_function(wrap_pyfunction!(read_private_file, m)?)?;
    m.add_function(wrap_pyfunction!(write_private_file, m)?)?;
    m.add_function(wrap_pyfunction!(default_session_cache, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_token, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_token_file, m)?)?;
    m.add_function(wrap_pyfunction!(default_token_path, m)?)?;
    m.add("TOKEN_PATH_ENV", crate::token::TOKEN_PATH_ENV)?;
    m.add("DEFAULT_TOKEN_PATH", crate::token::DEFAULT_TOKEN_PATH)?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("SessionCacheError", py.get_type::<SessionCacheError>())?;
    m.add("PermissionDeniedError", py.get_type::<PermissionDeniedError>())?;
    m.add("KFPAuthError", py.get_type::<KFPAuthError>())?;
    m.add("InvalidCredentialsError", py.get_type::<InvalidCredentialsError>())?;
    m.add("UnknownConnectorError", py.get_type::<UnknownConnectorError>())?;
    m.add("UnexpectedResponseError", py.get_type::<UnexpectedResponseError>())?;
    m.add("TLSError", py.get_type::<TLSError>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("LoginTimeoutError", py.get_type::<LoginTimeoutError>())?;
    Ok(())
}
