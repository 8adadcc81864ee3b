//! The SSO token cache: the ID and refresh tokens of SSO logins, kept between
//! processes so that a process started within the refresh token's life asks the
//! user nothing. One JSON file (default `$XDG_CACHE_HOME/kfp-auth/tokens.json`)
//! holds the logins of many clusters and users, each keyed by issuer, client,
//! connector and user. It never holds a password.
//!
//! A writer locks the file (`locked_file.rs`), reads it again, changes the one
//! login it means to change and replaces the file by rename: it never drops the
//! others' logins. The lock is also what serialises refreshes across processes
//! (Dex rotates a refresh token on every use; see `sso.rs`), so a wait for it is
//! bounded. A file that cannot be read as this format, or that others can read,
//! is an error that says what to do; it is never silently replaced, as it may
//! hold other users' logins.
//!
//! With a secret store (`secret_store.rs`, [`TokenCache::with_store`]: the OS
//! keyring), a login's two tokens go to the store, one item per login under its
//! key, and the file keeps the rest with the marker `"secrets": "keyring"`. The
//! store is written and read under the file's lock, so the lock still serialises
//! renewals, and removing a login removes its item.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::locked_file::LockedFile;
use crate::private_dir::Problem;
use crate::secret_store::SecretStore;

const VERSION: u32 = 1;
const TMP_PREFIX: &str = ".kfp-auth-tokens.";
/// A login takes a few kB; a file larger than this is refused unread.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// How long a process waits for another's renewal (one refresh, or writing a login):
/// a refresh is one request, bounded by the `timeout` option (30 s by default).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(90);

/// One login as the file keeps it. Everything but the two tokens is safe to show.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub issuer: String,
    pub client_id: String,
    /// The Dex connector named at login; `None` when Dex's choice page chose it.
    pub connector: Option<String>,
    /// The ID token's `email`, else its `sub`.
    pub user: String,
    /// Where Dex was reached, and the API the login was for (when known).
    pub dex_url: String,
    pub api_url: Option<String>,
    /// Empty in the file when the store holds the tokens (`secrets`).
    #[serde(
        serialize_with = "crate::secret::serialize",
        skip_serializing_if = "is_empty",
        default = "empty"
    )]
    pub id_token: SecretString,
    #[serde(serialize_with = "crate::secret::serialize_opt")]
    pub refresh_token: Option<SecretString>,
    /// The ID token's `exp` (Unix seconds).
    pub expires_at: Option<u64>,
    pub saved_at: u64,
    /// `Some("keyring")` when the tokens are in the secret store, not in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<String>,
}

/// The marker of a login whose tokens are in the secret store.
pub const IN_KEYRING: &str = "keyring";

fn empty() -> SecretString {
    SecretString::from("")
}

fn is_empty(s: &SecretString) -> bool {
    s.expose_secret().is_empty()
}

/// The two tokens as one store item.
#[derive(Serialize, Deserialize)]
struct Secrets {
    #[serde(serialize_with = "crate::secret::serialize")]
    id_token: SecretString,
    #[serde(serialize_with = "crate::secret::serialize_opt")]
    refresh_token: Option<SecretString>,
}

impl Entry {
    pub fn key(&self) -> String {
        key(&self.issuer, &self.client_id, self.connector.as_deref(), &self.user)
    }

    pub fn saved(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.saved_at)
    }

    /// A copy (the tokens are copied into new secrets).
    pub fn copy(&self) -> Entry {
        Entry {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            connector: self.connector.clone(),
            user: self.user.clone(),
            dex_url: self.dex_url.clone(),
            api_url: self.api_url.clone(),
            id_token: SecretString::from(self.id_token.expose_secret()),
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|r| SecretString::from(r.expose_secret())),
            expires_at: self.expires_at,
            saved_at: self.saved_at,
            secrets: self.secrets.clone(),
        }
    }

    /// Whether the tokens are in the secret store rather than in the file.
    pub fn in_store(&self) -> bool {
        self.secrets.as_deref() == Some(IN_KEYRING)
    }
}

pub fn key(issuer: &str, client_id: &str, connector: Option<&str>, user: &str) -> String {
    format!(
        "{} {client_id} {} {user}",
        issuer.trim_end_matches('/'),
        connector.unwrap_or("-")
    )
}

/// Which logins a caller may use: those made at one of `endpoints` (an entry's
/// `dex_url` or `api_url`) for `client_id`, with `connector` and `user` when given.
pub struct Query<'a> {
    pub endpoints: &'a [&'a str],
    pub client_id: Option<&'a str>,
    pub connector: Option<&'a str>,
    pub user: Option<&'a str>,
}

impl Query<'_> {
    fn matches(&self, e: &Entry) -> bool {
        let at = |u: &Option<String>| {
            u.as_deref()
                .is_some_and(|u| self.endpoints.iter().any(|q| same_url(q, u)))
        };
        (self.endpoints.is_empty() || at(&Some(e.dex_url.clone())) || at(&e.api_url))
            && self.client_id.is_none_or(|c| c == e.client_id)
            && self.connector.is_none_or(|c| Some(c) == e.connector.as_deref())
            && self.user.is_none_or(|u| u == e.user)
    }
}

/// URLs compared as a user types them: a trailing `/` or the case of the host makes no difference.
pub fn same_url(a: &str, b: &str) -> bool {
    normal(a) == normal(b)
}

fn normal(u: &str) -> String {
    url::Url::parse(u.trim())
        .map(|u| u.as_str().to_owned())
        .unwrap_or_else(|_| u.trim().to_owned())
        .trim_end_matches('/')
        .to_owned()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileData {
    version: u32,
    logins: BTreeMap<String, Entry>,
}

impl Default for FileData {
    fn default() -> Self {
        FileData {
            version: VERSION,
            logins: BTreeMap::new(),
        }
    }
}

#[derive(Clone)]
pub struct TokenCache {
    path: PathBuf,
    lock_wait: Duration,
    store: Option<Arc<dyn SecretStore>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("path", &self.path)
            .field("store", &self.store.as_ref().map(|s| s.name().to_owned()))
            .finish()
    }
}

/// The cache, locked and read: no other process changes it until this is dropped.
pub struct Locked {
    cache: TokenCache,
    file: LockedFile,
    data: FileData,
}

impl TokenCache {
    pub fn new(path: PathBuf) -> Self {
        TokenCache {
            path,
            lock_wait: DEFAULT_LOCK_WAIT,
            store: None,
        }
    }

    /// Keep the tokens in `store`, the file keeping the rest (see the module's doc).
    pub fn with_store(mut self, store: Arc<dyn SecretStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long to wait for another process holding the lock before giving up.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// `$XDG_CACHE_HOME/kfp-auth/tokens.json`, else `~/.cache/kfp-auth/tokens.json`.
    pub fn default_path() -> Option<PathBuf> {
        crate::cache::SessionCache::default_path().map(|p| p.with_file_name("tokens.json"))
    }

    /// The cache at `given`, else at the default path.
    pub fn at(given: Option<PathBuf>) -> Result<Self> {
        given.or_else(Self::default_path).map(Self::new).ok_or_else(|| {
            Error::invalid(
                "token_cache",
                "there is no default without $HOME or $XDG_CACHE_HOME; pass a path",
            )
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn store_err(&self, store: &dyn SecretStore, reason: impl Into<String>) -> Error {
        Error::SecretStore {
            store: store.name().to_owned(),
            reason: reason.into(),
        }
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::TokenCache {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Take the lock (waiting at most the lock wait for other processes) and read the file.
    pub fn lock(&self) -> Result<Locked> {
        let file = crate::locked_file::lock(&self.path, Some(self.lock_wait)).map_err(|r| self.err(r))?;
        let afresh = "delete the file (`kfp-auth logout --all`) and log in again";
        let data = match file.read(0o077, MAX_FILE_BYTES) {
            Ok(None) => FileData::default(),
            Err(Problem::Mode(mode)) => {
                return Err(self.err(format!(
                    "is readable by other users (mode {mode:o}) and holds refresh tokens; refusing to use it. \
                     Run `chmod 600` on it if no one else could have read it, else delete it \
                     (`kfp-auth logout --all`) and log in again"
                )));
            }
            Err(p) => return Err(self.err(p.to_string())),
            // The raw bytes hold every login's tokens: wiped once parsed.
            Ok(Some(bytes)) => {
                let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                    // Only the position: serde_json's messages can quote the content.
                    self.err(format!(
                        "is not valid JSON (at line {}, column {}); {afresh}",
                        e.line(),
                        e.column()
                    ))
                })?;
                let version = value.get("version").and_then(|v| v.as_u64());
                if !value.is_object() {
                    return Err(self.err(format!("does not hold a JSON object; {afresh}")));
                }
                if version != Some(VERSION as u64) {
                    return Err(self.err(format!(
                        "has format version {}, not {VERSION} (written by another kfp-auth version?); {afresh}",
                        version.map_or("none".to_owned(), |v| v.to_string())
                    )));
                }
                // serde's message is not shown: it can quote a value from the file.
                serde_json::from_value::<FileData>(value).map_err(|_| {
                    self.err(format!(
                        "is not a kfp-auth token cache (a login in it lacks a field, or has one of the \
                         wrong type); {afresh}"
                    ))
                })?
            }
        };
        Ok(Locked {
            cache: self.clone(),
            file,
            data,
        })
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Locked {
    pub fn path(&self) -> &Path {
        &self.cache.path
    }

    /// The login as the file keeps it: without its tokens when they are in the store
    /// (see [`Locked::with_secrets`]).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.data.logins.get(key)
    }

    /// A copy of `entry` with its tokens, read from the store when they are there. A
    /// store that lost the item gives a login without tokens (a new login is needed);
    /// a login in the store read without one is an error that says how to reach it.
    pub fn with_secrets(&self, entry: &Entry) -> Result<Entry> {
        let mut e = entry.copy();
        if !entry.in_store() {
            return Ok(e);
        }
        let Some(store) = self.cache.store.as_deref() else {
            return Err(self.cache.err(format!(
                "the login of {} keeps its tokens in the OS keyring: use it with token_cache=\"keyring\" \
                 (in a shell, --keyring or KFP_AUTH_TOKEN_CACHE=keyring), or log it out",
                entry.user
            )));
        };
        let item = store.get(&entry.key()).map_err(|r| {
            self.cache
                .store_err(store, format!("cannot read the login of {}: {r}", entry.user))
        })?;
        match item {
            None => {
                log::info!(
                    target: "kfp_auth",
                    "login: {} holds no tokens for {}; a new login is needed",
                    store.name(),
                    entry.user
                );
                e.refresh_token = None;
            }
            Some(item) => {
                // serde's message is not shown: it can quote the item.
                let s: Secrets = serde_json::from_str(item.expose_secret()).map_err(|_| {
                    self.cache.store_err(
                        store,
                        format!(
                            "its item for {} is not kfp-auth's; log it out (`kfp-auth logout --keyring`) and log in again",
                            entry.user
                        ),
                    )
                })?;
                e.id_token = s.id_token;
                e.refresh_token = s.refresh_token;
            }
        }
        Ok(e)
    }

    /// The most recently saved login that `query` allows.
    pub fn find(&self, query: &Query<'_>) -> Option<&Entry> {
        self.data
            .logins
            .values()
            .filter(|e| query.matches(e))
            .max_by_key(|e| e.saved_at)
    }

    /// Every login `query` allows, the most recent first.
    pub fn matching(&self, query: &Query<'_>) -> Vec<&Entry> {
        let mut v: Vec<_> = self.data.logins.values().filter(|e| query.matches(e)).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.saved_at));
        v
    }

    /// Store `entry` (replacing the login with its key), and write the file. Nothing else changes.
    pub fn put(&mut self, mut entry: Entry) -> Result<()> {
        entry.saved_at = entry.saved_at.max(unix(SystemTime::now()));
        entry.secrets = None;
        if let Some(store) = self.cache.store.clone() {
            let item = Secrets {
                id_token: std::mem::replace(&mut entry.id_token, empty()),
                refresh_token: entry.refresh_token.take(),
            };
            let text = zeroize::Zeroizing::new(serde_json::to_string(&item).expect("plain data serializes"));
            store
                .set(&entry.key(), &SecretString::from(text.as_str()))
                .map_err(|r| {
                    self.cache
                        .store_err(&*store, format!("cannot save the login of {}: {r}", entry.user))
                })?;
            entry.secrets = Some(IN_KEYRING.to_owned());
        }
        self.data.logins.insert(entry.key(), entry);
        self.write()
    }

    /// Remove the logins with these keys, and write the file; how many were there.
    /// The items of logins kept in the store are removed from it first.
    pub fn remove(&mut self, keys: &[String]) -> Result<usize> {
        self.remove_items(keys)?;
        let before = self.data.logins.len();
        self.data.logins.retain(|k, _| !keys.contains(k));
        let removed = before - self.data.logins.len();
        if removed > 0 {
            self.write()?;
        }
        Ok(removed)
    }

    /// The keys of every login in the file.
    pub fn keys(&self) -> Vec<String> {
        self.data.logins.keys().cloned().collect()
    }

    /// Remove the store items of the logins with these keys.
    fn remove_items(&self, keys: &[String]) -> Result<()> {
        let held: Vec<&Entry> = keys
            .iter()
            .filter_map(|k| self.data.logins.get(k))
            .filter(|e| e.in_store())
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let Some(store) = self.cache.store.as_deref() else {
            return Err(self.cache.err(format!(
                "{} of these logins keep their tokens in the OS keyring; log out with --keyring \
                 (or KFP_AUTH_TOKEN_CACHE=keyring) so that they are removed from it too",
                held.len()
            )));
        };
        for e in held {
            store.delete(&e.key()).map_err(|r| {
                self.cache
                    .store_err(store, format!("cannot remove the login of {}: {r}", e.user))
            })?;
        }
        Ok(())
    }

    fn write(&self) -> Result<()> {
        // Sized up front so the buffer holding the tokens is not reallocated (which would
        // leave unwiped copies behind), then wiped once written.
        let size: usize = self
            .data
            .logins
            .iter()
            .map(|(k, e)| {
                2 * (k.len()
                    + e.id_token.expose_secret().len()
                    + e.refresh_token.as_ref().map_or(0, |r| r.expose_secret().len())
                    + e.issuer.len()
                    + e.user.len()
                    + e.dex_url.len()
                    + e.api_url.as_ref().map_or(0, String::len)
                    + e.client_id.len()
                    + e.connector.as_ref().map_or(0, String::len))
                    + 256
            })
            .sum::<usize>()
            + 64;
        let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(size));
        serde_json::to_writer(&mut *bytes, &self.data).expect("plain data serializes");
        self.file
            .replace(&bytes, TMP_PREFIX)
            .map_err(|p| self.cache.err(p.to_string()))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn entry(user: &str, dex: &str, refresh: &str, saved_at: u64) -> Entry {
        Entry {
            issuer: format!("{dex}/"),
            client_id: "kfp-auth".into(),
            connector: Some("upstream".into()),
            user: user.into(),
            dex_url: dex.into(),
            api_url: Some(format!("{}/pipeline", dex.trim_end_matches("/dex"))),
            id_token: SecretString::from(format!("id-{refresh}")),
            refresh_token: Some(SecretString::from(refresh)),
            expires_at: Some(saved_at + 60),
            saved_at,
            secrets: None,
        }
    }

    fn cache(dir: &Path) -> TokenCache {
        TokenCache::new(dir.join("kfp-auth").join("tokens.json"))
    }

    #[test]
    fn round_trip_keeps_other_logins_and_the_file_private() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        c.lock().unwrap().put(entry("alice", "http://a/dex", "r1", 10)).unwrap();
        c.lock().unwrap().put(entry("bob", "http://a/dex", "r2", 10)).unwrap();
        c.lock().unwrap().put(entry("alice", "http://b/dex", "r3", 10)).unwrap();
        // A rewrite of one login keeps the two others.
        c.lock().unwrap().put(entry("alice", "http://a/dex", "r4", 10)).unwrap();
        let l = c.lock().unwrap();
        assert_eq!(l.data.logins.len(), 3);
        let alice_a = l
            .get(&key("http://a/dex", "kfp-auth", Some("upstream"), "alice"))
            .unwrap();
        assert_eq!(alice_a.refresh_token.as_ref().unwrap().expose_secret(), "r4");
        assert!(alice_a.saved_at > 10, "saved_at is when it was written");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(c.path()), 0o600);
        assert_eq!(mode(c.path().parent().unwrap()), 0o700);
        let text = fs::read_to_string(c.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        let stored = &v["logins"]["http://a/dex kfp-auth upstream alice"];
        assert_eq!(stored["refresh_token"], "r4");
        assert_eq!(stored["api_url"], "http://a/pipeline");
    }

    #[test]
    fn lookups_take_the_most_recent_login_that_fits() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let mut l = c.lock().unwrap();
        l.data
            .logins
            .insert("1".into(), entry("alice", "http://a/dex", "r1", 100));
        l.data
            .logins
            .insert("2".into(), entry("bob", "http://a/dex", "r2", 200));
        l.data
            .logins
            .insert("3".into(), entry("carol", "http://b/dex", "r3", 300));
        let q = |endpoints: &'static [&'static str], connector, user| Query {
            endpoints,
            client_id: Some("kfp-auth"),
            connector,
            user,
        };
        let who = |e: Option<&Entry>| e.map(|e| e.user.clone());
        assert_eq!(who(l.find(&q(&["http://a/dex"], None, None))), Some("bob".into()));
        assert_eq!(who(l.find(&q(&["HTTP://A/dex/"], None, None))), Some("bob".into()));
        assert_eq!(who(l.find(&q(&["http://a/pipeline"], None, None))), Some("bob".into()));
        assert_eq!(
            who(l.find(&q(&["http://a/dex"], None, Some("alice")))),
            Some("alice".into())
        );
        assert_eq!(who(l.find(&q(&["http://a/dex"], Some("github"), None))), None);
        assert_eq!(who(l.find(&q(&["http://c/dex"], None, None))), None);
        assert_eq!(l.matching(&q(&[], None, None)).len(), 3);
        let none = Query {
            endpoints: &["http://a/dex"],
            client_id: Some("other"),
            connector: None,
            user: None,
        };
        assert!(l.find(&none).is_none());
        // Removing one login keeps the others.
        assert_eq!(l.remove(&["2".into()]).unwrap(), 1);
        drop(l);
        let l = c.lock().unwrap();
        assert_eq!(who(l.find(&q(&["http://a/dex"], None, None))), Some("alice".into()));
        assert_eq!(l.data.logins.len(), 2);
    }

    #[test]
    fn bad_files_are_typed_errors_that_say_what_to_do_and_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        c.lock().unwrap().put(entry("alice", "http://a/dex", "r1", 10)).unwrap();
        let write = |text: &str| {
            fs::write(c.path(), text).unwrap();
            fs::set_permissions(c.path(), fs::Permissions::from_mode(0o600)).unwrap();
        };
        let cases = [
            ("{not json", "is not valid JSON (at line 1, column 2)"),
            ("[1, 2]", "does not hold a JSON object"),
            (r#"{"version": 7, "logins": {}}"#, "has format version 7, not 1"),
            (r#"{"logins": {}}"#, "has format version none"),
            (
                r#"{"version": 1, "logins": {"k": {"user": "secret-value"}}}"#,
                "is not a kfp-auth token cache",
            ),
        ];
        for (text, said) in cases {
            write(text);
            let e = c.lock().err().unwrap();
            assert!(matches!(e, Error::TokenCache { .. }), "{e}");
            let e = e.to_string();
            assert!(e.contains(said) && e.contains("kfp-auth logout --all"), "{e}");
            assert!(e.starts_with(&format!("token cache {}: ", c.path().display())), "{e}");
            assert!(!e.contains("secret-value"), "{e}");
            assert_eq!(fs::read_to_string(c.path()).unwrap(), text, "left as it was");
        }
        write("{}");
        fs::set_permissions(c.path(), fs::Permissions::from_mode(0o640)).unwrap();
        let e = c.lock().err().unwrap().to_string();
        assert!(
            e.contains("readable by other users (mode 640)") && e.contains("chmod 600"),
            "{e}"
        );
    }

    /// A store in memory, standing in for the OS keyring.
    #[derive(Default)]
    struct Memory(std::sync::Mutex<BTreeMap<String, String>>);

    impl SecretStore for Memory {
        fn name(&self) -> &str {
            "the OS keyring"
        }
        fn get(&self, key: &str) -> std::result::Result<Option<SecretString>, String> {
            Ok(self.0.lock().unwrap().get(key).map(|v| SecretString::from(v.as_str())))
        }
        fn set(&self, key: &str, secret: &SecretString) -> std::result::Result<(), String> {
            self.0.lock().unwrap().insert(key.into(), secret.expose_secret().into());
            Ok(())
        }
        fn delete(&self, key: &str) -> std::result::Result<(), String> {
            self.0.lock().unwrap().remove(key);
            Ok(())
        }
    }

    #[test]
    fn with_a_store_the_file_keeps_no_token_and_logout_removes_the_item() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Memory::default());
        let c = cache(dir.path()).with_store(store.clone());
        c.lock().unwrap().put(entry("alice", "http://a/dex", "r1", 10)).unwrap();
        let text = fs::read_to_string(c.path()).unwrap();
        assert!(!text.contains("r1") && !text.contains("id-r1"), "{text}");
        assert!(text.contains(r#""secrets":"keyring""#), "{text}");
        let k = key("http://a/dex", "kfp-auth", Some("upstream"), "alice");
        assert!(store.0.lock().unwrap()[&k].contains("r1"));
        let l = c.lock().unwrap();
        let stored = l.get(&k).unwrap();
        assert!(stored.in_store() && stored.refresh_token.is_none());
        let full = l.with_secrets(stored).unwrap();
        assert_eq!(full.refresh_token.unwrap().expose_secret(), "r1");
        assert_eq!(full.id_token.expose_secret(), "id-r1");
        drop(l);
        // Read without the store: a typed error that says how to reach it; removal is refused.
        let plain = cache(dir.path());
        let mut l = plain.lock().unwrap();
        let e = l.with_secrets(l.get(&k).unwrap()).err().unwrap();
        assert!(
            matches!(e, Error::TokenCache { .. }) && e.to_string().contains("keyring"),
            "{e}"
        );
        assert!(l.remove(std::slice::from_ref(&k)).is_err());
        drop(l);
        // A lost item: a login without tokens.
        store.0.lock().unwrap().clear();
        let l = c.lock().unwrap();
        assert!(l.with_secrets(l.get(&k).unwrap()).unwrap().refresh_token.is_none());
        drop(l);
        c.lock().unwrap().put(entry("alice", "http://a/dex", "r2", 10)).unwrap();
        assert_eq!(c.lock().unwrap().remove(std::slice::from_ref(&k)).unwrap(), 1);
        assert!(store.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_process_holding_the_lock_too_long_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path()).with_lock_wait(Duration::from_millis(100));
        let held = c.lock().unwrap();
        let e = c.lock().err().unwrap();
        assert!(
            matches!(e, Error::TokenCache { .. }) && e.to_string().contains("held its lock"),
            "{e}"
        );
        drop(held);
        assert!(c.lock().is_ok());
    }
}
