//! What a login needs, checked once up front so bad input fails before any traffic.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::error::{Error, Result};

/// The largest `max_body_bytes` allowed: each login reply is held in memory whole.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Knobs with defaults; everything here is safe to print.
#[derive(Debug, Clone)]
pub struct Options {
    pub skip_tls_verify: bool,
    /// A PEM bundle of CA certificates to trust besides the system's.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Bound on each request, from connect to the last body byte.
    pub timeout: Duration,
    /// Bound on consecutive redirects.
    pub max_redirects: usize,
    /// Bound on each response body read.
    pub max_body_bytes: usize,
    /// Skip the requests whose answers Dex fixes: go from `/auth` straight to
    /// `/auth/<connector>`, post the credentials without reading the password
    /// form, and approve without reading the approval page (a round trip fewer
    /// each). `diagnose` turns this off to read every page.
    pub shortcuts: bool,
    /// Keep each server's certificate, for `diagnose` to describe.
    pub tls_info: bool,
    /// A proxy for every request. When unset, `HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY` (or their lowercase forms) apply, as in `requests`.
    pub proxy: Option<ProxyUrl>,
    /// Follow a login from https down to plain http (a redirect, link or form that
    /// leaves TLS). Off by default: the password and cookies would travel unencrypted.
    pub allow_insecure_redirect: bool,
    /// Where Dex is. A login sends the password to this URL's origin only: a Dex
    /// found elsewhere is refused before the password goes. Unset, a Dex on another
    /// origin than `api_url`'s is logged as a warning.
    pub dex_url: Option<Url>,
}

/// A proxy URL, which may carry the proxy's own credentials: `Debug` shows it without them.
#[derive(Clone)]
pub struct ProxyUrl(pub Url);

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyUrl({})", crate::redact::url(&self.0))
    }
}

impl Options {
    /// The rules every session's options follow, in one place (a Dex login, a password
    /// grant, and the settings check of the modes that make no session).
    pub fn check(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "timeout",
                "must be a finite number of seconds above zero",
            ));
        }
        if self.max_redirects == 0 {
            return Err(Error::invalid("max_redirects", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::invalid("max_body_bytes", "must be at least 1024"));
        }
        if self.max_body_bytes > MAX_BODY_BYTES {
            return Err(Error::invalid(
                "max_body_bytes",
                format!("must be at most {MAX_BODY_BYTES} (64 MiB); a login page is a few kB"),
            ));
        }
        Ok(())
    }
}

/// A timeout given in seconds (as Python passes it). NaN, negative, infinite and
/// too-small values become zero, which [`Options::check`] refuses: the rule stays there.
pub fn timeout_from_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
}

impl Default for Options {
    fn default() -> Self {
        Options {
            skip_tls_verify: false,
            ca_bundle: None,
            timeout: Duration::from_secs(30),
            max_redirects: 10,
            max_body_bytes: 1 << 20,
            shortcuts: true,
            tls_info: false,
            proxy: None,
            allow_insecure_redirect: false,
            dex_url: None,
        }
    }
}

/// A validated login request. `Debug` is derived safely: `SecretString` prints `[REDACTED]`.
#[derive(Debug)]
pub struct LoginConfig {
    pub api_url: Url,
    pub username: String,
    pub password: SecretString,
    pub connector: String,
    pub options: Options,
}

impl LoginConfig {
    pub fn new(
        api_url: &str,
        username: &str,
        password: SecretString,
        connector: &str,
        options: Options,
    ) -> Result<Self> {
        let api_url = parse_api_url(api_url)?;
        check_connector_id(connector)?;
        options.check()?;
        Ok(LoginConfig {
            api_url,
            username: username.to_owned(),
            password,
            connector: connector.to_owned(),
            options,
        })
    }
}

/// An absolute http(s) URL with a host and no user info; the fragment is dropped.
pub fn parse_api_url(raw: &str) -> Result<Url> {
    parse_http_url("api_url", raw)
}

/// `parse_api_url` for the argument `name`.
pub fn parse_http_url(name: &'static str, raw: &str) -> Result<Url> {
    // The parse error is safe to show; the input itself may hold user info, so it is not echoed.
    let mut url = Url::parse(raw.trim()).map_err(|e| {
        Error::invalid(
            name,
            format!("not an absolute URL ({e}); expected e.g. http://localhost:8080/pipeline"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            name,
            format!("scheme `{}` is not http or https", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(name, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            name,
            "must not contain user:password@; pass the credentials as dex_username and dex_password",
        ));
    }
    url.set_fragment(None);
    Ok(url)
}

/// Dex's token endpoint for the password grant: `dex_url` + `/token`, where `dex_url`
/// defaults to `/dex` on `api_url`'s origin (where Kubeflow's gateway serves Dex).
/// The password and client secret go there, so it must be https when `api_url` is.
pub fn dex_token_url(api_url: &str, dex_url: Option<&str>) -> Result<Url> {
    let mut dex = dex_base(api_url, dex_url, "the password and client secret")?;
    let path = format!("{}/token", dex.path().trim_end_matches('/'));
    dex.set_path(&path);
    Ok(dex)
}

/// Where Dex is reached: `dex_url`, or `/dex` on `api_url`'s origin, without a query or
/// a trailing slash. `what` travels to it, so it must be https when `api_url` is.
pub fn dex_base(api_url: &str, dex_url: Option<&str>, what: &str) -> Result<Url> {
    let api = parse_api_url(api_url)?;
    let mut dex = match dex_url {
        Some(u) => parse_http_url("dex_url", u)?,
        None => api.join("/dex").map_err(|e| Error::invalid("api_url", e.to_string()))?,
    };
    if api.scheme() == "https" && dex.scheme() != "https" {
        return Err(Error::invalid(
            "dex_url",
            format!("it is http while api_url is https; {what} would travel unencrypted. Use Dex's https URL"),
        ));
    }
    dex.set_query(None);
    let path = dex.path().trim_end_matches('/').to_owned();
    dex.set_path(&path);
    Ok(dex)
}

/// A proxy URL: http or https, with a host. User info is allowed (proxies take
/// credentials) and is never shown. SOCKS is not offered: kfp's own client
/// (urllib3 without PySocks) could not use it.
pub fn parse_proxy_url(raw: &str) -> Result<ProxyUrl> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        Error::invalid(
            "proxy",
            format!("not an absolute URL ({e}); expected e.g. http://proxy:3128"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            "proxy",
            format!(
                "scheme `{}` is not http or https (SOCKS proxies are not supported)",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid("proxy", "has no host"));
    }
    Ok(ProxyUrl(url))
}

/// A Dex connector id as it can appear in `/auth/<id>`: Dex takes the id from
/// one path segment, so we accept URL-unreserved characters only, 1 to 128 of them.
pub fn check_connector_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    // The value is not echoed: a password passed in the wrong position must not show.
    let problem = if id.is_empty() {
        "is empty".to_owned()
    } else if id.chars().count() > 128 {
        format!("is {} characters long, more than 128", id.chars().count())
    } else if let Some((i, c)) = id.chars().enumerate().find(|&(_, c)| !ok_char(c)) {
        let what = match c {
            ' ' => "a space".to_owned(),
            c if c.is_whitespace() || c.is_control() => "a whitespace or control character".to_owned(),
            c if c.is_ascii_punctuation() => format!("'{c}'"),
            _ => "a non-ASCII character".to_owned(),
        };
        format!("has {what} at position {}", i + 1)
    } else if id == "." || id == ".." {
        "is a relative path segment".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::invalid(
        "dex_auth_type",
        format!(
            "{problem}; it must be the `id` of a connector in Dex's config, such as \"local\" or \"ldap\" \
             (letters, digits, '-', '_', '.', '~')"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str, connector: &str) -> Result<LoginConfig> {
        LoginConfig::new(url, "u", SecretString::from("p"), connector, Options::default())
    }

    #[test]
    fn accepts_any_valid_connector_id() {
        for id in ["local", "ldap", "github", "corp-ad_2", "a.b~c"] {
            assert!(cfg("http://h/pipeline", id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_malformed_connector_ids() {
        for id in ["", "a/b", "a b", "ldap?x=1", "%2F", "..", "é", &"x".repeat(129)] {
            let err = cfg("http://h/pipeline", id).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidArgument {
                        name: "dex_auth_type",
                        ..
                    }
                ),
                "{id}"
            );
        }
    }

    #[test]
    fn connector_errors_do_not_echo_the_value() {
        let err = cfg("http://h/pipeline", "hunter2 pw").unwrap_err().to_string();
        assert!(
            err.contains("a space at position 8") && !err.contains("hunter2"),
            "{err}"
        );
        let err = cfg("http://h/pipeline", "a/b").unwrap_err().to_string();
        assert!(err.contains("'/' at position 2"), "{err}");
    }

    #[test]
    fn rejects_bad_urls_without_echoing_them() {
        for u in ["localhost:8080/pipeline", "ftp://h/x", "not a url", "http://"] {
            assert!(
                matches!(cfg(u, "local"), Err(Error::InvalidArgument { name: "api_url", .. })),
                "{u}"
            );
        }
        let err = cfg("http://alice:s3cret@h/pipeline", "local").unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn max_body_bytes_is_bounded_both_ways() {
        let with = |n: usize| {
            LoginConfig::new(
                "http://h/",
                "u",
                SecretString::from("p"),
                "local",
                Options {
                    max_body_bytes: n,
                    ..Options::default()
                },
            )
        };
        assert!(with(1024).is_ok() && with(MAX_BODY_BYTES).is_ok());
        for n in [1023, MAX_BODY_BYTES + 1, 1 << 46] {
            let e = with(n).unwrap_err().to_string();
            assert!(e.starts_with("invalid `max_body_bytes`: must be at"), "{n}: {e}");
        }
    }

    #[test]
    fn a_proxy_password_does_not_show() {
        let opts = Options {
            proxy: Some(parse_proxy_url("http://me:s3cret@proxy:3128").unwrap()),
            ..Options::default()
        };
        assert!(!format!("{opts:?}").contains("s3cret"));
        for bad in ["ftp://proxy", "http://", "socks5://proxy:1080"] {
            assert!(parse_proxy_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = LoginConfig::new(
            "http://h/",
            "u",
            SecretString::from("hunter2"),
            "local",
            Options::default(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn one_timeout_rule_for_every_bad_number() {
        for secs in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12] {
            let opts = Options {
                timeout: timeout_from_secs(secs),
                ..Options::default()
            };
            let err = opts.check().unwrap_err().to_string();
            assert_eq!(
                err, "invalid `timeout`: must be a finite number of seconds above zero",
                "{secs}"
            );
        }
        let opts = Options {
            timeout: timeout_from_secs(0.5),
            ..Options::default()
        };
        assert!(opts.check().is_ok());
    }

    #[test]
    fn the_grant_goes_to_dex_token_over_https_when_the_api_is() {
        let url = |api, dex| dex_token_url(api, dex).map(|u| u.to_string());
        assert_eq!(
            url("https://kf.example.com/pipeline?x=1", None).unwrap(),
            "https://kf.example.com/dex/token"
        );
        assert_eq!(
            url("http://h/pipeline", Some("http://dex:5556/dex/?q=1")).unwrap(),
            "http://dex:5556/dex/token"
        );
        assert_eq!(
            url("http://h/pipeline", Some("http://dex:5556/")).unwrap(),
            "http://dex:5556/token"
        );
        let err = dex_token_url("https://kf.example.com/p", Some("http://dex.example.com/dex")).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { name: "dex_url", .. }) && err.to_string().contains("unencrypted"),
            "{err}"
        );
        assert!(matches!(
            dex_token_url("not a url", None),
            Err(Error::InvalidArgument { name: "api_url", .. })
        ));
    }
}
