//! What a server sent, as it may appear in messages and logs. URLs: origin and
//! path kept, query values hidden (OAuth `state`, `code`, Dex `req`/`hmac` are
//! bearer-like), user info dropped. Text: no terminal control characters.

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
        out.push_str(&text(&k));
        out.push('=');
        if SHOWN_KEYS.contains(&k.as_ref()) {
            out.push_str(&text(&v));
        } else {
            out.push('…');
        }
    }
    out
}

/// Text a server chose (a connector id, Dex's error message, a header value), safe
/// to print on a terminal: C0 and C1 control characters and DEL are dropped (an
/// ESC would start a control sequence, which can retitle the window, clear the
/// screen or fake output), and whitespace controls become a space.
pub fn text(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
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
    fn control_characters_are_dropped() {
        let hostile = "\u{1b}]0;OWNED-TITLE\u{7}\u{1b}[2J\u{9b}31mFAKE\u{7f}: ok\tdone\r\n";
        assert_eq!(text(hostile), "]0;OWNED-TITLE[2J31mFAKE: ok done  ");
        assert_eq!(text("Log in with Émail ✓"), "Log in with Émail ✓");
        let u = Url::parse("http://gw/dex/auth?client_id=%1B%5D0;x%07&%1B%5B2J=1").unwrap();
        let r = url(&u);
        assert!(!r.chars().any(char::is_control), "{r:?}");
    }

    #[test]
    fn no_query_no_question_mark() {
        let u = Url::parse("http://127.0.0.1:8080/pipeline").unwrap();
        assert_eq!(url(&u), "http://127.0.0.1:8080/pipeline");
    }
}
