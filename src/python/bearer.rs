//! `BearerSession`: a bearer token from a string, a rotated file, or Dex's password grant.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use secrecy::{ExposeSecret, SecretString};

use super::functions::{claims_to_py, options};
use super::runtime::{Credentials, awaitable, blocking, secret_to_py};
use crate::bearer::{Bearer, GrantConfig, Source};

impl Credentials for Bearer {}

/// A bearer token that stays usable: a fixed token, a token file re-read when
/// rotated, or Dex's password grant renewed before expiry. Never prints it.
#[pyclass(module = "kfp_auth._native", frozen)]
pub struct BearerSession {
    bearer: Arc<Bearer>,
}

impl BearerSession {
    fn held(bearer: Bearer) -> Self {
        BearerSession {
            bearer: Arc::new(bearer),
        }
    }
}

#[pymethods]
impl BearerSession {
    /// A token given as a string (e.g. from `kubectl create token`).
    #[staticmethod]
    fn from_token(token: &str) -> PyResult<Self> {
        Ok(Self::held(Bearer::fixed(SecretString::from(token))?))
    }

    /// A token file, re-read when it changes; `None` reads `$KF_PIPELINES_SA_TOKEN_PATH`
    /// or `/var/run/secrets/kubeflow/pipelines/token`.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn from_file(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        let path = path.unwrap_or_else(crate::token::default_token_path);
        Ok(Self::held(py.detach(|| Bearer::file(path))?))
    }

    /// Dex's password grant at `dex_url` + `/token` (`dex_url` defaults to `/dex`
    /// on `api_url`'s origin, where Kubeflow's gateway serves Dex).
    #[staticmethod]
    #[pyo3(signature = (api_url, username, password, client_id, client_secret, *, dex_url = None, scopes = "openid email profile groups", skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None))]
    #[allow(clippy::too_many_arguments)]
    fn from_dex_password_grant(
        api_url: &str,
        username: &str,
        password: &str,
        client_id: &str,
        client_secret: &str,
        dex_url: Option<&str>,
        scopes: &str,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<PathBuf>,
        timeout: f64,
        proxy: Option<&str>,
    ) -> PyResult<Self> {
        let cfg = GrantConfig {
            token_url: crate::config::dex_token_url(api_url, dex_url)?,
            client_id: client_id.to_owned(),
            client_secret: SecretString::from(client_secret),
            username: username.to_owned(),
            password: SecretString::from(password),
            scopes: scopes.to_owned(),
            options: options(skip_tls_verify, ssl_ca_cert, timeout, proxy)?,
        };
        Ok(Self::held(Bearer::grant(cfg)?))
    }

    /// The token to send now: re-read if the file changed, re-granted if about to expire.
    fn token<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        if let Some(t) = self.bearer.cached() {
            return Ok(secret_to_py(py, &*t?));
        }
        blocking(py, &self.bearer, |bearer| async move { bearer.token().await })
    }

    /// The server refused `stale`: a new token, or `TokenError` when none can be had.
    fn refresh<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyString>> {
        let stale = SecretString::from(stale);
        blocking(py, &self.bearer, |bearer| async move {
            bearer.refresh(stale.expose_secret()).await
        })
    }

    /// A new token now, whatever is held (a new grant, or a re-read of the file).
    fn renew<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        blocking(py, &self.bearer, |bearer| async move { bearer.renew().await })
    }

    fn token_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, &self.bearer, |bearer| async move { bearer.token().await })
    }

    fn refresh_async<'py>(&self, py: Python<'py>, stale: &str) -> PyResult<Bound<'py, PyAny>> {
        let stale = SecretString::from(stale);
        awaitable(py, &self.bearer, |bearer| async move {
            bearer.refresh(stale.expose_secret()).await
        })
    }

    fn renew_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, &self.bearer, |bearer| async move { bearer.renew().await })
    }

    /// The current token's claims (subject, issuer, audience, expires, issued),
    /// decoded without verification; `None` before a grant, or for a non-JWT token.
    fn claims<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
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
