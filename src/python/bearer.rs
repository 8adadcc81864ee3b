//! `BearerSession`: a bearer token from a string, a rotated file, Dex's password
//! grant, or a device login with refresh.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use secrecy::{ExposeSecret, SecretString};

use super::exit;
use super::functions::{claims_to_py, options};
use super::runtime::{Credentials, awaitable, blocking, secret_to_py};
use crate::bearer::{Bearer, GrantConfig, Source};
use crate::browser::{BrowserStart, Opener};
use crate::exchange::Subject;
use crate::prompt::{DeviceEvent, Prompt};
use crate::sso::{SsoConfig, SsoLogin, Start};
use crate::token_cache::TokenCache;

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

    /// An SSO login (made on first use) as the bearer source, kept in `token_cache` when given,
    /// its tokens in `secret_store` (the OS keyring) when given, the file keeping the rest.
    /// With `relogin`, a dead refresh token starts a new login instead of `LoginRequiredError`.
    fn sso(
        api_url: &str,
        cfg: SsoConfig,
        prompt: Py<PyAny>,
        token_cache: Option<PathBuf>,
        secret_store: Option<Py<PyAny>>,
        relogin: bool,
    ) -> PyResult<Self> {
        crate::http::check_settings(api_url, &cfg.options)?;
        let mut login = SsoLogin::new(cfg, Arc::new(PyPrompt(prompt)))?.with_relogin(relogin)?;
        if let Some(path) = token_cache {
            login = login.with_cache(
                super::secret_store::with_store(TokenCache::new(path), secret_store),
                Some(api_url),
                None,
            );
        } else if secret_store.is_some() {
            return Err(
                crate::Error::invalid("secret_store", "needs a token_cache file for the logins' metadata").into(),
            );
        }
        Ok(Self::held(Bearer::sso(login)))
    }
}

/// The default prompt of the SSO logins: the terminal, or a link in Jupyter.
fn default_prompt(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(py
        .import("kfp_auth._prompt")?
        .getattr("DevicePrompt")?
        .call0()?
        .unbind())
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

    /// A device login (RFC 8628) at Dex, renewed by its refresh token. `prompt` is called
    /// with a `DeviceEvent` dict: the code to show, then how the login ended (default: the
    /// terminal, or a link in Jupyter). The first login happens on first use, or on `login()`.
    /// With `token_cache` (a file path), the login is loaded from it on first use and
    /// saved to it after every login and refresh, and renewals are serialised with the
    /// other processes using it (see docs/sso.md). With `relogin`, a refresh token that
    /// died starts a new login (the prompt is shown again) instead of `LoginRequiredError`.
    #[staticmethod]
    #[pyo3(signature = (api_url, *, prompt = None, client_id = "kfp-auth", dex_url = None, scopes = "openid email profile groups offline_access", connector = None, poll_interval = None, skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None, token_cache = None, secret_store = None, relogin = false))]
    #[allow(clippy::too_many_arguments)]
    fn from_dex_device(
        py: Python<'_>,
        api_url: &str,
        prompt: Option<Py<PyAny>>,
        client_id: &str,
        dex_url: Option<&str>,
        scopes: &str,
        connector: Option<String>,
        poll_interval: Option<f64>,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<PathBuf>,
        timeout: f64,
        proxy: Option<&str>,
        token_cache: Option<PathBuf>,
        secret_store: Option<Py<PyAny>>,
        relogin: bool,
    ) -> PyResult<Self> {
        let prompt = match prompt {
            Some(p) => p,
            None => default_prompt(py)?,
        };
        let poll_interval = poll_interval
            .map(|s| {
                std::time::Duration::try_from_secs_f64(s)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| crate::Error::invalid("poll_interval", "must be a number of seconds above zero"))
            })
            .transpose()?;
        let cfg = SsoConfig {
            dex_url: crate::oidc::dex_base(api_url, dex_url)?,
            client_id: client_id.to_owned(),
            scopes: scopes.to_owned(),
            connector,
            start: Start::Device { poll_interval },
            options: options(skip_tls_verify, ssl_ca_cert, timeout, proxy)?,
        };
        Self::sso(api_url, cfg, prompt, token_cache, secret_store, relogin)
    }

    /// A browser login at Dex (authorization code with PKCE, the browser coming back to
    /// `http://127.0.0.1:<port>/callback`), renewed by its refresh token. `open_browser(url)`
    /// opens the browser (default `webbrowser.open`, so `$BROWSER` is honoured); when it
    /// returns false or raises, a device login runs instead. `prompt` gets a `"browser"`
    /// event with the URL to open by hand, then how the login ended. `port`: the one the admin
    /// registered (default: any free one). `token_cache` and `relogin` as for `from_dex_device`.
    #[staticmethod]
    #[pyo3(signature = (api_url, *, prompt = None, open_browser = None, client_id = "kfp-auth", dex_url = None, scopes = "openid email profile groups offline_access", connector = None, port = None, browser_timeout = 300.0, skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None, token_cache = None, secret_store = None, relogin = false))]
    #[allow(clippy::too_many_arguments)]
    fn from_dex_browser(
        py: Python<'_>,
        api_url: &str,
        prompt: Option<Py<PyAny>>,
        open_browser: Option<Py<PyAny>>,
        client_id: &str,
        dex_url: Option<&str>,
        scopes: &str,
        connector: Option<String>,
        port: Option<u16>,
        browser_timeout: f64,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<PathBuf>,
        timeout: f64,
        proxy: Option<&str>,
        token_cache: Option<PathBuf>,
        secret_store: Option<Py<PyAny>>,
        relogin: bool,
    ) -> PyResult<Self> {
        let prompt = match prompt {
            Some(p) => p,
            None => default_prompt(py)?,
        };
        let open_browser = match open_browser {
            Some(o) => o,
            None => py.import("kfp_auth._prompt")?.getattr("open_browser")?.unbind(),
        };
        if port == Some(0) {
            return Err(crate::Error::invalid(
                "browser_port",
                "must be a port number from 1 to 65535; leave it unset for any free port",
            )
            .into());
        }
        let browser_timeout = std::time::Duration::try_from_secs_f64(browser_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| crate::Error::invalid("browser_timeout", "must be a number of seconds above zero"))?;
        let cfg = SsoConfig {
            dex_url: crate::oidc::dex_base(api_url, dex_url)?,
            client_id: client_id.to_owned(),
            scopes: scopes.to_owned(),
            connector,
            start: Start::Browser(BrowserStart {
                port,
                timeout: browser_timeout,
                opener: Arc::new(PyOpener(open_browser)),
            }),
            options: options(skip_tls_verify, ssl_ca_cert, timeout, proxy)?,
        };
        Self::sso(api_url, cfg, prompt, token_cache, secret_store, relogin)
    }

    /// Token exchange (RFC 8693) at Dex: the subject token (exactly one of `subject_token`,
    /// `subject_token_file`, or `github_actions` with its `audience`) is traded with the `oidc`
    /// connector `connector` for Dex's ID token; renewed by exchanging again, with the
    /// subject token read anew. The first exchange happens on first use.
    #[staticmethod]
    #[pyo3(signature = (api_url, connector, *, subject_token = None, subject_token_file = None, github_actions = false, audience = None, client_id = "kfp-auth", dex_url = None, scopes = "openid email profile groups", skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None))]
    #[allow(clippy::too_many_arguments)]
    fn from_dex_token_exchange(
        py: Python<'_>,
        api_url: &str,
        connector: String,
        subject_token: Option<&str>,
        subject_token_file: Option<PathBuf>,
        github_actions: bool,
        audience: Option<String>,
        client_id: &str,
        dex_url: Option<&str>,
        scopes: &str,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<PathBuf>,
        timeout: f64,
        proxy: Option<&str>,
    ) -> PyResult<Self> {
        if audience.is_some() && !github_actions {
            return Err(crate::Error::invalid("audience", "is for github_actions=True").into());
        }
        let subject = match (subject_token, subject_token_file, github_actions) {
            (Some(t), None, false) => Subject::literal(SecretString::from(t))?,
            (None, Some(path), false) => py.detach(|| Subject::file(path))?,
            (None, None, true) => Subject::github_actions(audience.unwrap_or_else(|| client_id.to_owned()))?,
            _ => {
                return Err(crate::Error::invalid(
                    "subject_token",
                    "token exchange takes exactly one of subject_token, subject_token_file and github_actions",
                )
                .into());
            }
        };
        let cfg = SsoConfig {
            dex_url: crate::oidc::dex_base(api_url, dex_url)?,
            client_id: client_id.to_owned(),
            scopes: scopes.to_owned(),
            connector: Some(connector),
            start: Start::Exchange(Arc::new(subject)),
            options: options(skip_tls_verify, ssl_ca_cert, timeout, proxy)?,
        };
        crate::http::check_settings(api_url, &cfg.options)?;
        let login = SsoLogin::new(cfg, Arc::new(NoPrompt))?;
        Ok(Self::held(Bearer::sso(login)))
    }

    /// The SSO login saved in the token cache for `api_url` (the most recent one, or
    /// `user`'s), refreshed when needed; never asks the user: without a usable saved
    /// login, `LoginRequiredError`. For `kfp-auth token`; `token_cache` defaults to
    /// `default_token_cache()`.
    #[staticmethod]
    #[pyo3(signature = (api_url, *, token_cache = None, client_id = "kfp-auth", dex_url = None, connector = None, user = None, skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None, secret_store = None))]
    #[allow(clippy::too_many_arguments)]
    fn from_token_cache(
        api_url: &str,
        token_cache: Option<PathBuf>,
        client_id: &str,
        dex_url: Option<&str>,
        connector: Option<String>,
        user: Option<&str>,
        skip_tls_verify: bool,
        ssl_ca_cert: Option<PathBuf>,
        timeout: f64,
        proxy: Option<&str>,
        secret_store: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let cache = super::secret_store::with_store(TokenCache::at(token_cache)?, secret_store);
        let cfg = SsoConfig {
            dex_url: crate::oidc::dex_base(api_url, dex_url)?,
            client_id: client_id.to_owned(),
            scopes: crate::sso::DEFAULT_SCOPES.to_owned(),
            connector,
            start: Start::Device { poll_interval: None },
            options: options(skip_tls_verify, ssl_ca_cert, timeout, proxy)?,
        };
        let login = SsoLogin::new(cfg, Arc::new(NoPrompt))?
            .with_cache(cache, Some(api_url), user)
            .without_login();
        Ok(Self::held(Bearer::sso(login)))
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

    /// A new login now: a new device login (asking the user again) for a device source;
    /// as `renew()` for the others.
    fn login<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        blocking(py, &self.bearer, |bearer| async move { bearer.login().await })
    }

    fn login_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, &self.bearer, |bearer| async move { bearer.login().await })
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

    /// `"token"`, `"file"`, `"dex-password-grant"`, `"dex-device"`, `"dex-browser"` or `"dex-token-exchange"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.bearer.source() {
            Source::Fixed(_) => "token",
            Source::File(_) => "file",
            Source::Grant(_) => "dex-password-grant",
            Source::Sso(d) => d.kind(),
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

    /// Reads of the token file, grants made, or device logins and refreshes made.
    #[getter]
    fn fetches(&self) -> u64 {
        self.bearer.fetches()
    }

    /// Tokens renewed by a refresh token (device logins); 0 for the other sources.
    #[getter]
    fn refreshes(&self) -> u64 {
        self.bearer.refreshes()
    }

    fn __repr__(&self) -> String {
        format!("BearerSession(kind={:?}, source={:?})", self.kind(), self.source())
    }
}

/// The prompt of a login that shows nobody anything: token exchange, and the token
/// cache's login that never logs in.
struct NoPrompt;

impl Prompt for NoPrompt {
    fn show(&self, _: DeviceEvent<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// A Python callable as the device login's prompt, called with a `DeviceEvent` dict.
struct PyPrompt(Py<PyAny>);

impl Prompt for PyPrompt {
    fn show(&self, event: DeviceEvent<'_>) -> Result<(), String> {
        // From the runtime's threads; skipped once Python exits.
        exit::attach(|py| {
            let d = PyDict::new(py);
            let (kind, message) = match event {
                DeviceEvent::Code { .. } => ("code", None),
                DeviceEvent::Browser { .. } => ("browser", None),
                DeviceEvent::Done => ("done", None),
                DeviceEvent::Failed(m) => ("failed", Some(m)),
                DeviceEvent::Cancelled => ("cancelled", None),
            };
            let code = match event {
                DeviceEvent::Code {
                    verification_uri,
                    verification_uri_complete,
                    user_code,
                    expires_in,
                    connector,
                } => Some((
                    verification_uri,
                    verification_uri_complete,
                    user_code,
                    expires_in,
                    connector,
                )),
                _ => None,
            };
            let fill = |d: &Bound<'_, PyDict>| -> PyResult<()> {
                d.set_item("event", kind)?;
                let page = match event {
                    DeviceEvent::Browser { url } => Some(url),
                    _ => code.map(|c| c.0),
                };
                d.set_item("verification_uri", page)?;
                d.set_item("verification_uri_complete", code.and_then(|c| c.1))?;
                d.set_item("user_code", code.map(|c| c.2))?;
                d.set_item("expires_in", code.map(|c| c.3.as_secs_f64()))?;
                d.set_item("connector", code.and_then(|c| c.4))?;
                d.set_item("message", message)?;
                self.0.call1(py, (d.clone(),))?;
                Ok(())
            };
            fill(&d).map_err(|e| {
                // The prompt is the caller's code: its error is theirs to see.
                let shown = e.to_string();
                e.write_unraisable(py, Some(self.0.bind(py)));
                shown
            })
        })
        .unwrap_or(Err("Python is exiting".into()))
    }
}

/// A Python callable as the browser login's opener: `open_browser(url)`, true when a
/// browser was started.
struct PyOpener(Py<PyAny>);

impl Opener for PyOpener {
    fn open(&self, url: &str) -> Result<bool, String> {
        exit::attach(|py| {
            self.0
                .call1(py, (url,))
                .and_then(|r| r.is_truthy(py))
                // Its type only: the message may quote the URL, whose query is this login's.
                .map_err(|e| {
                    format!(
                        "opening it raised {}",
                        e.get_type(py)
                            .name()
                            .map_or_else(|_| "an error".into(), |n| n.to_string())
                    )
                })
        })
        .unwrap_or(Err("Python is exiting".into()))
    }
}
