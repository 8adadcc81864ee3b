//! Whole logins over real HTTP against a scripted server that serves hand-made
//! pages in the shapes Dex and oauth2-proxy produce. The real components are
//! exercised by the Python suite; these pin the core's own behaviour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kfp_auth::{Error, LoginConfig, Options, Transport, login};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

struct Resp {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn resp(status: u16, headers: &[(&'static str, &str)], body: &str) -> Resp {
    Resp {
        status,
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body: body.as_bytes().to_vec(),
    }
}

type Route = dyn Fn(&Req) -> Option<Resp> + Send + Sync;

/// A response header that makes the server wait this many ms before answering.
const DELAY_MS: &str = "x-test-delay-ms";

/// Serve `route` on a loopback port; `None` from the route means "never answer".
async fn serve(route: Arc<Route>, seen: Arc<Mutex<Vec<Req>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (route, seen) = (route.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap().split(' ');
                let (method, target) = (first.next().unwrap().to_owned(), first.next().unwrap().to_owned());
                let headers: HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
                    .collect();
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                let req = Req {
                    method,
                    target,
                    headers,
                    body,
                };
                seen.lock().unwrap().push(req.clone());
                let Some(r) = route(&req) else {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                };
                // A route asks for a slow answer with this (unsent) header.
                if let Some((_, ms)) = r.headers.iter().find(|(k, _)| *k == DELAY_MS) {
                    tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                }
                let mut out = format!(
                    "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                    r.status,
                    r.body.len()
                );
                for (k, v) in r.headers.iter().filter(|(k, _)| *k != DELAY_MS) {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.write_all(&r.body).await;
            });
        }
    });
    format!("http://{addr}")
}

fn config(api_url: &str, password: &str, connector: &str, options: Options) -> LoginConfig {
    LoginConfig::new(
        api_url,
        "jane@example.com",
        SecretString::from(password),
        connector,
        options,
    )
    .unwrap()
}

async fn run(cfg: &LoginConfig) -> kfp_auth::Result<kfp_auth::Session> {
    let t = Transport::new(&cfg.options).unwrap();
    login(cfg, &t).await
}

/// "METHOD target" of each request the server saw, in order.
fn requests_seen(seen: &Mutex<Vec<Req>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect()
}

/// The error of a failed login, and how many requests it made.
async fn fail(cfg: &LoginConfig) -> (Error, usize) {
    match run(cfg).await {
        Ok(_) => panic!("the login should fail"),
        Err(Error::Failed { source, history }) => (*source, history.len()),
        Err(e) => panic!("a login error without its history: {e}"),
    }
}

const PASSWORD_PAGE: &str = r#"<form method="post" action="/dex/auth/ldap/login?back=&amp;state=AUTHREQ">
  <input name="login" type="text"/><input name="password" type="password"/></form>"#;
const SELECTION: &str = r#"<a href="/dex/auth/local?client_id=kf&amp;state=S">Email</a>
  <a href="/dex/auth/ldap?client_id=kf&amp;state=S">LDAP</a>"#;
const APPROVAL: &str = r#"<form method="post"><input type="hidden" name="req" value="AUTHREQ"/>
  <input type="hidden" name="approval" value="approve"><button>Grant</button></form>
  <form method="post"><input type="hidden" name="req" value="AUTHREQ"/>
  <input type="hidden" name="approval" value="rejected"><button>Cancel</button></form>"#;

/// Kubeflow 1.9's shape: a 302 straight to Dex, a selection page (Dex 2.45 also
/// writes it into the body of a redirect), LDAP, the approval screen, and a
/// callback that sets a chunked session cookie.
fn kubeflow_19(req: &Req) -> Option<Resp> {
    let t = req.target.as_str();
    let path = t.split('?').next().unwrap();
    Some(match (req.method.as_str(), path) {
        ("GET", "/pipeline") if req.headers.contains_key("cookie") => resp(200, &[], "KFP UI"),
        ("GET", "/pipeline") => resp(
            302,
            &[("Location", "/dex/auth?client_id=kf&response_type=code&state=S")],
            "",
        ),
        // The shortcut asks for `/auth/ldap` directly; this Dex only knows it through the selection page.
        ("GET", "/dex/auth/ldap") if !t.contains("via=selection") => {
            resp(404, &[], "<p class=\"dex-error-box\">Not found</p>")
        }
        ("GET", "/dex/auth") => resp(200, &[], &SELECTION.replace("state=S", "state=S&amp;via=selection")),
        ("GET", "/dex/auth/ldap") => resp(
            302,
            &[("Location", "/dex/auth/ldap/login?back=&state=AUTHREQ")],
            SELECTION,
        ),
        ("GET", "/dex/auth/ldap/login") => resp(200, &[], PASSWORD_PAGE),
        ("POST", "/dex/auth/ldap/login") if req.body == "login=jane%40example.com&password=p%40ss+w%26rd" => {
            resp(303, &[("Location", "/dex/approval?req=AUTHREQ&hmac=H")], "")
        }
        ("POST", "/dex/auth/ldap/login") => resp(401, &[], PASSWORD_PAGE),
        ("GET", "/dex/approval") => resp(200, &[], APPROVAL),
        // Dex reads `req` and `hmac` from the query or the form, as `r.FormValue` does.
        ("POST", "/dex/approval")
            if (t.contains("req=AUTHREQ") || req.body.contains("req=AUTHREQ"))
                && t.contains("hmac=H")
                && req.body.split('&').any(|kv| kv == "approval=approve") =>
        {
            resp(303, &[("Location", "/oauth2/callback?code=C&state=S")], "")
        }
        ("GET", "/oauth2/callback") => Resp {
            status: 302,
            headers: vec![
                ("Location", "/pipeline".into()),
                ("Set-Cookie", "oauth2_proxy_kubeflow_csrf=; Path=/; Max-Age=0".into()),
                ("Set-Cookie", "oauth2_proxy_kubeflow_0=part0; Path=/; HttpOnly".into()),
                ("Set-Cookie", "oauth2_proxy_kubeflow_1=part1; Path=/; HttpOnly".into()),
                ("Set-Cookie", "unrelated=x; Path=/somewhere-else".into()),
            ],
            body: vec![],
        },
        _ => resp(500, &[], "unexpected request"),
    })
}

#[tokio::test]
async fn kubeflow_19_with_selection_ldap_approval_and_chunked_cookie() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let base = serve(Arc::new(kubeflow_19), seen.clone()).await;
    let cfg = config(&format!("{base}/pipeline"), "p@ss w&rd", "ldap", Options::default());
    let session = run(&cfg).await.expect("login");

    // Only the cookies /pipeline gets, every chunk, in the jar's order; the cleared CSRF cookie is gone.
    assert_eq!(
        session.cookies.expose_secret(),
        "oauth2_proxy_kubeflow_0=part0; oauth2_proxy_kubeflow_1=part1"
    );
    assert!(!session.unsecured);

    assert_eq!(
        requests_seen(&seen),
        [
            "GET /pipeline",
            "GET /dex/auth/ldap?client_id=kf&response_type=code&state=S",
            "GET /dex/auth?client_id=kf&response_type=code&state=S",
            "GET /dex/auth/ldap?client_id=kf&state=S&via=selection",
            // Dex's password form and approval page post back to their own URLs
            // with fixed fields: the redirects there take the posts directly.
            "POST /dex/auth/ldap/login?back=&state=AUTHREQ",
            "POST /dex/approval?req=AUTHREQ&hmac=H",
            "GET /oauth2/callback?code=C&state=S",
        ]
    );
    // The password went in exactly one request: the form post.
    let carrying: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.body.contains("p%40ss"))
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(carrying, ["/dex/auth/ldap/login?back=&state=AUTHREQ"]);

    // The history is redacted: no query value, no password.
    let history = format!("{:?}", session.history);
    assert_eq!(session.history.len(), 7);
    for secret in ["AUTHREQ", "hmac=H", "code=C", "p@ss", "part0"] {
        assert!(!history.contains(secret), "{secret} in {history}");
    }
}

#[tokio::test]
async fn without_shortcuts_every_page_is_read() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let base = serve(Arc::new(kubeflow_19), seen.clone()).await;
    let options = Options {
        shortcuts: false,
        ..Options::default()
    };
    run(&config(&format!("{base}/pipeline"), "p@ss w&rd", "ldap", options))
        .await
        .expect("login");
    assert_eq!(
        requests_seen(&seen),
        [
            "GET /pipeline",
            "GET /dex/auth?client_id=kf&response_type=code&state=S",
            "GET /dex/auth/ldap?client_id=kf&state=S&via=selection",
            "GET /dex/auth/ldap/login?back=&state=AUTHREQ",
            "POST /dex/auth/ldap/login?back=&state=AUTHREQ",
            "GET /dex/approval?req=AUTHREQ&hmac=H",
            "POST /dex/approval?req=AUTHREQ&hmac=H",
            "GET /oauth2/callback?code=C&state=S",
        ]
    );
}

#[tokio::test]
async fn wrong_password_is_invalid_credentials() {
    let base = serve(Arc::new(kubeflow_19), Arc::default()).await;
    let cfg = config(&format!("{base}/pipeline"), "nope", "ldap", Options::default());
    let (err, requests) = fail(&cfg).await;
    assert!(matches!(err, Error::InvalidCredentials { status: 401, .. }), "{err}");
    assert_eq!(requests, 5, "the history goes with the error");
    assert!(!err.to_string().contains("nope"));
}

#[tokio::test]
async fn unsecured_endpoint_gives_no_cookies() {
    let base = serve(
        Arc::new(|_: &Req| Some(resp(200, &[], "<html>KFP</html>"))),
        Arc::default(),
    )
    .await;
    let session = run(&config(&format!("{base}/"), "pw", "local", Options::default()))
        .await
        .unwrap();
    assert!(session.unsecured);
    assert_eq!(session.cookies.expose_secret(), "");
}

#[tokio::test]
async fn redirect_loops_are_bounded() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let base = serve(
        Arc::new(|_: &Req| Some(resp(302, &[("Location", "/a")], ""))),
        seen.clone(),
    )
    .await;
    let options = Options {
        max_redirects: 5,
        ..Options::default()
    };
    let (err, _) = fail(&config(&format!("{base}/a"), "pw", "local", options)).await;
    assert!(
        matches!(
            err,
            Error::TooManySteps {
                what: "redirects",
                limit: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn bodies_past_the_cap_are_refused() {
    let big = "x".repeat(64 * 1024);
    let base = serve(Arc::new(move |_: &Req| Some(resp(200, &[], &big))), Arc::default()).await;
    let options = Options {
        max_body_bytes: 16 * 1024,
        ..Options::default()
    };
    let (err, _) = fail(&config(&format!("{base}/"), "pw", "local", options)).await;
    assert!(matches!(err, Error::BodyTooLarge { limit: 16384, .. }), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let base = serve(Arc::new(|_: &Req| None), Arc::default()).await;
    let options = Options {
        timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let (err, _) = fail(&config(&format!("{base}/pipeline"), "pw", "local", options)).await;
    // The first request took the whole time: said of that request.
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn the_timeout_bounds_the_whole_login() {
    // Each redirect comes just inside the timeout: only the login's deadline ends the loop.
    let base = serve(
        Arc::new(|_: &Req| Some(resp(302, &[("Location", "/a"), (DELAY_MS, "150")], ""))),
        Arc::default(),
    )
    .await;
    let options = Options {
        timeout: Duration::from_millis(500),
        max_redirects: 1000,
        ..Options::default()
    };
    let started = std::time::Instant::now();
    let (err, requests) = fail(&config(&format!("{base}/a"), "pw", "local", options)).await;
    let Error::LoginTimeout { after, requests: n, .. } = err else {
        panic!("{err}")
    };
    assert_eq!((after, n), (Duration::from_millis(500), requests));
    assert!((3..=5).contains(&requests), "{requests} requests");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// oidc-authservice (Kubeflow <= 1.8): a 302 straight to Dex with a state
/// cookie, one connector, and a callback that sets `authservice_session`.
fn oidc_authservice(req: &Req) -> Option<Resp> {
    let t = req.target.as_str();
    let path = t.split('?').next().unwrap();
    let cookie = req.headers.get("cookie").cloned().unwrap_or_default();
    Some(match (req.method.as_str(), path) {
        ("GET", "/pipeline") => resp(
            302,
            &[
                (
                    "Location",
                    "/dex/auth?client_id=kubeflow-oidc-authservice&redirect_uri=%2Fauthservice%2Foidc%2Fcallback\
                     &response_type=code&scope=openid+profile+email+groups&state=STATE1",
                ),
                ("Set-Cookie", "oidc_state_csrf=STATE1; Path=/; Max-Age=3600; HttpOnly"),
            ],
            "",
        ),
        ("GET", "/dex/auth/local") => resp(302, &[("Location", "/dex/auth/local/login?back=&state=REQ")], ""),
        ("GET", "/dex/auth/local/login") => resp(200, &[], &PASSWORD_PAGE.replace("ldap", "local")),
        ("POST", "/dex/auth/local/login") => resp(
            303,
            &[("Location", "/authservice/oidc/callback?code=CODE&state=STATE1")],
            "",
        ),
        ("GET", "/authservice/oidc/callback") if cookie.contains("oidc_state_csrf=STATE1") => resp(
            302,
            &[
                ("Location", "/pipeline"),
                (
                    "Set-Cookie",
                    "authservice_session=SESSION; Path=/; Max-Age=86400; HttpOnly",
                ),
            ],
            "",
        ),
        ("GET", "/authservice/oidc/callback") => resp(403, &[], "CSRF check failed"),
        _ => resp(500, &[], "unexpected request"),
    })
}

#[tokio::test]
async fn oidc_authservice_legacy_kubeflow() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let base = serve(Arc::new(oidc_authservice), seen.clone()).await;
    let session = run(&config(&format!("{base}/pipeline"), "pw", "local", Options::default()))
        .await
        .expect("login");
    let cookies = session.cookies.expose_secret();
    assert!(cookies.contains("authservice_session=SESSION"), "{cookies}");
    let left = session
        .expires
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    // The session's expiry is its own cookie's (24 h), not the 1 h state cookie's.
    assert!(left.as_secs() > 86300 && left.as_secs() <= 86400, "{left:?}");
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.target.split('?').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "/pipeline",
            "/dex/auth/local",
            "/dex/auth/local/login",
            "/authservice/oidc/callback"
        ]
    );
}
