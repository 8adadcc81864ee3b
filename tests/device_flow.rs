//! The device login's poll and refresh over real HTTP against a scripted Dex: the
//! answers the real Dex gives (tests/test_sso_device.py) and those it never gives
//! (access_denied), each checked for what the login does next.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kfp_auth::{Bearer, DeviceEvent, Error, Options, Prompt, SsoConfig, SsoLogin, Start, dex_base};
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The issuer Dex names: in-cluster, unreachable; the endpoints must be mapped onto the server.
const ISSUER: &str = "http://dex.auth.svc.cluster.local:5556/dex";

/// A scripted Dex: discovery, a device code, then the queued token answers in order
/// (the last one repeats). Records when each token request came, and its form.
#[derive(Default)]
struct Script {
    token_answers: Mutex<VecDeque<(u16, String)>>,
    token_requests: Mutex<Vec<(Instant, String)>>,
    device_codes: Mutex<u32>,
    expires_in: u32,
    /// The device page Dex names, instead of `<issuer>/device`.
    page: Option<String>,
}

fn jwt(exp_in: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = format!(
        r#"{{"iss":"{ISSUER}","aud":"kfp-auth","sub":"s","email":"jane@example.com","iat":{now},"exp":{}}}"#,
        now + exp_in
    );
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

fn tokens(id_token: &str, refresh: &str) -> (u16, String) {
    (
        200,
        format!(r#"{{"access_token":"a","token_type":"bearer","id_token":"{id_token}","refresh_token":"{refresh}"}}"#),
    )
}

fn error(status: u16, e: &str) -> (u16, String) {
    (status, format!(r#"{{"error":"{e}"}}"#))
}

impl Script {
    fn answer(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        match (method, path) {
            ("GET", "/dex/.well-known/openid-configuration") => (
                200,
                format!(
                    r#"{{"issuer":"{ISSUER}","token_endpoint":"{ISSUER}/token",
                        "device_authorization_endpoint":"{ISSUER}/device/code",
                        "grant_types_supported":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"]}}"#
                ),
            ),
            ("POST", "/dex/device/code") => {
                *self.device_codes.lock().unwrap() += 1;
                let page = self.page.clone().unwrap_or_else(|| format!("{ISSUER}/device"));
                (
                    200,
                    format!(
                        r#"{{"device_code":"dc-secret-value","user_code":"ABCD-EFGH","verification_uri":"{page}",
                            "verification_uri_complete":"{page}?user_code=ABCD-EFGH","expires_in":{},"interval":5}}"#,
                        self.expires_in
                    ),
                )
            }
            ("POST", "/dex/token") => {
                self.token_requests
                    .lock()
                    .unwrap()
                    .push((Instant::now(), body.to_owned()));
                let mut q = self.token_answers.lock().unwrap();
                if q.len() > 1 { q.pop_front() } else { q.front().cloned() }.unwrap_or_else(|| error(500, "none"))
            }
            _ => (404, "{}".into()),
        }
    }

    fn polls(&self) -> Vec<(Instant, String)> {
        self.token_requests.lock().unwrap().clone()
    }
}

async fn serve(script: Arc<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else { continue };
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let mut first = text.split(' ');
                    let (method, target) = (first.next().unwrap(), first.next().unwrap());
                    let (status, body) = script.answer(method, target, &text[end + 4..]);
                    let out = format!(
                        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(out.as_bytes()).await;
                    return;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Records the events, as text.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Prompt for Seen {
    fn show(&self, event: DeviceEvent<'_>) -> Result<(), String> {
        let shown = match event {
            DeviceEvent::Code {
                verification_uri_complete,
                user_code,
                ..
            } => format!("code {user_code} {}", verification_uri_complete.unwrap_or("-")),
            DeviceEvent::Browser { url } => format!("browser {url}"),
            DeviceEvent::Done => "done".into(),
            DeviceEvent::Failed(m) => format!("failed {m}"),
            DeviceEvent::Cancelled => "cancelled".into(),
        };
        self.0.lock().unwrap().push(shown);
        Ok(())
    }
}

async fn device(answers: Vec<(u16, String)>, expires_in: u32) -> (Arc<Script>, Bearer, Arc<Seen>, String) {
    device_with(Script {
        token_answers: Mutex::new(answers.into()),
        expires_in,
        ..Script::default()
    })
    .await
}

/// A device login against `script`, polling every 100 ms.
async fn device_with(script: Script) -> (Arc<Script>, Bearer, Arc<Seen>, String) {
    device_login(script, false).await
}

/// As `device_with`, with `SsoLogin::with_relogin(relogin)`.
async fn device_login(script: Script, relogin: bool) -> (Arc<Script>, Bearer, Arc<Seen>, String) {
    let script = Arc::new(script);
    let url = serve(script.clone()).await;
    let seen = Arc::new(Seen::default());
    let cfg = SsoConfig {
        dex_url: dex_base(&format!("{url}/pipeline"), None).unwrap(),
        client_id: "kfp-auth".into(),
        scopes: kfp_auth::DEFAULT_SCOPES.into(),
        connector: None,
        start: Start::Device {
            poll_interval: Some(Duration::from_millis(100)),
        },
        options: Options::default(),
    };
    let login = SsoLogin::new(cfg, seen.clone()).unwrap().with_relogin(relogin).unwrap();
    (script, Bearer::sso(login), seen, url)
}

#[tokio::test]
async fn slow_down_adds_five_seconds_and_the_tokens_end_the_poll() {
    let id = jwt(3600);
    let (script, bearer, seen, url) = device(
        vec![
            error(400, "authorization_pending"),
            error(400, "slow_down"),
            error(400, "authorization_pending"),
            tokens(&id, "rt-1"),
        ],
        300,
    )
    .await;
    let token = bearer.token().await.unwrap();
    assert_eq!(token.expose_secret(), id);
    let polls = script.polls();
    assert_eq!(polls.len(), 4);
    let gaps: Vec<Duration> = polls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps[0] < Duration::from_secs(1), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(5100), "after slow_down: {gaps:?}");
    assert!(
        gaps[2] >= Duration::from_millis(5100),
        "the slower interval stays: {gaps:?}"
    );
    assert!(
        polls[0]
            .1
            .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code")
            && polls[0].1.contains("device_code=dc-secret-value")
            && polls[0].1.contains("client_id=kfp-auth")
    );
    // The page shown is the gateway's, not the in-cluster issuer's.
    assert_eq!(
        *seen.0.lock().unwrap(),
        [
            format!("code ABCD-EFGH {url}/dex/device?user_code=ABCD-EFGH"),
            "done".into()
        ]
    );
    assert!(bearer.cached().is_some(), "held until it is close to expiry");
}

#[tokio::test]
async fn access_denied_and_an_expired_code_are_device_login_errors() {
    let (_, bearer, seen, _) = device(
        vec![error(400, "authorization_pending"), error(400, "access_denied")],
        300,
    )
    .await;
    let e = bearer.token().await.unwrap_err();
    assert!(
        matches!(e, Error::DeviceLogin { .. }) && e.to_string().contains("refused"),
        "{e}"
    );
    assert!(seen.0.lock().unwrap()[1].starts_with("failed the device login was refused"));

    let (_, bearer, _, _) = device(vec![error(400, "expired_token")], 300).await;
    let e = bearer.token().await.unwrap_err();
    assert!(
        matches!(e, Error::DeviceLogin { .. }) && e.to_string().contains("expired"),
        "{e}"
    );

    // Dex never says access_denied: a code nobody finishes ends at its expiry.
    let (script, bearer, _, _) = device(vec![error(400, "authorization_pending")], 1).await;
    let started = Instant::now();
    let e = bearer.token().await.unwrap_err();
    assert!(
        matches!(e, Error::DeviceLogin { .. }) && e.to_string().contains("expired"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(script.polls().len() >= 5, "polled every 100 ms meanwhile");
}

#[tokio::test]
async fn refusals_of_the_client_or_the_grant_name_the_admin_change() {
    let (_, bearer, _, _) = device(vec![error(400, "unsupported_grant_type")], 300).await;
    let e = bearer.token().await.unwrap_err().to_string();
    assert!(e.contains("oauth2.grantTypes"), "{e}");
    let (_, bearer, _, _) = device(vec![error(401, "invalid_client")], 300).await;
    let e = bearer.token().await.unwrap_err().to_string();
    assert!(e.contains("staticClients") && e.contains("public: true"), "{e}");
}

#[tokio::test]
async fn a_dead_refresh_token_is_login_required_until_a_new_login() {
    let (first, second) = (jwt(3600), jwt(3600));
    let (script, bearer, seen, _) = device(
        vec![
            tokens(&first, "rt-1"),
            tokens(&second, "rt-2"),
            error(400, "invalid_request"),
            tokens(&jwt(3600), "rt-3"),
        ],
        300,
    )
    .await;
    bearer.token().await.unwrap();
    // A refresh sends the refresh token, and the rotated one is used next.
    assert_eq!(bearer.renew().await.unwrap().expose_secret(), second);
    assert!(
        script.polls()[1]
            .1
            .contains("grant_type=refresh_token&refresh_token=rt-1")
    );
    let e = bearer.renew().await.unwrap_err();
    assert!(script.polls()[2].1.contains("refresh_token=rt-2"));
    assert!(matches!(e, Error::LoginRequired { .. }), "{e}");
    let shown = e.to_string();
    assert!(
        shown.matches("log in again").count() == 1 && !shown.contains("rt-2") && !shown.contains(&second),
        "{shown}"
    );
    // The ID token in hand stays usable until it expires; any renewal after that (or a
    // 401) is the same error, with no request and no prompt.
    let requests = script.polls().len();
    assert_eq!(bearer.token().await.unwrap().expose_secret(), second);
    assert!(matches!(bearer.renew().await, Err(Error::LoginRequired { .. })));
    assert!(matches!(
        bearer.refresh(&second).await,
        Err(Error::LoginRequired { .. })
    ));
    assert_eq!(script.polls().len(), requests);
    assert_eq!(*script.device_codes.lock().unwrap(), 1);
    // A login is asked for: a new device login.
    bearer.login().await.unwrap();
    assert_eq!(*script.device_codes.lock().unwrap(), 2);
    assert_eq!(
        seen.0.lock().unwrap().iter().filter(|s| s.starts_with("code")).count(),
        2
    );
    assert_eq!((bearer.refreshes(), bearer.fetches()), (2, 4));
}

#[tokio::test]
async fn with_relogin_a_dead_refresh_token_starts_a_new_device_login() {
    let third = jwt(3600);
    let script = Script {
        token_answers: Mutex::new(
            vec![
                tokens(&jwt(3600), "rt-1"),
                error(400, "invalid_request"),
                tokens(&third, "rt-3"),
                tokens(&jwt(3600), "rt-4"),
            ]
            .into(),
        ),
        expires_in: 300,
        ..Script::default()
    };
    let (script, bearer, seen, _) = device_login(script, true).await;
    bearer.token().await.unwrap();
    // The refresh is refused: the user is shown a new code, and the renewal gets its token.
    assert_eq!(bearer.renew().await.unwrap().expose_secret(), third);
    assert_eq!(*script.device_codes.lock().unwrap(), 2);
    let codes = seen.0.lock().unwrap().iter().filter(|s| s.starts_with("code")).count();
    assert_eq!(codes, 2);
    // The new login's refresh token renews, with no prompt.
    bearer.renew().await.unwrap();
    assert!(script.polls()[3].1.contains("refresh_token=rt-3"));
    assert_eq!(*script.device_codes.lock().unwrap(), 2);
}

#[tokio::test]
async fn relogin_is_refused_for_token_exchange() {
    let cfg = SsoConfig {
        dex_url: dex_base("http://127.0.0.1:9/pipeline", None).unwrap(),
        client_id: "kfp-auth".into(),
        scopes: "openid email".into(),
        connector: Some("github".into()),
        start: Start::Exchange(Arc::new(
            kfp_auth::Subject::literal(secrecy::SecretString::from(jwt(3600))).unwrap(),
        )),
        options: Options::default(),
    };
    let e = SsoLogin::new(cfg, Arc::new(Seen::default()))
        .unwrap()
        .with_relogin(true);
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "relogin refused");
}

#[tokio::test]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_one_held() {
    let (first, second, third) = (jwt(3600), jwt(3600), jwt(3600));
    let no_refresh = (
        200,
        format!(r#"{{"access_token":"a","token_type":"bearer","id_token":"{second}"}}"#),
    );
    let (script, bearer, _, _) = device(vec![tokens(&first, "rt-1"), no_refresh, tokens(&third, "rt-2")], 300).await;
    bearer.token().await.unwrap();
    assert_eq!(bearer.renew().await.unwrap().expose_secret(), second);
    // OIDC: the refresh token used stays valid, so it is sent again, not a new login.
    assert_eq!(bearer.renew().await.unwrap().expose_secret(), third);
    assert!(script.polls()[2].1.contains("refresh_token=rt-1"));
    assert_eq!(*script.device_codes.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_token_expired_on_its_way_is_refreshed_at_once() {
    let (stale, fresh) = (jwt(0), jwt(3600));
    let (_, bearer, _, _) = device(vec![tokens(&stale, "rt-1"), tokens(&fresh, "rt-2")], 300).await;
    assert_eq!(bearer.token().await.unwrap().expose_secret(), fresh);
    assert_eq!(bearer.refreshes(), 1);
}

#[tokio::test]
async fn a_device_page_that_is_not_http_is_refused_before_it_is_shown() {
    let (script, bearer, seen, _) = device_with(Script {
        page: Some("javascript:alert(1)//".into()),
        expires_in: 300,
        ..Script::default()
    })
    .await;
    let e = bearer.token().await.unwrap_err().to_string();
    assert!(e.contains("not an http(s) URL"), "{e}");
    assert!(seen.0.lock().unwrap().is_empty() && script.polls().is_empty());
}
