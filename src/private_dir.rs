//! A folder only its owner can change, and the files in it: the rules for every
//! file kfp-auth keeps a credential in (the session cache, kfp's context file).
//!
//! The folder is opened once, without following a link, and checked on its
//! descriptor; every file in it is then opened, created and renamed through that
//! descriptor (`openat`, `renameat`), and checked on its own descriptor. Swapping
//! the folder's path for another between the check and the use changes nothing.
//! The folders above it are checked too: whoever can write one of them can rename
//! the folders below it, so each must belong to root or to this user and be
//! writable by no one else, unless it is sticky and root's (as `/tmp` is).
//!
//! Elsewhere (Windows) there is no owner and mode to check, so no folder passes:
//! [`PrivateDir::open`] refuses with [`Problem::Unsupported`] rather than keep a
//! credential in a file no one checked.

use std::fs::File;
#[cfg(unix)]
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
#[cfg(unix)]
use std::path::{Component, PathBuf};

#[cfg(unix)]
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
#[cfg(unix)]
use rustix::io::Errno;

/// Why a folder or file was refused, or could not be used.
#[derive(Debug)]
#[cfg_attr(not(unix), allow(dead_code))]
pub enum Problem {
    /// The folder, or one above it, can be changed by others (the text says which and how).
    Folder(String),
    /// The file is a link, a folder, or anything but a regular file.
    NotRegular,
    /// The file belongs to another user.
    Owner(u32),
    /// The file's mode has a bit the caller forbids.
    Mode(u32),
    /// The file is larger than the caller allows.
    TooLarge(u64),
    /// An I/O error: what was being done, and the error.
    Io(&'static str, std::io::Error),
    /// No Unix permission checks on this platform (see the module's doc).
    #[cfg(not(unix))]
    Unsupported,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Folder(why) => f.write_str(why),
            Problem::NotRegular => f.write_str("is not a regular file (a link or a folder); refusing to use it"),
            Problem::Owner(uid) => write!(f, "belongs to another user (uid {uid}); refusing to use it"),
            Problem::Mode(mode) => write!(
                f,
                "has mode {mode:o}, which lets other users at it; refusing to use it. Run `chmod 600` on it, or delete it"
            ),
            Problem::TooLarge(n) => write!(
                f,
                "is larger than a file kfp-auth writes ({n} bytes); refusing to read it"
            ),
            Problem::Io(what, e) => write!(f, "cannot {what}: {e}"),
            #[cfg(not(unix))]
            Problem::Unsupported => {
                f.write_str("needs a Unix file system's permission checks; it is not supported on Windows yet")
            }
        }
    }
}

type Result<T> = std::result::Result<T, Problem>;

/// An open, checked folder (see the module's doc).
#[cfg(unix)]
pub struct PrivateDir {
    fd: OwnedFd,
    /// The folder as found, links in the path resolved: what the tests check the walk by.
    #[cfg(test)]
    path: PathBuf,
}

#[cfg(unix)]
impl PrivateDir {
    /// Open the folder `path`, creating it and any missing folders above it (mode 0700).
    /// Refused: a folder of another user's or that others can write, and a folder
    /// under one that others can write (see the module's doc).
    pub fn open(path: &Path) -> Result<Self> {
        let me = rustix::process::geteuid().as_raw();
        let real = resolve(path)?;
        let mut at = rustix::fs::open("/", walk_flags(), Mode::empty()).map_err(io("open /"))?;
        let mut here = PathBuf::from("/");
        check_ancestor(&at, &here, me)?;
        let names: Vec<_> = real.components().skip(1).collect();
        if names.is_empty() {
            check_private(&at, &here, me)?;
        }
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            here.push(name);
            let flags = if last {
                OFlags::RDONLY | OFlags::DIRECTORY
            } else {
                walk_flags()
            };
            let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&at, name.as_os_str(), flags, Mode::empty()) {
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&at, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Problem::Io("create its folder", e.into())),
                    }
                    rustix::fs::openat(&at, name.as_os_str(), flags, Mode::empty())
                }
                other => other,
            }
            .map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => Problem::Folder(format!(
                    "{} is not a folder (a link?); refusing to use it",
                    here.display()
                )),
                e => Problem::Io("open its folder", e.into()),
            })?;
            if last {
                check_private(&next, &here, me)?;
            } else {
                check_ancestor(&next, &here, me)?;
            }
            at = next;
        }
        Ok(PrivateDir {
            fd: at,
            #[cfg(test)]
            path: here,
        })
    }

    /// The folder, as checked.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open `name` for locking, creating it (0600) if missing; never through a link.
    pub fn open_lock(&self, name: &str) -> Result<File> {
        let flags = OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd =
            rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600)).map_err(not_regular_or("open"))?;
        check_file(&fd, rustix::process::geteuid().as_raw(), 0o022)?;
        Ok(File::from(fd))
    }

    /// The bytes of `name`, `None` if it does not exist. It must be a regular file
    /// (not a link), this user's, with no bit of `forbidden` in its mode, and at most
    /// `max` bytes. The bytes are wiped when dropped (the file holds credentials).
    pub fn read(&self, name: &str, forbidden: u32, max: u64) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Err(Errno::NOENT) => return Ok(None),
            other => other.map_err(not_regular_or("read"))?,
        };
        let st = check_file(&fd, rustix::process::geteuid().as_raw(), forbidden)?;
        let len = st.st_size.max(0) as u64;
        if len > max {
            return Err(Problem::TooLarge(len));
        }
        let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(len as usize + 1));
        File::from(fd)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Problem::Io("read it", e))?;
        if bytes.len() as u64 > max {
            return Err(Problem::TooLarge(bytes.len() as u64));
        }
        Ok(Some(bytes))
    }

    /// Replace `name` with `bytes`, whole or not at all: they go to a new 0600 file
    /// named `<temp_prefix><random>` in this folder, which is synced and renamed over
    /// `name`. A reader never sees half a file; a crash leaves the old one.
    pub fn replace(&self, name: &str, bytes: &[u8], temp_prefix: &str) -> Result<()> {
        let (tmp, mut file) = self.create_temp(temp_prefix)?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        drop(file);
        let renamed = written.map_err(|e| Problem::Io("write it", e)).and_then(|()| {
            // Debug builds only: lets the tests kill a writer between its write and its rename.
            #[cfg(debug_assertions)]
            if let Some(ms) = std::env::var("KFP_AUTH_TEST_PAUSE_BEFORE_RENAME_MS")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            rustix::fs::renameat(&self.fd, &tmp, &self.fd, name).map_err(|e| Problem::Io("replace it", e.into()))
        });
        if renamed.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
            return renamed;
        }
        // The rename itself lasts once the folder is synced.
        let _ = rustix::fs::fsync(&self.fd);
        Ok(())
    }

    /// Remove the files whose names start with `temp_prefix`: left by a writer killed
    /// before its rename. Call it only while holding the folder's lock.
    pub fn remove_temp_files(&self, temp_prefix: &str) {
        let Ok(dir) = rustix::fs::Dir::read_from(&self.fd) else {
            return;
        };
        for entry in dir.flatten() {
            if entry.file_name().to_bytes().starts_with(temp_prefix.as_bytes()) {
                let _ = rustix::fs::unlinkat(&self.fd, entry.file_name(), AtFlags::empty());
            }
        }
    }

    fn create_temp(&self, prefix: &str) -> Result<(String, File)> {
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut last = Errno::EXIST;
        for attempt in 0..64u32 {
            let name = format!("{prefix}{}", unique(attempt));
            match rustix::fs::openat(&self.fd, name.as_str(), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok((name, File::from(fd))),
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(Problem::Io("write it", last.into()))
    }
}

/// The folders of the path are opened to be walked through: on Linux without
/// needing to read them (`O_PATH`), elsewhere for reading.
#[cfg(unix)]
fn walk_flags() -> OFlags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let base = OFlags::PATH;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let base = OFlags::RDONLY;
    base | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// `path` made absolute with the links in its existing part resolved, once, so the
/// walk down from `/` can refuse every link; what does not exist yet is appended.
#[cfg(unix)]
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut existing = path;
    let mut missing = Vec::new();
    while !existing.as_os_str().is_empty() && std::fs::symlink_metadata(existing).is_err() {
        match existing.components().next_back() {
            Some(Component::Normal(name)) => missing.push(name),
            _ => {
                return Err(Problem::Folder(format!(
                    "{} does not exist and cannot be created (`..` or a root in the part that is missing)",
                    path.display()
                )));
            }
        }
        existing = existing.parent().unwrap_or(Path::new(""));
    }
    let base = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let mut real = std::fs::canonicalize(base).map_err(|e| Problem::Io("find its folder", e))?;
    real.extend(missing.iter().rev());
    Ok(real)
}

/// A folder above: it must belong to root or to this user, and be writable by no
/// one else, unless it is sticky and root's (then only an entry's owner can rename it).
#[cfg(unix)]
fn check_ancestor(fd: &OwnedFd, path: &Path, me: u32) -> Result<()> {
    let st = fstat(fd)?;
    let mode = st.st_mode as u32 & 0o7777;
    let why = if st.st_uid != me && st.st_uid != 0 {
        format!("belongs to another user (uid {})", st.st_uid)
    } else if mode & 0o022 == 0 || mode & 0o1000 != 0 && st.st_uid == 0 {
        return Ok(());
    } else {
        let who = if mode & 0o002 != 0 { "all users" } else { "its group" };
        format!("is writable by {who} (mode {mode:o}, and not sticky and root's)")
    };
    Err(Problem::Folder(format!(
        "the folder above it {} {why}: whoever can write it can rename the folders below it. Keep it \
         under folders only you (or root) can write, or in a sticky folder of root's such as /tmp",
        path.display()
    )))
}

/// The folder itself: this user's, and writable by no one else.
#[cfg(unix)]
fn check_private(fd: &OwnedFd, path: &Path, me: u32) -> Result<()> {
    let st = fstat(fd)?;
    let mode = st.st_mode as u32 & 0o777;
    if st.st_uid != me || mode & 0o022 != 0 {
        return Err(Problem::Folder(format!(
            "its folder {} is not private (owner uid {}, mode {mode:o}); use a folder only you can write",
            path.display(),
            st.st_uid
        )));
    }
    Ok(())
}

/// A file, on its descriptor: regular, this user's, no bit of `forbidden` in its mode.
#[cfg(unix)]
fn check_file(fd: &OwnedFd, me: u32, forbidden: u32) -> Result<Stat> {
    let st = fstat(fd)?;
    if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
        return Err(Problem::NotRegular);
    }
    if st.st_uid != me {
        return Err(Problem::Owner(st.st_uid));
    }
    let mode = st.st_mode as u32 & 0o777;
    if mode & forbidden != 0 {
        return Err(Problem::Mode(mode));
    }
    Ok(st)
}

#[cfg(unix)]
fn fstat(fd: impl AsFd) -> Result<Stat> {
    rustix::fs::fstat(fd).map_err(|e| Problem::Io("check it", e.into()))
}

#[cfg(unix)]
fn io(what: &'static str) -> impl Fn(Errno) -> Problem {
    move |e| Problem::Io(what, e.into())
}

/// `O_NOFOLLOW` refuses a link with `ELOOP`: said as "not a regular file".
#[cfg(unix)]
fn not_regular_or(what: &'static str) -> impl Fn(Errno) -> Problem {
    move |e| match e {
        Errno::LOOP | Errno::ISDIR | Errno::NXIO => Problem::NotRegular,
        e => Problem::Io(what, e.into()),
    }
}

/// A name part no other writer picks at the same time: the process, the time, a count.
#[cfg(unix)]
fn unique(attempt: u32) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{:x}{:x}{:x}{attempt:x}",
        std::process::id(),
        nanos,
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Never made: [`PrivateDir::open`] refuses, so the other methods cannot be called.
#[cfg(not(unix))]
pub struct PrivateDir {
    never: std::convert::Infallible,
}

#[cfg(not(unix))]
impl PrivateDir {
    pub fn open(_path: &Path) -> Result<Self> {
        Err(Problem::Unsupported)
    }

    pub fn open_lock(&self, _name: &str) -> Result<File> {
        match self.never {}
    }

    pub fn read(&self, _name: &str, _forbidden: u32, _max: u64) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        match self.never {}
    }

    pub fn replace(&self, _name: &str, _bytes: &[u8], _temp_prefix: &str) -> Result<()> {
        match self.never {}
    }

    pub fn remove_temp_files(&self, _temp_prefix: &str) {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_missing_folders_private_and_replaces_files_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a").join("b");
        let dir = PrivateDir::open(&path).unwrap();
        assert_eq!((mode(&tmp.path().join("a")), mode(&path)), (0o700, 0o700));
        assert!(dir.read("f", 0o077, 100).unwrap().is_none());
        dir.replace("f", b"one", ".t.").unwrap();
        dir.replace("f", b"two", ".t.").unwrap();
        assert_eq!(&dir.read("f", 0o077, 100).unwrap().unwrap()[..], b"two");
        assert_eq!(mode(&path.join("f")), 0o600);
        assert!(matches!(dir.read("f", 0o077, 2), Err(Problem::TooLarge(3))));
        std::fs::write(path.join(".t.left"), "x").unwrap();
        dir.remove_temp_files(".t.");
        let names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn links_and_loose_modes_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::open(tmp.path()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", tmp.path().join("link")).unwrap();
        assert!(matches!(dir.read("link", 0o077, 100), Err(Problem::NotRegular)));
        let planted = tmp.path().join("created");
        std::os::unix::fs::symlink(&planted, tmp.path().join("lock")).unwrap();
        assert!(matches!(dir.open_lock("lock"), Err(Problem::NotRegular)));
        assert!(!planted.exists(), "O_CREAT followed the link");
        std::fs::write(tmp.path().join("loose"), "x").unwrap();
        std::fs::set_permissions(tmp.path().join("loose"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(dir.read("loose", 0o077, 100), Err(Problem::Mode(0o644))));
        assert!(dir.read("loose", 0o022, 100).unwrap().is_some());

        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = PrivateDir::open(tmp.path()).err().unwrap().to_string();
        assert!(e.contains("is not private (owner uid") && e.contains("mode 770"), "{e}");
        let e = PrivateDir::open(&tmp.path().join("below")).err().unwrap().to_string();
        assert!(
            e.contains("the folder above it") && e.contains("is writable by its group"),
            "{e}"
        );
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // A link in the path that exists is resolved first; one planted in a checked walk is refused.
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("alias")).unwrap();
        let via = PrivateDir::open(&tmp.path().join("alias")).unwrap();
        assert_eq!(via.path(), real.canonicalize().unwrap());
    }

    #[test]
    fn a_sticky_folder_of_roots_is_a_safe_place_to_be_under() {
        let tmp = std::env::temp_dir();
        let st = std::fs::metadata(&tmp).unwrap();
        if mode(&tmp) & 0o1002 != 0o1002 || std::os::unix::fs::MetadataExt::uid(&st) != 0 {
            return; // this machine's temporary folder is not /tmp-like
        }
        let mine = tempfile::tempdir_in(&tmp).unwrap();
        assert!(PrivateDir::open(mine.path()).is_ok());
    }
}
