//! The thin PyO3 layer: argument conversion, the exception hierarchy, and
//! running core futures on the shared runtime with the GIL released.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{LoginConfig, Options};
use crate::error::Error;
use crate::http::Transport;
use crate::runtime::runtime;

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
    "A login request took longer than `timeout`."
);

/// Build the Python exception for a core error, with its facts as attributes.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    let err = match &e {
        Error::InvalidArgument { .. } => return PyValueError::new_err(msg),
        Error::InvalidCredentials { .. } => InvalidCredentialsError::new_err(msg),
        Error::UnknownConnector { .. } => UnknownConnectorError::new_err(msg),
        Error::UnexpectedResponse { .. } | Error::TooManySteps { .. } | Error::BodyTooLarge { .. } => {
            UnexpectedResponseError::new_err(msg)
        }
        Error::Tls { .. } => TLSError::new_err(msg),
        Error::Connect { .. } | Error::Http { .. } => ConnectError::new_err(msg),
        Error::Timeout { .. } => LoginTimeoutError::new_err(msg),
    };
    let value = err.value(py);
    let set = |k: &str, v: Bound<'_, PyAny>| {
        // Attributes are a convenience; a failure to set one must not hide the error.
        let _ = value.setattr(k, v);
    };
    let none = || py.None().into_bound(py);
    let (status, url) = match &e {
        Error::InvalidCredentials { status, url, .. } | Error::UnexpectedResponse { status, url, .. } => {
            (Some(*status), Some(url.clone()))
        }
        Error::TooManySteps { url, .. }
        | Error::BodyTooLarge { url, .. }
        | Error::Tls { url, .. }
        | Error::Connect { url, .. }
        | Error::Timeout { url, .. }
        | Error::Http { url, .. } => (None, Some(url.clone())),
        _ => (None, None),
    };
    set(
        "status",
        status.map_or_else(none, |s| s.into_pyobject(py).expect("int").into_any()),
    );
    set(
        "url",
        url.map_or_else(none, |u| u.into_pyobject(py).expect("str").into_any()),
    );
    if let Error::UnknownConnector { offered, .. } = &e
        && let Ok(list) = offered.clone().into_pyobject(py)
    {
        set("offered", list.into_any());
    }
    err
}

/// Run a core future on the shared runtime with the GIL released, waking every
/// 100 ms to let Python handle signals, so Ctrl-C interrupts a login promptly.
fn block_on<T: Send>(py: Python<'_>, fut: impl Future<Output = crate::Result<T>> + Send) -> PyResult<T> {
    let rt = runtime().map_err(|e| KFPAuthError::new_err(format!("could not start the I/O runtime: {e}")))?;
    let outcome: PyResult<crate::Result<T>> = py.detach(|| {
        rt.block_on(async {
            tokio::pin!(fut);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    r = &mut fut => return Ok(r),
                    _ = tick.tick() => Python::attach(|py| py.check_signals())?,
                }
            }
        })
    });
    outcome?.map_err(|e| to_py(py, e))
}

/// A Dex login against one Kubeflow Pipelines endpoint. Holds the password in
/// a zeroising secret; nothing about it ever prints.
#[pyclass(module = "kfp_auth._native", frozen)]
pub struct DexSession {
    cfg: Arc<LoginConfig>,
    /// The HTTP client and the process that built it: its pooled connections
    /// belong to that process's runtime, so a forked child builds its own.
    transport: Mutex<(u32, Arc<Transport>)>,
}

impl DexSession {
    fn transport(&self, py: Python<'_>) -> PyResult<Arc<Transport>> {
        let mut slot = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if slot.0 != pid {
            *slot = (
                pid,
                Arc::new(Transport::new(&self.cfg.options).map_err(|e| to_py(py, e))?),
            );
        }
        Ok(slot.1.clone())
    }
}

#[pymethods]
impl DexSession {
    #[new]
    #[pyo3(signature = (api_url, username, password, connector = "local", *, skip_tls_verify = false, timeout = 30.0, max_redirects = 10, max_body_bytes = 1_048_576))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        api_url: &str,
        username: &str,
        password: &str,
        connector: &str,
        skip_tls_verify: bool,
        timeout: f64,
        max_redirects: usize,
        max_body_bytes: usize,
    ) -> PyResult<Self> {
        let timeout = Duration::try_from_secs_f64(timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| PyValueError::new_err("invalid `timeout`: must be a positive number of seconds"))?;
        let options = Options {
            skip_tls_verify,
            timeout,
            max_redirects,
            max_body_bytes,
        };
        let cfg = LoginConfig::new(api_url, username, SecretString::from(password), connector, options)
            .map_err(|e| to_py(py, e))?;
        let transport = Transport::new(&cfg.options).map_err(|e| to_py(py, e))?;
        Ok(DexSession {
            cfg: Arc::new(cfg),
            transport: Mutex::new((std::process::id(), Arc::new(transport))),
        })
    }

    /// Log in and return the `Cookie` header value for `api_url` (`""` when unsecured).
    fn login(&self, py: Python<'_>) -> PyResult<String> {
        let (cfg, transport) = (self.cfg.clone(), self.transport(py)?);
        let session = block_on(py, async move { crate::flow::login(&cfg, &transport).await })?;
        Ok(session.cookies.expose_secret().to_owned())
    }

    #[getter]
    fn api_url(&self) -> String {
        self.cfg.api_url.to_string()
    }

    #[getter]
    fn username(&self) -> &str {
        &self.cfg.username
    }

    #[getter]
    fn connector(&self) -> &str {
        &self.cfg.connector
    }

    #[getter]
    fn skip_tls_verify(&self) -> bool {
        self.cfg.options.skip_tls_verify
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.cfg.options.timeout.as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!(
            "DexSession(api_url={:?}, username={:?}, password='********', connector={:?})",
            crate::redact::url(&self.cfg.api_url),
            self.cfg.username,
            self.cfg.connector
        )
    }
}

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<DexSession>()?;
    m.add("KFPAuthError", py.get_type::<KFPAuthError>())?;
    m.add("InvalidCredentialsError", py.get_type::<InvalidCredentialsError>())?;
    m.add("UnknownConnectorError", py.get_type::<UnknownConnectorError>())?;
    m.add("UnexpectedResponseError", py.get_type::<UnexpectedResponseError>())?;
    m.add("TLSError", py.get_type::<TLSError>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("LoginTimeoutError", py.get_type::<LoginTimeoutError>())?;
    Ok(())
}
