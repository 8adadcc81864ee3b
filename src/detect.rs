//! Telling an API answer that means "your session is gone" from one that is
//! the API's own (an RBAC denial, a validation error, data).

use crate::page::{self, Page};
use crate::redact;

/// Whether a KFP API response is the gateway asking for a login.
///
/// - 401: oauth2-proxy's `{}` on its api_routes, or oidc-authservice's refusal.
/// - 403 that is not a JSON error body: oauth2-proxy's sign-in page, or Istio's
///   `RBAC: access denied` when the request carries no identity. A 403 with a
///   JSON body is the KFP API's own RBAC denial, which a login does not change.
/// - 3xx to a login: urllib3 follows redirects, but a client that does not
///   sees the redirect itself.
/// - A 2xx login page (Dex's or oauth2-proxy's) where JSON was expected: what
///   kfp would otherwise parse into an empty answer. Only an HTML body no larger
///   than a page is read ([`page::MAX_PAGE_BYTES`]): every API answer comes here,
///   and a login page is both.
pub fn is_login_response(status: u16, content_type: Option<&str>, location: Option<&str>, body: &[u8]) -> bool {
    let mime = content_type.map(|c| c.trim_start().to_ascii_lowercase());
    let is = |m: &str| mime.as_deref().is_some_and(|c| c.starts_with(m));
    match status {
        401 => true,
        403 => !(is("application/json") && looks_like_json_object(body)),
        300..=399 => location.is_some_and(|l| is_login_path(l.split(['?', '#']).next().unwrap_or(l))),
        200..=299 if (is("text/html") || is("application/xhtml+xml")) && body.len() <= page::MAX_PAGE_BYTES => {
            !matches!(
                page::classify(&String::from_utf8_lossy(body)),
                Page::Other | Page::DexError(_) | Page::TooComplex
            )
        }
        _ => false,
    }
}

/// Whether a URL path is one of the login's: oauth2-proxy's start and sign-in, or
/// Dex's authorization endpoint and what is under it (`…/auth`, `…/auth/<connector>…`).
/// The path only: a query or fragment (`/pipeline/#/auth/…`) names no login.
pub fn is_login_path(path: &str) -> bool {
    path.ends_with("/oauth2/start")
        || path.ends_with("/oauth2/sign_in")
        || path.ends_with("/auth")
        || path.contains("/auth/")
}

/// What an RBAC denial from the KFP API says: who was denied what, where.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Denial {
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub verb: Option<String>,
    pub resource: Option<String>,
    /// The API's own message.
    pub message: String,
}

/// Read a KFP API 403 denial, e.g. `User 'u' is not authorized with reason: …
/// (request: &ResourceAttributes{Namespace:ns,Verb:list,…,Resource:runs,…})`.
/// `None` when the answer is not such a denial.
pub fn rbac_denial(status: u16, body: &[u8]) -> Option<Denial> {
    if status != 403 {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    // Shown in an exception: no control characters from the server.
    let message = redact::text(
        ["error", "message"]
            .iter()
            .filter_map(|k| json.get(k)?.as_str())
            .find(|m| m.contains("is not authorized"))?,
    );
    let user = message
        .split_once("User '")
        .and_then(|(_, rest)| rest.split_once("' is not authorized"))
        .map(|(u, _)| u.to_owned());
    let attrs = message
        .split_once("ResourceAttributes{")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map_or("", |(a, _)| a);
    let attr = |name: &str| {
        attrs
            .split(',')
            .filter_map(|kv| kv.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    Some(Denial {
        user,
        namespace: attr("Namespace"),
        verb: attr("Verb"),
        resource: attr("Resource"),
        message,
    })
}

fn looks_like_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const HTML: Option<&str> = Some("text/html; charset=utf-8");

    #[test]
    fn reads_who_was_denied_what_where() {
        let body = br#"{"error":"Failed to authorize with API: User 'a@b.c' is not authorized with reason: (request: &ResourceAttributes{Namespace:team-x,Verb:list,Group:pipelines.kubeflow.org,Version:v1beta1,Resource:runs,Subresource:,Name:,})","code":7}"#;
        let d = rbac_denial(403, body).unwrap();
        assert_eq!(d.user.as_deref(), Some("a@b.c"));
        assert_eq!(d.namespace.as_deref(), Some("team-x"));
        assert_eq!(d.verb.as_deref(), Some("list"));
        assert_eq!(d.resource.as_deref(), Some("runs"));
        // Without the attributes, the denial is still recognised.
        let d = rbac_denial(403, br#"{"message":"User 'o'brien' is not authorized"}"#).unwrap();
        assert_eq!((d.user.as_deref(), d.namespace), (Some("o'brien"), None));
        for (status, body) in [
            (401, &body[..]),
            (403, b"{}".as_slice()),
            (403, b"<html>is not authorized</html>".as_slice()),
        ] {
            assert!(rbac_denial(status, body).is_none());
        }
    }

    #[test]
    fn gateway_refusals_need_a_login() {
        assert!(is_login_response(401, JSON, None, b"{}"));
        assert!(is_login_response(401, None, None, b""));
        let sign_in = br#"<form method="GET" action="/oauth2/start"><input type="hidden" name="rd" value="/"></form>"#;
        assert!(is_login_response(403, HTML, None, sign_in));
        assert!(is_login_response(403, Some("text/plain"), None, b"RBAC: access denied"));
        assert!(is_login_response(302, HTML, Some("/oauth2/start?rd=%2F"), b""));
        assert!(is_login_response(
            302,
            HTML,
            Some("http://gw/dex/auth?client_id=x"),
            b""
        ));
    }

    #[test]
    fn login_pages_where_json_was_expected_need_a_login() {
        let form = br#"<form method="post" action="/dex/auth/local/login?state=s"><input name="login"><input name="password"></form>"#;
        assert!(is_login_response(200, HTML, None, form));
        assert!(!is_login_response(200, HTML, None, b"<html>Kubeflow Pipelines</html>"));
    }

    #[test]
    fn only_html_bodies_no_larger_than_a_page_are_read() {
        let form = br#"<form method="post" action="/dex/auth/local/login?state=s"><input name="login"><input name="password"></form>"#;
        assert!(is_login_response(200, Some("application/xhtml+xml"), None, form));
        for ct in [
            None,
            Some("text/plain"),
            Some("application/octet-stream"),
            Some("application/yaml"),
        ] {
            assert!(!is_login_response(200, ct, None, form), "{ct:?}");
        }
        let mut big = form.to_vec();
        big.resize(page::MAX_PAGE_BYTES + 1, b' ');
        assert!(!is_login_response(200, HTML, None, &big));
        // A page built to be expensive is not read to its end, and is not a login page.
        let deep = "<div>".repeat(200_000);
        assert!(!is_login_response(
            200,
            HTML,
            None,
            &deep.as_bytes()[..page::MAX_PAGE_BYTES]
        ));
    }

    #[test]
    fn the_apis_own_answers_do_not() {
        let rbac = br#"{"error":"User 'a' is not authorized","code":7,"message":"...","details":[]}"#;
        assert!(!is_login_response(403, JSON, None, rbac));
        assert!(!is_login_response(200, JSON, None, b"{\"experiments\":[]}"));
        assert!(!is_login_response(404, JSON, None, b"{\"code\":5}"));
        assert!(!is_login_response(500, HTML, None, b"<html>oops</html>"));
        assert!(!is_login_response(302, HTML, Some("/pipeline/"), b""));
        assert!(!is_login_response(302, HTML, Some("/pipeline/authors"), b""));
    }

    // Found by the property tests: a fragment was read as part of the path.
    #[test]
    fn a_redirect_whose_fragment_mentions_auth_is_not_a_login() {
        for l in ["/pipeline/#/auth/x", "/#/oauth2/start", "/p?a=b#/dex/auth"] {
            assert!(!is_login_response(302, HTML, Some(l), b""), "{l}");
        }
        assert!(is_login_response(302, HTML, Some("/oauth2/start#x"), b""));
    }
}
