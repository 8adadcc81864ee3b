//! The module's functions, and the argument conversions the session classes share.
//! Nothing is checked here: the core's checks raise, converted by `errors.rs`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use secrecy::ExposeSecret;

use crate::cache::SessionCache;
use crate::config::{self, Options};

/// The transport options every session takes, as the core's types; the core checks them.
pub fn options(
    skip_tls_verify: bool,
    ssl_ca_cert: Option<PathBuf>,
    timeout: f64,
    proxy: Option<&str>,
) -> PyResult<Options> {
    Ok(Options {
        skip_tls_verify,
        ca_bundle: ssl_ca_cert,
        timeout: config::timeout_from_secs(timeout),
        proxy: proxy.map(config::parse_proxy_url).transpose()?,
        ..Options::default()
    })
}

/// Token claims as the `TokenClaims` dict.
pub fn claims_to_py(py: Python<'_>, c: crate::token::Claims) -> PyResult<Bound<'_, PyDict>> {
    let unix = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    let d = PyDict::new(py);
    d.set_item("subject", c.subject)?;
    d.set_item("issuer", c.issuer)?;
    d.set_item("audience", c.audience)?;
    d.set_item("expires", unix(c.expires))?;
    d.set_item("issued", unix(c.issued))?;
    Ok(d)
}

/// The claims of a JWT (subject, issuer, audience, expires, issued), decoded without verification.
#[pyfunction]
pub fn inspect_token<'py>(py: Python<'py>, token: &str) -> PyResult<Bound<'py, PyDict>> {
    claims_to_py(py, crate::token::claims(token)?)
}

/// The token file kfp reads in a pod: `$KF_PIPELINES_SA_TOKEN_PATH`, or the default.
#[pyfunction]
pub fn default_token_path() -> String {
    crate::token::default_token_path().display().to_string()
}

/// The claims of the JWT in a token file, which must exist, be readable, and hold a JWT.
#[pyfunction]
pub fn inspect_token_file(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let token = crate::token::read_token_file(&path)?;
    claims_to_py(py, crate::token::inspect(&token)?)
}

/// The default session cache file: `$XDG_CACHE_HOME/kfp-auth/sessions.json` or `~/.cache/...`.
#[pyfunction]
pub fn default_session_cache() -> Option<String> {
    SessionCache::default_path().map(|p| p.display().to_string())
}

/// The default token cache file: `$XDG_CACHE_HOME/kfp-auth/tokens.json` or `~/.cache/...`.
#[pyfunction]
pub fn default_token_cache() -> Option<String> {
    crate::token_cache::TokenCache::default_path().map(|p| p.display().to_string())
}

/// The SSO logins saved in the token cache that fit (made for `url`, as the API or
/// Dex URL; for `client_id`, `connector`, `user` when given), the most recent first.
/// Only what is safe to show: never a token.
#[pyfunction]
#[pyo3(signature = (path = None, *, url = None, client_id = None, connector = None, user = None))]
pub fn token_cache_logins<'py>(
    py: Python<'py>,
    path: Option<PathBuf>,
    url: Option<&str>,
    client_id: Option<&str>,
    connector: Option<&str>,
    user: Option<&str>,
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let cache = crate::token_cache::TokenCache::at(path)?;
    let dex = url.map(|u| crate::oidc::dex_base(u, None)).transpose()?;
    let endpoints: Vec<&str> = url.into_iter().chain(dex.as_ref().map(|d| d.as_str())).collect();
    let locked = py.detach(|| cache.lock())?;
    let list = pyo3::types::PyList::empty(py);
    let query = crate::token_cache::Query {
        endpoints: &endpoints,
        client_id,
        connector,
        user,
    };
    for e in locked.matching(&query) {
        let d = PyDict::new(py);
        d.set_item("key", e.key())?;
        d.set_item("issuer", &e.issuer)?;
        d.set_item("client_id", &e.client_id)?;
        d.set_item("connector", &e.connector)?;
        d.set_item("user", &e.user)?;
        d.set_item("dex_url", &e.dex_url)?;
        d.set_item("api_url", &e.api_url)?;
        d.set_item("expires", e.expires_at)?;
        d.set_item("saved", e.saved_at)?;
        // In the keyring, the file cannot tell: a refresh token is asked for at every login.
        d.set_item("refreshable", e.refresh_token.is_some() || e.in_store())?;
        d.set_item("keyring", e.in_store())?;
        list.append(d)?;
    }
    Ok(list)
}

/// Remove the logins with these keys (from `token_cache_logins`) from the token cache,
/// or every login with `all`; the others stay. How many were removed. The keyring items
/// of logins kept in `secret_store` are removed with them; without it, such logins are
/// refused (their items would stay behind).
#[pyfunction]
#[pyo3(signature = (path = None, keys = Vec::new(), *, all = false, secret_store = None))]
pub fn token_cache_remove(
    py: Python<'_>,
    path: Option<PathBuf>,
    keys: Vec<String>,
    all: bool,
    secret_store: Option<Py<PyAny>>,
) -> PyResult<usize> {
    let cache = super::secret_store::with_store(crate::token_cache::TokenCache::at(path)?, secret_store);
    if all {
        let p = cache.path().to_owned();
        return py.detach(|| {
            // The keyring items first, when the file can be read; a file that cannot be
            // read is removed all the same.
            if let Ok(mut locked) = cache.lock() {
                let keys = locked.keys();
                locked.remove(&keys)?;
            }
            match std::fs::remove_file(&p) {
                Ok(()) => Ok(1),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(crate::Error::TokenCache {
                    path: p.display().to_string(),
                    reason: format!("cannot remove it: {e}"),
                }
                .into()),
            }
        });
    }
    py.detach(|| cache.lock()?.remove(&keys)).map_err(Into::into)
}

/// What an RBAC denial from the KFP API says (user, namespace, verb, resource,
/// message), or `None` when the answer is not one.
#[pyfunction]
pub fn rbac_denial<'py>(py: Python<'py>, status: u16, body: &[u8]) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(d) = crate::detect::rbac_denial(status, body) else {
        return Ok(None);
    };
    let out = PyDict::new(py);
    out.set_item("user", d.user)?;
    out.set_item("namespace", d.namespace)?;
    out.set_item("verb", d.verb)?;
    out.set_item("resource", d.resource)?;
    out.set_item("message", d.message)?;
    Ok(Some(out))
}

/// Raise `InvalidArgumentError` when `api_url` or a transport setting is unusable: what
/// every session checks at construction, for the modes that make no session.
#[pyfunction]
#[pyo3(signature = (api_url, *, skip_tls_verify = false, ssl_ca_cert = None, timeout = 30.0, proxy = None))]
pub fn check_settings(
    api_url: &str,
    skip_tls_verify: bool,
    ssl_ca_cert: Option<PathBuf>,
    timeout: f64,
    proxy: Option<&str>,
) -> PyResult<()> {
    let opts = options(skip_tls_verify, ssl_ca_cert, timeout, proxy)?;
    Ok(crate::http::check_settings(api_url, &opts)?)
}

/// The proxy for `url`: `proxy` when given, else the environment's, by the rules
/// the login follows. Returns (proxy URL without credentials, `Proxy-Authorization`
/// value or `None`), or `None` for a direct connection.
#[pyfunction]
#[pyo3(signature = (url, proxy = None))]
pub fn proxy_for(url: &str, proxy: Option<&str>) -> PyResult<Option<(String, Option<String>)>> {
    let explicit = proxy.map(config::parse_proxy_url).transpose()?;
    let url = config::parse_api_url(url)?;
    let found = crate::http::proxy_for(&url, explicit.as_ref())?;
    Ok(found.map(|(p, auth)| (p, auth.map(|a| a.expose_secret().to_owned()))))
}

/// `url` as it may be shown: origin and path, query values hidden, user info dropped.
#[pyfunction]
pub fn redact_url(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| "<not a URL>".to_owned(), |u| crate::redact::url(&u))
}

/// The bytes of `path`, a file kept by the rules for credential files (`private_dir.rs`),
/// or `None` when it does not exist: a regular file of this user's that others cannot
/// write, in a folder (created 0700 when missing) under folders others cannot write.
#[pyfunction]
pub fn read_private_file(py: Python<'_>, path: PathBuf) -> PyResult<Option<Bound<'_, pyo3::types::PyBytes>>> {
    let (dir, name) = private_place(&path)?;
    let bytes = dir.read(name, 0o022, 1 << 20).map_err(|p| private_refusal(&path, p))?;
    Ok(bytes.map(|b| pyo3::types::PyBytes::new(py, &b)))
}

/// Replace `path` with `data`, mode 0600, by the rules of `read_private_file`.
#[pyfunction]
pub fn write_private_file(path: PathBuf, data: &[u8]) -> PyResult<()> {
    let (dir, name) = private_place(&path)?;
    let prefix = format!(".{name}.");
    dir.replace(name, data, &prefix).map_err(|p| private_refusal(&path, p))
}

fn private_place(path: &std::path::Path) -> PyResult<(crate::private_dir::PrivateDir, &str)> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        PyErr::from(crate::Error::SessionCache {
            path: path.display().to_string(),
            reason: "not a file name".into(),
        })
    })?;
    let parent = path.parent().unwrap_or(std::path::Path::new(""));
    let dir = crate::private_dir::PrivateDir::open(parent).map_err(|p| private_refusal(path, p))?;
    Ok((dir, name))
}

fn private_refusal(path: &std::path::Path, p: crate::private_dir::Problem) -> PyErr {
    PyErr::from(crate::Error::SessionCache {
        path: path.display().to_string(),
        reason: p.to_string(),
    })
}

/// Whether a KFP API response is the gateway asking for a login (see `detect.rs`).
#[pyfunction]
#[pyo3(signature = (status, content_type, location, body))]
pub fn is_login_response(status: u16, content_type: Option<&str>, location: Option<&str>, body: &[u8]) -> bool {
    crate::detect::is_login_response(status, content_type, location, body)
}
