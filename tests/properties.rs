//! Property tests on the public parsers: page classification, connector links,
//! the login detector, RBAC denials, URL redaction and the cookie jar helpers.
//! Each property is one that a plausible change could break; the flow's own
//! URL decisions are checked in `src/flow/props.rs`.

use std::time::{Duration, SystemTime};

use cookie_store::CookieStore;
use kfp_auth::detect::{is_login_response, rbac_denial};
use kfp_auth::http::{cookie_expiry, cookie_header, store_set_cookies};
use kfp_auth::page::{self, Page};
use kfp_auth::redact;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::sample::select;
use url::Url;

/// Pages in the shapes the login meets, to mutate.
const SEEDS: &[&str] = &[
    r#"<form method="post" action="/dex/auth/local/login?back=&amp;state=s"><input name="login"><input name="password" type="password"></form>"#,
    r#"<form method="post"><input type="hidden" name="req" value="r"/><input type="hidden" name="approval" value="approve"></form>"#,
    r#"<a href="/dex/auth/local?client_id=c&amp;state=s">x</a><a href="/dex/auth/ldap?client_id=c">y</a>"#,
    r#"<form method="GET" action="/oauth2/start"><input type="hidden" name="rd" value="/pipeline"></form>"#,
    r#"<p class="dex-error-box">Requested resource does not exist.</p>"#,
    r#"{"experiments":[],"total_size":0}"#,
];

/// A seed page with a few bytes spliced in, removed or replaced.
fn mutated_page() -> impl Strategy<Value = String> {
    (select(SEEDS), any::<prop::sample::Index>(), 0usize..20, ".{0,20}").prop_map(|(seed, at, cut, insert)| {
        let chars: Vec<char> = seed.chars().collect();
        let i = at.index(chars.len() + 1);
        let j = (i + cut).min(chars.len());
        chars[..i]
            .iter()
            .chain(insert.chars().collect::<Vec<_>>().iter())
            .chain(chars[j..].iter())
            .collect()
    })
}

/// `name` in a random ASCII case: HTML tag and attribute names are case-insensitive.
fn any_case(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

/// Whitespace between attributes, as a template or a hand-written page may have it.
fn gap() -> impl Strategy<Value = String> {
    prop::collection::vec(select(&[" ", "  ", "\t", "\n", "\r\n", "\x0c"][..]), 1..3).prop_map(|v| v.concat())
}

/// `name=value` with the value in double, single or no quotes (the last only when it may be).
fn attr(name: &'static str, value: String) -> impl Strategy<Value = String> {
    (any_case(name), 0..3u8, gap(), gap()).prop_map(move |(n, quote, g1, g2)| {
        let bare_ok = !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || "\"'=<>`".contains(c));
        match quote {
            0 => format!("{n}=\"{value}\""),
            1 if !value.contains('\'') => format!("{n}{g1}={g2}'{value}'"),
            2 if bare_ok => format!("{n}={value}"),
            _ => format!("{n}=\"{value}\""),
        }
    })
}

/// A tag with its attributes in any order and case, spaced any way.
fn tag(name: &'static str, attrs: Vec<BoxedStrategy<String>>, self_close: bool) -> impl Strategy<Value = String> {
    (any_case(name), attrs, gap(), any::<bool>())
        .prop_flat_map(|(n, attrs, g, slash)| (Just((n, g, slash)), Just(attrs).prop_shuffle()))
        .prop_map(move |((n, g, slash), attrs)| {
            // A space before `/>`: `<input name=login/>` makes the value `login/`, as in a browser.
            let end = if self_close && slash { " />" } else { ">" };
            format!("<{n}{g}{}{end}", attrs.join(" "))
        })
}

/// A relative or same-host action path in Dex's shape, with an entity-encoded `&`.
fn action_path() -> impl Strategy<Value = (String, String)> {
    ("[a-z]{1,8}", "[a-z0-9_-]{1,12}", "[A-Za-z0-9]{0,12}").prop_map(|(prefix, conn, state)| {
        let raw = format!("/{prefix}/auth/{conn}/login?back=&state={state}");
        (raw.replace('&', "&amp;"), raw)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any text classifies without panicking, and the same text the same way.
    #[test]
    fn classify_is_total_and_deterministic(html in prop_oneof![".{0,300}", mutated_page()]) {
        let first = page::classify(&html);
        prop_assert_eq!(&first, &page::classify(&html));
        match first {
            Page::Connectors(links) => {
                prop_assert!(!links.is_empty());
                for (i, l) in links.iter().enumerate() {
                    prop_assert!(!l.id.is_empty());
                    prop_assert_eq!(page::connector_id_of(&l.href), Some(l.id.clone()));
                    prop_assert!(links[..i].iter().all(|o| o.id != l.id), "connector ids are unique");
                }
            }
            Page::DexError(msg) => prop_assert!(msg.chars().count() <= 300 && msg.trim() == msg),
            Page::Password { form, .. } | Page::Approval { form } | Page::ProxySignIn { form } => {
                prop_assert!(form.action.as_deref().is_none_or(|a| !a.is_empty() && a.trim() == a));
            }
            Page::Other | Page::TooComplex => {}
        }
    }

    /// Dex's password form is found, with its action and hidden fields, whatever
    /// the attribute order, the tag and attribute case, the quoting and spacing.
    #[test]
    fn password_form_found_whatever_the_markup(
        (action, form_tag) in action_path().prop_flat_map(|(html_action, action)| {
            (Just(action), tag("form", vec![attr("method", "post".into()).boxed(),
                                            attr("action", html_action).boxed(),
                                            attr("class", "theme-form".into()).boxed()], false))
        }),
        hidden_value in "[A-Za-z0-9]{0,10}",
        login in tag("input", vec![attr("name", "login".into()).boxed(), attr("type", "text".into()).boxed(),
                                   attr("id", "login".into()).boxed()], true),
        password in tag("input", vec![attr("name", "password".into()).boxed(),
                                      attr("type", "password".into()).boxed()], true),
        hidden_type in any_case("hidden"),
        password_first in any::<bool>(),
        wrapped in any::<bool>(),
    ) {
        let hidden = format!(r#"<input type="{hidden_type}" name="back" value="{hidden_value}">"#);
        let fields = if password_first { format!("{password}{hidden}{login}") } else { format!("{login}{hidden}{password}") };
        let mut html = format!("{form_tag}{fields}<button type=submit>Login</button></form>");
        if wrapped {
            html = format!("<!DOCTYPE html><html><head><title>dex</title></head><body><div>{html}</div></body></html>");
        }
        let Page::Password { form, unfillable, forms } = page::classify(&html) else {
            return Err(TestCaseError::fail(format!("not a password page: {html}")));
        };
        prop_assert_eq!(form.action.as_deref(), Some(action.as_str()), "{}", html);
        prop_assert_eq!(form.hidden, vec![("back".to_owned(), hidden_value)]);
        // Only login, password, a hidden field and a button: nothing it cannot fill, one form.
        prop_assert!(unfillable.is_empty(), "{:?} in {}", unfillable, html);
        prop_assert_eq!(forms, 1);
    }

    /// The approval screen's grant form is picked whichever of its two forms comes first.
    #[test]
    fn approval_grants_whatever_the_form_order(req in "[a-z0-9]{1,26}", grant_first in any::<bool>(),
                                               ty in any_case("hidden")) {
        let form = |v: &str| format!(r#"<form method="post"><input type="{ty}" name="req" value="{req}"/>
            <input type="{ty}" name="approval" value="{v}"><button>{v}</button></form>"#);
        let (grant, reject) = (form("approve"), form("rejected"));
        let html = if grant_first { grant + &reject } else { reject + &grant };
        let Page::Approval { form } = page::classify(&html) else {
            return Err(TestCaseError::fail("not an approval page"));
        };
        prop_assert_eq!(form.hidden, vec![("req".to_owned(), req), ("approval".to_owned(), "approve".to_owned())]);
    }

    /// Connector ids are read back from the selection page's links, in order,
    /// each once, percent-decoded, whatever Dex's prefix.
    #[test]
    fn connector_links_round_trip(
        prefix in prop::collection::vec("[a-z0-9._~-]{1,8}", 0..3),
        ids in prop::collection::vec("[A-Za-z0-9._~-]{1,12}", 1..5),
        query in "[a-z=&]{0,12}",
    ) {
        let prefix: String = prefix.iter().map(|s| format!("/{s}")).collect();
        let html: String = ids.iter().map(|id| {
            format!(r#"<a href="{prefix}/auth/{}?{}">{id}</a>"#, utf8_percent_encode(id, NON_ALPHANUMERIC),
                    query.replace('&', "&amp;"))
        }).collect();
        let mut want: Vec<&String> = Vec::new();
        for id in &ids {
            if !want.contains(&id) {
                want.push(id);
            }
        }
        match page::classify(&html) {
            Page::Connectors(links) => {
                let got: Vec<&String> = links.iter().map(|l| &l.id).collect();
                prop_assert_eq!(got, want);
            }
            other => return Err(TestCaseError::fail(format!("{other:?} for {html}"))),
        }
    }

    /// `connector_id_of` decodes any id, percent-encoded into one path segment, and
    /// drops its control characters (ids are shown): none is left, nothing else is lost.
    #[test]
    fn connector_id_of_decodes_any_id(id in ".{1,20}", base in select(&["", "/dex", "http://gw:8080/dex", "https://h/a/b"][..]),
                                      tail in select(&["", "?client_id=c&state=s", "#frag", "?a=/auth/x"][..])) {
        let href = format!("{base}/auth/{}{tail}", utf8_percent_encode(&id, NON_ALPHANUMERIC));
        let shown = redact::text(&id);
        prop_assert_eq!(page::connector_id_of(&href), Some(shown.clone()).filter(|s| !s.is_empty()));
        prop_assert!(!shown.chars().any(char::is_control));
        let kept = id.chars().filter(|c| !c.is_control() || "\t\n\r\u{b}\u{c}".contains(*c)).count();
        prop_assert_eq!(shown.chars().count(), kept);
    }

    /// kfp's JSON answers, 2xx, are never mistaken for a login, whatever their body.
    #[test]
    fn json_2xx_is_never_a_login(
        status in 200u16..300,
        ct in select(&["application/json", "application/json; charset=utf-8", "Application/JSON", " application/json"][..]),
        body in prop_oneof![any::<Vec<u8>>(), mutated_page().prop_map(String::into_bytes)],
        location in proptest::option::of("/oauth2/start|/dex/auth|.{0,20}"),
    ) {
        prop_assert!(!is_login_response(status, Some(ct), location.as_deref(), &body));
    }

    /// A 401 always asks for a login; a 403 whose JSON body is an object never does.
    #[test]
    fn status_rules(body in any::<Vec<u8>>(), ct in proptest::option::of(".{0,30}"), ws in "[ \t\r\n]{0,3}",
                    obj in "[ -~]{0,40}") {
        prop_assert!(is_login_response(401, ct.as_deref(), None, &body));
        let json_object = format!("{ws}{{{obj}");
        prop_assert!(!is_login_response(403, Some("application/json"), None, json_object.as_bytes()));
    }

    /// What comes after a redirect's path (its query or fragment) does not make it a login redirect.
    #[test]
    fn login_redirects_are_told_by_their_path_only(
        path in prop::collection::vec("[a-z0-9_-]{1,10}", 0..4)
            .prop_filter("no login path", |p| !p.iter().any(|s| s == "auth" || s == "start" || s == "sign_in")),
        status in prop_oneof![Just(301u16), Just(302), Just(303), Just(307), Just(308)],
        tail in select(&["?next=/oauth2/start", "?rd=/dex/auth/local", "#/auth/x", "#/oauth2/sign_in", "?a=b#/dex/auth"][..]),
    ) {
        let location = format!("/{}{tail}", path.join("/"));
        prop_assert!(!is_login_response(status, Some("text/html"), Some(&location), b""), "{}", location);
        let login = format!("/oauth2/start{tail}");
        prop_assert!(is_login_response(status, Some("text/html"), Some(&login), b""), "{}", login);
    }

    /// An RBAC denial is only read from a 403, says "is not authorized", and every
    /// part it names comes from the API's message.
    #[test]
    fn rbac_denial_parts_come_from_the_message(status in 400u16..500, body in prop_oneof![
        any::<Vec<u8>>(),
        ".{0,60}".prop_map(|m| serde_json::json!({"error": format!("User '{m}' is not authorized {m}")}).to_string().into_bytes()),
    ]) {
        if let Some(d) = rbac_denial(status, &body) {
            prop_assert_eq!(status, 403);
            prop_assert!(d.message.contains("is not authorized"));
            for part in [&d.user, &d.namespace, &d.verb, &d.resource].into_iter().flatten() {
                prop_assert!(d.message.contains(part.as_str()));
            }
        }
    }

    /// KFP's denial message, for any user, namespace, verb and resource, is read back.
    #[test]
    fn rbac_denial_round_trips(user in "[a-z0-9._@+-]{1,30}", ns in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
                               verb in select(&["get", "list", "create", "delete", "update"][..]),
                               resource in "[a-z]{1,12}", key in select(&["error", "message"][..])) {
        let message = format!("Failed to authorize with API: User '{user}' is not authorized with reason: \
            (request: &ResourceAttributes{{Namespace:{ns},Verb:{verb},Group:pipelines.kubeflow.org,\
            Version:v1beta1,Resource:{resource},Subresource:,Name:,}})");
        let body = serde_json::json!({ key: message, "code": 7 }).to_string();
        let d = rbac_denial(403, body.as_bytes()).expect("a denial");
        prop_assert_eq!(d.user.as_deref(), Some(user.as_str()));
        prop_assert_eq!(d.namespace.as_deref(), Some(ns.as_str()));
        prop_assert_eq!(d.verb.as_deref(), Some(verb));
        prop_assert_eq!(d.resource.as_deref(), Some(resource.as_str()));
    }

    /// No query value outside the shown keys, and no user info, survives redaction,
    /// however the query is encoded.
    #[test]
    fn redacted_urls_hold_no_query_value_nor_userinfo(
        scheme in select(&["http", "https"][..]),
        host in "[a-z]{1,10}(\\.[a-z]{1,5})?",
        port in proptest::option::of(1u16..),
        path in "(/[a-z0-9._~-]{0,8}){0,4}",
        pairs in prop::collection::vec(("[a-z_]{1,10}", "SECRET[A-Z0-9]{4,12}"), 0..6),
        raw_tail in select(&["", "&", "&&", "&=SECRETEMPTYKEY", "&a=1;b=SECRETSEMI", "&c=SECRETEQ=x"][..]),
        user in proptest::option::of(("USER[A-Z]{3}", "PASS[A-Z]{3}")),
        encode in any::<bool>(),
        fragment in proptest::option::of("FRAG[A-Z]{3}"),
    ) {
        let shown = ["client_id", "connector_id", "response_type", "scope", "redirect_uri",
                     "code_challenge_method", "approval_prompt", "prompt"];
        let query: String = if encode {
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish()
        } else {
            pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
        };
        let userinfo = user.as_ref().map(|(u, p)| format!("{u}:{p}@")).unwrap_or_default();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let frag = fragment.as_ref().map(|f| format!("#{f}")).unwrap_or_default();
        let raw = format!("{scheme}://{userinfo}{host}{port}{path}?{query}{raw_tail}{frag}");
        let u = Url::parse(&raw).unwrap();
        let r = redact::url(&u);
        for (k, v) in &pairs {
            if !shown.contains(&k.as_str()) {
                prop_assert!(!r.contains(v.as_str()), "{} leaks {}", r, v);
            }
        }
        // Keys are shown by design (a bare `&key` too); what follows the first `=` is a value.
        prop_assert!(!r.contains("SECRETEMPTYKEY") && !r.contains("SECRETSEMI") && !r.contains("SECRETEQ"), "{}", r);
        prop_assert!(!r.contains("USER") && !r.contains("PASS") && !r.contains("FRAG"), "{}", r);
        prop_assert!(r.starts_with(&redact::origin(&u)));
    }

    /// The `Cookie` header for `api_url` holds exactly the cookies whose path
    /// matches it (and Secure only over https), longer paths first.
    #[test]
    fn cookie_header_sends_matching_cookies_only(
        https in any::<bool>(),
        api_path in select(&["/", "/pipeline", "/pipeline/apis/v2beta1/healthz", "/pipelinex"][..]),
        cookies in prop::collection::vec(("[a-z]{1,6}", "[A-Za-z0-9]{1,8}",
                                          select(&["/", "/pipeline", "/pipeline/apis", "/other", "/oauth2"][..]),
                                          any::<bool>()), 0..6),
    ) {
        let scheme = if https { "https" } else { "http" };
        let set_at = Url::parse(&format!("{scheme}://gw.example/oauth2/callback")).unwrap();
        let api = Url::parse(&format!("{scheme}://gw.example{api_path}")).unwrap();
        let mut jar = CookieStore::default();
        let lines: Vec<String> = cookies.iter().map(|(n, v, p, secure)| {
            format!("{n}={v}; Path={p}{}", if *secure { "; Secure" } else { "" })
        }).collect();
        let names = store_set_cookies(&mut jar, &set_at, lines.iter().map(String::as_str));
        prop_assert_eq!(names.len(), cookies.len());
        let header = cookie_header(&jar, &api);
        let sent: Vec<(&str, &str)> = if header.is_empty() { vec![] } else {
            header.split("; ").map(|kv| kv.split_once('=').unwrap()).collect()
        };
        // The last cookie of a (name, path) pair wins; it is sent iff its path matches and Secure allows.
        let path_matches = |p: &str| p == "/" || api_path == p || api_path.starts_with(&format!("{p}/"));
        for (i, (n, v, p, secure)) in cookies.iter().enumerate() {
            let latest = !cookies[i + 1..].iter().any(|(n2, _, p2, _)| n2 == n && p2 == p);
            let expect = latest && path_matches(p) && (https || !secure);
            prop_assert_eq!(sent.contains(&(n.as_str(), v.as_str())), expect, "{} {:?}", header, cookies);
        }
        // Longer paths first.
        let path_len = |name: &str, value: &str| cookies.iter().rev()
            .find(|(n, v, ..)| n == name && v == value).map(|(_, _, p, _)| p.len()).unwrap();
        for w in sent.windows(2) {
            prop_assert!(path_len(w[0].0, w[0].1) >= path_len(w[1].0, w[1].1), "{}", header);
        }
    }

    /// The session's expiry is the earliest Max-Age among the named cookies.
    #[test]
    fn cookie_expiry_is_the_earliest_named_max_age(ages in prop::collection::vec(1u32..10_000_000, 1..5),
                                                   unnamed_age in 1u32..10) {
        let url = Url::parse("http://gw/pipeline").unwrap();
        let mut jar = CookieStore::default();
        let mut lines: Vec<String> = ages.iter().enumerate().map(|(i, a)| format!("s{i}=v; Path=/; Max-Age={a}")).collect();
        lines.push(format!("csrf=v; Path=/; Max-Age={unnamed_age}"));
        let before = SystemTime::now();
        let names = store_set_cookies(&mut jar, &url, lines.iter().map(String::as_str));
        let session: Vec<String> = names.into_iter().filter(|n| n != "csrf").collect();
        let got = cookie_expiry(&jar, &url, &session).expect("an expiry");
        let want = before + Duration::from_secs(u64::from(*ages.iter().min().unwrap()));
        let skew = got.duration_since(want).unwrap_or_else(|e| e.duration());
        prop_assert!(skew <= Duration::from_secs(2), "{:?} vs {:?}", got, want);
    }
}
