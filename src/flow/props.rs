//! Property tests on the flow's URL decisions: where links and redirects lead,
//! where the credentials may go, and how Dex's prefix and connector are read.
//! Kept in their own file so that `flow.rs` only gains the `mod` line.

use proptest::prelude::*;
use proptest::sample::select;
use reqwest::StatusCode;
use secrecy::SecretString;
use url::Url;

use super::*;
use crate::config::Options;
use crate::http::Reply;

fn cfg(connector: &str) -> LoginConfig {
    LoginConfig::new(
        "http://gw/pipeline",
        "jane",
        SecretString::from("pw"),
        connector,
        Options::default(),
    )
    .unwrap()
}

fn reply(method: &'static str, url: &Url, status: u16, location: Option<String>, body: String) -> Reply {
    Reply {
        method,
        url: url.clone(),
        status: StatusCode::from_u16(status).unwrap(),
        location,
        location_unreadable: false,
        content_type: Some("text/html; charset=utf-8".into()),
        content_encoding: None,
        body: body.into_bytes().into(),
        set_cookies: Vec::new(),
        peer_certificate: None,
    }
}

/// One transport for every case: building one per case (TLS roots and all)
/// made these tests take a minute. No request is ever sent through it.
static TRANSPORT: std::sync::LazyLock<Transport> =
    std::sync::LazyLock::new(|| Transport::new(&Options::default()).unwrap());

fn with_flow<T>(cfg: &LoginConfig, f: impl FnOnce(&mut Flow<'_>) -> T) -> T {
    f(&mut Flow::new(cfg, &TRANSPORT))
}

/// The page a reply comes from: http or https, a few hosts and ports.
fn page_url() -> impl Strategy<Value = Url> {
    (
        select(&["http", "https"][..]),
        select(&["gw", "gw.example", "127.0.0.1", "[::1]"][..]),
        proptest::option::of(select(&[80u16, 443, 8080][..])),
        "(/[a-z]{1,6}){0,3}",
        proptest::option::of("[a-z]=[a-z0-9]{0,4}"),
    )
        .prop_map(|(s, h, p, path, q)| {
            let port = p.map(|p| format!(":{p}")).unwrap_or_default();
            let q = q.map(|q| format!("?{q}")).unwrap_or_default();
            Url::parse(&format!("{s}://{h}{port}{path}{q}")).unwrap()
        })
}

/// Hrefs and Locations, benign and hostile: relative, scheme-relative, other
/// schemes in any case, backslashes, whitespace and control characters.
fn href() -> impl Strategy<Value = String> {
    let parts = select(
        &[
            "",
            "/",
            "//",
            "\\",
            "\\\\",
            "/\\",
            "evil.example",
            "gw",
            "gw.example",
            ":8080",
            "@",
            "user:pw@",
            "..",
            ".",
            "/dex/auth/local/login",
            "?state=s",
            "#f",
            "%2F",
            "%2e%2e",
            "javascript:",
            "JavaScript:",
            "data:",
            "file:",
            "ftp:",
            "mailto:",
            "blob:",
            "http:",
            "https:",
            "HTTP:",
            "hTTps:",
            "ws:",
            " ",
            "\t",
            "\n",
            "\r",
            "\u{0}",
            "\u{b}",
            "\u{a0}",
            "\u{3000}",
            "localhost",
            "[::1]",
            "0x7f.1",
        ][..],
    );
    prop_oneof![prop::collection::vec(parts, 0..8).prop_map(|v| v.concat()), ".{0,40}",]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Whatever a link or Location says, the flow follows only http(s) URLs with a host.
    #[test]
    fn resolution_yields_http_or_https_only(base in page_url(), href in href(),
                                            status in select(&[301u16, 302, 303, 307, 308][..])) {
        let c = cfg("local");
        with_flow(&c, |f| {
            let page = reply("GET", &base, 200, None, String::new());
            if let Ok(u) = f.resolve(&page, &href) {
                prop_assert!(matches!(u.scheme(), "http" | "https"), "{} -> {}", href, u);
                prop_assert!(u.host_str().is_some_and(|h| !h.is_empty()), "{} -> {}", href, u);
            }
            let form = Form { action: Some(href.clone()), hidden: vec![] };
            if let Ok(u) = f.form_target(&page, &form) {
                prop_assert!(matches!(u.scheme(), "http" | "https"), "{} -> {}", href, u);
            }
            let redirect = reply("GET", &base, status, Some(href.clone()), String::new());
            if let Ok(u) = f.redirect_target(&redirect) {
                prop_assert!(matches!(u.scheme(), "http" | "https"), "{} -> {}", href, u);
            }
            Ok(())
        })?;
    }

    /// A 307/308 answer to a form post is never followed, wherever it points:
    /// following it would post the credentials again.
    #[test]
    fn a_post_is_never_repeated_by_a_redirect(base in page_url(), href in href(), status in 307u16..309) {
        let c = cfg("local");
        with_flow(&c, |f| {
            let r = reply("POST", &base, status, Some(href), String::new());
            prop_assert!(f.redirect_target(&r).is_err());
            Ok(())
        })?;
    }

    /// The credentials are only ever posted to the password form page's own origin,
    /// whatever the form's action says.
    #[test]
    fn credentials_stay_on_the_forms_origin(base in page_url(), action in href(), status in select(&[200u16, 401][..])) {
        let c = cfg("local");
        let html_action = action.replace('&', "&amp;").replace('"', "&quot;");
        let page = format!(r#"<form method="post" action="{html_action}"><input name="login">
            <input name="password" type="password"><input type="hidden" name="req" value="r"></form>"#);
        with_flow(&c, |f| {
            let r = reply("GET", &base, status, None, page.clone());
            if let Ok(Some(Next::PostCredentials(target, _))) = f.on_page(&r, None) {
                prop_assert_eq!(target.origin(), base.origin(), "action {:?}", action);
                prop_assert!(matches!(target.scheme(), "http" | "https"));
            }
            Ok(())
        })?;
    }

    /// Dex's prefix is read back from its URLs, for any prefix and connector id
    /// (but the id `auth`, which would make `<prefix>/auth/auth/login` ambiguous).
    #[test]
    fn dex_prefix_round_trips(
        // Segments that are not `.` or `..`, which the URL parser resolves away.
        prefix in prop::collection::vec("[a-z0-9][a-z0-9._~-]{0,7}|auth", 0..4),
        connector in "[A-Za-z0-9._~-]{1,16}".prop_filter("valid and not `auth`",
            |c| c != "auth" && c != "." && c != ".."),
        query in proptest::option::of("[a-z_]{1,8}=[a-z0-9]{0,6}"),
    ) {
        let prefix: String = prefix.iter().map(|s| format!("/{s}")).collect();
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        for path in [format!("{prefix}/auth"), format!("{prefix}/auth/{connector}"),
                     format!("{prefix}/auth/{connector}/login")] {
            let u = Url::parse(&format!("http://gw{path}{q}")).unwrap();
            prop_assert_eq!(dex_prefix(&u), Some(prefix.clone()), "{}", u);
        }
    }

    /// The connector shortcut goes to `<prefix>/auth/<connector>` with the
    /// authorization request's query, and the flow reads that connector back
    /// from it (so Dex's own redirect there is not refused).
    #[test]
    fn connector_shortcut_round_trips(
        prefix in prop::collection::vec("[a-z0-9][a-z0-9._~-]{0,7}", 0..3),
        connector in "[A-Za-z0-9._~-]{1,16}".prop_filter("valid", |c| c != "." && c != ".."),
        mut pairs in prop::collection::vec(("[a-z_]{1,8}", "[A-Za-z0-9/:%. -]{0,10}"), 0..4),
        base in page_url(),
    ) {
        let prefix: String = prefix.iter().map(|s| format!("/{s}")).collect();
        pairs.retain(|(k, _)| k != "connector_id");
        pairs.push(("client_id".into(), "kubeflow-oidc-authservice".into()));
        pairs.push(("response_type".into(), "code".into()));
        let mut target = base.join(&format!("{prefix}/auth")).unwrap();
        target.query_pairs_mut().extend_pairs(&pairs);
        prop_assert!(is_authorization_request(&target));
        let c = cfg(&connector);
        with_flow(&c, |f| {
            let short = f.connector_shortcut(&target).expect("a shortcut");
            prop_assert_eq!(short.path(), format!("{prefix}/auth/{connector}"));
            prop_assert_eq!(short.query(), target.query());
            prop_assert_eq!(short.origin(), target.origin());
            prop_assert!(f.is_dex(&short));
            prop_assert_eq!(f.connector_of(&short), Some(connector.clone()));
            prop_assert!(f.check_connector_redirect(&short).is_ok());
            prop_assert_eq!(crate::page::connector_id_of(short.as_str()), Some(connector.clone()));
            prop_assert!(f.connector_shortcut(&target).is_none(), "tried once only");
            Ok(())
        })?;
    }

    /// An authorization request is one whose query names both `client_id` and
    /// `response_type`, in any order, encoded or not, among any other keys.
    #[test]
    fn authorization_requests_are_told_by_their_keys(
        others in prop::collection::vec(("[a-z_]{1,12}", "[a-z0-9]{0,6}"), 0..5)
            .prop_map(|v| v.into_iter().filter(|(k, _)| k != "client_id" && k != "response_type").collect::<Vec<_>>()),
        client in any::<bool>(), response in any::<bool>(), encoded in any::<bool>(),
    ) {
        let mut pairs = others;
        if client {
            pairs.insert(pairs.len() / 2, (if encoded { "client%5Fid" } else { "client_id" }.into(), "c".into()));
        }
        if response {
            pairs.push(("response_type".into(), "code".into()));
        }
        let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let u = Url::parse(&format!("http://gw/dex/auth?{}", q.join("&"))).unwrap();
        prop_assert_eq!(is_authorization_request(&u), client && response, "{}", u);
    }
}
