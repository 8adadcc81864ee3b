//! Where the token cache keeps a login's tokens when its file must not hold them:
//! a store outside the core (the OS keyring, which the Python bindings reach through
//! the `keyring` package), one item per login named by the login's key. The file
//! keeps the rest of the login, so lookups, `logout` and the cross-process lock
//! work as they do without a store.

use secrecy::SecretString;

pub trait SecretStore: Send + Sync {
    /// What to call the store in messages, e.g. "the OS keyring".
    fn name(&self) -> &str;
    /// The item stored under `key`; `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<SecretString>, String>;
    /// Store `secret` under `key`, replacing what was there.
    fn set(&self, key: &str, secret: &SecretString) -> Result<(), String>;
    /// Remove the item under `key`; no item is not an error.
    fn delete(&self, key: &str) -> Result<(), String>;
}
