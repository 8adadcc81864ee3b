//! A Python object as the token cache's secret store: `kfp_auth._keyring.KeyringStore`,
//! which calls the `keyring` package. The GIL is taken only inside each call, which
//! the core makes off the async threads (or with tokio told that it blocks).

use std::sync::Arc;

use pyo3::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::exit;
use crate::secret_store::SecretStore;
use crate::token_cache::TokenCache;

/// An object with `get(key) -> str | None`, `set(key, secret)` and `delete(key)`.
pub struct PySecretStore(Py<PyAny>);

/// `cache`, its tokens in `store` when given.
pub fn with_store(cache: TokenCache, store: Option<Py<PyAny>>) -> TokenCache {
    match store {
        Some(s) => cache.with_store(Arc::new(PySecretStore(s))),
        None => cache,
    }
}

/// Only the exception's type: a backend's message could quote what it was given.
fn failure(py: Python<'_>, e: PyErr) -> String {
    format!(
        "the keyring backend raised {}",
        e.get_type(py)
            .name()
            .map_or_else(|_| "an error".into(), |n| n.to_string())
    )
}

impl PySecretStore {
    fn call<R>(&self, f: impl for<'py> FnOnce(Python<'py>, &Bound<'py, PyAny>) -> PyResult<R>) -> Result<R, String> {
        exit::attach(|py| f(py, self.0.bind(py)).map_err(|e| failure(py, e))).unwrap_or(Err("Python is exiting".into()))
    }
}

impl SecretStore for PySecretStore {
    fn name(&self) -> &str {
        "the OS keyring"
    }

    fn get(&self, key: &str) -> Result<Option<SecretString>, String> {
        self.call(|_, s| {
            let v = s.call_method1("get", (key,))?;
            if v.is_none() {
                return Ok(None);
            }
            Ok(Some(SecretString::from(v.extract::<String>()?)))
        })
    }

    fn set(&self, key: &str, secret: &SecretString) -> Result<(), String> {
        self.call(|_, s| s.call_method1("set", (key, secret.expose_secret())).map(drop))
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.call(|_, s| s.call_method1("delete", (key,)).map(drop))
    }
}
