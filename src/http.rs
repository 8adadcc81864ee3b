//! One HTTP exchange of the login: no automatic redirects (the flow decides
//! each hop), our own RFC 6265 cookie jar, a capped body read, and transport
//! errors sorted into the error enum without leaking URLs' query values.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use cookie_store::{CookieExpiration, CookieStore, RawCookie};
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode, redirect};
use url::Url;

use crate::config::{Options, ProxyUrl};
use crate::error::{Error, Result, Step};
use crate::redact;

const USER_AGENT: &str = concat!("kfp-auth/", env!("CARGO_PKG_VERSION"));
// Browser-like, so gateways route us to their HTML login pages; oauth2-proxy
// answers 401 `{}` only to `Accept: application/json` or to its api_routes.
const ACCEPT_HTML: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";

/// What the flow needs from a response.
pub struct Reply {
    pub method: &'static str,
    pub url: Url,
    pub status: StatusCode,
    pub location: Option<String>,
    /// A `Location` header was sent but is not ASCII text (it is not in `location`).
    pub location_unreadable: bool,
    pub content_type: Option<String>,
    /// The body's `Content-Encoding` (none is decoded), to say why a page cannot be read.
    pub content_encoding: Option<String>,
    /// Wiped when the reply goes: a token endpoint's answer holds tokens.
    pub body: zeroize::Zeroizing<Vec<u8>>,
    /// The names of the cookies this response set.
    pub set_cookies: Vec<String>,
    /// The server's certificate, described, when `Options::tls_info` asked for it.
    pub peer_certificate: Option<String>,
}

/// Redacted: URLs without query values, no body, no Location (it may carry a code).
impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("method", &self.method)
            .field("url", &redact::url(&self.url))
            .field("status", &self.status.as_u16())
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Reply {
    pub fn is_redirect(&self) -> bool {
        self.status.is_redirection() && self.status != StatusCode::NOT_MODIFIED
    }

    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    pub fn is_json(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("application/json"))
    }
}

pub struct Transport {
    client: reqwest::Client,
    opts: Options,
    logins: tokio::sync::Semaphore,
}

/// Logins in flight at once through one client. Dex checks each password with
/// bcrypt (60-250 ms of CPU), a core at a time, so a few dozen logins already
/// keep a Dex busy; more only queue there, each holding a connection (a file
/// descriptor) and its buffers here. 200 at once took as long with this bound,
/// with 41 descriptors instead of 207 and 8 MB less memory.
pub const MAX_CONCURRENT_LOGINS: usize = 32;

/// The variables reqwest reads its proxies from (as `requests` does).
const PROXY_ENV: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A proxy and its `Proxy-Authorization` value (when the proxy URL carried user:password).
pub type FoundProxy = (String, Option<secrecy::SecretString>);

/// The proxy for `url`: `explicit` when given, else the environment's, by the
/// rules the login's client follows (reqwest's, from hyper-util). Returns the
/// proxy URL without credentials, and its `Proxy-Authorization` value when the
/// proxy URL carried user:password. A SOCKS proxy from the environment is refused
/// here, the one place that decides it: kfp's client (urllib3 without PySocks)
/// could not follow the login there.
pub fn proxy_for(url: &Url, explicit: Option<&ProxyUrl>) -> Result<Option<FoundProxy>> {
    use hyper_util::client::proxy::matcher::Matcher;
    let Ok(uri) = url.as_str().parse::<http::Uri>() else {
        return Ok(None);
    };
    let matcher = match explicit {
        Some(p) => Matcher::builder().all(p.0.as_str().to_owned()).build(),
        None => Matcher::from_env(),
    };
    let Some(found) = matcher.intercept(&uri) else {
        return Ok(None);
    };
    let auth = found
        .basic_auth()
        .and_then(|v| v.to_str().ok())
        .map(|v| secrecy::SecretString::from(v.to_owned()));
    // Rebuilt from scheme and host:port, so no user info can come along.
    let proxy = found.uri();
    let Some(host_port) = proxy.authority().and_then(|a| a.as_str().rsplit('@').next()) else {
        return Ok(None);
    };
    let scheme = proxy.scheme_str().unwrap_or("http");
    if !matches!(scheme, "http" | "https") {
        return Err(Error::invalid(
            "proxy",
            format!(
                "none was given, and the environment (ALL_PROXY or HTTPS_PROXY/HTTP_PROXY) gives a {scheme} \
                 proxy for {}; kfp-auth supports http and https proxies only (SOCKS is not supported): \
                 set an http proxy, or NO_PROXY for this host",
                redact::url(url)
            ),
        ));
    }
    Ok(Some((format!("{scheme}://{host_port}"), auth)))
}

/// What every session checks at construction, for the modes that make none
/// (a bearer token sent as is): `api_url`, the options, the proxy, the CA bundle.
pub fn check_settings(api_url: &str, opts: &Options) -> Result<()> {
    let url = crate::config::parse_api_url(api_url)?;
    opts.check()?;
    proxy_for(&url, opts.proxy.as_ref())?;
    Transport::check(opts)
}

/// Clients shared in this process, by the options that shape them. Building
/// one loads the system's CA roots (tens of ms), so managers with the same TLS
/// settings share one, with its connection pool. A forked child starts afresh:
/// the parent's pooled connections belong to the parent's runtime.
static SHARED: Mutex<(u32, Vec<SharedTransport>)> = Mutex::new((0, Vec::new()));

/// A shared client and the key of the options it was made for.
type SharedTransport = (String, Arc<Transport>);

impl Transport {
    /// Check what `new` would fail on, cheaply (the CA bundle).
    pub fn check(opts: &Options) -> Result<()> {
        if let Some(path) = &opts.ca_bundle {
            read_ca_bundle(path)?;
        }
        Ok(())
    }

    /// This process's client for `opts`, made on first use.
    pub fn shared(opts: &Options) -> Result<Arc<Transport>> {
        // The proxy settings from the environment are read when a client is
        // built, so they are part of the key: changing them takes effect.
        let env_proxies: Vec<String> = PROXY_ENV.iter().map(|v| std::env::var(v).unwrap_or_default()).collect();
        let key = format!(
            "{}|{:?}|{:?}|{}|{}|{}|{:?}",
            opts.skip_tls_verify,
            opts.ca_bundle,
            opts.timeout,
            opts.tls_info,
            opts.max_body_bytes,
            opts.proxy.as_ref().map_or("", |p| p.0.as_str()),
            env_proxies
        );
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if shared.0 != pid {
            *shared = (pid, Vec::new());
        }
        if let Some((_, t)) = shared.1.iter().find(|(k, _)| *k == key) {
            return Ok(t.clone());
        }
        let t = Arc::new(Transport::new(opts)?);
        shared.1.push((key, t.clone()));
        Ok(t)
    }

    pub fn new(opts: &Options) -> Result<Self> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &opts.ca_bundle {
            builder = builder.tls_certs_merge(read_ca_bundle(path)?);
        }
        // An explicit proxy takes every request, as `requests` does with `proxies=`
        // (NO_PROXY applies to the proxies from the environment only).
        if let Some(proxy) = &opts.proxy {
            let proxy = reqwest::Proxy::all(proxy.0.as_str()).map_err(|_| Error::invalid("proxy", "not usable"))?;
            builder = builder.proxy(proxy);
        }
        let client = builder
            .redirect(redirect::Policy::none())
            .user_agent(USER_AGENT)
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .tls_danger_accept_invalid_certs(opts.skip_tls_verify)
            .tls_danger_accept_invalid_hostnames(opts.skip_tls_verify)
            .tls_info(opts.tls_info)
            .build()
            .map_err(|e| Error::Http {
                method: None,
                url: None,
                detail: chain(&e),
            })?;
        Ok(Transport {
            client,
            opts: opts.clone(),
            logins: tokio::sync::Semaphore::new(MAX_CONCURRENT_LOGINS),
        })
    }

    /// Wait for a turn to log in (see [`MAX_CONCURRENT_LOGINS`]); the login holds
    /// the permit until it ends.
    pub async fn login_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed; were it closed, the login would go unbounded.
        self.logins.acquire().await.ok()
    }

    /// Send one request with the jar's cookies for `url`, store the cookies it sets,
    /// and read at most `max_body_bytes` of the body.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        form: Option<&[(&str, &str)]>,
        jar: &mut CookieStore,
        history: &mut Vec<Step>,
    ) -> Result<Reply> {
        self.send_as(method, url, form, jar, history, None).await
    }

    /// One request with `Authorization: <scheme> <credential>` (the header marked
    /// sensitive) and no cookies: a token endpoint that takes a bearer token.
    pub async fn send_authorized(
        &self,
        method: Method,
        url: &Url,
        authorization: (&str, &secrecy::SecretString),
        history: &mut Vec<Step>,
    ) -> Result<Reply> {
        self.send_as(
            method,
            url,
            None,
            &mut CookieStore::default(),
            history,
            Some(authorization),
        )
        .await
    }

    async fn send_as(
        &self,
        method: Method,
        url: &Url,
        form: Option<&[(&str, &str)]>,
        jar: &mut CookieStore,
        history: &mut Vec<Step>,
        authorization: Option<(&str, &secrecy::SecretString)>,
    ) -> Result<Reply> {
        let method_name = method_name(&method);
        let started = Instant::now();
        let result = self.exchange(method, method_name, url, form, jar, authorization).await;
        let step = Step {
            method: method_name,
            url: redact::url(url),
            status: result.as_ref().ok().map(|r| r.status.as_u16()),
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        match (&result, step.status) {
            (Ok(_), Some(status)) => {
                log::debug!(target: "kfp_auth", "{} {} -> {} in {} ms", step.method, step.url, status, step.elapsed_ms)
            }
            // The error's own text is redacted like the URL.
            (Err(e), _) => {
                log::debug!(target: "kfp_auth", "{} {} failed after {} ms: {e}", step.method, step.url, step.elapsed_ms)
            }
            _ => {}
        }
        history.push(step);
        result
    }

    async fn exchange(
        &self,
        method: Method,
        method_name: &'static str,
        url: &Url,
        form: Option<&[(&str, &str)]>,
        jar: &mut CookieStore,
        authorization: Option<(&str, &secrecy::SecretString)>,
    ) -> Result<Reply> {
        let mut req = self
            .client
            .request(method, url.clone())
            .header(header::ACCEPT, ACCEPT_HTML);
        if let Some((scheme, credential)) = authorization {
            use secrecy::ExposeSecret;
            let raw = zeroize::Zeroizing::new(format!("{scheme} {}", credential.expose_secret()));
            let mut value = HeaderValue::from_str(&raw).map_err(|_| Error::UnexpectedResponse {
                method: method_name,
                url: redact::url(url),
                status: None,
                detail: "the credential for this request cannot be sent in a header".into(),
            })?;
            value.set_sensitive(true);
            req = req.header(header::AUTHORIZATION, value);
        }
        let cookies = zeroize::Zeroizing::new(cookie_header(jar, url));
        if !cookies.is_empty() {
            let mut value = HeaderValue::from_str(&cookies).map_err(|_| Error::UnexpectedResponse {
                method: method_name,
                url: redact::url(url),
                status: None,
                detail: "a cookie set earlier in the login cannot be sent back as a header".into(),
            })?;
            value.set_sensitive(true);
            req = req.header(header::COOKIE, value);
        }
        if let Some(fields) = form {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(zeroizing_form(fields));
        }

        let mut resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(&e, method_name, url))?;

        let headers = resp.headers();
        let set_cookies = store_set_cookies(
            jar,
            url,
            headers
                .get_all(header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let location_header = headers.get(header::LOCATION);
        let location = location_header.and_then(|v| v.to_str().ok()).map(str::to_owned);
        let location_unreadable = location_header.is_some() && location.is_none();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(redact::text);
        let content_encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(redact::text);
        let status = resp.status();
        let peer_certificate = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .map(describe_certificate);

        let limit = self.opts.max_body_bytes;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(self.too_large(method_name, url));
        }
        // Sized from Content-Length, up to a bound: the server's number is only a claim.
        let mut body = zeroize::Zeroizing::new(Vec::new());
        let expected = resp
            .content_length()
            .map_or(0, |n| n.min(PREALLOCATE_MAX as u64) as usize);
        reserve_wiping(&mut body, expected.min(limit), limit).map_err(|()| self.out_of_memory(method_name, url))?;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, method_name, url))?
        {
            if body.len() + chunk.len() > limit {
                return Err(self.too_large(method_name, url));
            }
            let needed = body.len() + chunk.len();
            reserve_wiping(&mut body, needed, limit).map_err(|()| self.out_of_memory(method_name, url))?;
            body.extend_from_slice(&chunk);
        }

        Ok(Reply {
            method: method_name,
            url: url.clone(),
            status,
            location,
            location_unreadable,
            content_type,
            content_encoding,
            body,
            set_cookies,
            peer_certificate,
        })
    }

    fn out_of_memory(&self, method: &'static str, url: &Url) -> Error {
        Error::UnexpectedResponse {
            method,
            url: redact::url(url),
            status: None,
            detail: "this process could not get the memory to hold the answer; lower max_body_bytes".into(),
        }
    }

    fn too_large(&self, method: &'static str, url: &Url) -> Error {
        Error::BodyTooLarge {
            method,
            url: redact::url(url),
            limit: self.opts.max_body_bytes,
        }
    }

    fn transport_error(&self, e: &reqwest::Error, method: &'static str, url: &Url) -> Error {
        let shown = redact::url(url);
        if e.is_timeout() || has_source::<tokio::time::error::Elapsed>(e) {
            return Error::Timeout {
                method,
                url: shown,
                after: self.opts.timeout,
            };
        }
        if let Some((detail, remedy)) = find_tls_error(e) {
            return Error::Tls {
                url: shown,
                detail,
                remedy,
            };
        }
        if e.is_connect() {
            return Error::Connect {
                url: redact::origin(url),
                detail: chain(e),
            };
        }
        // A body cut short (Content-Length not reached, a chunk missing).
        // reqwest reports it as a decode error wrapping a body error (no decoders are built in).
        if e.is_body() || e.is_decode() {
            return Error::IncompleteBody {
                method,
                url: shown,
                detail: chain(e),
            };
        }
        Error::Http {
            method: Some(method),
            url: Some(shown),
            detail: chain(e),
        }
    }
}

fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::invalid("ssl_ca_cert", format!("cannot read {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
        Error::invalid(
            "ssl_ca_cert",
            format!("{} is not a PEM certificate bundle", path.display()),
        )
    })?;
    if certs.is_empty() {
        return Err(Error::invalid(
            "ssl_ca_cert",
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The most memory a body's buffer takes before its bytes come, whatever
/// `Content-Length` says (a login page is a few kB).
const PREALLOCATE_MAX: usize = 64 * 1024;

/// Make room in `buf` for `len` bytes (doubling, up to `most`), failing rather than
/// aborting when memory runs out. It grows into a new buffer and wipes the old one: a body may hold
/// tokens, and a plain reallocation would leave the old copy in freed memory.
fn reserve_wiping(buf: &mut zeroize::Zeroizing<Vec<u8>>, len: usize, most: usize) -> std::result::Result<(), ()> {
    if len <= buf.capacity() {
        return Ok(());
    }
    let mut bigger = Vec::new();
    bigger
        .try_reserve_exact(buf.capacity().saturating_mul(2).min(most).max(len))
        .map_err(|_| ())?;
    bigger.extend_from_slice(buf);
    // The old buffer is wiped when the `Zeroizing` holding it drops.
    drop(std::mem::replace(buf, zeroize::Zeroizing::new(bigger)));
    Ok(())
}

/// The url-encoded form as a body that is wiped from memory once sent: it may
/// hold the password. Sized up front so the encoder never reallocates (and
/// leaves no unwiped copy behind).
fn zeroizing_form(fields: &[(&str, &str)]) -> reqwest::Body {
    let worst_case: usize = fields.iter().map(|(k, v)| 3 * (k.len() + v.len()) + 2).sum();
    let mut buf = zeroize::Zeroizing::new(String::with_capacity(worst_case));
    {
        let mut ser = url::form_urlencoded::Serializer::new(&mut *buf);
        ser.extend_pairs(fields);
        ser.finish();
    }
    let bytes = zeroize::Zeroizing::new(std::mem::take(&mut *buf).into_bytes());
    reqwest::Body::from(bytes::Bytes::from_owner(ZeroizingBytes(bytes)))
}

struct ZeroizingBytes(zeroize::Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Store a response's `Set-Cookie` header values for `url` in the jar (RFC 6265
/// rules; unparsable ones are skipped) and return the names of the cookies set.
pub fn store_set_cookies<'a>(jar: &mut CookieStore, url: &Url, headers: impl Iterator<Item = &'a str>) -> Vec<String> {
    let raw_cookies: Vec<RawCookie<'static>> = headers.filter_map(|s| RawCookie::parse(s.to_owned()).ok()).collect();
    let set_cookies = raw_cookies.iter().map(|c| c.name().to_owned()).collect();
    jar.store_response_cookies(raw_cookies.into_iter(), url);
    set_cookies
}

/// The `Cookie` header value the jar holds for `url`: `k1=v1; k2=v2`, in RFC 6265
/// order (longer paths first, then oldest first; the jar keeps insertion order).
pub fn cookie_header(jar: &CookieStore, url: &Url) -> String {
    let mut cookies = jar.matches(url);
    cookies.sort_by_key(|c| std::cmp::Reverse(AsRef::<str>::as_ref(&c.path).len()));
    cookies
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// When the first of the cookies for `url` named in `names` expires; `None`
/// when none says (browser-session cookies).
pub fn cookie_expiry(jar: &CookieStore, url: &Url, names: &[String]) -> Option<SystemTime> {
    jar.matches(url)
        .iter()
        .filter(|c| names.iter().any(|n| n == c.name()))
        .filter_map(|c| match c.expires {
            CookieExpiration::AtUtc(t) => Some(SystemTime::from(t)),
            CookieExpiration::SessionEnd => None,
        })
        .min()
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "GET",
    }
}

/// The error's sources joined, skipping reqwest's own top line, which embeds the full URL.
fn chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p: &String| p.contains(&s)) {
            parts.push(s);
        }
        cur = next_down(err);
    }
    if parts.is_empty() {
        // Only reqwest's top line is left, and it embeds the URL: name the kind instead.
        let kind = if e.is_body() {
            "the response body could not be read"
        } else if e.is_request() {
            "the request could not be sent"
        } else if e.is_builder() {
            "the HTTP client could not be configured"
        } else {
            "unknown transport error"
        };
        return kind.to_owned();
    }
    parts.join(": ")
}

/// The next error down the chain. `io::Error::source()` skips the error it wraps,
/// so for an `io::Error` the wrapped error itself comes next.
fn next_down<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(io) = err.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        return Some(inner);
    }
    err.source()
}

fn has_source<T: StdError + 'static>(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<T>() {
            return true;
        }
        cur = next_down(err);
    }
    false
}

/// reqwest is built without a crypto provider of its own (see Cargo.toml):
/// rustls's process default is set to ring once. A host program that
/// installed another provider first keeps its own.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A rustls error anywhere in the chain: what failed, and what to do about it.
fn find_tls_error(e: &reqwest::Error) -> Option<(String, &'static str)> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(t));
        }
        cur = next_down(err);
    }
    None
}

const REMEDY_CA: &str = "If the gateway's certificate is signed by a private CA, pass that CA's PEM file as \
     ssl_ca_cert=...; to skip verification, set skip_tls_verify=True";
const REMEDY_EXPIRED: &str = "The gateway's certificate must be renewed (or this machine's clock is wrong); \
     a CA bundle does not help. To skip verification meanwhile, set skip_tls_verify=True";
const REMEDY_NAME: &str = "Put a host name the certificate is valid for in api_url, or have the gateway serve \
     a certificate for this one; to skip verification, set skip_tls_verify=True";

/// rustls's certificate errors in words a user can act on, with rustls's own text
/// after them, and the remedy that fits the cause.
fn describe_tls(e: &rustls::Error) -> (String, &'static str) {
    use rustls::CertificateError as C;
    let (what, remedy) = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => (
                "the certificate is signed by a CA this machine does not trust",
                REMEDY_CA,
            ),
            C::Expired | C::ExpiredContext { .. } => ("the certificate has expired", REMEDY_EXPIRED),
            C::NotValidYet | C::NotValidYetContext { .. } => ("the certificate is not valid yet", REMEDY_EXPIRED),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                ("the certificate is not valid for this host name", REMEDY_NAME)
            }
            C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => (
                "the server presents a CA certificate as its own, as self-signed certificates do",
                REMEDY_CA,
            ),
            _ => ("the certificate was rejected", REMEDY_CA),
        },
        _ => ("the TLS handshake failed", REMEDY_CA),
    };
    (format!("{what} ({e})"), remedy)
}

/// A certificate in a line: subject, issuer, names, and validity.
pub fn describe_certificate(der: &[u8]) -> String {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return "a certificate that could not be parsed".into();
    };
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => format!("IP:{}", std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
                        16 => format!(
                            "IP:{}",
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or([0; 16]))
                        ),
                        _ => "IP:?".into(),
                    },
                    other => format!("{other}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let until = cert.validity().not_after;
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let left = until.timestamp() - now;
    let state = if left < 0 {
        format!("EXPIRED {}h ago", -left / 3600)
    } else {
        format!("{}h left", left / 3600)
    };
    format!(
        "subject {}, issuer {}, names [{}], valid until {} ({state})",
        cert.subject(),
        cert.issuer(),
        names.join(", "),
        until
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logins_beyond_the_bound_wait_for_a_turn() {
        let t = Transport::new(&Options::default()).unwrap();
        let mut held = Vec::new();
        for _ in 0..MAX_CONCURRENT_LOGINS {
            held.push(t.login_turn().await.expect("a turn"));
        }
        // Every turn is taken: the next login waits (it cannot get one while all are held).
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), t.login_turn()).await;
        assert!(waiting.is_err(), "a login beyond the bound got a turn");
        held.pop();
        assert!(t.login_turn().await.is_some(), "a turn given back is taken");
    }

    #[test]
    fn a_body_buffer_grows_by_doubling_and_fails_instead_of_aborting() {
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        reserve_wiping(&mut buf, 10, 100).unwrap();
        assert_eq!(buf.capacity(), 10);
        buf.extend_from_slice(b"0123456789");
        reserve_wiping(&mut buf, 11, 100).unwrap();
        assert_eq!((buf.capacity(), &buf[..]), (20, &b"0123456789"[..]));
        reserve_wiping(&mut buf, 15, 100).unwrap();
        assert_eq!(buf.capacity(), 20, "room enough: no new buffer");
        reserve_wiping(&mut buf, 21, 30).unwrap();
        assert_eq!(buf.capacity(), 30, "doubling stops at the cap");
        // What no machine has: an error, not an abort.
        assert!(reserve_wiping(&mut buf, usize::MAX / 2, usize::MAX).is_err());
        assert_eq!(&buf[..], b"0123456789");
    }

    #[test]
    fn each_tls_failure_gets_the_remedy_that_fits() {
        use rustls::CertificateError as C;
        let remedy = |c: C| describe_tls(&rustls::Error::InvalidCertificate(c)).1;
        assert!(remedy(C::UnknownIssuer).contains("ssl_ca_cert="));
        assert!(remedy(C::Expired).contains("renewed") && !remedy(C::Expired).contains("ssl_ca_cert="));
        assert!(remedy(C::NotValidForName).contains("host name the certificate is valid for"));
        for c in [C::UnknownIssuer, C::Expired, C::NotValidForName, C::BadSignature] {
            assert!(remedy(c).contains("skip_tls_verify=True"));
        }
    }
}
