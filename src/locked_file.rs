//! A private file shared by processes: what the session cache and the token cache
//! have in common. A writer holds an exclusive lock on `<file>.lock` for the whole
//! of read, change, write; it writes a new file and renames it over the old one
//! (`private_dir.rs`), so a reader never sees half a file and a crash mid-write
//! leaves the old one whole. What the file holds, and what a bad one means, is the
//! caller's business.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::private_dir::{PrivateDir, Problem};

/// The file `path`, locked. Unlocked when dropped.
pub struct LockedFile {
    /// The folder, as checked when the lock was taken: the write goes there too.
    dir: PrivateDir,
    name: String,
    lock: File,
}

/// How often a bounded wait tries the lock again.
const RETRY: Duration = Duration::from_millis(20);

/// Take the lock on `path` (its folder created private when missing), waiting for
/// other processes: forever with `wait` `None`, else at most `wait`. The error is
/// the reason, to be said after the file's path.
pub fn lock(path: &Path, wait: Option<Duration>) -> Result<LockedFile, String> {
    let (Some(name), Some(lock_name)) = (
        path.file_name().and_then(|n| n.to_str()),
        // `sessions.json` is locked by `sessions.json.lock`.
        path.with_extension("json.lock")
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned),
    ) else {
        return Err("is not a file name kfp-auth can use (a folder, or not UTF-8)".into());
    };
    let dir = PrivateDir::open(path.parent().unwrap_or(Path::new(""))).map_err(|p| p.to_string())?;
    let lock = dir.open_lock(&lock_name).map_err(|p| match p {
        Problem::NotRegular => {
            format!("its lock file {lock_name} is a link, or not a regular file; refusing to use it")
        }
        Problem::Io(_, e) => format!("cannot open its lock file: {e}"),
        p => format!("its lock file {lock_name} {p}"),
    })?;
    match wait {
        None => lock.lock().map_err(|e| format!("cannot lock it: {e}"))?,
        Some(wait) => {
            let deadline = Instant::now() + wait;
            loop {
                match lock.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(RETRY),
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(format!(
                            "another process has held its lock ({lock_name}) for over {} s, longer than a \
                             renewal takes; try again, and if it persists find the process holding it \
                             (`fuser {lock_name}` in that folder)",
                            wait.as_secs_f64().ceil()
                        ));
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock it: {e}")),
                }
            }
        }
    }
    Ok(LockedFile {
        dir,
        name: name.to_owned(),
        lock,
    })
}

impl LockedFile {
    /// The file's bytes (`None` when it does not exist yet), refused when a bit of
    /// `forbidden` is in its mode, or when larger than `max`. Wiped when dropped.
    pub fn read(&self, forbidden: u32, max: u64) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, Problem> {
        self.dir.read(&self.name, forbidden, max)
    }

    /// Replace the file with `bytes`, whole or not at all. Temporary files start with
    /// `temp_prefix`; those a writer killed before its rename left are removed first.
    pub fn replace(&self, bytes: &[u8], temp_prefix: &str) -> Result<(), Problem> {
        self.dir.remove_temp_files(temp_prefix);
        self.dir.replace(&self.name, bytes, temp_prefix)
    }
}

/// Unlock explicitly: a child forked while the lock was held shares the open
/// file, so closing ours alone would leave the lock held until the child exits.
impl Drop for LockedFile {
    fn drop(&mut self) {
        let _ = self.lock.unlock();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_wait_ends_with_a_reason_and_the_lock_is_free_after_a_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        let held = lock(&path, None).unwrap();
        let started = Instant::now();
        let err = lock(&path, Some(Duration::from_millis(200))).err().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(err.contains("another process has held its lock (f.json.lock)"), "{err}");
        drop(held);
        assert!(lock(&path, Some(Duration::from_millis(200))).is_ok());
    }
}
