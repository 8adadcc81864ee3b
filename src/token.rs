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
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub expires: Option<SystemTime>,
    pub issued: Option<SystemTime>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    iat: Option<f64>,
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

/// Read a token file: whitespace around it is dropped; missing, unreadable,
/// empty and non-JWT files are errors that name the path.
pub fn read_token_file(path: &Path) -> Result<SecretString> {
    let raw =
        std::fs::read(path).map_err(|e| file_error(format!("cannot read the token file {}: {e}", path.display())))?;
    let text = zeroize::Zeroizing::new(
        String::from_utf8(raw).map_err(|_| file_error(format!("the token file {} is not text", path.display())))?,
    );
    let token = text.trim();
    if token.is_empty() {
        return Err(file_error(format!("the token file {} is empty", path.display())));
    }
    claims(token).map_err(|_| file_error(format!("the token file {} does not hold a JWT", path.display())))?;
    Ok(SecretString::from(token))
}

/// The claims of a JWT, decoded without verification. The error never quotes the token.
pub fn claims(token: &str) -> Result<Claims> {
    let not_jwt = || Error::Token {
        what: "not a JWT (three base64url parts separated by dots)".into(),
        hint: "pass the token itself, e.g. from `kubectl create token`".into(),
    };
    let mut parts = token.trim().split('.');
    let (Some(_header), Some(payload), Some(_sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_jwt());
    };
    let json = zeroize::Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| not_jwt())?,
    );
    let raw: RawClaims = serde_json::from_slice(&json).map_err(|_| not_jwt())?;
    // Checked: a claim of 1e300 must not panic (the server may send anything).
    let at = |secs: f64| {
        Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
    };
    Ok(Claims {
        subject: raw.sub,
        issuer: raw.iss,
        audience: match raw.aud {
            None => vec![],
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
        },
        expires: raw.exp.and_then(at),
        issued: raw.iat.and_then(at),
    })
}

/// A token held as a secret, with its claims.
pub fn inspect(token: &SecretString) -> Result<Claims> {
    claims(token.expose_secret())
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
        for t in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode("not json")),
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
    }
}
