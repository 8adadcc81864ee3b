//! A token file, re-read only when it changes: a projected ServiceAccount token
//! that the kubelet rotates, or any file a bearer source or token exchange reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use secrecy::SecretString;

use crate::error::Result;
use crate::token;

/// What identifies a version of the file: the kubelet rotates a projected
/// token by swapping a symlink to a new file (a new inode); a rewrite in place
/// changes the size or the modification time. Anything missed this way is
/// caught by the server's 401, which forces a re-read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

pub struct TokenFile {
    path: PathBuf,
    held: Mutex<Option<(Stamp, Arc<SecretString>)>>,
    reads: AtomicU64,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> Self {
        TokenFile {
            path,
            held: Mutex::new(None),
            reads: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token, read again only when the file changed since the last read.
    pub fn token(&self) -> Result<Arc<SecretString>> {
        let stamp = self.stamp()?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, t)) = held.as_ref()
            && *s == stamp
        {
            return Ok(t.clone());
        }
        let token = self.read()?;
        *held = Some((stamp, token.clone()));
        Ok(token)
    }

    /// Read the file whatever its stamp says.
    pub fn reread(&self) -> Result<Arc<SecretString>> {
        let stamp = self.stamp()?;
        let token = self.read()?;
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some((stamp, token.clone()));
        Ok(token)
    }

    /// Reads of the file made so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn read(&self) -> Result<Arc<SecretString>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        log::debug!(target: "kfp_auth", "reading the token file {}", self.path.display());
        Ok(Arc::new(token::read_token_file(&self.path)?))
    }

    fn stamp(&self) -> Result<Stamp> {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        // Following symlinks: the kubelet's `token` is a link into `..data/`.
        let m = std::fs::metadata(&self.path)
            .map_err(|e| token::file_error(format!("cannot read the token file {}: {e}", self.path.display())))?;
        Ok(Stamp {
            #[cfg(unix)]
            dev: m.dev(),
            #[cfg(unix)]
            ino: m.ino(),
            // std has no stable file identity on Windows: a change is seen by size and time.
            #[cfg(not(unix))]
            dev: 0,
            #[cfg(not(unix))]
            ino: 0,
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn jwt(sub: &str) -> String {
        crate::token::test_jwt(&format!(r#"{{"sub":"{sub}"}}"#))
    }

    #[test]
    fn a_token_file_is_read_again_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, jwt("a")).unwrap();
        let f = TokenFile::new(p.clone());
        assert_eq!(f.token().unwrap().expose_secret(), jwt("a"));
        assert_eq!(f.token().unwrap().expose_secret(), jwt("a"));
        assert_eq!(f.reads(), 1);
        // The kubelet's way: a new file, renamed over (a new inode).
        let next = dir.path().join("token.new");
        std::fs::write(&next, jwt("bb")).unwrap();
        std::fs::rename(&next, &p).unwrap();
        assert_eq!(f.token().unwrap().expose_secret(), jwt("bb"));
        assert_eq!(f.reads(), 2);
        // A forced re-read happens whatever the stamp says.
        f.reread().unwrap();
        assert_eq!(f.reads(), 3);
    }
}
