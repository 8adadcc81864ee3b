//! Core errors as Python exceptions, and core warnings as Python warnings.

use pyo3::create_exception;
use pyo3::exceptions::{PyBaseException, PyRuntimeError, PyRuntimeWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::Error;
use crate::http::Step;

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

/// The exception classes, for module init.
pub fn add_classes(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
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

/// The exception of a core error, by the error at its root.
fn new_err(e: &Error, msg: String) -> PyErr {
    match e {
        Error::Failed { source, .. } => new_err(source, msg),
        Error::InvalidArgument { .. } => PyValueError::new_err(msg),
        Error::InvalidCredentials { .. } => InvalidCredentialsError::new_err(msg),
        Error::UnknownConnector { .. } => UnknownConnectorError::new_err(msg),
        Error::UnexpectedResponse { .. } | Error::TooManySteps { .. } | Error::BodyTooLarge { .. } => {
            UnexpectedResponseError::new_err(msg)
        }
        Error::Tls { .. } => TLSError::new_err(msg),
        Error::Connect { .. } | Error::Http { .. } => ConnectError::new_err(msg),
        Error::Timeout { .. } => LoginTimeoutError::new_err(msg),
        Error::SessionCache { .. } => SessionCacheError::new_err(msg),
        Error::Token { .. } => TokenError::new_err(msg),
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let err = new_err(&e, e.to_string());
        if !matches!(e.root(), Error::InvalidArgument { .. }) {
            // Attributes are a convenience; a failure to set one must not hide the error.
            Python::attach(|py| {
                let _ = set_attributes(py, err.value(py), &e);
            });
        }
        err
    }
}

/// `.status`, `.url`, `.offered` and `.history` (the redacted requests of the failed login).
fn set_attributes(py: Python<'_>, value: &Bound<'_, PyBaseException>, e: &Error) -> PyResult<()> {
    let (status, url) = match e.root() {
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
    value.setattr("status", status)?;
    value.setattr("url", url)?;
    if let Error::UnknownConnector { offered, .. } = e.root() {
        value.setattr("offered", offered.clone())?;
    }
    value.setattr("history", steps_to_py(py, e.history())?)
}

/// A `KFPAuthError` of the bindings' own (the runtime cannot start, Python is exiting).
pub fn kfp_auth_error(msg: impl Into<String>) -> PyErr {
    KFPAuthError::new_err(msg.into())
}

/// Raise each of the core's warnings as a `RuntimeWarning`.
pub fn warn(py: Python<'_>, warnings: Vec<String>) -> PyResult<()> {
    for w in warnings {
        let msg = std::ffi::CString::new(w.replace('\0', " ")).expect("no NUL left");
        PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &msg, 1)?;
    }
    Ok(())
}

/// Login steps as dicts, for `history` and a diagnosis.
pub fn steps_to_py<'py>(py: Python<'py>, steps: &[Step]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for step in steps {
        let d = PyDict::new(py);
        d.set_item("method", step.method)?;
        d.set_item("url", &step.url)?;
        d.set_item("status", step.status)?;
        d.set_item("elapsed_ms", step.elapsed_ms)?;
        list.append(d)?;
    }
    Ok(list)
}
