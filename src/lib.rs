//! kfp-auth's core: logs in to a Kubeflow Pipelines API through whatever guards
//! it (oauth2-proxy or oidc-authservice in front of Dex, or nothing at all).
//!
//! Everything here is plain Rust; the Python bindings live behind the `python`
//! feature. The modules are private; what the crate offers is re-exported
//! below. The modules the property tests and the fuzz targets reach into
//! (pages, cookies, redaction, detection, tokens) stay public for them.

mod bearer;
mod browser;
mod cache;
mod config;
pub mod detect;
mod device;
mod diagnose;
mod error;
mod exchange;
mod flow;
pub mod http;
mod locked_file;
mod oidc;
pub mod page;
mod private_dir;
mod prompt;
pub mod redact;
mod renew;
mod secret;
mod secret_store;
mod session;
mod sso;
pub mod token;
mod token_cache;
mod token_file;

#[cfg(feature = "python")]
mod python;

pub use bearer::{Bearer, GrantConfig, Source};
pub use browser::{BrowserStart, DEFAULT_TIMEOUT as DEFAULT_BROWSER_TIMEOUT, Opener};
pub use cache::SessionCache;
pub use config::{LoginConfig, Options, ProxyUrl, dex_token_url, parse_proxy_url, timeout_from_secs};
pub use diagnose::{Diagnosis, diagnose};
pub use error::{BrowserFailure, Checker, Error, Result, Step};
pub use exchange::Subject;
pub use flow::{Session, login};
pub use http::Transport;
pub use oidc::dex_base;
pub use prompt::{DeviceEvent, Prompt};
pub use session::Authenticator;
pub use sso::{DEFAULT_CLIENT_ID, DEFAULT_SCOPES, SsoConfig, SsoLogin, Start};
pub use token_cache::TokenCache;
pub use token_file::TokenFile;
