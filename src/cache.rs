//! The opt-in session cache on disk, so short-lived processes reuse a valid
//! session. One JSON file holds many sessions, keyed by API URL, user and
//! connector. It never holds a password: only the session's cookies (which
//! are credentials too, hence mode 0600 in a 0700 folder) and when to renew them.
//!
//! Writers hold an exclusive lock on `<file>.lock` and replace the file by
//! rename (`locked_file.rs`), so a reader never sees half a file and a crash
//! mid-write leaves the old one whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::locked_file::LockedFile;
use crate::private_dir::Problem;

const VERSION: u32 = 1;
/// Temporary files of a write in progress start so; any left (a writer killed
/// before its rename) are removed by the next writer, under the lock.
const TMP_PREFIX: &str = ".kfp-auth-sessions.";
/// A cache file larger than this is refused unread (a session takes a few kB).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// One cached session.
pub struct Entry {
    pub cookies: SecretString,
    pub refresh_at: Option<SystemTime>,
    /// When it was saved.
    pub saved: SystemTime,
}

#[derive(Serialize, Deserialize, Default)]
struct FileData {
    version: u32,
    sessions: BTreeMap<String, StoredEntry>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    /// Every session in the file stays in memory while the lock is held (across a login),
    /// so each is a zeroising secret, not a plain `String`.
    #[serde(serialize_with = "crate::secret::serialize")]
    cookies: SecretString,
    /// Unix seconds after which the session must be renewed; absent when unknown.
    refresh_at: Option<u64>,
    saved_at: u64,
}

/// How long an entry without a known expiry is trusted: Kubeflow's gateways
/// keep sessions for 24 h; a rejected one is renewed anyway.
const NO_EXPIRY_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone)]
pub struct SessionCache {
    path: PathBuf,
}

/// An exclusive lock on the cache, held while a process reads, logs in and writes.
pub struct Locked {
    cache: SessionCache,
    file: LockedFile,
    /// Set when the file was unreadable and will be replaced.
    pub warning: Option<String>,
    data: FileData,
}

impl SessionCache {
    pub fn new(path: PathBuf) -> Self {
        SessionCache { path }
    }

    /// `$XDG_CACHE_HOME/kfp-auth/sessions.json`, else `~/.cache/kfp-auth/sessions.json`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("kfp-auth").join("sessions.json"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn key(api_url: &str, username: &str, connector: &str) -> String {
        format!("{connector}:{username}@{api_url}")
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::SessionCache {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Take the lock (waiting for other processes) and read the file.
    pub fn lock(&self) -> Result<Locked> {
        let file = crate::locked_file::lock(&self.path, None).map_err(|r| self.err(r))?;
        let (data, warning) = match file.read(0o077, MAX_FILE_BYTES) {
            Ok(None) => (FileData::default(), None),
            Err(Problem::Mode(mode)) => {
                return Err(self.err(format!(
                    "is readable by other users (mode {mode:o}) and holds session cookies; \
                     refusing to use it. Run `chmod 600` on it, or delete it"
                )));
            }
            Err(p) => return Err(self.err(p.to_string())),
            // The raw bytes hold every session's cookies: wiped once parsed.
            Ok(Some(bytes)) => match serde_json::from_slice::<FileData>(&bytes) {
                Ok(d) if d.version == VERSION => (d, None),
                Ok(d) => (
                    FileData::default(),
                    Some(format!(
                        "has format version {}, not {VERSION}; starting it afresh",
                        d.version
                    )),
                ),
                // Only the position: serde_json's messages can quote the content.
                Err(e) => (
                    FileData::default(),
                    Some(format!(
                        "is corrupt (at line {}, column {}); starting it afresh",
                        e.line(),
                        e.column()
                    )),
                ),
            },
        };
        let warning = warning.map(|w| format!("session cache {}: {w}", self.path.display()));
        Ok(Locked {
            cache: self.clone(),
            file,
            warning,
            data,
        })
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Locked {
    /// The cached session for `key`, if it is still valid.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let e = self.data.sessions.get(key)?;
        let now = SystemTime::now();
        let refresh_at = match e.refresh_at {
            Some(t) => UNIX_EPOCH + Duration::from_secs(t),
            None => UNIX_EPOCH + Duration::from_secs(e.saved_at) + NO_EXPIRY_TTL,
        };
        (now < refresh_at).then(|| Entry {
            cookies: SecretString::from(e.cookies.expose_secret()),
            refresh_at: Some(refresh_at),
            saved: UNIX_EPOCH + Duration::from_secs(e.saved_at),
        })
    }

    /// Store `entry` under `key`, drop expired entries, and replace the file atomically.
    pub fn put(&mut self, key: &str, entry: &Entry) -> Result<()> {
        let now = SystemTime::now();
        self.data.sessions.insert(
            key.to_owned(),
            StoredEntry {
                cookies: SecretString::from(entry.cookies.expose_secret()),
                refresh_at: entry.refresh_at.map(unix),
                saved_at: unix(entry.saved),
            },
        );
        let now_s = unix(now);
        self.data
            .sessions
            .retain(|_, e| e.refresh_at.unwrap_or(e.saved_at + NO_EXPIRY_TTL.as_secs()) > now_s);
        self.data.version = VERSION;
        self.write()
    }

    fn write(&self) -> Result<()> {
        let cache = &self.cache;
        // Sized up front, so the buffer holding every session's cookies is not reallocated
        // (which would leave unwiped copies behind), then wiped once written.
        let size: usize = self
            .data
            .sessions
            .iter()
            .map(|(k, e)| 2 * (k.len() + e.cookies.expose_secret().len()) + 96)
            .sum::<usize>()
            + 64;
        let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(size));
        serde_json::to_writer(&mut *bytes, &self.data).expect("plain data serializes");
        self.file
            .replace(&bytes, TMP_PREFIX)
            .map_err(|p| cache.err(p.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn entry(cookies: &str, secs: u64) -> Entry {
        Entry {
            cookies: SecretString::from(cookies.to_owned()),
            refresh_at: Some(SystemTime::now() + Duration::from_secs(secs)),
            saved: SystemTime::now(),
        }
    }

    #[test]
    fn round_trip_modes_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SessionCache::new(dir.path().join("sub").join("sessions.json"));
        {
            let mut l = cache.lock().unwrap();
            assert!(l.get("k").is_none() && l.warning.is_none());
            l.put("k", &entry("a=1", 3600)).unwrap();
            l.put("old", &entry("b=2", 0)).unwrap();
        }
        let l = cache.lock().unwrap();
        assert_eq!(l.get("k").unwrap().cookies.expose_secret(), "a=1");
        assert!(l.get("old").is_none(), "expired entries are ignored");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.path()), 0o600);
        assert_eq!(mode(cache.path().parent().unwrap()), 0o700);
    }

    #[test]
    fn corrupt_files_are_replaced_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.json");
        fs::write(&path, b"{not json").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let cache = SessionCache::new(path.clone());
        let mut l = cache.lock().unwrap();
        assert!(l.warning.as_deref().unwrap().contains("corrupt"));
        l.put("k", &entry("a=1", 60)).unwrap();
        drop(l);
        assert!(cache.lock().unwrap().warning.is_none());
    }

    #[test]
    fn stale_temp_files_are_removed_and_unsafe_places_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let stale = dir.path().join(format!("{TMP_PREFIX}abc"));
        fs::write(&stale, "cookies").unwrap();
        let cache = SessionCache::new(dir.path().join("sessions.json"));
        cache.lock().unwrap().put("k", &entry("a=1", 60)).unwrap();
        assert!(!stale.exists());

        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = cache.lock().err().unwrap().to_string();
        assert!(err.contains("is not private"), "{err}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();

        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(cache.path(), &link).unwrap();
        let err = SessionCache::new(link).lock().err().unwrap().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn files_others_can_read_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.json");
        fs::write(&path, b"{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SessionCache::new(path).lock().err().unwrap().to_string();
        assert!(
            err.contains("readable by other users (mode 644)") && err.contains("chmod 600"),
            "{err}"
        );
    }
}
