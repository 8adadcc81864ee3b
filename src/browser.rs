//! Dex's authorization code grant with PKCE (S256) on a loopback redirect: the
//! login for desktops. The user's own browser opens Dex's page, logs in with any
//! connector, and Dex sends it back to `http://127.0.0.1:<port>/callback`, where a
//! small server of ours takes the code and trades it for tokens. Where no browser
//! can be opened, the device login (`device.rs`) runs instead.
//!
//! The server listens before the browser is opened (Python's webbrowser waits for
//! `$BROWSER` to exit, and that browser may need the callback to finish). It answers
//! one request per connection, with headers bounded in size and time, so a slow or
//! foreign client cannot hold the login up; requests on other paths are refused and
//! the login goes on, a callback without this login's `state` ends it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use url::Url;

use crate::device;
use crate::error::{BrowserFailure, Error, Result};
use crate::oidc::{self, AUTH_CODE_GRANT, Client, Endpoints, TokenReply};
use crate::prompt::{DeviceEvent, Prompt};
use crate::redact;

/// How long the browser has to come back, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// The path Dex sends the browser back to.
pub const CALLBACK_PATH: &str = "/callback";
/// A request's head larger than this is refused: a callback is well under 4 kB.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a connection may take to send its request, and to take the answer.
const READ_TIME: Duration = Duration::from_secs(10);
const WRITE_TIME: Duration = Duration::from_secs(5);
/// Connections read at once; more are closed unread.
const MAX_CONNECTIONS: usize = 32;
/// How long the opener may take to say it failed before the URL is shown anyway
/// (a `$BROWSER` that runs in the foreground answers only when it exits).
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Opens a URL in the user's browser (in Python: `webbrowser.open`, so `$BROWSER` is honoured).
pub trait Opener: Send + Sync {
    /// `Ok(true)` when a browser was started; `Ok(false)` or an error (saying why,
    /// never the URL) when none can be here. May block until the browser exits.
    fn open(&self, url: &str) -> std::result::Result<bool, String>;
}

/// The settings of a browser login.
#[derive(Clone)]
pub struct BrowserStart {
    /// The loopback port the admin registered; `None` for any free one.
    pub port: Option<u16>,
    /// How long the browser has to come back.
    pub timeout: Duration,
    pub opener: Arc<dyn Opener>,
}

impl fmt::Debug for BrowserStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrowserStart")
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The values one login sends, checked when Dex answers. Never shown.
struct Secrets {
    verifier: SecretString,
    challenge: String,
    state: SecretString,
    nonce: SecretString,
}

impl Secrets {
    fn new() -> Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let random = |n: usize| -> Result<SecretString> {
            let mut bytes = zeroize::Zeroizing::new(vec![0u8; n]);
            rng.fill(&mut bytes).map_err(|_| Error::BrowserLogin {
                kind: BrowserFailure::Other,
                what: "the system's random number generator failed".into(),
                hint: "use login=\"device\"".into(),
            })?;
            Ok(SecretString::from(URL_SAFE_NO_PAD.encode(&*bytes)))
        };
        // RFC 7636 §4.1: 32 random bytes make the 43-character verifier it recommends.
        let verifier = random(32)?;
        let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.expose_secret().as_bytes(),
        ));
        Ok(Secrets {
            verifier,
            challenge,
            state: random(16)?,
            nonce: random(16)?,
        })
    }
}

/// A browser login at Dex: listen on the loopback port, open the browser on Dex's
/// authorization page, take the code it comes back with and trade it for tokens.
/// Where no browser can be opened, a device login instead.
pub(crate) async fn obtain(
    cfg: &Client<'_>,
    start: &BrowserStart,
    ep: &Endpoints,
    prompt: &dyn Prompt,
) -> Result<TokenReply> {
    ep.check_grant(AUTH_CODE_GRANT, "browser login")?;
    let authorize = ep.named(&ep.authorization, "authorization_endpoint", "use login=\"device\"")?;
    let listener = listen(start.port).await?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::BrowserLogin {
            kind: BrowserFailure::Other,
            what: format!("the browser login's loopback port cannot be read: {e}"),
            hint: "use login=\"device\"".into(),
        })?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
    let secrets = Secrets::new()?;
    let url = authorize_url(authorize, cfg, &redirect_uri, &secrets);
    log::info!(
        target: "kfp_auth",
        "browser login: waiting for the browser at {} (for {} s)",
        redact::url(&url),
        start.timeout.as_secs()
    );
    let waited = wait_for_code(listener, start, url.as_str(), cfg, port, &secrets, prompt).await?;
    let (code, mut stream) = match waited {
        Waited::Code { code, stream } => (code, stream),
        Waited::NoBrowser(why) => {
            log::warn!(target: "kfp_auth", "browser login: {why}; logging in with the device login instead");
            return device::obtain(cfg, None, ep, prompt).await;
        }
    };
    let reply = exchange(cfg, ep, &code, &redirect_uri, &secrets).await;
    match &reply {
        Ok(_) => {
            respond(
                &mut stream,
                200,
                "Logged in",
                "kfp-auth has its token. You can close this window.",
            )
            .await
        }
        Err(e) => respond(&mut stream, 500, "The login failed", &e.to_string()).await,
    }
    reply
}

async fn listen(port: Option<u16>) -> Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0)));
    TcpListener::bind(addr).await.map_err(|e| match (e.kind(), port) {
        (std::io::ErrorKind::AddrInUse, Some(p)) => Error::BrowserLogin {
            kind: BrowserFailure::PortInUse,
            what: format!("the browser login's port {p} on 127.0.0.1 is in use by another program"),
            hint: format!(
                "stop the program on port {p} (another login waiting?), or pass the browser_port the admin \
                 registered in Dex instead; without browser_port a free port is chosen"
            ),
        },
        _ => Error::BrowserLogin {
            kind: BrowserFailure::Other,
            what: format!(
                "cannot listen on 127.0.0.1:{} for the browser login: {e}",
                port.unwrap_or(0)
            ),
            hint: "pass another browser_port (above 1023), or use login=\"device\"".into(),
        },
    })
}

fn authorize_url(mut url: Url, cfg: &Client<'_>, redirect_uri: &str, s: &Secrets) -> Url {
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", cfg.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", cfg.scopes)
            .append_pair("state", s.state.expose_secret())
            .append_pair("nonce", s.nonce.expose_secret())
            .append_pair("code_challenge", &s.challenge)
            .append_pair("code_challenge_method", "S256");
        // Dex's own parameter: skips its choice page for this connector.
        if let Some(c) = &cfg.connector {
            q.append_pair("connector_id", c);
        }
    }
    url
}

enum Waited {
    Code { code: SecretString, stream: TcpStream },
    NoBrowser(String),
}

/// Serve the loopback port until the callback comes, the browser cannot be opened,
/// or time runs out.
async fn wait_for_code(
    listener: TcpListener,
    start: &BrowserStart,
    url: &str,
    cfg: &Client<'_>,
    port: u16,
    secrets: &Secrets,
    prompt: &dyn Prompt,
) -> Result<Waited> {
    let opener = start.opener.clone();
    let owned = url.to_owned();
    // The opener may block until the browser exits: on a thread of its own, while we serve.
    let mut opened = tokio::task::spawn_blocking(move || opener.open(&owned));
    let mut opening = true;
    let show = tokio::time::sleep(SHOW_AFTER);
    let deadline = tokio::time::sleep(start.timeout);
    tokio::pin!(show, deadline);
    let mut shown = false;
    let show_url = || {
        if let Err(e) = prompt.show(DeviceEvent::Browser { url }) {
            log::debug!(target: "kfp_auth", "browser login: the prompt failed: {}", redact::text(&e));
        }
    };
    let mut conns: JoinSet<Option<(TcpStream, Callback)>> = JoinSet::new();
    loop {
        tokio::select! {
            r = &mut opened, if opening => {
                opening = false;
                match r {
                    Ok(Ok(true)) => {
                        if !shown {
                            shown = true;
                            show_url();
                        }
                    }
                    Ok(Ok(false)) => {
                        return Ok(Waited::NoBrowser("no browser could be opened here".into()));
                    }
                    Ok(Err(why)) => {
                        return Ok(Waited::NoBrowser(format!("no browser could be opened here ({})", redact::text(&why))));
                    }
                    Err(e) => return Ok(Waited::NoBrowser(format!("the browser opener failed ({e})"))),
                }
            }
            () = &mut show, if !shown => {
                shown = true;
                show_url();
            }
            () = &mut deadline => return Err(timed_out(start.timeout, cfg, port)),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if conns.len() < MAX_CONNECTIONS => {
                    conns.spawn(read_request(stream));
                }
                Ok(_) => log::debug!(target: "kfp_auth", "browser login: too many connections at once; one closed"),
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    log::debug!(target: "kfp_auth", "browser login: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = conns.join_next() => {
                let Ok(Some((mut stream, callback))) = done else { continue };
                match judge(&callback, secrets.state.expose_secret()) {
                    Verdict::Code(code) => return Ok(Waited::Code { code, stream }),
                    Verdict::WrongState => {
                        respond(
                            &mut stream,
                            400,
                            "Not this login",
                            "This answer does not carry the state of the login kfp-auth is waiting for.",
                        )
                        .await;
                        return Err(Error::BrowserLogin {
                            kind: BrowserFailure::StateMismatch,
                            what: "the browser login's callback came without this login's `state`: it was not \
                                   the answer to the login kfp-auth started (an old browser tab, or another \
                                   program sending it)"
                                .into(),
                            hint: "log in again, in the browser window kfp-auth opens".into(),
                        });
                    }
                    Verdict::Refused { error, description } => {
                        let said = match &description {
                            Some(d) => format!("{error} ({d})"),
                            None => error.clone(),
                        };
                        respond(&mut stream, 400, "The login failed", &format!("Dex answered: {said}")).await;
                        return Err(refused(&error, &said, cfg));
                    }
                    Verdict::NoCode => {
                        respond(&mut stream, 400, "The login failed", "Dex sent no code back.").await;
                        return Err(Error::BrowserLogin {
                            kind: BrowserFailure::Other,
                            what: "Dex sent the browser back with neither a code nor an error".into(),
                            hint: "log in again, or use login=\"device\"".into(),
                        });
                    }
                }
            }
        }
    }
}

fn timed_out(after: Duration, cfg: &Client<'_>, port: u16) -> Error {
    Error::BrowserLogin {
        kind: BrowserFailure::Timeout,
        what: format!(
            "the browser never came back to kfp-auth within {} s (browser_timeout)",
            after.as_secs()
        ),
        hint: format!(
            "log in again and finish in the browser, or use login=\"device\". If the browser showed \
             \"Unregistered redirect_uri.\", Dex's client `{c}` lists redirectURIs: the admin adds \
             http://127.0.0.1:{port}/callback to them and you pass browser_port={port}; if it showed \"Invalid \
             client_id.\", the admin adds the public client `{c}` to Dex's staticClients with `public: true` \
             (see the SSO page of the docs)",
            c = cfg.client_id
        ),
    }
}

fn refused(error: &str, said: &str, cfg: &Client<'_>) -> Error {
    let hint = match error {
        "access_denied" => "log in again and approve the access in the browser".to_owned(),
        "invalid_scope" => {
            "check scopes= (Dex knows openid, email, profile, groups, offline_access; other providers may lack groups)"
                .to_owned()
        }
        e => oidc::admin_change(e, cfg.client_id, AUTH_CODE_GRANT)
            .unwrap_or_else(|| "log in again, or use login=\"device\"".to_owned()),
    };
    Error::BrowserLogin {
        kind: BrowserFailure::Refused,
        what: format!("Dex refused the browser login: {said}"),
        hint,
    }
}

/// Trade the code for tokens, and check that the ID token answers this login.
async fn exchange(
    cfg: &Client<'_>,
    ep: &Endpoints,
    code: &SecretString,
    redirect_uri: &str,
    secrets: &Secrets,
) -> Result<TokenReply> {
    let form = [
        ("grant_type", AUTH_CODE_GRANT),
        ("code", code.expose_secret()),
        ("redirect_uri", redirect_uri),
        ("client_id", cfg.client_id),
        ("code_verifier", secrets.verifier.expose_secret()),
    ];
    let reply = oidc::post_token(cfg.options, &ep.token, &form).await?;
    let error = reply.body.error.clone();
    match error.as_deref() {
        None if reply.ok => {
            if let Some(token) = &reply.body.id_token {
                let claims = oidc::check_id_token(token, &ep.issuer, cfg.client_id)?;
                oidc::check_nonce(&claims, secrets.nonce.expose_secret())?;
            }
            Ok(reply.body)
        }
        // Dex: a code used twice or expired, a verifier that does not fit.
        Some("invalid_grant") => Err(Error::BrowserLogin {
            kind: BrowserFailure::Other,
            what: format!("Dex refused the browser login's code: {}", reply.body.describe_error()),
            hint: "log in again (a code is good once, for a short time)".into(),
        }),
        Some(e) => Err(reply.unexpected(
            oidc::admin_change(e, cfg.client_id, AUTH_CODE_GRANT)
                .unwrap_or_else(|| format!("Dex refused the browser login's code: {}", reply.body.describe_error())),
        )),
        None => Err(reply.empty()),
    }
}

/// The query of a request on the callback path.
#[derive(Default)]
struct Callback {
    code: Option<SecretString>,
    state: Option<SecretString>,
    error: Option<String>,
    error_description: Option<String>,
}

enum Verdict {
    Code(SecretString),
    WrongState,
    Refused { error: String, description: Option<String> },
    NoCode,
}

/// What a callback means for the login waiting with `state`.
fn judge(c: &Callback, state: &str) -> Verdict {
    if c.state.as_ref().is_none_or(|s| s.expose_secret() != state) {
        return Verdict::WrongState;
    }
    // Dex's text is shown to the user and put in the error: bounded, no control characters.
    let shown = |t: &str| redact::text(&t.chars().take(200).collect::<String>());
    if let Some(error) = &c.error {
        return Verdict::Refused {
            error: shown(error),
            description: c.error_description.as_deref().map(shown),
        };
    }
    match &c.code {
        Some(code) if !code.expose_secret().is_empty() => Verdict::Code(code.clone()),
        _ => Verdict::NoCode,
    }
}

/// What a request is, from its head.
enum Route {
    Callback(Callback),
    Refuse(u16, &'static str),
}

fn route(head: &str) -> Route {
    let line = head.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Refuse(400, "This is not an HTTP request.");
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Route::Refuse(400, "This is not an HTTP request.");
    }
    if method != "GET" {
        return Route::Refuse(405, "Only the browser's return from Dex is served here.");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != CALLBACK_PATH {
        return Route::Refuse(404, "Only the browser's return from Dex is served here.");
    }
    let mut c = Callback::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "code" if c.code.is_none() => c.code = Some(SecretString::from(v.into_owned())),
            "state" if c.state.is_none() => c.state = Some(SecretString::from(v.into_owned())),
            "error" if c.error.is_none() => c.error = Some(v.into_owned()),
            "error_description" if c.error_description.is_none() => c.error_description = Some(v.into_owned()),
            _ => {}
        }
    }
    Route::Callback(c)
}

/// Why a request head was not read.
#[derive(Debug, PartialEq, Eq)]
enum Unread {
    TooLarge,
    Closed,
}

/// The request's head (up to the blank line), at most [`MAX_HEAD_BYTES`].
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> std::result::Result<String, Unread> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = r.read(&mut chunk).await.map_err(|_| Unread::Closed)?;
        if n == 0 {
            return Err(Unread::Closed);
        }
        head.extend_from_slice(&chunk[..n]);
        let end = head.windows(4).position(|w| w == b"\r\n\r\n");
        if end.unwrap_or(head.len()) > MAX_HEAD_BYTES {
            return Err(Unread::TooLarge);
        }
        if let Some(end) = end {
            head.truncate(end);
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(Unread::TooLarge);
        }
    }
}

/// Read one request: a callback is handed back with its connection; anything else is answered here.
async fn read_request(mut stream: TcpStream) -> Option<(TcpStream, Callback)> {
    let head = match tokio::time::timeout(READ_TIME, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(Unread::TooLarge)) => {
            respond(&mut stream, 431, "Refused", "The request is too large.").await;
            return None;
        }
        // Closed, or too slow: dropped unanswered.
        _ => return None,
    };
    match route(&head) {
        Route::Callback(c) => Some((stream, c)),
        Route::Refuse(status, text) => {
            log::info!(
                target: "kfp_auth",
                "browser login: refused a request on the loopback port (HTTP {status}); still waiting"
            );
            respond(&mut stream, status, "Refused", text).await;
            None
        }
    }
}

/// A small HTML page as the whole answer; errors (the browser left) are ignored.
async fn respond<W: AsyncWrite + Unpin>(w: &mut W, status: u16, title: &str, text: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kfp-auth: {t}</title></head>\
         <body><h2>{t}</h2><p>{p}</p></body></html>",
        t = escape(title),
        p = escape(text)
    );
    // No referrer: the callback's URL holds the code.
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(WRITE_TIME, async {
        w.write_all(answer.as_bytes()).await?;
        w.shutdown().await
    })
    .await;
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(target: &str) -> Callback {
        match route(&format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1")) {
            Route::Callback(c) => c,
            Route::Refuse(s, _) => panic!("refused with {s}"),
        }
    }

    #[test]
    fn only_a_get_of_the_callback_path_is_a_callback() {
        for (head, status) in [
            ("GET /favicon.ico HTTP/1.1", 404),
            ("GET /callbackx?state=s HTTP/1.1", 404),
            ("GET / HTTP/1.1", 404),
            ("POST /callback?state=s HTTP/1.1", 405),
            ("GET /callback", 400),
            ("GET http://evil/callback HTTP/1.1", 400),
            ("SSH-2.0-OpenSSH", 400),
            ("", 400),
        ] {
            match route(head) {
                Route::Refuse(s, _) => assert_eq!(s, status, "{head}"),
                Route::Callback(_) => panic!("{head} taken as a callback"),
            }
        }
    }

    #[test]
    fn the_state_must_be_this_logins_and_dex_errors_are_refusals() {
        let ok = callback("/callback?code=c-1&state=s-1");
        assert!(matches!(judge(&ok, "s-1"), Verdict::Code(c) if c.expose_secret() == "c-1"));
        assert!(matches!(judge(&ok, "s-2"), Verdict::WrongState));
        assert!(matches!(
            judge(&callback("/callback?code=c-1"), "s-1"),
            Verdict::WrongState
        ));
        assert!(matches!(judge(&callback("/callback"), "s-1"), Verdict::WrongState));
        // A second state does not override the first.
        let twice = callback("/callback?code=c&state=s-2&state=s-1");
        assert!(matches!(judge(&twice, "s-1"), Verdict::WrongState));
        // Dex's error comes with the state; without it, it is not this login's.
        let denied = callback("/callback?error=access_denied&error_description=no%1b[31m&state=s-1");
        match judge(&denied, "s-1") {
            Verdict::Refused { error, description } => {
                assert_eq!(error, "access_denied");
                assert!(!description.unwrap().contains('\x1b'));
            }
            _ => panic!("not a refusal"),
        }
        assert!(matches!(
            judge(&callback("/callback?error=access_denied"), "s-1"),
            Verdict::WrongState
        ));
        assert!(matches!(
            judge(&callback("/callback?state=s-1&code="), "s-1"),
            Verdict::NoCode
        ));
    }

    #[tokio::test]
    async fn a_head_is_read_to_its_blank_line_and_bounded_in_size() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client
            .write_all(b"GET /callback?x=1 HTTP/1.1\r\nHost: a\r\n\r\nbody")
            .await
            .unwrap();
        assert_eq!(
            read_head(&mut server).await.unwrap(),
            "GET /callback?x=1 HTTP/1.1\r\nHost: a"
        );
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(&[b'a'; MAX_HEAD_BYTES + 10]).await.unwrap();
        assert_eq!(read_head(&mut server).await, Err(Unread::TooLarge));
        // Ending in the chunk that crosses the bound is still too large.
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let mut big = vec![b'a'; MAX_HEAD_BYTES + 100];
        big.extend_from_slice(b"\r\n\r\n");
        client.write_all(&big).await.unwrap();
        assert_eq!(read_head(&mut server).await, Err(Unread::TooLarge));
        let (client, mut server) = tokio::io::duplex(1024);
        drop(client);
        assert_eq!(read_head(&mut server).await, Err(Unread::Closed));
    }

    #[test]
    fn pkce_values_are_random_and_the_challenge_is_s256_of_the_verifier() {
        let a = Secrets::new().unwrap();
        let b = Secrets::new().unwrap();
        assert_eq!(a.verifier.expose_secret().len(), 43);
        assert!(
            a.verifier
                .expose_secret()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        assert_ne!(a.state.expose_secret(), b.state.expose_secret());
        assert_ne!(a.nonce.expose_secret(), a.state.expose_secret());
        // RFC 7636 appendix B's example.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, v.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[tokio::test]
    async fn pages_escape_their_text_and_send_no_referrer() {
        let mut out = Vec::new();
        respond(&mut out, 400, "The login failed", "Dex answered: <script>").await;
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("Referrer-Policy: no-referrer") && text.contains("&lt;script&gt;"));
    }
}
