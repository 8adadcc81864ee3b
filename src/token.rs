//! Bearer tokens: reading a token file (a projected ServiceAccount token, or
//! one from `kubectl create token`) and reading a JWT's claims. Claims are
//! decoded only, never verified: the gateway verifies; we only want to show
//! who, for whom and until when. A token itself is never shown.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The variable kfp reads the token path from, and its default.
pub const TOKEN_PATH_ENV: &str = "KF_PIPELINES_SA_TOKEN_PATH";
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/kubeflow/pipelines/token";

/// The token file kfp reads in a pod: `$KF_PIPELINES_SA_TOKEN_PATH`, or the default.
pub fn default_token_path() -> std::path::PathBuf {
    std::env::var_os(TOKEN_PATH_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| DEFAULT_TOKEN_PATH.into(), Into::into)
}

/// The claims worth showing; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub subject: Option<String>,
    /// An ID token's `email`: who the login is for, as Kubeflow's gateway sees it.
    pub email: Option<String>,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub expires: Option<SystemTime>,
    pub issued: Option<SystemTime>,
    /// `nonce`: what a browser login sent, echoed by the ID token.
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    /// Any JSON: a token whose `email` is not a string is still a token.
    email: Option<serde_json::Value>,
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    iat: Option<f64>,
    nonce: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A token file problem, with the hint that names the variable and default path.
pub(crate) fn file_error(what: impl Into<String>) -> Error {
    Error::Token {
        what: what.into(),
        hint: format!(
            "in a pod, mount a ServiceAccount token volume (see the Kubeflow docs) and point ${TOKEN_PATH_ENV} \
             at it (default {DEFAULT_TOKEN_PATH})"
        ),
    }
}

/// A token file larger than this is refused unread: a JWT is a few kB.
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Whether a token can go in an `Authorization` header as it is: printable ASCII,
/// no whitespace (http.client would refuse it, quoting it whole in its error).
pub fn fits_in_a_header(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Read a token file: whitespace around it is dropped; missing, unreadable,
/// empty, oversized and non-JWT files, and anything but a regular file, are
/// errors that name the path (never the token).
pub fn read_token_file(path: &Path) -> Result<SecretString> {
    let raw = read_small_regular_file(path)?;
    let text =
        std::str::from_utf8(&raw).map_err(|_| file_error(format!("the token file {} is not text", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(file_error(format!("the token file {} is empty", path.display())));
    }
    if !fits_in_a_header(token) {
        return Err(file_error(format!(
            "the token file {} holds whitespace, control or non-ASCII characters inside the token \
             (a second line?), so it cannot be sent in a header; it must hold the token alone",
            path.display()
        )));
    }
    claims(token).map_err(|_| file_error(format!("the token file {} does not hold a JWT", path.display())))?;
    Ok(SecretString::from(token))
}

/// The bytes of a regular file of at most [`MAX_TOKEN_FILE_BYTES`], checked on the
/// open descriptor. Opened non-blocking, so a FIFO is refused instead of waiting for
/// a writer; a device (`/dev/zero`) is refused instead of read until memory runs out.
/// Elsewhere (Windows) only what std offers: a plain open, then the same checks on the
/// open file, so opening a pipe or a device is not refused beforehand as on Unix.
fn read_small_regular_file(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    #[cfg(unix)]
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    let cannot = |what: String| file_error(format!("cannot read the token file {}: {what}", path.display()));
    #[cfg(unix)]
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| cannot(std::io::Error::from(e).to_string()))?;
    #[cfg(unix)]
    let file = std::fs::File::from(fd);
    #[cfg(not(unix))]
    let file = std::fs::File::open(path).map_err(|e| cannot(e.to_string()))?;
    let meta = file.metadata().map_err(|e| cannot(e.to_string()))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        #[cfg(not(unix))]
        let what = if kind.is_dir() { "a folder" } else { "not a file" };
        #[cfg(unix)]
        let what = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(cannot(format!("it is not a regular file ({what})")));
    }
    let too_large = |n: u64| {
        file_error(format!(
            "the token file {} is larger than 64 KiB ({n} bytes); a token is a few kB",
            path.display()
        ))
    };
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    // Sized from the file; a file that grows meanwhile is cut at the bound and refused.
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| cannot(e.to_string()))?;
    if raw.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(too_large(raw.len() as u64));
    }
    Ok(raw)
}

/// The claims of a JWT, decoded without verification. The error never quotes the token.
pub fn claims(token: &str) -> Result<Claims> {
    let not_jwt = || Error::Token {
        what: "not a JWT (three base64url parts separated by dots)".into(),
        hint: "pass the token itself, e.g. from `kubectl create token`".into(),
    };
    let mut parts = token.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_jwt());
    };
    // Each part is checked: an unchecked one let a token with a second line through.
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map(zeroize::Zeroizing::new)
    };
    let header = decode(header).map_err(|_| not_jwt())?;
    if !serde_json::from_slice::<serde_json::Value>(&header).is_ok_and(|h| h.is_object()) {
        return Err(not_jwt());
    }
    decode(signature).map_err(|_| not_jwt())?;
    let json = decode(payload).map_err(|_| not_jwt())?;
    let raw: RawClaims = serde_json::from_slice(&json).map_err(|_| not_jwt())?;
    // Checked: a claim of 1e300 must not panic (the server may send anything).
    let at = |secs: f64| {
        Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
    };
    Ok(Claims {
        subject: raw.sub,
        email: raw.email.as_ref().and_then(|e| e.as_str()).map(str::to_owned),
        issuer: raw.iss,
        audience: match raw.aud {
            None => vec![],
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
        },
        expires: raw.exp.and_then(at),
        issued: raw.iat.and_then(at),
        nonce: raw.nonce,
    })
}

/// A token held as a secret, with its claims.
pub fn inspect(token: &SecretString) -> Result<Claims> {
    claims(token.expose_secret())
}

/// An unsigned JWT with `payload` as its claims, for the tests of the modules that read tokens.
#[cfg(test)]
pub(crate) fn test_jwt(payload: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_the_claims_of_a_serviceaccount_token() {
        let t = jwt(
            r#"{"aud":["pipelines.kubeflow.org"],"exp":1800000000,"iat":1799992800,"iss":"https://kubernetes.default.svc",
               "sub":"system:serviceaccount:kubeflow-user:default-editor","kubernetes.io":{"namespace":"kubeflow-user"}}"#,
        );
        let c = claims(&t).unwrap();
        assert_eq!(
            c.subject.as_deref(),
            Some("system:serviceaccount:kubeflow-user:default-editor")
        );
        assert_eq!(c.audience, ["pipelines.kubeflow.org"]);
        assert_eq!(c.expires, Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
        assert_eq!(c.issuer.as_deref(), Some("https://kubernetes.default.svc"));
        // A single audience may be a string.
        assert_eq!(
            claims(&jwt(r#"{"aud":"kubeflow-oidc-authservice"}"#)).unwrap().audience,
            ["kubeflow-oidc-authservice"]
        );
    }

    #[test]
    fn rejects_what_is_not_a_jwt_without_quoting_it() {
        let good = jwt(r#"{"sub":"me"}"#);
        let (header, rest) = good.split_once('.').unwrap();
        let (payload, _) = rest.split_once('.').unwrap();
        for t in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode("not json")),
            // A header that is not a JSON object; a signature that is not base64url.
            &format!("{}.{payload}.c2ln", URL_SAFE_NO_PAD.encode("[1]")),
            &format!("x.{payload}.c2ln"),
            &format!("{header}.{payload}.c2ln\nsecond line"),
            &format!("{header}.{payload}.c2 ln"),
        ] {
            let e = claims(t).unwrap_err().to_string();
            assert!(e.starts_with("not a JWT"), "{e}");
        }
        let e = claims("secret-token-value.x.y").unwrap_err().to_string();
        assert!(!e.contains("secret-token-value"));
    }

    #[test]
    fn absurd_times_are_unknown_not_a_panic() {
        for v in ["1e300", "-5", "9.3e18", "18446744073709551616"] {
            let c = claims(&jwt(&format!(r#"{{"exp":{v},"iat":{v}}}"#))).unwrap();
            assert!(c.expires.is_none() || v == "9.3e18", "{v}: {c:?}");
        }
    }

    #[test]
    fn token_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let e = read_token_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("cannot read the token file") && e.contains(TOKEN_PATH_ENV),
            "{e}"
        );
        std::fs::write(&p, " \n").unwrap();
        assert!(read_token_file(&p).unwrap_err().to_string().contains("is empty"));
        std::fs::write(&p, "hunter2").unwrap();
        let e = read_token_file(&p).unwrap_err().to_string();
        assert!(e.contains("does not hold a JWT") && !e.contains("hunter2"), "{e}");
        let t = jwt(r#"{"sub":"me"}"#);
        std::fs::write(&p, format!("{t}\n")).unwrap();
        assert_eq!(read_token_file(&p).unwrap().expose_secret(), t);

        // A second line: refused, and the token is not in the message.
        std::fs::write(&p, format!("{t}\nsecond line\n")).unwrap();
        let e = read_token_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("a second line?") && !t.split('.').any(|part| e.contains(part)),
            "{e}"
        );
    }

    #[test]
    fn token_files_must_be_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::File::create(&big).unwrap().set_len(300 << 20).unwrap();
        let e = read_token_file(&big).unwrap_err().to_string();
        assert!(e.contains("larger than 64 KiB (314572800 bytes)"), "{e}");
        let e = read_token_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("not a regular file (a device)"), "{e}");
        let e = read_token_file(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("cannot read the token file") && e.contains("(a folder)"),
            "{e}"
        );
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Returns at once: opening a FIFO without a writer would otherwise block.
        let e = read_token_file(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file (a FIFO)"), "{e}");
    }
}
