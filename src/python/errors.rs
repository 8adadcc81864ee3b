//! Core errors as Python exceptions, and core warnings as Python warnings.
//!
//! The classes live in Python (`kfp_auth/_errors.py`): one made here by PyO3 would
//! have an instance layout of its own, which Python cannot combine with OSError's,
//! so `LoginTimeoutError` could not also be a `TimeoutError`, nor `ConnectError` a
//! `ConnectionError`. Each class is looked up once and kept.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyType};

use crate::error::{BrowserFailure, Error, Step};

/// The Python module that defines the classes.
pub const MODULE: &str = "kfp_auth._errors";

/// One class of `kfp_auth._errors`, imported on first use.
pub struct Class {
    name: &'static str,
    cell: PyOnceLock<Py<PyType>>,
}

impl Class {
    const fn new(name: &'static str) -> Self {
        Class {
            name,
            cell: PyOnceLock::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn get<'py>(&self, py: Python<'py>) -> PyResult<&Bound<'py, PyType>> {
        self.cell.import(py, MODULE, self.name)
    }
}

pub static KFP_AUTH_ERROR: Class = Class::new("KFPAuthError");
static INVALID_ARGUMENT: Class = Class::new("InvalidArgumentError");
static INVALID_CREDENTIALS: Class = Class::new("InvalidCredentialsError");
static UNKNOWN_CONNECTOR: Class = Class::new("UnknownConnectorError");
static UNEXPECTED_RESPONSE: Class = Class::new("UnexpectedResponseError");
static TLS: Class = Class::new("TLSError");
static CONNECT: Class = Class::new("ConnectError");
static INCOMPLETE_BODY: Class = Class::new("IncompleteBodyError");
static LOGIN_TIMEOUT: Class = Class::new("LoginTimeoutError");
static TOKEN: Class = Class::new("TokenError");
static LOGIN_REQUIRED: Class = Class::new("LoginRequiredError");
static DEVICE_LOGIN: Class = Class::new("DeviceLoginError");
static BROWSER_LOGIN: Class = Class::new("BrowserLoginError");
static BROWSER_STATE: Class = Class::new("BrowserStateMismatchError");
static BROWSER_PORT: Class = Class::new("LoopbackPortInUseError");
static BROWSER_TIMEOUT: Class = Class::new("BrowserTimeoutError");
static BROWSER_REFUSED: Class = Class::new("BrowserLoginRefusedError");
static SESSION_CACHE: Class = Class::new("SessionCacheError");
static KEYRING: Class = Class::new("KeyringError");
static PERMISSION_DENIED: Class = Class::new("PermissionDeniedError");
static KFP_VERSION: Class = Class::new("KFPVersionError");
static WARNING: Class = Class::new("KFPAuthWarning");

/// The classes `_native` offers: each it raises (looked up at module init, before
/// any is needed), and `PermissionDeniedError` and `KFPVersionError`, which the Python
/// client raises.
pub static EXPORTED: [&Class; 22] = [
    &KFP_AUTH_ERROR,
    &INVALID_ARGUMENT,
    &INVALID_CREDENTIALS,
    &UNKNOWN_CONNECTOR,
    &UNEXPECTED_RESPONSE,
    &TLS,
    &CONNECT,
    &INCOMPLETE_BODY,
    &LOGIN_TIMEOUT,
    &TOKEN,
    &LOGIN_REQUIRED,
    &DEVICE_LOGIN,
    &BROWSER_LOGIN,
    &BROWSER_STATE,
    &BROWSER_PORT,
    &BROWSER_TIMEOUT,
    &BROWSER_REFUSED,
    &SESSION_CACHE,
    &KEYRING,
    &PERMISSION_DENIED,
    &KFP_VERSION,
    &WARNING,
];

/// The class of a core error, by the error at its root.
fn class_of(e: &Error) -> &'static Class {
    match e {
        Error::Failed { source, .. } => class_of(source),
        Error::InvalidArgument { .. } => &INVALID_ARGUMENT,
        Error::InvalidCredentials { .. } => &INVALID_CREDENTIALS,
        Error::UnknownConnector { .. } => &UNKNOWN_CONNECTOR,
        Error::UnexpectedResponse { .. } | Error::TooManySteps { .. } | Error::BodyTooLarge { .. } => {
            &UNEXPECTED_RESPONSE
        }
        Error::Tls { .. } => &TLS,
        Error::Connect { .. } | Error::Http { .. } => &CONNECT,
        Error::IncompleteBody { .. } => &INCOMPLETE_BODY,
        Error::Timeout { .. } | Error::LoginTimeout { .. } => &LOGIN_TIMEOUT,
        Error::SessionCache { .. } | Error::TokenCache { .. } => &SESSION_CACHE,
        Error::SecretStore { .. } => &KEYRING,
        Error::Token { .. } => &TOKEN,
        Error::LoginRequired { .. } => &LOGIN_REQUIRED,
        Error::DeviceLogin { .. } => &DEVICE_LOGIN,
        Error::BrowserLogin { kind, .. } => match kind {
            BrowserFailure::PortInUse => &BROWSER_PORT,
            BrowserFailure::StateMismatch => &BROWSER_STATE,
            BrowserFailure::Timeout => &BROWSER_TIMEOUT,
            BrowserFailure::Refused => &BROWSER_REFUSED,
            BrowserFailure::Other => &BROWSER_LOGIN,
        },
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| {
            // The class is never missing (module init looked each up); if making the
            // exception failed anyway, the message must still reach the user.
            exception(py, &e).unwrap_or_else(|_| PyRuntimeError::new_err(e.to_string()))
        })
    }
}

/// The exception for `e`, its facts passed as the class's declared attributes.
fn exception(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let kwargs = PyDict::new(py);
    let root = e.root();
    let (status, url) = match root {
        Error::InvalidCredentials { status, url, .. } => (Some(*status), Some(url)),
        Error::UnexpectedResponse { status, url, .. } => (*status, Some(url)),
        Error::TooManySteps { url, .. }
        | Error::BodyTooLarge { url, .. }
        | Error::Tls { url, .. }
        | Error::Connect { url, .. }
        | Error::Timeout { url, .. }
        | Error::LoginTimeout { url, .. }
        | Error::IncompleteBody { url, .. } => (None, Some(url)),
        Error::Http { url, .. } => (None, url.as_ref()),
        _ => (None, None),
    };
    kwargs.set_item("status", status)?;
    kwargs.set_item("url", url)?;
    kwargs.set_item("history", steps_to_py(py, e.history())?)?;
    match root {
        Error::UnknownConnector { offered, .. } => kwargs.set_item("offered", offered)?,
        Error::InvalidArgument { name, .. } => kwargs.set_item("argument", name)?,
        _ => {}
    }
    let value = class_of(e).get(py)?.call((e.to_string(),), Some(&kwargs))?;
    Ok(PyErr::from_value(value))
}

/// A `KFPAuthError` of the bindings' own (the runtime cannot start, Python is exiting).
pub fn kfp_auth_error(msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(
        |py| match KFP_AUTH_ERROR.get(py).and_then(|c| c.call1((msg.as_str(),))) {
            Ok(value) => PyErr::from_value(value),
            Err(_) => PyRuntimeError::new_err(msg),
        },
    )
}

/// Raise each of the core's warnings as a `KFPAuthWarning`.
pub fn warn(py: Python<'_>, warnings: Vec<String>) -> PyResult<()> {
    for w in warnings {
        let msg = std::ffi::CString::new(w.replace('\0', " ")).expect("no NUL left");
        PyErr::warn(py, WARNING.get(py)?.as_any(), &msg, 1)?;
    }
    Ok(())
}

/// Login steps as the `LoginStep` dicts of `history` and of a diagnosis.
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
