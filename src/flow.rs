//! The login state machine. Each reply is read for what it is (a redirect, an
//! oauth2-proxy sign-in page or 401, a Dex page, the gateway's callback) and
//! answered with the one request that moves the login forward.
//!
//! It stops as soon as the gateway's callback has set the session cookie: the
//! final redirect back to `api_url` is not needed to log in, so it is not made.

use std::time::SystemTime;

use cookie_store::CookieStore;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::LoginConfig;
use crate::detect::is_login_path;
use crate::error::{Checker, Error, Result, Step};
use crate::http::{Reply, Transport, cookie_expiry, cookie_header};
use crate::page::{self, Form, Page};
use crate::redact;

/// Hard stop on requests per login, whatever the pages say. A Kubeflow login
/// takes at most nine; this only catches flows that never converge.
const MAX_REQUESTS: usize = 40;

/// The outcome of a login.
#[derive(Debug)]
pub struct Session {
    /// The `Cookie` header for `api_url`: only the cookies its host and path get.
    /// Empty when the endpoint turned out to be unsecured.
    pub cookies: SecretString,
    /// No login was asked for: standalone or port-forwarded KFP.
    pub unsecured: bool,
    /// When the first of the session's cookies expires, if the gateway said.
    pub expires: Option<SystemTime>,
    /// The requests made, redacted.
    pub history: Vec<Step>,
}

/// Log in. A failure comes as [`Error::Failed`], with the requests made until then.
pub async fn login(cfg: &LoginConfig, transport: &Transport) -> Result<Session> {
    login_observed(cfg, transport).await.0
}

/// Log in, and say what was seen of the deployment on the way, success or not.
pub async fn login_observed(cfg: &LoginConfig, transport: &Transport) -> (Result<Session>, Observations) {
    let mut flow = Flow::new(cfg, transport);
    let result = flow.finish_run().await;
    let mut seen = std::mem::take(&mut flow.seen);
    seen.unsecured = result.as_ref().is_ok_and(|s| s.unsecured);
    (result, seen)
}

impl Flow<'_> {
    async fn finish_run(&mut self) -> Result<Session> {
        let mut result = self.run().await;
        // oauth2-proxy lost this login's CSRF cookie (it expired, or the gateway
        // restarted with a new cookie secret mid-login): one fresh start, as a
        // user would press "try again".
        if result.is_err() && self.attempt.phase == Phase::CsrfFailed && self.attempts == 1 {
            log::info!(target: "kfp_auth", "the gateway lost the login's CSRF cookie; starting the login again once");
            self.restart();
            result = self.run().await;
        }
        match result {
            Ok((cookies, expires)) => Ok(Session {
                unsecured: cookies.expose_secret().is_empty(),
                cookies,
                expires,
                history: std::mem::take(&mut self.history),
            }),
            Err(e) => Err(Error::Failed {
                source: Box::new(e),
                history: std::mem::take(&mut self.history),
            }),
        }
    }
}

enum Next {
    Get(Url),
    /// A form post with the given fields (Dex's approval form).
    Post(Url, Vec<(String, String)>),
    /// Dex's password form: the fields are filled in at send time so the
    /// password leaves its secret box only for the request body.
    PostCredentials(Url, Vec<(String, String)>),
}

/// Redacted: the target without query values; no field values (Dex's `req` is one).
impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, u) = match self {
            Next::Get(u) => ("Get", u),
            Next::Post(u, _) => ("Post", u),
            Next::PostCredentials(u, _) => ("PostCredentials", u),
        };
        write!(f, "{kind}({})", redact::url(u))
    }
}

/// What a login saw of the deployment, for `diagnose`.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// oauth2-proxy's sign-in page or its api_routes 401 was seen.
    pub oauth2_proxy: bool,
    /// The redirect_uri of the authorization request (`/oauth2/callback`, `/authservice/oidc/callback`, ...).
    pub redirect_uri: Option<String>,
    /// The gateway asked Dex to force its approval screen (`approval_prompt=force` or `prompt=consent`).
    pub approval_forced: bool,
    /// Dex showed its approval screen.
    pub approval_shown: bool,
    /// Connectors Dex offered on its selection page, or the one it went to straight away.
    pub connectors: Vec<String>,
    /// No login was asked for.
    pub unsecured: bool,
    /// Each https origin reached, with its certificate described (`Options::tls_info`).
    pub certificates: Vec<(String, String)>,
    /// Where Dex was found: its origin and path prefix.
    pub dex: Option<String>,
}

/// Where Dex lives: its origin and path prefix (`/dex` in Kubeflow).
struct DexBase {
    origin: url::Origin,
    prefix: String,
}

/// How far an attempt at the login got; it only moves forward.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// No login step seen yet: an endpoint that answers now is unsecured.
    #[default]
    Unstarted,
    /// A login step was seen: oauth2-proxy's start, an authorization request, a Dex page.
    Started,
    /// The credentials went in.
    Submitted,
    /// A reply from outside Dex came after the credentials went in: Dex took them.
    LeftDex,
    /// The gateway's callback failed on its CSRF cookie: worth one fresh start.
    CsrfFailed,
}

/// One attempt at the login: all that a fresh start forgets.
#[derive(Default)]
struct Attempt {
    jar: CookieStore,
    phase: Phase,
    dex: Option<DexBase>,
    /// The cookies `api_url` got before the credentials went in, to see the callback's change.
    before_login: SecretString,
    /// Cookies the gateway set after the credentials went in: the session's own,
    /// whose expiry is the session's.
    session_cookie_names: Vec<String>,
    /// The `/auth/<connector>` shortcut was taken (once an attempt).
    shortcut_tried: bool,
    /// A redirect led into a login path (Dex's or the gateway's): a page there that
    /// is no login page is a failed login, not an unsecured endpoint.
    entered_login_path: bool,
}

impl Attempt {
    /// Move on to `phase`, if the attempt is not past it already.
    fn reach(&mut self, phase: Phase) {
        self.phase = self.phase.max(phase);
    }

    fn reached(&self, phase: Phase) -> bool {
        self.phase >= phase
    }
}

struct Flow<'a> {
    cfg: &'a LoginConfig,
    transport: &'a Transport,
    attempt: Attempt,
    /// Attempts started: a second follows a lost CSRF cookie, once.
    attempts: u32,
    /// The requests of every attempt, and their count, which `MAX_REQUESTS` bounds.
    history: Vec<Step>,
    requests: usize,
    /// When the whole login must have ended (`timeout` from its start, restart included).
    deadline: tokio::time::Instant,
    /// What a diagnosis reports; gathered on every login, it costs nothing.
    pub(crate) seen: Observations,
}

impl<'a> Flow<'a> {
    fn new(cfg: &'a LoginConfig, transport: &'a Transport) -> Self {
        Flow {
            cfg,
            transport,
            attempt: Attempt::default(),
            attempts: 1,
            history: Vec::new(),
            requests: 0,
            deadline: tokio::time::Instant::now() + cfg.options.timeout,
            seen: Observations::default(),
        }
    }

    /// Start over with no cookies; the history and the request bound go on.
    fn restart(&mut self) {
        self.attempt = Attempt::default();
        self.attempts += 1;
    }

    /// The cookies for `api_url` (empty when unsecured) and their expiry.
    async fn run(&mut self) -> Result<(SecretString, Option<SystemTime>)> {
        let mut next = Next::Get(self.cfg.api_url.clone());
        let mut redirects = 0usize;
        // The Dex `/auth` URL we skipped by going to `/auth/<connector>` directly;
        // read it if the shortcut fails, to list the connectors Dex offers.
        let mut selection_fallback: Option<Url> = None;
        loop {
            #[cfg(debug_assertions)]
            self.test_hold(&next).await;
            let reply = self.send(&next).await?;
            if let Some(cert) = &reply.peer_certificate {
                let origin = redact::origin(&reply.url);
                if !self.seen.certificates.iter().any(|(o, _)| *o == origin) {
                    self.seen.certificates.push((origin, cert.clone()));
                }
            }

            // After the credentials, the first answer from outside Dex is the
            // gateway's callback. It is done once it has set a session cookie for
            // `api_url`; a gateway that sets it a redirect later is followed.
            if self.attempt.reached(Phase::Submitted) && !self.is_dex(&reply.url) {
                self.attempt.reach(Phase::LeftDex);
                self.attempt
                    .session_cookie_names
                    .extend(reply.set_cookies.iter().cloned());
                if let Some(done) = self.session_if_set(&reply) {
                    return Ok(done);
                }
                if !reply.is_redirect() {
                    return Err(self.callback_failed(&reply));
                }
            }

            if reply.is_redirect() {
                redirects += 1;
                if redirects > self.cfg.options.max_redirects {
                    return Err(Error::TooManySteps {
                        what: "redirects",
                        limit: self.cfg.options.max_redirects,
                        url: redact::url(&reply.url),
                    });
                }
                let target = self.redirect_target(&reply)?;
                self.check_connector_redirect(&target)?;
                if self.attempt.reached(Phase::LeftDex) && is_authorization_request(&target) {
                    // Dex took the password and the gateway asks for a login again: its
                    // callback's cookie was not kept, or is not sent back.
                    return Err(self.cookie_not_kept(&reply));
                }
                if is_authorization_request(&target) {
                    self.attempt.reach(Phase::Started);
                    self.observe_authorization_request(&target);
                }
                self.attempt.entered_login_path |= is_login_path(target.path());
                if let Some(id) = self.connector_of(&target) {
                    self.seen.connectors = vec![id];
                }
                next = if let Some(shortcut) = self.connector_shortcut(&target) {
                    selection_fallback = Some(target);
                    Next::Get(shortcut)
                } else if self.posts_credentials_to(&reply.url, &target) {
                    self.check_pinned_dex(&reply, &target)?;
                    self.attempt.before_login = SecretString::from(cookie_header(&self.attempt.jar, &self.cfg.api_url));
                    self.attempt.reach(Phase::Submitted);
                    Next::PostCredentials(target, Vec::new())
                } else if self.approves_at(&reply.url, &target) {
                    Next::Post(target, vec![("approval".into(), "approve".into())])
                } else {
                    Next::Get(target)
                };
                continue;
            }
            redirects = 0;

            let fallback = selection_fallback.take();
            match self.on_page(&reply, fallback)? {
                Some(n) => next = n,
                None => return Ok((SecretString::from(String::new()), None)),
            }
        }
    }

    /// Debug builds only: lets the tests act on the stack (restart the gateway, stop
    /// Dex) at a chosen point of a first login attempt. The attempt waits (at most
    /// 30 s) until the file the variable names exists:
    /// `KFP_AUTH_TEST_HOLD_CREDENTIALS_UNTIL` before the password post,
    /// `KFP_AUTH_TEST_HOLD_CALLBACK_UNTIL` between the password post and the callback.
    #[cfg(debug_assertions)]
    async fn test_hold(&self, next: &Next) {
        if self.attempts > 1 {
            return;
        }
        let var = match next {
            Next::PostCredentials(..) => "KFP_AUTH_TEST_HOLD_CREDENTIALS_UNTIL",
            Next::Get(u) if self.attempt.reached(Phase::Submitted) && !self.is_dex(u) => {
                "KFP_AUTH_TEST_HOLD_CALLBACK_UNTIL"
            }
            _ => return,
        };
        let Some(go) = std::env::var_os(var) else {
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !std::path::Path::new(&go).exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Send `next`, within what is left of the login's time: a request the deadline
    /// cuts short is in the history, without a status.
    async fn send(&mut self, next: &Next) -> Result<Reply> {
        let (method, url) = match next {
            Next::Get(u) => ("GET", u),
            Next::Post(u, _) | Next::PostCredentials(u, _) => ("POST", u),
        };
        let started = tokio::time::Instant::now();
        if started >= self.deadline {
            return Err(self.out_of_time(url));
        }
        match tokio::time::timeout_at(self.deadline, self.send_now(next)).await {
            Ok(reply) => reply,
            Err(_) => {
                let first = self.history.is_empty();
                self.history.push(Step {
                    method,
                    url: redact::url(url),
                    status: None,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                });
                if first {
                    // The login's one request took all its time: said as that request's timeout.
                    return Err(Error::Timeout {
                        method,
                        url: redact::url(url),
                        after: self.cfg.options.timeout,
                    });
                }
                Err(self.out_of_time(url))
            }
        }
    }

    /// The login's time is up; `next` is where it was going when it ran out.
    fn out_of_time(&self, next: &Url) -> Error {
        Error::LoginTimeout {
            after: self.cfg.options.timeout,
            requests: self.history.len(),
            // The last request made (`next` itself when the deadline cut it short).
            url: self.history.last().map_or_else(|| redact::url(next), |s| s.url.clone()),
        }
    }

    async fn send_now(&mut self, next: &Next) -> Result<Reply> {
        self.requests += 1;
        let url = match next {
            Next::Get(u) | Next::Post(u, _) | Next::PostCredentials(u, _) => u,
        };
        if self.requests > MAX_REQUESTS {
            return Err(Error::TooManySteps {
                what: "requests",
                limit: MAX_REQUESTS,
                url: redact::url(url),
            });
        }
        match next {
            Next::Get(u) => {
                self.transport
                    .send(Method::GET, u, None, &mut self.attempt.jar, &mut self.history)
                    .await
            }
            Next::Post(u, fields) => {
                let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                self.transport
                    .send(Method::POST, u, Some(&fields), &mut self.attempt.jar, &mut self.history)
                    .await
            }
            Next::PostCredentials(u, hidden) => {
                let mut fields: Vec<(&str, &str)> = hidden
                    .iter()
                    .filter(|(k, _)| k != "login" && k != "password")
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                fields.push(("login", &self.cfg.username));
                fields.push(("password", self.cfg.password.expose_secret()));
                self.transport
                    .send(Method::POST, u, Some(&fields), &mut self.attempt.jar, &mut self.history)
                    .await
            }
        }
    }

    /// Decide what a non-redirect reply asks for; `None` means "unsecured, done".
    fn on_page(&mut self, reply: &Reply, fallback: Option<Url>) -> Result<Option<Next>> {
        let status = reply.status;

        // oauth2-proxy's answer on its api_routes (or to `Accept: application/json`):
        // 401 with `{}`. Its sign-in flow starts at `<prefix>/start`; we assume the
        // default `/oauth2` prefix, since the 401 does not name it.
        if status == StatusCode::UNAUTHORIZED && reply.is_json() && reply.text().trim() == "{}" && !self.started() {
            let mut start = reply.url.join("/oauth2/start").expect("absolute path joins");
            start.query_pairs_mut().append_pair("rd", &self.rd());
            self.attempt.reach(Phase::Started);
            self.seen.oauth2_proxy = true;
            return Ok(Some(Next::Get(start)));
        }

        let page = if reply.is_json() {
            Page::Other
        } else {
            page::classify(&reply.text())
        };

        match page {
            Page::ProxySignIn { .. } if self.started() => Err(self.unexpected(
                reply,
                "oauth2-proxy showed its sign-in page again instead of starting the login \
                 (check its redirect and cookie settings)"
                    .into(),
            )),
            Page::ProxySignIn { form } => {
                let mut start = self.form_target(reply, &form)?;
                start.set_query(None);
                start.query_pairs_mut().append_pair("rd", &self.rd());
                self.attempt.reach(Phase::Started);
                self.seen.oauth2_proxy = true;
                Ok(Some(Next::Get(start)))
            }
            Page::Connectors(links) if self.started() || dex_prefix(&reply.url).is_some() => {
                self.note_dex(&reply.url);
                self.seen.connectors = links.iter().map(|l| l.id.clone()).collect();
                match links.iter().find(|l| l.id == self.cfg.connector) {
                    Some(link) => Ok(Some(Next::Get(self.resolve(reply, &link.href)?))),
                    None => Err(Error::UnknownConnector {
                        requested: self.cfg.connector.clone(),
                        offered: links.into_iter().map(|l| l.id).collect(),
                    }),
                }
            }
            Page::Password {
                form,
                unfillable,
                forms,
                ..
            } => {
                self.note_dex(&reply.url);
                if self.attempt.reached(Phase::LeftDex) {
                    // Dex took the password once; its form again means the gateway lost the session.
                    return Err(self.cookie_not_kept(reply));
                }
                if self.attempt.reached(Phase::Submitted) {
                    // Dex shows the form again (401 since v2.36, 200 before) on bad credentials.
                    return Err(Error::InvalidCredentials {
                        checker: Checker::Connector(self.cfg.connector.clone()),
                        status: status.as_u16(),
                        url: redact::url(&reply.url),
                    });
                }
                if forms > 1 {
                    return Err(self.unexpected(
                        reply,
                        format!(
                            "the page has {forms} password forms where Dex shows one; kfp-auth cannot tell \
                             which one is Dex's, so it sends the password to none"
                        ),
                    ));
                }
                if !unfillable.is_empty() {
                    return Err(self.unexpected(
                        reply,
                        format!(
                            "the password form also asks for {}, which kfp-auth cannot fill in (it fills \
                             login and password only); the password was not sent. Is this Dex's own login \
                             form, and does the connector need a second factor?",
                            unfillable
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                let target = self.form_target(reply, &form)?;
                if target.origin() != reply.url.origin() {
                    return Err(self.unexpected(
                        reply,
                        format!(
                            "the password form would send the credentials to {}, another origin than \
                             the form's own ({}, where the gateway's redirects led); kfp-auth sends the \
                             password only to the origin that served the form, and did not send it",
                            redact::origin(&target),
                            redact::origin(&reply.url)
                        ),
                    ));
                }
                self.check_pinned_dex(reply, &target)?;
                self.attempt.before_login = SecretString::from(cookie_header(&self.attempt.jar, &self.cfg.api_url));
                self.attempt.reach(Phase::Submitted);
                Ok(Some(Next::PostCredentials(target, form.hidden)))
            }
            Page::Approval { form } if self.is_dex(&reply.url) => {
                self.seen.approval_shown = true;
                let target = self.form_target(reply, &form)?;
                Ok(Some(Next::Post(target, form.hidden)))
            }
            _ if fallback.is_some() && status.is_client_error() => {
                // Dex has no `/auth/<connector>` for our id: read its selection page.
                Ok(fallback.map(Next::Get))
            }
            Page::Other | Page::Connectors(_) | Page::TooComplex
                if self.attempt.entered_login_path && !self.started() =>
            {
                Err(self.unusable_login_page(reply))
            }
            Page::TooComplex => Err(self.unexpected(
                reply,
                format!(
                    "a page that costs more to read than any login page ({} bytes of HTML nested thousands \
                     deep, or the like); kfp-auth stopped reading it",
                    reply.body.len()
                ),
            )),
            Page::Other | Page::Connectors(_) if status.is_success() && !self.started() => Ok(None),
            Page::DexError(msg) => Err(self.unexpected(reply, format!("Dex says: {msg}"))),
            _ => Err(self.unexpected(reply, describe(reply, self.started(), self.is_dex(&reply.url)))),
        }
    }

    /// The session, if `reply` (from the gateway, after the credentials went in)
    /// set a cookie that changed what `api_url` gets.
    fn session_if_set(&self, reply: &Reply) -> Option<(SecretString, Option<SystemTime>)> {
        if reply.set_cookies.is_empty() || !(reply.is_redirect() || reply.status.is_success()) {
            return None;
        }
        let cookies = cookie_header(&self.attempt.jar, &self.cfg.api_url);
        if cookies.is_empty() || cookies.as_str() == self.attempt.before_login.expose_secret() {
            return None;
        }
        let expires = cookie_expiry(&self.attempt.jar, &self.cfg.api_url, &self.attempt.session_cookie_names);
        Some((SecretString::from(cookies), expires))
    }

    /// Why the gateway's callback did not give a session.
    fn callback_failed(&mut self, reply: &Reply) -> Error {
        let status = reply.status;
        let detail = if status == StatusCode::FORBIDDEN && reply.text().contains("CSRF") {
            self.attempt.reach(Phase::CsrfFailed);
            format!(
                "oauth2-proxy found no valid CSRF cookie for this login{} (it expired before the login \
                 finished, the gateway restarted with a new cookie secret, or its cookie settings keep \
                 the cookie from being sent back: check cookie_csrf_expire, cookie_secret and cookie_secure)",
                if self.attempts > 1 {
                    ", also after starting the login again"
                } else {
                    ""
                }
            )
        } else if reply.is_redirect() || status.is_success() {
            format!(
                "the gateway's callback set no cookie that would be sent to {} \
                 (check the gateway's cookie domain, path and Secure settings)",
                redact::url(&self.cfg.api_url)
            )
        } else if status.is_server_error() {
            "the gateway's callback failed with a server error: it could not finish the login at Dex \
             (is Dex running, and reachable from the gateway?); the gateway's log says more"
                .to_owned()
        } else {
            "the gateway's callback did not accept the login".to_owned()
        };
        self.unexpected(reply, detail)
    }

    /// Dex took the password, then the gateway asked for a login again: the session
    /// cookie its callback set was refused by the jar or does not go to `api_url`.
    fn cookie_not_kept(&self, reply: &Reply) -> Error {
        let set = if self.attempt.session_cookie_names.is_empty() {
            String::new()
        } else {
            // Names only: values are secrets.
            format!(" (it set {})", self.attempt.session_cookie_names.join(", "))
        };
        self.unexpected(
            reply,
            format!(
                "Dex accepted the login, but the gateway's callback set no cookie that would be sent to {}{set}, \
                 so the gateway asked for a login again. Check the gateway's cookie domain, path and Secure \
                 settings (a Secure cookie is not sent over plain http, but to localhost and loopback \
                 addresses)",
                redact::url(&self.cfg.api_url)
            ),
        )
    }

    fn started(&self) -> bool {
        self.attempt.reached(Phase::Started) || self.attempt.dex.is_some()
    }

    /// `rd` for oauth2-proxy: the path and query of `api_url`, so the user lands where they asked.
    fn rd(&self) -> String {
        let u = &self.cfg.api_url;
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    fn is_dex(&self, u: &Url) -> bool {
        self.attempt.dex.as_ref().is_some_and(|d| {
            u.origin() == d.origin && u.path().strip_prefix(&d.prefix).is_some_and(|r| r.starts_with('/'))
        })
    }

    /// Remember Dex's base from a URL under `<prefix>/auth…`.
    fn note_dex(&mut self, u: &Url) {
        if self.attempt.dex.is_some() {
            return;
        }
        if let Some(prefix) = dex_prefix(u) {
            self.seen.dex = Some(format!("{}{prefix}", redact::origin(u)));
            if u.origin() != self.cfg.api_url.origin() && self.cfg.options.dex_url.is_none() {
                log::warn!(
                    target: "kfp_auth",
                    "Dex is on another origin ({}) than the gateway ({}): the password goes there. Pass \
                     dex_url to pin Dex's origin, so that a login sent anywhere else is refused",
                    redact::origin(u),
                    redact::origin(&self.cfg.api_url)
                );
            }
            self.attempt.dex = Some(DexBase {
                origin: u.origin(),
                prefix,
            });
        }
    }

    /// A gateway's redirect to Dex's authorization endpoint (`<prefix>/auth?client_id=…`)
    /// can go straight to `<prefix>/auth/<connector>`: one round trip fewer than
    /// reading the selection page or following Dex's own redirect.
    fn connector_shortcut(&mut self, target: &Url) -> Option<Url> {
        if self.attempt.reached(Phase::Submitted)
            || !target.path().ends_with("/auth")
            || !is_authorization_request(target)
        {
            return None;
        }
        self.note_dex(target);
        if self.attempt.shortcut_tried
            || !self.cfg.options.shortcuts
            || target.query_pairs().any(|(k, _)| k == "connector_id")
        {
            return None;
        }
        self.attempt.shortcut_tried = true;
        let mut u = target.clone();
        let path = format!("{}/{}", target.path(), self.cfg.connector);
        u.set_path(&path);
        Some(u)
    }

    /// Dex's password form (any connector, any theme) posts `login` and `password`
    /// back to the URL it is served at, `<dex>/auth/<connector>/login?state=…`, and
    /// carries no other field: Dex's redirect there can take the post directly.
    fn posts_credentials_to(&self, from: &Url, target: &Url) -> bool {
        self.cfg.options.shortcuts
            && !self.attempt.reached(Phase::Submitted)
            && self.is_dex(from)
            && target.origin() == from.origin()
            && self
                .connector_in(target, "/login")
                .is_some_and(|id| id == self.cfg.connector)
            && target.query_pairs().any(|(k, _)| k == "state")
    }

    /// Dex's approval page posts `approval=approve` back to its own URL, whose
    /// `req` (and `hmac`) Dex reads from the query as well: the redirect there
    /// after the credentials can take the post directly.
    fn approves_at(&self, from: &Url, target: &Url) -> bool {
        let Some(dex) = self.attempt.dex.as_ref() else {
            return false;
        };
        self.cfg.options.shortcuts
            && self.attempt.reached(Phase::Submitted)
            && self.is_dex(from)
            && self.is_dex(target)
            && target.path() == format!("{}/approval", dex.prefix)
            && target.query_pairs().any(|(k, _)| k == "req")
    }

    fn observe_authorization_request(&mut self, u: &Url) {
        for (k, v) in u.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("redirect_uri", uri) => self.seen.redirect_uri = Some(uri.to_owned()),
                ("approval_prompt", "force") | ("prompt", "consent") => self.seen.approval_forced = true,
                _ => {}
            }
        }
    }

    /// `<dex>/auth/<id>` → `<id>`, for a URL under Dex.
    fn connector_of(&self, target: &Url) -> Option<String> {
        self.connector_in(target, "")
    }

    /// `<dex>/auth/<id><suffix>` → `<id>`, for a URL under Dex.
    fn connector_in(&self, target: &Url, suffix: &str) -> Option<String> {
        let prefix = &self.attempt.dex.as_ref().filter(|_| self.is_dex(target))?.prefix;
        let rest = target.path()[prefix.len()..]
            .strip_prefix("/auth/")?
            .strip_suffix(suffix)?;
        // Shown in errors and in `diagnose`: without control characters.
        (!rest.contains('/')).then(|| redact::text(&percent_encoding::percent_decode_str(rest).decode_utf8_lossy()))
    }

    /// Dex sends a single-connector setup straight to its only connector: refuse to
    /// log in through a connector other than the one asked for.
    fn check_connector_redirect(&self, target: &Url) -> Result<()> {
        match self.connector_of(target) {
            Some(id) if id != self.cfg.connector => Err(Error::UnknownConnector {
                requested: self.cfg.connector.clone(),
                offered: vec![id],
            }),
            _ => Ok(()),
        }
    }

    fn redirect_target(&self, reply: &Reply) -> Result<Url> {
        if reply.method == "POST" && matches!(reply.status.as_u16(), 307 | 308) {
            return Err(self.unexpected(
                reply,
                "the server asks to repeat the form post elsewhere; kfp-auth does not re-send \
                 credentials on a redirect"
                    .into(),
            ));
        }
        if reply.location_unreadable {
            return Err(self.unexpected(
                reply,
                "a redirect whose Location header is not ASCII text (bytes that are not a URL)".into(),
            ));
        }
        let Some(loc) = reply.location.as_deref() else {
            return Err(self.unexpected(reply, "a redirect without a Location header".into()));
        };
        self.resolve(reply, loc)
    }

    fn form_target(&self, reply: &Reply, form: &Form) -> Result<Url> {
        match form.action.as_deref() {
            Some(a) => self.resolve(reply, a),
            None => Ok(reply.url.clone()),
        }
    }

    /// Resolve a link against the reply's URL; only http(s) targets are followed.
    fn resolve(&self, reply: &Reply, href: &str) -> Result<Url> {
        let u = reply
            .url
            .join(href.trim())
            .map_err(|e| self.unexpected(reply, format!("a link or Location that is not a URL ({e})")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(self.unexpected(
                reply,
                format!("a link or Location with scheme `{}`, not http(s)", u.scheme()),
            ));
        }
        if reply.url.scheme() == "https" && u.scheme() == "http" && !self.cfg.options.allow_insecure_redirect {
            return Err(self.unexpected(
                reply,
                format!(
                    "the login was sent from https to http ({}): the password and session cookies would \
                     travel unencrypted, so kfp-auth stops here. Fix the gateway's or Dex's URLs (a \
                     redirect_uri or issuer with http://), or pass allow_insecure_redirect=True to go on",
                    redact::url(&u)
                ),
            ));
        }
        Ok(u)
    }

    fn unexpected(&self, reply: &Reply, detail: String) -> Error {
        Error::UnexpectedResponse {
            method: reply.method,
            url: redact::url(&reply.url),
            status: Some(reply.status.as_u16()),
            detail,
        }
    }

    /// A redirect led into a login path, and the page there holds no login form that
    /// can be read: what came back, and what to check.
    fn unusable_login_page(&self, reply: &Reply) -> Error {
        let mut what = vec![
            format!("HTTP {}", reply.status.as_u16()),
            reply.content_type.clone().unwrap_or_else(|| "no Content-Type".into()),
            format!("{} bytes", reply.body.len()),
        ];
        if let Some(encoding) = &reply.content_encoding {
            what.push(format!("Content-Encoding {encoding}, which kfp-auth does not decode"));
        }
        if std::str::from_utf8(&reply.body).is_err() {
            what.push("not UTF-8 text".into());
        }
        if reply.body.len() > page::MAX_PAGE_BYTES {
            what.push(format!("only its first {} KiB read", page::MAX_PAGE_BYTES >> 10));
        }
        self.unexpected(
            reply,
            format!(
                "the login page could not be used: the login was sent to {}, and the answer holds no login \
                 form kfp-auth can read ({}). Check that Dex and the gateway are up and serve their login \
                 pages there (not a maintenance page), as UTF-8 HTML without compression",
                redact::url(&reply.url),
                what.join(", ")
            ),
        )
    }

    /// With `dex_url`, the password goes to its origin only.
    fn check_pinned_dex(&self, reply: &Reply, target: &Url) -> Result<()> {
        match &self.cfg.options.dex_url {
            Some(pin) if pin.origin() != target.origin() => Err(self.unexpected(
                reply,
                format!(
                    "the login's Dex is at {}, not at the origin of dex_url ({}), to which this login is \
                     pinned: the password was not sent. Check dex_url, and where the gateway sends the login",
                    redact::origin(target),
                    redact::origin(pin)
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// `true` for an OAuth2 authorization request URL (`client_id` and `response_type` in the query).
fn is_authorization_request(u: &Url) -> bool {
    let (mut client, mut response_type) = (false, false);
    for (k, _) in u.query_pairs() {
        client |= k == "client_id";
        response_type |= k == "response_type";
    }
    client && response_type
}

/// The path before the last `/auth` segment: `/dex/auth/local/login` → `/dex`.
fn dex_prefix(u: &Url) -> Option<String> {
    let path = u.path();
    let idx = path
        .match_indices("/auth")
        .map(|(i, _)| i)
        .filter(|&i| matches!(path.as_bytes().get(i + 5), None | Some(b'/')))
        .last()?;
    Some(path[..idx].to_owned())
}

fn describe(reply: &Reply, started: bool, at_dex: bool) -> String {
    let status = reply.status;
    match (status.as_u16(), started) {
        (401 | 403, false) => "the endpoint refused the request without offering a Dex, \
             oauth2-proxy or oidc-authservice login; check api_url"
            .into(),
        (502..=504, true) => "a gateway could not reach the next hop (is Dex running?)".into(),
        (500..=599, true) if at_dex => {
            "Dex failed with a server error; Dex's log says why (in Kubeflow: kubectl logs -n auth deploy/dex), \
             then try again"
                .into()
        }
        (500..=599, true) => "the gateway failed with a server error; its log says why, then try again".into(),
        (_, true) => "a page that is not part of a Dex login".into(),
        (s, false) if s >= 500 => "the server failed before any login page".into(),
        _ => "not a Kubeflow Pipelines endpoint, nor a login page; check api_url".into(),
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
