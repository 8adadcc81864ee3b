//! Reading the HTML pages of a Kubeflow login: what kind of page it is, and
//! the one form or link the flow needs from it. Parsing is html5ever's, via scraper,
//! with bounds on what a page may cost: a server chooses the page.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::LazyLock;
use std::time::Duration;

use html5ever::tendril::{ByteTendril, StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{ElementRef, Html, HtmlTreeSink, Selector};

use crate::redact;

/// Only this much of a page is read. Dex's pages are a few kB, oauth2-proxy's
/// sign-in page about 8 kB; this leaves room for a theme's inline logo.
pub const MAX_PAGE_BYTES: usize = 256 * 1024;

/// Connector links kept from a selection page (Dex configs list a handful).
pub const MAX_CONNECTORS: usize = 256;

/// html5ever checks the stack of open elements on each tag, so nesting N deep costs
/// N² (a 1 MiB page of nested `<div>`s took minutes). The parse counts those checks
/// and gives up past this many per byte read: a login page needs far fewer.
const WORK_PER_BYTE: u64 = 16;
/// Checks allowed besides, so short pages are never refused.
const WORK_BASE: u64 = 100_000;
/// Attributes of one element (a login page's have a few).
const MAX_ATTRIBUTES: usize = 256;
/// Besides, a page may cost this much CPU time. A login page takes milliseconds, a
/// plain page of [`MAX_PAGE_BYTES`] about 0.6 s in a debug build; this catches costs
/// the count above does not see, such as html5ever's tokenizer checking each
/// attribute of a tag against the others (n² in one tag).
const MAX_PARSE_CPU: Duration = Duration::from_secs(2);
/// The budgets are checked between chunks of this many bytes.
const CHUNK_BYTES: usize = 1024;

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
    /// A page that costs more to parse than any login page (elements nested
    /// thousands deep): it was not read to its end.
    TooComplex,
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

/// What kind of page `html` is, from its first [`MAX_PAGE_BYTES`].
pub fn classify(html: &str) -> Page {
    let Some(doc) = parse(html.as_bytes()).0 else {
        return Page::TooComplex;
    };

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

/// The document from the page's first [`MAX_PAGE_BYTES`], or `None` when parsing it
/// takes more work than the budget; and the work spent.
fn parse(bytes: &[u8]) -> (Option<Html>, u64) {
    let work = Rc::new(Cell::new(0));
    let over = Rc::new(Cell::new(false));
    let sink = Budgeted {
        inner: HtmlTreeSink::new(Html::new_document()),
        work: work.clone(),
        formatting: Cell::new(0),
        over: over.clone(),
    };
    let mut parser = html5ever::driver::parse_document(sink, Default::default()).from_utf8();
    let started = thread_cpu();
    let mut read = 0u64;
    for chunk in bytes[..bytes.len().min(MAX_PAGE_BYTES)].chunks(CHUNK_BYTES) {
        parser.process(ByteTendril::from_slice(chunk));
        read += chunk.len() as u64;
        if over.get() || work.get() > WORK_BASE + WORK_PER_BYTE * read || thread_cpu() - started > MAX_PARSE_CPU {
            return (None, work.get());
        }
    }
    let doc = parser.finish();
    (Some(doc).filter(|_| !over.get()), work.get())
}

/// The CPU time this thread has used (a parse runs on one thread, start to end).
#[cfg(unix)]
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// Elsewhere (Windows) the time since a fixed instant stands in: std has no thread
/// CPU clock, and wall time is never less, so the bound only gets stricter.
#[cfg(not(unix))]
fn thread_cpu() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// html5ever's formatting elements, which it keeps in a list besides the stack.
fn is_formatting(name: &QualName) -> bool {
    name.ns == html5ever::ns!(html)
        && matches!(
            &*name.local,
            "a" | "b"
                | "big"
                | "code"
                | "em"
                | "font"
                | "i"
                | "nobr"
                | "s"
                | "small"
                | "strike"
                | "strong"
                | "tt"
                | "u"
        )
}

/// scraper's tree sink, counting the tree builder's looks at elements: its
/// checks of the stack of open elements and of the formatting list go through
/// `elem_name` and `same_node`.
struct Budgeted {
    inner: HtmlTreeSink,
    work: Rc<Cell<u64>>,
    /// Formatting elements made so far.
    formatting: Cell<u64>,
    /// An element had more than [`MAX_ATTRIBUTES`].
    over: Rc<Cell<bool>>,
}

impl Budgeted {
    fn spend(&self) {
        self.work.set(self.work.get() + 1);
    }
}

impl TreeSink for Budgeted {
    type Handle = <HtmlTreeSink as TreeSink>::Handle;
    type Output = Html;
    type ElemName<'a> = <HtmlTreeSink as TreeSink>::ElemName<'a>;

    fn finish(self) -> Html {
        self.inner.finish()
    }
    fn parse_error(&self, msg: Cow<'static, str>) {
        self.inner.parse_error(msg);
    }
    fn get_document(&self) -> Self::Handle {
        self.inner.get_document()
    }
    fn elem_name<'a>(&'a self, target: &'a Self::Handle) -> Self::ElemName<'a> {
        self.spend();
        self.inner.elem_name(target)
    }
    fn create_element(&self, name: QualName, mut attrs: Vec<Attribute>, flags: ElementFlags) -> Self::Handle {
        if attrs.len() > MAX_ATTRIBUTES {
            // scraper sorts them by insertion: n² moves. No login page's element has this many.
            attrs.truncate(MAX_ATTRIBUTES);
            self.over.set(true);
        }
        if is_formatting(&name) {
            // html5ever compares each new formatting element (`b`, `i`…) with those in its
            // list of active formatting elements: charged as if none had left the list.
            // A new `a` closes the last one, so `a`s do not pile up there.
            if &*name.local != "a" {
                self.formatting.set(self.formatting.get() + 1);
            }
            self.work.set(self.work.get() + 1 + self.formatting.get());
        }
        self.inner.create_element(name, attrs, flags)
    }
    fn create_comment(&self, text: StrTendril) -> Self::Handle {
        self.inner.create_comment(text)
    }
    fn create_pi(&self, target: StrTendril, data: StrTendril) -> Self::Handle {
        self.inner.create_pi(target, data)
    }
    fn append(&self, parent: &Self::Handle, child: NodeOrText<Self::Handle>) {
        self.inner.append(parent, child);
    }
    fn append_based_on_parent_node(
        &self,
        element: &Self::Handle,
        prev_element: &Self::Handle,
        child: NodeOrText<Self::Handle>,
    ) {
        self.inner.append_based_on_parent_node(element, prev_element, child);
    }
    fn append_doctype_to_document(&self, name: StrTendril, public_id: StrTendril, system_id: StrTendril) {
        self.inner.append_doctype_to_document(name, public_id, system_id);
    }
    fn mark_script_already_started(&self, node: &Self::Handle) {
        self.inner.mark_script_already_started(node);
    }
    fn get_template_contents(&self, target: &Self::Handle) -> Self::Handle {
        self.inner.get_template_contents(target)
    }
    fn same_node(&self, x: &Self::Handle, y: &Self::Handle) -> bool {
        self.spend();
        self.inner.same_node(x, y)
    }
    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode);
    }
    fn append_before_sibling(&self, sibling: &Self::Handle, new_node: NodeOrText<Self::Handle>) {
        self.inner.append_before_sibling(sibling, new_node);
    }
    fn add_attrs_if_missing(&self, target: &Self::Handle, attrs: Vec<Attribute>) {
        self.inner.add_attrs_if_missing(target, attrs);
    }
    fn remove_from_parent(&self, target: &Self::Handle) {
        self.inner.remove_from_parent(target);
    }
    fn reparent_children(&self, node: &Self::Handle, new_parent: &Self::Handle) {
        self.inner.reparent_children(node, new_parent);
    }
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
        // Names come from the page: shown in an error, so kept short and printable.
        .map(|n| redact::text(&n.chars().take(40).collect::<String>()))
        .collect()
}

/// Links whose path ends in `/auth/<id>`: Dex's connector buttons, the first
/// [`MAX_CONNECTORS`] distinct ones.
fn connector_links(doc: &Html) -> Vec<ConnectorLink> {
    let mut out: Vec<ConnectorLink> = Vec::new();
    let mut seen = HashSet::new();
    for a in doc.select(&LINK) {
        let href = a.value().attr("href").unwrap_or("");
        if let Some(id) = connector_id_of(href)
            && seen.insert(id.clone())
        {
            out.push(ConnectorLink {
                id,
                href: href.to_owned(),
            });
            if out.len() == MAX_CONNECTORS {
                break;
            }
        }
    }
    out
}

/// `…/auth/<id>[?…]` → `<id>`, percent-decoded, without control characters (it is shown).
pub fn connector_id_of(href: &str) -> Option<String> {
    let path = href.split(['?', '#']).next()?;
    let (before, id) = path.rsplit_once('/')?;
    if id.is_empty() || !before.ends_with("/auth") && before != "auth" {
        return None;
    }
    let id = redact::text(&percent_encoding::percent_decode_str(id).decode_utf8_lossy());
    (!id.is_empty()).then_some(id)
}

/// Page text as a message shows it: printable, on one line, at most 300 characters.
fn squash(s: &str) -> String {
    let joined = redact::text(s).split_whitespace().collect::<Vec<_>>().join(" ");
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
    fn pages_built_to_be_expensive_are_not_read_to_their_end() {
        // Nested `<div>`s (n² checks of the open elements), distinct formatting elements
        // (n² comparisons in html5ever's list of them), an element with too many attributes.
        let deep = "<div>".repeat(200_000);
        let formatting: String = (0..20_000).map(|i| format!("<b id={i}>")).collect();
        let attributes = format!(
            "<form><input name=login><input name=password {}></form>",
            (0..300).map(|i| format!("a{i}")).collect::<Vec<_>>().join(" ")
        );
        for page in [&deep, &formatting, &attributes] {
            assert_eq!(classify(page), Page::TooComplex, "{}", &page[..40]);
        }
        // The budget stops the deep page early: well before its end.
        assert!(parse(deep.as_bytes()).1 < WORK_BASE + WORK_PER_BYTE * 16 * 1024);
        // Flat pages of the same size, and many links, are read.
        assert_eq!(classify(&"<p>x</p>".repeat(30_000)), Page::Other);
        let links: String = (0..10_000)
            .map(|i| format!(r#"<a href="/dex/auth/c{}">x</a>"#, i % 5000))
            .collect();
        let Page::Connectors(found) = classify(&links) else {
            panic!("not read as a selection page")
        };
        assert_eq!(found.len(), MAX_CONNECTORS);
        assert!(found.iter().enumerate().all(|(i, l)| l.id == format!("c{i}")));
    }

    #[test]
    fn only_a_prefix_of_a_page_is_read() {
        let padded = format!("<p>{}</p>{PASSWORD}", "x".repeat(MAX_PAGE_BYTES));
        assert_eq!(classify(&padded), Page::Other);
        let within = format!("<p>{}</p>{PASSWORD}", "x".repeat(MAX_PAGE_BYTES - PASSWORD.len() - 64));
        assert!(matches!(classify(&within), Page::Password { .. }));
    }

    #[test]
    fn text_from_the_page_has_no_control_characters() {
        let hostile = r#"<a href="/dex/auth/%1b%5d0;OWNED%07%1b%5b2J%c2%9bx?state=s">x</a>"#;
        let Page::Connectors(links) = classify(hostile) else {
            panic!()
        };
        assert_eq!(links[0].id, "]0;OWNED[2Jx");
        let box_ = "<p class='dex-error-box'>\u{1b}[31mFAKE:\u{7}\tlogin ok\u{9b}</p>";
        assert_eq!(classify(box_), Page::DexError("[31mFAKE: login ok".into()));
        assert_eq!(connector_id_of("/dex/auth/%1b%07"), None, "nothing printable is left");
        let otp = PASSWORD.replace("<button", "<input name=\"o\u{1b}tp\"><button");
        let Page::Password { unfillable, .. } = classify(&otp) else {
            panic!()
        };
        assert_eq!(unfillable, ["otp"]);
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
