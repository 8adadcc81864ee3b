//! Unit tests of the flow's decisions, one reply at a time, on a flow that
//! sends nothing.

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

const SIGN_IN: &str = r#"<form method="GET" action="/oauth2/start"><input type="hidden" name="rd" value="/x"></form>"#;
const PASSWORD: &str = r#"<form method="post" action="/dex/auth/local/login?back=&amp;state=s1">
    <input name="login"><input name="password" type="password"></form>"#;
const SELECTION: &str =
    r#"<a href="/dex/auth/local?client_id=c&amp;state=s">x</a><a href="/dex/auth/ldap?client_id=c&amp;state=s">y</a>"#;
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
            matches!(err, Error::UnexpectedResponse { status: s, .. } if s == Some(status)),
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
        assert!(f.attempt.reached(Phase::Submitted) && f.is_dex(&Url::parse("http://gw/dex/approval").unwrap()));
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
        f.attempt.reach(Phase::Submitted);
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
        f.attempt.jar.parse("oidc_state_csrf=S; Path=/", &url).unwrap();
        f.attempt.before_login = SecretString::from(cookie_header(&f.attempt.jar, &c.api_url));
        assert!(f.session_if_set(&cb).is_none(), "nothing was set");
        cb.set_cookies = vec!["other".into()];
        f.attempt.session_cookie_names = vec!["other".into()];
        f.attempt.jar.parse("other=v2; Path=/elsewhere", &url).unwrap();
        assert!(f.session_if_set(&cb).is_none(), "nothing new for /pipeline");

        f.attempt
            .jar
            .parse("authservice_session=v1; Path=/; HttpOnly", &url)
            .unwrap();
        f.attempt.session_cookie_names.push("authservice_session".into());
        let (cookies, expires) = f.session_if_set(&cb).unwrap();
        assert_eq!(cookies.expose_secret(), "oidc_state_csrf=S; authservice_session=v1");
        assert_eq!(expires, None, "a session cookie has no expiry");

        f.attempt
            .jar
            .parse("authservice_session=v3; Path=/; Max-Age=3600", &url)
            .unwrap();
        f.attempt.jar.parse("second=v4; Path=/; Max-Age=60", &url).unwrap();
        f.attempt
            .jar
            .parse("oidc_state_csrf=S; Path=/; Max-Age=10", &url)
            .unwrap();
        f.attempt.session_cookie_names.push("second".into());
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
        f.attempt.reach(Phase::LeftDex);
        f.attempt.session_cookie_names = vec!["sess".into()];
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
        Err(Error::UnexpectedResponse { status: Some(401), .. })
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

#[test]
fn a_restart_forgets_the_attempt_but_not_the_requests_made() {
    let c = cfg("http://gw/pipeline", "local");
    with_flow(&c, |f| {
        let url = Url::parse("http://gw/dex/auth/local/login").unwrap();
        f.note_dex(&url);
        f.attempt.jar.parse("csrf=x; Path=/", &url).unwrap();
        f.attempt.reach(Phase::Submitted);
        f.attempt.reach(Phase::Started);
        assert_eq!(f.attempt.phase, Phase::Submitted, "an attempt never goes back");
        let refused = reply(
            "GET",
            "http://gw/oauth2/callback?code=x",
            403,
            "text/html",
            "Unable to find a valid CSRF token",
        );
        let first = f.callback_failed(&refused).to_string();
        assert_eq!(f.attempt.phase, Phase::CsrfFailed);
        assert!(!first.contains("also after starting the login again"), "{first}");
        f.history.push(Step {
            method: "GET",
            url: "http://gw/pipeline".into(),
            status: Some(302),
            elapsed_ms: 1,
        });
        f.requests = 1;

        f.restart();
        assert_eq!(f.attempt.phase, Phase::Unstarted);
        assert!(f.attempt.dex.is_none() && cookie_header(&f.attempt.jar, &c.api_url).is_empty());
        assert_eq!((f.attempts, f.requests, f.history.len()), (2, 1, 1));
        let second = f.callback_failed(&refused).to_string();
        assert!(second.contains("also after starting the login again"), "{second}");
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
        f.attempt.entered_login_path = true;
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
        assert!(!f.attempt.reached(Phase::Submitted));
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
