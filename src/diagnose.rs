//! What guards an endpoint, and why a login fails: a login made to be looked
//! at. It reads Dex's connector selection page instead of skipping it, and
//! reports the gateway, the connectors, the approval screen, TLS, each request
//! (redacted) and the verdict. Nothing secret is in a report.

use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{LoginConfig, Options};
use crate::error::{Error, Step};
use crate::flow::{self, Observations};
use crate::http::Transport;
use crate::redact;

pub struct Diagnosis {
    pub url: String,
    pub tls: String,
    pub gateway: String,
    pub connectors: Vec<String>,
    /// Where Dex is, against the gateway's origin and `dex_url`.
    pub dex: String,
    pub approval: String,
    pub steps: Vec<Step>,
    /// What the login ended in: the session's cookie names and lifetime, or the error.
    pub verdict: std::result::Result<String, Error>,
}

pub async fn diagnose(cfg: &LoginConfig) -> Diagnosis {
    let cfg = LoginConfig {
        api_url: cfg.api_url.clone(),
        username: cfg.username.clone(),
        password: SecretString::from(cfg.password.expose_secret()),
        connector: cfg.connector.clone(),
        options: Options {
            shortcuts: false,
            tls_info: true,
            ..cfg.options.clone()
        },
    };
    let mut tls = tls_setup(&cfg.options, cfg.api_url.scheme() == "https");
    let (result, seen) = match Transport::new(&cfg.options) {
        Ok(t) => flow::login_observed(&cfg, &t).await,
        Err(e) => (Err(e), Observations::default()),
    };
    for (origin, cert) in &seen.certificates {
        tls.push_str(&format!("\n    {origin} presents {cert}"));
    }
    if let Err(e) = &result
        && matches!(e.root(), Error::Tls { .. })
        && let Some(cert) = rejected_certificate(&cfg).await
    {
        tls.push_str(&format!(
            "\n    REJECTED: {}\n    {} presents {cert}",
            e.root(),
            redact::origin(&cfg.api_url)
        ));
    }
    let (steps, verdict) = match result {
        Ok(s) => {
            let names: Vec<String> = s
                .cookies
                .expose_secret()
                .split("; ")
                .filter_map(|c| c.split_once('=').map(|(n, _)| n.to_owned()))
                .collect();
            let verdict = if s.unsecured {
                "OK: the endpoint asks for no login (standalone or port-forwarded KFP); no cookie is needed".to_owned()
            } else {
                let lifetime = s
                    .expires
                    .and_then(|e| e.duration_since(SystemTime::now()).ok())
                    .map_or("no expiry given".to_owned(), |d| {
                        format!("expires in {}h{:02}m", d.as_secs() / 3600, d.as_secs() / 60 % 60)
                    });
                format!(
                    "OK: logged in as {} with connector {}; session cookie {} ({lifetime})",
                    cfg.username,
                    cfg.connector,
                    names.join(", ")
                )
            };
            (s.history, Ok(verdict))
        }
        Err(e) => (e.history().to_vec(), Err(e)),
    };
    Diagnosis {
        url: redact::url(&cfg.api_url),
        tls,
        gateway: gateway(&seen),
        connectors: seen.connectors.clone(),
        dex: dex(&seen, &cfg),
        approval: approval(&seen),
        steps,
        verdict,
    }
}

/// The certificate a server presents, fetched without verifying it, to say what was rejected.
async fn rejected_certificate(cfg: &LoginConfig) -> Option<String> {
    let options = Options {
        skip_tls_verify: true,
        tls_info: true,
        ..cfg.options.clone()
    };
    let t = Transport::new(&options).ok()?;
    let mut jar = cookie_store::CookieStore::default();
    let reply = t
        .send(reqwest::Method::GET, &cfg.api_url, None, &mut jar, &mut Vec::new())
        .await
        .ok()?;
    reply.peer_certificate
}

fn tls_setup(o: &Options, https: bool) -> String {
    match (https, o.skip_tls_verify, &o.ca_bundle) {
        (false, ..) => "none: plain http (the session cookie travels unencrypted)".into(),
        (true, true, _) => "https, certificate NOT verified (skip_tls_verify)".into(),
        (true, false, Some(p)) => format!(
            "https, certificate verified against {} and the system's roots",
            p.display()
        ),
        (true, false, None) => "https, certificate verified against the system's roots".into(),
    }
}

fn gateway(seen: &Observations) -> String {
    let uri = seen.redirect_uri.as_deref().unwrap_or("");
    if seen.unsecured {
        "none: no login was asked for".into()
    } else if uri.contains("/authservice/") || uri.contains("/login/oidc") {
        format!("oidc-authservice (Kubeflow 1.8 and older): callback {uri}")
    } else if seen.oauth2_proxy {
        "oauth2-proxy (Kubeflow 1.9+): its sign-in page or api_routes 401, then /oauth2/start".into()
    } else if uri.ends_with("/oauth2/callback") {
        "oauth2-proxy with skip_provider_button=true (Kubeflow 1.9): a redirect straight to Dex".into()
    } else if !uri.is_empty() {
        format!("an OIDC gateway with callback {uri}")
    } else {
        "unknown: no login step was reached".into()
    }
}

fn dex(seen: &Observations, cfg: &LoginConfig) -> String {
    let gateway = redact::origin(&cfg.api_url);
    let Some(dex) = &seen.dex else {
        return "not reached".into();
    };
    match &cfg.options.dex_url {
        Some(pin) => format!("at {dex}; pinned by dex_url to {}", redact::origin(pin)),
        None if dex.starts_with(&format!("{gateway}/")) || *dex == gateway => {
            format!("at {dex}, on the gateway's origin")
        }
        None => format!(
            "at {dex}: another origin than the gateway's ({gateway}), where the password goes; pass dex_url \
             to pin it"
        ),
    }
}

fn approval(seen: &Observations) -> String {
    match (seen.approval_forced, seen.approval_shown) {
        (true, true) => "forced by the gateway (approval_prompt=force), and granted".into(),
        (true, false) => "forced by the gateway (approval_prompt=force), not reached".into(),
        (false, true) => "shown by Dex (oauth2.skipApprovalScreen is false), and granted".into(),
        (false, false) => "not shown".into(),
    }
}
