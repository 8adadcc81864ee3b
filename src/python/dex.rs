//! `DexSession`: a Dex login that keeps its session cookies.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use secrecy::{ExposeSecret, SecretString};

use super::errors::{steps_to_py, warn};
use super::functions::options;
use super::runtime::{Credentials, awaitable, block_on, blocking, secret_to_py};
use crate::cache::SessionCache;
use crate::config::{LoginConfig, Options};
use crate::session::Authenticator;

impl Credentials for Authenticator {
    /// The warnings the call gathered (a corrupt session cache replaced) reach Python.
    fn after_call(&self, py: Python<'_>) -> PyResult<()> {
        warn(py, self.take_warnings())
    }
}

/// A Dex login against one Kubeflow Pipelines endpoint that keeps its session.
/// Holds the password in a zeroising secret; nothing about it ever prints.
#[pyclass(module = "kfp_auth._native", frozen)]
pub struct DexSession {
    auth: Arc<Authenticator>,
}

#[pymethods]
impl DexSession {
    #[new]
    #[pyo3(signature = (api_url, username, password, connector = "local", *, skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, max_redirects = 10, max_body_bytes = 1_048_576, session_cache = None, proxy = None, allow_insecure_redirect = false, dex_url = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        api_url: &str,
        username: &str,
        password: &str,
        connector: &str,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<PathBuf>,
        timeout: f64,
        max_redirects: usize,
        max_body_bytes: usize,
        session_cache: Option<PathBuf>,
        proxy: Option<&str>,
        allow_insecure_redirect: bool,
        dex_url: Option<&str>,
    ) -> PyResult<Self> {
        let dex_url = dex_url
            .map(|u| crate::config::parse_http_url("dex_url", u))
            .transpose()?;
        let options = Options {
            max_redirects,
            max_body_bytes,
            allow_insecure_redirect,
            dex_url,
            ..options(skip_tls_verify, ssl_ca_cert, timeout, proxy)?
        };
        let cfg = LoginConfig::new(api_url, username, SecretString::from(password), connector, options)?;
        let mut auth = Authenticator::new(cfg)?;
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
        blocking(py, &self.auth, |auth| async move { auth.cookies().await })
    }

    /// Log in now, whatever session is held, and return the new cookies.
    fn login<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        blocking(py, &self.auth, |auth| async move { auth.login().await })
    }

    /// The gateway rejected `stale`: log in again unless another caller already did.
    fn refresh<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyString>> {
        let stale = SecretString::from(stale);
        blocking(py, &self.auth, |auth| async move {
            auth.refresh(stale.expose_secret()).await
        })
    }

    /// Forget the session, so the next use logs in.
    fn invalidate(&self) {
        self.auth.invalidate();
    }

    fn cookies_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, &self.auth, |auth| async move { auth.cookies().await })
    }

    fn login_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, &self.auth, |auth| async move { auth.login().await })
    }

    fn refresh_async<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyAny>> {
        let stale = SecretString::from(stale);
        awaitable(py, &self.auth, |auth| async move {
            auth.refresh(stale.expose_secret()).await
        })
    }

    /// The session cache file, when one is used.
    #[getter]
    fn session_cache(&self) -> Option<String> {
        self.auth.disk_cache().map(|c| c.path().display().to_string())
    }

    /// Log in as a diagnosis: what guards the endpoint, each request (redacted),
    /// and the verdict. Does not change the session held.
    fn diagnose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let auth = self.auth.clone();
        let d = block_on(py, async move { Ok(crate::diagnose::diagnose(auth.config()).await) })?;
        let out = PyDict::new(py);
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
                out.set_item("error", PyErr::from(e).into_value(py))?;
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
