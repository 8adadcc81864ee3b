//! The HTML side of a login: page classification, the forms and connector
//! links read from it, and the login detector's 2xx path that classifies too.
#![no_main]

use kfp_auth::detect::is_login_response;
use kfp_auth::page::{self, Page};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let first = page::classify(&html);
    match &first {
        Page::Connectors(links) => {
            assert!(!links.is_empty());
            for (i, l) in links.iter().enumerate() {
                assert_eq!(page::connector_id_of(&l.href).as_ref(), Some(&l.id));
                assert!(links[..i].iter().all(|o| o.id != l.id), "duplicate connector");
            }
        }
        Page::DexError(msg) => assert!(msg.chars().count() <= 300),
        Page::Password { form, .. } | Page::Approval { form } | Page::ProxySignIn { form } => {
            assert!(form.action.as_deref().is_none_or(|a| !a.is_empty() && a.trim() == a));
        }
        Page::Other | Page::TooComplex => {}
    }
    let login = is_login_response(200, Some("text/html"), None, data);
    let a_login_page = !matches!(first, Page::Other | Page::DexError(_) | Page::TooComplex);
    assert_eq!(login, data.len() <= page::MAX_PAGE_BYTES && a_login_page);
    // Each whitespace-separated word as a link.
    for word in html.split_whitespace().take(64) {
        if let Some(id) = page::connector_id_of(word) {
            assert!(!id.is_empty());
        }
    }
});
