//! kfp-auth's core: logs in to a Kubeflow Pipelines API through whatever guards
//! it (oauth2-proxy or oidc-authservice in front of Dex, or nothing at all).
//!
//! Everything here is plain Rust; the Python bindings live behind the `python`
//! feature in [`python`].

pub mod bearer;
pub mod cache;
pub mod config;
pub mod detect;
pub mod diagnose;
pub mod error;
pub mod flow;
pub mod http;
pub mod page;
pub mod private_dir;
pub mod redact;
pub mod runtime;
pub mod secret;
pub mod session;
pub mod token;

#[cfg(feature = "python")]
mod pyexit;
#[cfg(feature = "python")]
mod python;

pub use config::{LoginConfig, Options};
pub use error::{Error, Result};
pub use flow::{Session, login};
pub use http::Transport;
pub use session::Authenticator;
