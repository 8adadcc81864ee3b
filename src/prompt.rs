//! What an SSO login shows the user while it waits for them: the device code, the
//! page a browser login opened, and how the login ended.

use std::time::Duration;

/// What the user is shown, as the login goes.
#[derive(Debug, Clone, Copy)]
pub enum DeviceEvent<'a> {
    /// Open `verification_uri` and enter `user_code` (or open `verification_uri_complete`).
    Code {
        verification_uri: &'a str,
        verification_uri_complete: Option<&'a str>,
        user_code: &'a str,
        expires_in: Duration,
        /// The connector to choose on Dex's page, when the caller named one.
        connector: Option<&'a str>,
    },
    /// A browser login opened `url` (Dex's authorization page) in a browser; shown so
    /// the user can open it by hand when none appeared.
    Browser { url: &'a str },
    /// The login is done.
    Done,
    /// The login ended without a token; the message says why.
    Failed(&'a str),
    /// The caller stopped waiting (Ctrl-C, a cancelled task).
    Cancelled,
}

/// Shows an SSO login to the user. An error showing the code ends the login
/// (nobody could finish it); errors for the other events are ignored.
pub trait Prompt: Send + Sync {
    fn show(&self, event: DeviceEvent<'_>) -> std::result::Result<(), String>;
}
