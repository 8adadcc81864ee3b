//! Reading the HTML pages of a Kubeflow login: what kind of page it is, and
//! the one form or link the flow needs from it. Parsing is html5ever's, via scraper.

use scraper::{ElementRef, Html, Selector};
use std::sync::LazyLock;

/// An HTML form as the flow submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// The raw `action` attribute; `None` when absent or empty (submit to the page's URL).
    pub action: Option<String>,
    /// Name/value pairs of its hidden inputs, in document order.
    pub hidden: Vec<(String, String)>,
}

/// A Dex connector on the selection page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorLink {
    pub id: String,
    pub href: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Dex's password form (fields `login` and `password`). `unfillable` names the form's other
    /// fields a user would type into (a one-time code, say), which kfp-auth cannot fill;
    /// `forms` counts the password forms on the page (Dex shows one).
    Password {
        form: Form,
        unfillable: Vec<String>,
        forms: usize,
    },
    /// Dex's approval screen; `form` is the one that grants access.
    Approval { form: Form },
    /// Dex's connector selection page.
    Connectors(Vec<ConnectorLink>),
    /// oauth2-proxy's sign-in page: a form that GETs `<prefix>/start` with hidden `rd`.
    ProxySignIn { form: Form },
    /// Dex's error page, with its message.
    DexError(String),
    /// Anything else (a KFP UI page, JSON, an unknown login page).
    Other,
}

macro_rules! sel {
    ($name:ident, $css:expr) => {
        static $name: LazyLock<Selector> = LazyLock::new(|| Selector::parse($css).expect("static selector"));
    };
}
sel!(FORM, "form");
sel!(INPUT, "input");
sel!(FIELD, "input, select, textarea");
sel!(PASSWORD_INPUT, r#"input[name="password"]"#);
sel!(LOGIN_INPUT, r#"input[name="login"]"#);
sel!(LINK, "a[href]");
sel!(DEX_ERROR, ".dex-error-box");

pub fn classify(html: &str) -> Page {
    let doc = Html::parse_document(html);

    let is_password_form =
        |f: &ElementRef<'_>| f.select(&PASSWORD_INPUT).next().is_some() && f.select(&LOGIN_INPUT).next().is_some();
    let mut password_forms = doc.select(&FORM).filter(is_password_form);
    if let Some(form) = password_forms.next() {
        return Page::Password {
            form: read_form(form),
            unfillable: unfillable_fields(form),
            forms: 1 + password_forms.count(),
        };
    }
    for form in doc.select(&FORM) {
        let f = read_form(form);
        let has = |k: &str, v: Option<&str>| f.hidden.iter().any(|(n, val)| n == k && v.is_none_or(|v| v == val));
        if has("req", None) && has("approval", Some("approve")) {
            return Page::Approval { form: f };
        }
    }
    for form in doc.select(&FORM) {
        let f = read_form(form);
        let action_is_start = f
            .action
            .as_deref()
            .is_some_and(|a| a.split(['?', '#']).next().unwrap_or("").ends_with("/start"));
        if action_is_start && f.hidden.iter().any(|(n, _)| n == "rd") {
            return Page::ProxySignIn { form: f };
        }
    }
    let links = connector_links(&doc);
    if !links.is_empty() {
        return Page::Connectors(links);
    }
    if let Some(e) = doc.select(&DEX_ERROR).next() {
        return Page::DexError(squash(&e.text().collect::<String>()));
    }
    Page::Other
}

fn read_form(form: ElementRef<'_>) -> Form {
    let action = form
        .value()
        .attr("action")
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    let hidden = form
        .select(&INPUT)
        .filter(|i| i.value().attr("type").is_some_and(|t| t.eq_ignore_ascii_case("hidden")))
        .filter_map(|i| {
            let name = i.value().attr("name")?;
            Some((name.to_owned(), i.value().attr("value").unwrap_or("").to_owned()))
        })
        .collect();
    Form { action, hidden }
}

/// Named fields a user would fill in, other than `login` and `password`: what a
/// browser's user would type (buttons, check boxes and hidden fields are not).
fn unfillable_fields(form: ElementRef<'_>) -> Vec<String> {
    form.select(&FIELD)
        .filter(|f| {
            let kind = f.value().attr("type").unwrap_or("text").to_ascii_lowercase();
            f.value().name() != "input"
                || !matches!(
                    kind.as_str(),
                    "hidden" | "submit" | "button" | "reset" | "image" | "checkbox" | "radio"
                )
        })
        .filter_map(|f| f.value().attr("name"))
        .filter(|n| !n.is_empty() && *n != "login" && *n != "password")
        // Names come from the page: shown in an error, so kept short.
        .map(|n| n.chars().take(40).collect())
        .collect()
}

/// Links whose path ends in `/auth/<id>`: Dex's connector buttons.
fn connector_links(doc: &Html) -> Vec<ConnectorLink> {
    let mut out: Vec<ConnectorLink> = Vec::new();
    for a in doc.select(&LINK) {
        let href = a.value().attr("href").unwrap_or("");
        if let Some(id) = connector_id_of(href)
            && !out.iter().any(|l| l.id == id)
        {
            out.push(ConnectorLink {
                id,
                href: href.to_owned(),
            });
        }
    }
    out
}

/// `…/auth/<id>[?…]` → `<id>`, percent-decoded.
pub fn connector_id_of(href: &str) -> Option<String> {
    let path = href.split(['?', '#']).next()?;
    let (before, id) = path.rsplit_once('/')?;
    if id.is_empty() || !before.ends_with("/auth") && before != "auth" {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(id)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn squash(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes of Dex v2.45's templates (web/templates/*.html), trimmed.
    const PASSWORD: &str = r#"<html><body><div class="theme-panel">
      <form method="post" action="/dex/auth/local/login?back=&amp;state=abc">
        <input tabindex="1" required id="login" name="login" type="text"/>
        <input tabindex="2" required id="password" name="password" type="password"/>
        <button id="submit-login" type="submit">Login</button>
      </form></div></body></html>"#;

    const PASSWORD_INVALID: &str = r#"<form method="post" action="/dex/auth/ldap/login?back=&amp;state=x">
        <input name="login" type="text" value="jane"/><input name="password" type="password"/>
        <div id="login-error" class="dex-error-box">Invalid Username and password.</div></form>"#;

    const APPROVAL: &str = r#"<div><form method="post">
        <input type="hidden" name="req" value="r123"/><input type="hidden" name="approval" value="approve">
        <button type="submit">Grant Access</button></form>
      <form method="post"><input type="hidden" name="req" value="r123"/>
        <input type="hidden" name="approval" value="rejected"><button>Cancel</button></form></div>"#;

    const SELECTION: &str = r#"<div class="theme-panel"><h2>Log in to dex</h2>
      <div class="theme-form-row"><a href="/dex/auth/local?client_id=kf&amp;state=s" target="_self">
        <button><span class="dex-btn-text">Log in with Email</span></button></a></div>
      <div class="theme-form-row"><a href="/dex/auth/ldap?client_id=kf&amp;state=s" target="_self">
        <button><span class="dex-btn-text">Log in with LDAP</span></button></a></div></div>"#;

    // oauth2-proxy v7's sign_in.html (trimmed).
    const SIGN_IN: &str = r#"<section><form method="GET" action="/oauth2/start">
        <input type="hidden" name="rd" value="/pipeline">
        <button type="submit" class="button block is-primary">Sign in with OpenID Connect</button>
      </form></section>"#;

    const DEX_ERROR: &str = r#"<div class="theme-panel"><h2 class="theme-heading">Bad Request</h2>
      <p class="theme-panel dex-error-box">Connector ID does not match a valid Connector</p></div>"#;

    #[test]
    fn password_form() {
        let Page::Password {
            form,
            unfillable,
            forms,
        } = classify(PASSWORD)
        else {
            panic!()
        };
        assert_eq!(form.action.as_deref(), Some("/dex/auth/local/login?back=&state=abc"));
        assert!(unfillable.is_empty() && forms == 1);
        // The form shown again after a wrong password is the same form: the flow
        // knows it posted the password already, which is what makes it a rejection.
        assert!(matches!(classify(PASSWORD_INVALID), Page::Password { forms: 1, .. }));
    }

    #[test]
    fn password_form_fields_it_cannot_fill_and_several_forms() {
        let extra = PASSWORD.replace(
            "<button",
            r#"<input name="otp" required><select name="realm"></select><input type="checkbox" name="remember">
               <input type="hidden" name="csrf" value="c"><button"#,
        );
        let Page::Password { unfillable, form, .. } = classify(&extra) else {
            panic!()
        };
        assert_eq!(unfillable, ["otp", "realm"]);
        assert_eq!(form.hidden, [("csrf".to_owned(), "c".to_owned())]);
        let two = format!("<form><input name=q></form>{PASSWORD}{PASSWORD}");
        assert!(matches!(classify(&two), Page::Password { forms: 2, .. }));
    }

    #[test]
    fn approval_picks_the_grant_form() {
        let Page::Approval { form } = classify(APPROVAL) else {
            panic!()
        };
        assert_eq!(form.action, None);
        assert_eq!(
            form.hidden,
            vec![("req".into(), "r123".into()), ("approval".into(), "approve".into())]
        );
    }

    #[test]
    fn connector_selection() {
        let Page::Connectors(links) = classify(SELECTION) else {
            panic!()
        };
        let ids: Vec<_> = links.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["local", "ldap"]);
        assert_eq!(links[1].href, "/dex/auth/ldap?client_id=kf&state=s");
    }

    #[test]
    fn proxy_sign_in() {
        let Page::ProxySignIn { form } = classify(SIGN_IN) else {
            panic!()
        };
        assert_eq!(form.action.as_deref(), Some("/oauth2/start"));
    }

    #[test]
    fn dex_error_and_other() {
        assert_eq!(
            classify(DEX_ERROR),
            Page::DexError("Connector ID does not match a valid Connector".into())
        );
        assert_eq!(classify("{}"), Page::Other);
        assert_eq!(classify("<html><body>Kubeflow Pipelines</body></html>"), Page::Other);
        assert_eq!(classify(""), Page::Other);
    }

    #[test]
    fn connector_ids_from_hrefs() {
        assert_eq!(connector_id_of("/dex/auth/local?x=1").as_deref(), Some("local"));
        assert_eq!(connector_id_of("http://h/dex/auth/my%2Did").as_deref(), Some("my-id"));
        assert_eq!(connector_id_of("/dex/auth/local/login"), None);
        assert_eq!(connector_id_of("/dex/auth?x"), None);
        assert_eq!(connector_id_of("/other/local"), None);
    }
}
