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
use crate::error::{Error, Result};
use crate::http::{Reply, Step, Transport, cookie_expiry, cookie_header};
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
        if result.is_err() && self.csrf_failed && !self.restarted {
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

struct Flow<'a> {
    cfg: &'a LoginConfig,
    transport: &'a Transport,
    jar: CookieStore,
    history: Vec<Step>,
    dex: Option<DexBase>,
    /// A login step was seen: oauth2-proxy's start, an authorization request, a Dex page.
    login_started: bool,
    /// The cookies `api_url` got before the credentials went in, to see the callback's change.
    before_login: SecretString,
    /// Cookies the gateway set after the credentials went in: the session's own,
    /// whose expiry is the session's.
    session_cookie_names: Vec<String>,
    submitted: bool,
    /// A reply from outside Dex came after the credentials went in: Dex took them.
    left_dex: bool,
    shortcut_tried: bool,
    requests: usize,
    /// The gateway's callback failed on its CSRF cookie.
    csrf_failed: bool,
    /// The login was started again once (after a CSRF failure).
    restarted: bool,
    /// A redirect led into a login path (Dex's or the gateway's): a page there that
    /// is no login page is a failed login, not an unsecured endpoint.
    entered_login_path: bool,
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
            jar: CookieStore::default(),
            history: Vec::new(),
            dex: None,
            login_started: false,
            before_login: SecretString::from(String::new()),
            session_cookie_names: Vec::new(),
            submitted: false,
            left_dex: false,
            shortcut_tried: false,
            requests: 0,
            csrf_failed: false,
            restarted: false,
            entered_login_path: false,
            deadline: tokio::time::Instant::now() + cfg.options.timeout,
            seen: Observations::default(),
        }
    }

    /// Start over with no cookies; the history and the request bound go on.
    fn restart(&mut self) {
        let fresh = Flow::new(self.cfg, self.transport);
        self.jar = fresh.jar;
        self.dex = None;
        self.login_started = false;
        self.before_login = fresh.before_login;
        self.session_cookie_names.clear();
        self.submitted = false;
        self.left_dex = false;
        self.shortcut_tried = false;
        self.csrf_failed = false;
        self.entered_login_path = false;
        self.restarted = true;
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
            if self.submitted && !self.is_dex(&reply.url) {
                self.left_dex = true;
                self.session_cookie_names.extend(reply.set_cookies.iter().cloned());
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
                if self.left_dex && is_authorization_request(&target) {
                    // Dex took the password and the gateway asks for a login again: its
                    // callback's cookie was not kept, or is not sent back.
                    return Err(self.cookie_not_kept(&reply));
                }
                if is_authorization_request(&target) {
                    self.login_started = true;
                    self.observe_authorization_request(&target);
                }
                self.entered_login_path |= is_login_path(target.path());
                if let Some(id) = self.connector_of(&target) {
                    self.seen.connectors = vec![id];
                }
                next = if let Some(shortcut) = self.connector_shortcut(&target) {
                    selection_fallback = Some(target);
                    Next::Get(shortcut)
                } else if self.posts_credentials_to(&reply.url, &target) {
                    self.check_pinned_dex(&reply, &target)?;
                    self.before_login = SecretString::from(cookie_header(&self.jar, &self.cfg.api_url));
                    self.submitted = true;
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
        if self.restarted {
            return;
        }
        let var = match next {
            Next::PostCredentials(..) => "KFP_AUTH_TEST_HOLD_CREDENTIALS_UNTIL",
            Next::Get(u) if self.submitted && !self.is_dex(u) => "KFP_AUTH_TEST_HOLD_CALLBACK_UNTIL",
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
                    .send(Method::GET, u, None, &mut self.jar, &mut self.history)
                    .await
            }
            Next::Post(u, fields) => {
                let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                self.transport
                    .send(Method::POST, u, Some(&fields), &mut self.jar, &mut self.history)
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
                    .send(Method::POST, u, Some(&fields), &mut self.jar, &mut self.history)
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
            self.login_started = true;
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
                self.login_started = true;
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
                if self.left_dex {
                    // Dex took the password once; its form again means the gateway lost the session.
                    return Err(self.cookie_not_kept(reply));
                }
                if self.submitted {
                    // Dex shows the form again (401 since v2.36, 200 before) on bad credentials.
                    return Err(Error::InvalidCredentials {
                        connector: self.cfg.connector.clone(),
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
                self.before_login = SecretString::from(cookie_header(&self.jar, &self.cfg.api_url));
                self.submitted = true;
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
            Page::Other | Page::Connectors(_) | Page::TooComplex if self.entered_login_path && !self.started() => {
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
        let cookies = cookie_header(&self.jar, &self.cfg.api_url);
        if cookies.is_empty() || cookies.as_str() == self.before_login.expose_secret() {
            return None;
        }
        let expires = cookie_expiry(&self.jar, &self.cfg.api_url, &self.session_cookie_names);
        Some((SecretString::from(cookies), expires))
    }

    /// Why the gateway's callback did not give a session.
    fn callback_failed(&mut self, reply: &Reply) -> Error {
        let status = reply.status;
        let detail = if status == StatusCode::FORBIDDEN && reply.text().contains("CSRF") {
            self.csrf_failed = true;
            format!(
                "oauth2-proxy found no valid CSRF cookie for this login{} (it expired before the login \
                 finished, the gateway restarted with a new cookie secret, or its cookie settings keep \
                 the cookie from being sent back: check cookie_csrf_expire, cookie_secret and cookie_secure)",
                if self.restarted {
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
        let set = if self.session_cookie_names.is_empty() {
            String::new()
        } else {
            // Names only: values are secrets.
            format!(" (it set {})", self.session_cookie_names.join(", "))
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
        self.login_started || self.dex.is_some()
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
        self.dex.as_ref().is_some_and(|d| {
            u.origin() == d.origin && u.path().strip_prefix(&d.prefix).is_some_and(|r| r.starts_with('/'))
        })
    }

    /// Remember Dex's base from a URL under `<prefix>/auth…`.
    fn note_dex(&mut self, u: &Url) {
        if self.dex.is_some() {
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
            self.dex = Some(DexBase {
                origin: u.origin(),
                prefix,
            });
        }
    }

    /// A gateway's redirect to Dex's authorization endpoint (`<prefix>/auth?client_id=…`)
    /// can go straight to `<prefix>/auth/<connector>`: one round trip fewer than
    /// reading the selection page or following Dex's own redirect.
    fn connector_shortcut(&mut self, target: &Url) -> Option<Url> {
        if self.submitted || !target.path().ends_with("/auth") || !is_authorization_request(target) {
            return None;
        }
        self.note_dex(target);
        if self.shortcut_tried || !self.cfg.options.shortcuts || target.query_pairs().any(|(k, _)| k == "connector_id")
        {
            return None;
        }
        self.shortcut_tried = true;
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
            && !self.submitted
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
        let Some(dex) = self.dex.as_ref() else { return false };
        self.cfg.options.shortcuts
            && self.submitted
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
        let prefix = &self.dex.as_ref().filter(|_| self.is_dex(target))?.prefix;
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
            status: reply.status.as_u16(),
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
mod tests {
    use super::*;
    use crate::config::Options;

    fn cfg(api_url: &str, connector: &str) -> LoginConfig {
        LoginConfig::new(api_url, "jane", SecretString::from("pw"), connector, Options::default()).unwrap()
    }

    fn reply(method: &'static str, url: &str, status: u16, content_type: &str, body: &str) -> Reply {
        Reply {
            method,
            url: Url::parse(url).unwrap(),
            status: StatusCode::from_u16(status).unwrap(),
            location: None,
            location_unreadable: false,
            content_type: Some(content_type.into()),
            content_encoding: None,
            body: body.as_bytes().to_vec().into(),
            set_cookies: Vec::new(),
            peer_certificate: None,
        }
    }

    fn redirect(method: &'static str, url: &str, status: u16, location: Option<&str>) -> Reply {
        let mut r = reply(method, url, status, "text/html", "");
        r.location = location.map(str::to_owned);
        r
    }

    /// Run `f` against a fresh flow for `cfg`.
    fn with_flow<T>(cfg: &LoginConfig, f: impl FnOnce(&mut Flow<'_>) -> T) -> T {
        let transport = Transport::new(&cfg.options).unwrap();
        f(&mut Flow::new(cfg, &transport))
    }

    fn get_url(n: Option<Next>) -> String {
        match n {
            Some(Next::Get(u)) => u.to_string(),
            _ => panic!("expected a GET"),
        }
    }

    const SIGN_IN: &str =
        r#"<form method="GET" action="/oauth2/start"><input type="hidden" name="rd" value="/x"></form>"#;
    const PASSWORD: &str = r#"<form method="post" action="/dex/auth/local/login?back=&amp;state=s1">
        <input name="login"><input name="password" type="password"></form>"#;
    const SELECTION: &str = r#"<a href="/dex/auth/local?client_id=c&amp;state=s">x</a><a href="/dex/auth/ldap?client_id=c&amp;state=s">y</a>"#;
    const APPROVAL: &str = r#"<form method="post"><input type="hidden" name="req" value="r1"/>
        <input type="hidden" name="approval" value="approve"></form>"#;

    #[test]
    fn sign_in_page_starts_oauth2_with_path_and_query_in_rd() {
        let c = cfg("http://gw/pipeline?ns=a&x=1", "local");
        let next = with_flow(&c, |f| {
            f.on_page(
                &reply("GET", "http://gw/pipeline?ns=a&x=1", 403, "text/html", SIGN_IN),
                None,
            )
        });
        assert_eq!(
            get_url(next.unwrap()),
            "http://gw/oauth2/start?rd=%2Fpipeline%3Fns%3Da%26x%3D1"
        );
    }

    #[test]
    fn api_route_401_json_starts_oauth2() {
        let c = cfg("http://gw/pipeline/apis/v2beta1/healthz", "local");
        let r = reply(
            "GET",
            "http://gw/pipeline/apis/v2beta1/healthz",
            401,
            "application/json",
            "{}",
        );
        let next = with_flow(&c, |f| f.on_page(&r, None)).unwrap();
        assert_eq!(
            get_url(next),
            "http://gw/oauth2/start?rd=%2Fpipeline%2Fapis%2Fv2beta1%2Fhealthz"
        );
    }

    #[test]
    fn plain_200_before_any_login_step_is_unsecured() {
        let c = cfg("http://kfp:3000/pipeline", "local");
        let r = reply("GET", "http://kfp:3000/pipeline", 200, "text/html", "<html>KFP</html>");
        assert!(with_flow(&c, |f| f.on_page(&r, None)).unwrap().is_none());
    }

    #[test]
    fn other_401_or_403_is_not_mistaken_for_unsecured() {
        let c = cfg("http://gw/pipeline", "local");
        for status in [401, 403] {
            let r = reply("GET", "http://gw/pipeline", status, "text/plain", "RBAC: access denied");
            let err = with_flow(&c, |f| f.on_page(&r, None)).unwrap_err();
            assert!(
                matches!(err, Error::UnexpectedResponse { status: s, .. } if s == status),
                "{err}"
            );
        }
    }

    #[test]
    fn connector_selection_picks_the_requested_connector_or_lists_the_offer() {
        let r = reply(
            "GET",
            "http://gw/dex/auth?client_id=c&response_type=code",
            200,
            "text/html",
            SELECTION,
        );
        let next = with_flow(&cfg("http://gw/p", "ldap"), |f| f.on_page(&r, None)).unwrap();
        assert_eq!(get_url(next), "http://gw/dex/auth/ldap?client_id=c&state=s");

        let err = with_flow(&cfg("http://gw/p", "github"), |f| f.on_page(&r, None)).unwrap_err();
        let Error::UnknownConnector { requested, offered } = err else {
            panic!("{err}")
        };
        assert_eq!(
            (requested.as_str(), offered),
            ("github", vec!["local".to_owned(), "ldap".to_owned()])
        );
    }

    #[test]
    fn password_form_is_posted_to_its_action_once() {
        let c = cfg("http://gw/p", "local");
        let r = reply(
            "GET",
            "http://gw/dex/auth/local/login?back=&state=s1",
            200,
            "text/html",
            PASSWORD,
        );
        with_flow(&c, |f| {
            match f.on_page(&r, None).unwrap() {
                Some(Next::PostCredentials(u, hidden)) => {
                    assert_eq!(u.as_str(), "http://gw/dex/auth/local/login?back=&state=s1");
                    assert!(hidden.is_empty());
                }
                _ => panic!("expected the credentials post"),
            }
            assert!(f.submitted && f.is_dex(&Url::parse("http://gw/dex/approval").unwrap()));
            // The form again after the post: 401 on Dex >= 2.36, 200 before.
            for status in [401, 200] {
                let again = reply(
                    "POST",
                    "http://gw/dex/auth/local/login?back=&state=s1",
                    status,
                    "text/html",
                    PASSWORD,
                );
                let err = f.on_page(&again, None).unwrap_err();
                assert!(matches!(err, Error::InvalidCredentials { status: s, .. } if s == status));
                assert!(!err.to_string().contains("s1"), "query values are redacted: {err}");
            }
        });
    }

    #[test]
    fn approval_form_is_granted_at_the_page_url() {
        let c = cfg("http://gw/p", "local");
        with_flow(&c, |f| {
            f.note_dex(&Url::parse("http://gw/dex/auth/local/login").unwrap());
            let r = reply(
                "GET",
                "http://gw/dex/approval?req=r1&hmac=h",
                200,
                "text/html",
                APPROVAL,
            );
            match f.on_page(&r, None).unwrap() {
                Some(Next::Post(u, fields)) => {
                    assert_eq!(u.as_str(), "http://gw/dex/approval?req=r1&hmac=h");
                    assert_eq!(
                        fields,
                        vec![("req".into(), "r1".into()), ("approval".into(), "approve".into())]
                    );
                }
                _ => panic!("expected the approval post"),
            }
        });
    }

    #[test]
    fn failed_shortcut_falls_back_to_the_selection_page() {
        let c = cfg("http://gw/p", "ldap");
        with_flow(&c, |f| {
            let auth = Url::parse("http://gw/dex/auth?client_id=c&response_type=code&state=s").unwrap();
            let short = f.connector_shortcut(&auth).expect("shortcut");
            assert_eq!(
                short.as_str(),
                "http://gw/dex/auth/ldap?client_id=c&response_type=code&state=s"
            );
            assert!(f.connector_shortcut(&auth).is_none(), "tried once only");
            let notfound = reply(
                "GET",
                short.as_str(),
                404,
                "text/html",
                r#"<p class="dex-error-box">Requested resource does not exist.</p>"#,
            );
            assert_eq!(
                get_url(f.on_page(&notfound, Some(auth.clone())).unwrap()),
                auth.as_str()
            );
            // Without a fallback the same page is Dex's error, quoted.
            let err = f.on_page(&notfound, None).unwrap_err();
            assert!(
                err.to_string().contains("Dex says: Requested resource does not exist."),
                "{err}"
            );
        });
    }

    #[test]
    fn credentials_go_straight_only_to_dexs_own_form_url_for_our_connector() {
        let c = cfg("http://gw/p", "local");
        let u = |s: &str| Url::parse(s).unwrap();
        with_flow(&c, |f| {
            let from = u("http://gw/dex/auth/local?client_id=c&response_type=code");
            // Dex is not known yet: nothing is posted blind.
            assert!(!f.posts_credentials_to(&from, &u("http://gw/dex/auth/local/login?state=s1")));
            f.note_dex(&from);
            assert!(f.posts_credentials_to(&from, &u("http://gw/dex/auth/local/login?back=&state=s1")));
            for target in [
                "http://gw/dex/auth/ldap/login?state=s1",    // another connector
                "http://gw/dex/auth/local/login?back=",      // no auth request id
                "http://evil/dex/auth/local/login?state=s1", // another origin
                "https://gw/dex/auth/local/login?state=s1",  // another scheme
                "http://gw/other/auth/local/login?state=s1", // not under Dex
                "http://gw/dex/auth/local/x/login?state=s1", // not Dex's form path
            ] {
                assert!(!f.posts_credentials_to(&from, &u(target)), "{target}");
            }
            // Only from Dex's own redirect.
            assert!(!f.posts_credentials_to(&u("http://gw/pipeline"), &u("http://gw/dex/auth/local/login?state=s1")));
            // Approval goes straight only after the credentials, under Dex, with `req`.
            let approval = u("http://gw/dex/approval?req=r1&hmac=h");
            assert!(!f.approves_at(&from, &approval), "before the credentials");
            f.submitted = true;
            assert!(
                !f.posts_credentials_to(&from, &u("http://gw/dex/auth/local/login?state=s1")),
                "posted once"
            );
            assert!(f.approves_at(&from, &approval));
            assert!(!f.approves_at(&from, &u("http://gw/dex/approval?hmac=h")));
            assert!(!f.approves_at(&from, &u("http://evil/dex/approval?req=r1")));
        });
        let off = LoginConfig::new(
            "http://gw/p",
            "jane",
            SecretString::from("pw"),
            "local",
            Options {
                shortcuts: false,
                ..Options::default()
            },
        )
        .unwrap();
        with_flow(&off, |f| {
            let from = Url::parse("http://gw/dex/auth/local?client_id=c&response_type=code").unwrap();
            f.note_dex(&from);
            assert!(!f.posts_credentials_to(&from, &Url::parse("http://gw/dex/auth/local/login?state=s1").unwrap()));
        });
    }

    #[test]
    fn no_shortcut_when_the_gateway_names_the_connector() {
        let c = cfg("http://gw/p", "local");
        let auth = Url::parse("http://gw/dex/auth?client_id=c&response_type=code&connector_id=local").unwrap();
        assert!(with_flow(&c, |f| f.connector_shortcut(&auth)).is_none());
        let not_auth = Url::parse("http://gw/oauth/auth?x=1").unwrap();
        assert!(with_flow(&c, |f| f.connector_shortcut(&not_auth)).is_none());
    }

    #[test]
    fn dex_redirecting_to_another_connector_is_refused() {
        let c = cfg("http://gw/p", "local");
        with_flow(&c, |f| {
            f.note_dex(&Url::parse("http://gw/dex/auth").unwrap());
            let err = f
                .check_connector_redirect(&Url::parse("http://gw/dex/auth/ldap?x=1").unwrap())
                .unwrap_err();
            assert!(matches!(err, Error::UnknownConnector { ref offered, .. } if offered == &["ldap"]));
            assert!(
                f.check_connector_redirect(&Url::parse("http://gw/dex/auth/local?x=1").unwrap())
                    .is_ok()
            );
            assert!(
                f.check_connector_redirect(&Url::parse("http://gw/dex/auth/local/login").unwrap())
                    .is_ok()
            );
        });
    }

    #[test]
    fn redirects_that_cannot_be_followed() {
        let c = cfg("http://gw/p", "local");
        with_flow(&c, |f| {
            let e = f
                .redirect_target(&redirect(
                    "POST",
                    "http://gw/dex/auth/local/login",
                    307,
                    Some("/elsewhere"),
                ))
                .unwrap_err();
            assert!(e.to_string().contains("does not re-send credentials"), "{e}");
            let e = f
                .redirect_target(&redirect("GET", "http://gw/p", 302, None))
                .unwrap_err();
            assert!(e.to_string().contains("without a Location"), "{e}");
            let e = f
                .redirect_target(&redirect("GET", "http://gw/p", 302, Some("javascript:alert(1)")))
                .unwrap_err();
            assert!(e.to_string().contains("scheme `javascript`"), "{e}");
            let mut bytes = redirect("GET", "http://gw/p", 302, None);
            bytes.location_unreadable = true;
            let e = f.redirect_target(&bytes).unwrap_err();
            assert!(e.to_string().contains("not ASCII text"), "{e}");
            let ok = f
                .redirect_target(&redirect("GET", "http://gw/a/b", 302, Some("../c?d=1")))
                .unwrap();
            assert_eq!(ok.as_str(), "http://gw/c?d=1");
        });
    }

    #[test]
    fn callback_finishes_only_with_a_new_cookie_for_the_api() {
        let c = cfg("http://gw/pipeline", "local");
        with_flow(&c, |f| {
            let url = Url::parse("http://gw/oauth2/callback").unwrap();
            let mut cb = redirect(
                "GET",
                "http://gw/oauth2/callback?code=x&state=y",
                302,
                Some("/pipeline"),
            );
            // A state cookie from before the credentials went in is not a session.
            f.jar.parse("oidc_state_csrf=S; Path=/", &url).unwrap();
            f.before_login = SecretString::from(cookie_header(&f.jar, &c.api_url));
            assert!(f.session_if_set(&cb).is_none(), "nothing was set");
            cb.set_cookies = vec!["other".into()];
            f.session_cookie_names = vec!["other".into()];
            f.jar.parse("other=v2; Path=/elsewhere", &url).unwrap();
            assert!(f.session_if_set(&cb).is_none(), "nothing new for /pipeline");

            f.jar.parse("authservice_session=v1; Path=/; HttpOnly", &url).unwrap();
            f.session_cookie_names.push("authservice_session".into());
            let (cookies, expires) = f.session_if_set(&cb).unwrap();
            assert_eq!(cookies.expose_secret(), "oidc_state_csrf=S; authservice_session=v1");
            assert_eq!(expires, None, "a session cookie has no expiry");

            f.jar
                .parse("authservice_session=v3; Path=/; Max-Age=3600", &url)
                .unwrap();
            f.jar.parse("second=v4; Path=/; Max-Age=60", &url).unwrap();
            f.jar.parse("oidc_state_csrf=S; Path=/; Max-Age=10", &url).unwrap();
            f.session_cookie_names.push("second".into());
            let (_, expires) = f.session_if_set(&cb).unwrap();
            let left = expires.unwrap().duration_since(SystemTime::now()).unwrap().as_secs();
            assert!(
                (50..=60).contains(&left),
                "the earliest session cookie's expiry counts: {left}"
            );
        });
    }

    #[test]
    fn callback_failures_say_why() {
        let c = cfg("http://gw/pipeline", "local");
        with_flow(&c, |f| {
            let cb = redirect(
                "GET",
                "http://gw/oauth2/callback?code=x&state=y",
                302,
                Some("/pipeline"),
            );
            assert!(f.callback_failed(&cb).to_string().contains("set no cookie"));
            let csrf = reply(
                "GET",
                "http://gw/oauth2/callback?code=x&state=y",
                403,
                "text/html",
                "<p>Unable to find a valid CSRF token. Please try again.</p>",
            );
            let e = f.callback_failed(&csrf).to_string();
            assert!(
                e.contains("CSRF") && !e.contains("code=x") && !e.contains("state=y"),
                "{e}"
            );
        });
    }

    #[test]
    fn credentials_never_leave_the_forms_origin() {
        let c = cfg("http://gw/p", "local");
        let page = PASSWORD.replace("/dex/auth/local/login", "http://evil.example/collect");
        let r = reply(
            "GET",
            "http://gw/dex/auth/local/login?state=s1",
            200,
            "text/html",
            &page,
        );
        let err = with_flow(&c, |f| f.on_page(&r, None)).unwrap_err();
        assert!(err.to_string().contains("another origin"), "{err}");
        // Nor from https down to http on the same host.
        let page = PASSWORD.replace("/dex/auth/local/login", "http://gw/dex/auth/local/login");
        let r = reply(
            "GET",
            "https://gw/dex/auth/local/login?state=s1",
            200,
            "text/html",
            &page,
        );
        assert!(with_flow(&c, |f| f.on_page(&r, None)).is_err());
    }

    #[test]
    fn a_login_sent_from_https_down_to_http_stops_unless_allowed() {
        let down = redirect("GET", "https://gw/p", 302, Some("http://gw/dex/auth?client_id=c"));
        let c = cfg("https://gw/p", "local");
        let e = with_flow(&c, |f| f.redirect_target(&down)).unwrap_err();
        assert!(
            e.to_string().contains("from https to http") && e.to_string().contains("allow_insecure_redirect=True"),
            "{e}"
        );
        // Links and form actions go through the same check.
        let page = reply("GET", "https://gw/dex/auth", 200, "text/html", SELECTION);
        let link = with_flow(&c, |f| f.resolve(&page, "http://gw/dex/auth/local"));
        assert!(link.is_err());
        let mut opted_in = cfg("https://gw/p", "local");
        opted_in.options.allow_insecure_redirect = true;
        let u = with_flow(&opted_in, |f| f.redirect_target(&down)).unwrap();
        assert_eq!(u.as_str(), "http://gw/dex/auth?client_id=c");
        // Up from http to https is fine.
        let up = redirect("GET", "http://gw/p", 302, Some("https://gw/p"));
        assert!(with_flow(&cfg("http://gw/p", "local"), |f| f.redirect_target(&up)).is_ok());
    }

    #[test]
    fn password_forms_it_cannot_fill_or_tell_apart_get_no_password() {
        let c = cfg("http://gw/p", "local");
        let url = "http://gw/dex/auth/local/login?state=s1";
        let otp = PASSWORD.replace("</form>", r#"<input name="otp"></form>"#);
        let e = with_flow(&c, |f| f.on_page(&reply("GET", url, 200, "text/html", &otp), None)).unwrap_err();
        assert!(e.to_string().contains("`otp`"), "{e}");
        let two = format!("{PASSWORD}{PASSWORD}");
        let e = with_flow(&c, |f| f.on_page(&reply("GET", url, 200, "text/html", &two), None)).unwrap_err();
        assert!(e.to_string().contains("2 password forms"), "{e}");
    }

    #[test]
    fn the_form_again_after_dex_took_the_password_is_a_cookie_problem() {
        let c = cfg("http://gw/pipeline", "local");
        with_flow(&c, |f| {
            let url = "http://gw/dex/auth/local/login?state=s1";
            assert!(f.on_page(&reply("GET", url, 200, "text/html", PASSWORD), None).is_ok());
            f.left_dex = true;
            f.session_cookie_names = vec!["sess".into()];
            let e = f
                .on_page(&reply("GET", url, 200, "text/html", PASSWORD), None)
                .unwrap_err();
            assert!(matches!(e, Error::UnexpectedResponse { .. }), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("Dex accepted the login") && msg.contains("(it set sess)") && msg.contains("Secure"),
                "{msg}"
            );
        });
    }

    #[test]
    fn server_errors_say_whose_they_are() {
        let c = cfg("http://gw/pipeline", "local");
        with_flow(&c, |f| {
            f.note_dex(&Url::parse("http://gw/dex/auth").unwrap());
            let at_dex = reply("POST", "http://gw/dex/auth/local/login", 500, "text/plain", "boom");
            let e = f.on_page(&at_dex, None).unwrap_err().to_string();
            assert!(e.contains("Dex failed with a server error"), "{e}");
            let at_gw = reply("GET", "http://gw/other", 500, "text/plain", "boom");
            let e = f.on_page(&at_gw, None).unwrap_err().to_string();
            assert!(e.contains("the gateway failed"), "{e}");
            let cb = reply("GET", "http://gw/oauth2/callback?code=x", 500, "text/plain", "boom");
            let e = f.callback_failed(&cb).to_string();
            assert!(e.contains("could not finish the login at Dex"), "{e}");
        });
    }

    #[test]
    fn a_401_that_is_not_oauth2_proxys_is_not_followed() {
        let c = cfg("http://gw/pipeline", "local");
        let r = reply(
            "GET",
            "http://gw/pipeline",
            401,
            "application/json",
            r#"{"error":"no token"}"#,
        );
        assert!(matches!(
            with_flow(&c, |f| f.on_page(&r, None)),
            Err(Error::UnexpectedResponse { status: 401, .. })
        ));
    }

    #[test]
    fn links_that_look_like_connectors_on_an_unsecured_page_are_not_a_login() {
        let c = cfg("http://kfp/", "local");
        let r = reply(
            "GET",
            "http://kfp/",
            200,
            "text/html",
            r#"<a href="/docs/auth/oidc">auth docs</a>"#,
        );
        assert!(with_flow(&c, |f| f.on_page(&r, None)).unwrap().is_none());
    }

    #[test]
    fn a_second_sign_in_page_is_an_error_not_a_loop() {
        let c = cfg("http://gw/pipeline", "local");
        let r = reply("GET", "http://gw/pipeline", 403, "text/html", SIGN_IN);
        with_flow(&c, |f| {
            assert!(f.on_page(&r, None).unwrap().is_some());
            let err = f.on_page(&r, None).unwrap_err();
            assert!(err.to_string().contains("sign-in page again"), "{err}");
        });
    }

    #[test]
    fn a_page_in_a_login_path_that_is_no_login_page_fails_the_login() {
        let c = cfg("http://gw/pipeline", "local");
        let url = "http://gw/dex/auth/local/login?back=&state=s1";
        let mut page = reply("GET", url, 200, "text/html", "<h1>Down for maintenance</h1>");
        page.content_encoding = Some("br".into());
        with_flow(&c, |f| {
            // Reached without a redirect into a login path: an unsecured endpoint, as before.
            assert!(f.on_page(&page, None).unwrap().is_none());
            f.entered_login_path = true;
            let e = f.on_page(&page, None).unwrap_err().to_string();
            assert!(
                e.contains("the login page could not be used")
                    && e.contains("HTTP 200, text/html, 29 bytes, Content-Encoding br")
                    && e.contains("/dex/auth/local/login?back=…&state=…")
                    && !e.contains("s1"),
                "{e}"
            );
        });
    }

    #[test]
    fn a_pinned_dex_gets_the_password_on_its_own_origin_only() {
        let mut c = cfg("http://gw/pipeline", "local");
        c.options.dex_url = Some(Url::parse("https://dex.example/dex").unwrap());
        let form = |host: &str| {
            reply(
                "GET",
                &format!("{host}/dex/auth/local/login?state=s1"),
                200,
                "text/html",
                PASSWORD,
            )
        };
        with_flow(&c, |f| {
            let e = f.on_page(&form("http://gw"), None).unwrap_err().to_string();
            assert!(
                e.contains("the login's Dex is at http://gw, not at the origin of dex_url (https://dex.example)")
                    && e.contains("the password was not sent"),
                "{e}"
            );
            assert!(!f.submitted);
            assert!(matches!(
                f.on_page(&form("https://dex.example"), None),
                Ok(Some(Next::PostCredentials(..)))
            ));
        });
        // Dex's redirect to its own form takes the password too: the same rule.
        with_flow(&c, |f| {
            let from = Url::parse("http://gw/dex/auth/local?client_id=c&response_type=code").unwrap();
            f.note_dex(&from);
            let r = redirect("GET", from.as_str(), 302, Some("/dex/auth/local/login?state=s1"));
            let target = f.redirect_target(&r).unwrap();
            assert!(f.posts_credentials_to(&r.url, &target));
            assert!(f.check_pinned_dex(&r, &target).is_err());
        });
    }

    #[test]
    fn dex_prefix_from_paths() {
        let p = |s: &str| dex_prefix(&Url::parse(s).unwrap());
        assert_eq!(p("http://h/dex/auth").as_deref(), Some("/dex"));
        assert_eq!(p("http://h/dex/auth/local/login").as_deref(), Some("/dex"));
        assert_eq!(p("http://h/auth/ldap").as_deref(), Some(""));
        assert_eq!(p("http://h/dex/authx"), None);
        assert_eq!(p("http://h/pipeline"), None);
    }

    #[test]
    fn authorization_requests() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(is_authorization_request(&u(
            "http://h/dex/auth?client_id=a&response_type=code"
        )));
        assert!(!is_authorization_request(&u("http://h/dex/auth?client_id=a")));
    }
}

#[cfg(test)]
mod props;
