//! The API-answer classifier: is this a login (`detect::is_login_response`), or
//! the API's own RBAC denial (`detect::rbac_denial`)?
//!
//! Input: two bytes of status (mapped into 100..=599), one byte choosing the
//! Content-Type, then `location \n body` (no newline: no Location).
#![no_main]

use kfp_auth::detect::{is_login_response, rbac_denial};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/html; charset=utf-8"),
    Some("text/plain"),
    Some(" APPLICATION/JSON"),
    Some("application/jsonx"),
    Some(""),
];

fuzz_target!(|data: &[u8]| {
    let [hi, lo, ct, rest @ ..] = data else { return };
    let status = 100 + u16::from_be_bytes([*hi, *lo]) % 500;
    let content_type = CONTENT_TYPES[usize::from(*ct) % CONTENT_TYPES.len()];
    let (location, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (Some(String::from_utf8_lossy(&rest[..i]).into_owned()), &rest[i + 1..]),
        None => (None, rest),
    };

    let login = is_login_response(status, content_type, location.as_deref(), body);
    let is_json = content_type.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("application/json"));
    let is_html = content_type.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/html"));
    match status {
        401 => assert!(login),
        // Only an HTML page can be a login page.
        200..=299 if !is_html => assert!(!login),
        300..=399 if location.is_none() => assert!(!login),
        400..=599 if status != 401 && status != 403 => assert!(!login),
        _ => {}
    }

    if let Some(d) = rbac_denial(status, body) {
        assert_eq!(status, 403);
        assert!(d.message.contains("is not authorized"));
        for part in [&d.user, &d.namespace, &d.verb, &d.resource].into_iter().flatten() {
            assert!(d.message.contains(part.as_str()));
        }
        // A KFP denial is JSON with an object: never taken for a login when labelled JSON.
        if is_json && body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            assert!(!login);
        }
    }
});
