//! URLs as they may appear in messages and logs: origin and path kept, query
//! values hidden (OAuth `state`, `code`, Dex `req`/`hmac` are bearer-like), user
//! info dropped.

use url::Url;

/// Query keys whose values carry no secret and help a reader follow the flow.
const SHOWN_KEYS: &[&str] = &[
    "client_id",
    "connector_id",
    "response_type",
    "scope",
    "redirect_uri",
    "code_challenge_method",
    "approval_prompt",
    "prompt",
];

/// `scheme://host[:port]/path?k=…` with every value outside [`SHOWN_KEYS`] replaced by `…`.
pub fn url(u: &Url) -> String {
    let mut out = format!("{}{}", origin(u), u.path());
    let mut sep = '?';
    for (k, v) in u.query_pairs() {
        out.push(sep);
        sep = '&';
        out.push_str(&k);
        out.push('=');
        if SHOWN_KEYS.contains(&k.as_ref()) {
            out.push_str(&v);
        } else {
            out.push('…');
        }
    }
    out
}

/// `scheme://host[:port]`, without user info.
pub fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_secret_values_and_userinfo() {
        let u =
            Url::parse("https://bob:hunter2@gw.example:8443/dex/approval?req=abc&hmac=SECRET&client_id=kf").unwrap();
        let r = url(&u);
        assert_eq!(r, "https://gw.example:8443/dex/approval?req=…&hmac=…&client_id=kf");
        assert!(!r.contains("hunter2") && !r.contains("SECRET") && !r.contains("bob"));
    }

    #[test]
    fn no_query_no_question_mark() {
        let u = Url::parse("http://127.0.0.1:8080/pipeline").unwrap();
        assert_eq!(url(&u), "http://127.0.0.1:8080/pipeline");
    }
}
