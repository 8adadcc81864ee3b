//! The session's cookies: `Set-Cookie` values stored in the jar as the login
//! stores them, the `Cookie` header `api_url` gets, the session's expiry, and
//! the JWT claims a bearer token's expiry is read from.
//!
//! Input lines: the first picks the callback URL and `api_url`, the others are
//! `Set-Cookie` values; the last line is also read as a JWT.
#![no_main]

use cookie_store::CookieStore;
use kfp_auth::http::{cookie_expiry, cookie_header, store_set_cookies};
use kfp_auth::token;
use libfuzzer_sys::fuzz_target;
use url::Url;

const URLS: &[&str] = &[
    "http://gw.example/oauth2/callback",
    "https://gw.example/oauth2/callback",
    "http://127.0.0.1:8080/authservice/oidc/callback",
    "https://kubeflow.example.com/dex/callback",
];
const API_URLS: &[&str] = &[
    "http://gw.example/pipeline",
    "https://gw.example/pipeline/apis/v2beta1/healthz",
    "http://127.0.0.1:8080/pipeline",
    "https://sub.kubeflow.example.com/",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let pick = lines
        .next()
        .map_or(0, |l| l.bytes().fold(0usize, |a, b| a.wrapping_add(usize::from(b))));
    let set_at = Url::parse(URLS[pick % URLS.len()]).unwrap();
    let api = Url::parse(API_URLS[(pick / URLS.len()) % API_URLS.len()]).unwrap();

    // What reqwest's `HeaderValue::to_str` lets through to the login: visible ASCII and tabs.
    let values: Vec<&str> = lines
        .filter(|l| l.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .collect();
    let mut jar = CookieStore::default();
    let names = store_set_cookies(&mut jar, &set_at, values.iter().copied());
    let header = cookie_header(&jar, &api);
    assert!(
        !header.contains(['\r', '\n']),
        "a header value never holds a line break"
    );
    let _ = cookie_expiry(&jar, &api, &names);
    // A second response over the first: no panic, nothing stale twice.
    let again = store_set_cookies(&mut jar, &api, values.iter().rev().copied());
    let _ = cookie_expiry(&jar, &api, &again);

    if let Some(last) = values.last() {
        let _ = token::claims(last);
    }
});
