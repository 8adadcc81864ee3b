"""Token exchange (RFC 8693) on the real SSO stack: Kubeflow's Dex with an `oidc` connector
to a second Dex (the company IdP), behind the real oauth2-proxy. The subject token is an ID
token the IdP issued to another client (its password grant, for the confidential client
`ci-workload`), as a CI job or workload would hold one; Dex's `oidc` connector checks its
signature, issuer and expiry, not its audience. Also `kfp-auth admin-snippet`, against the
docs. The tests at the top need no stack."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from kfp_auth import (
    BearerSession,
    InvalidArgumentError,
    KFPClientManager,
    TokenError,
    UnexpectedResponseError,
)
from kfp_auth._admin import admin_snippet
from kfp_auth.cli import main as cli_main
from stack.sso import (
    CONNECTOR_ID,
    DEVICE_GRANT,
    IDP_NAMESPACE,
    IDP_PASSWORD,
    IDP_USER,
    PUBLIC_CLIENT,
    TOKEN_EXCHANGE,
    WORKLOAD_CLIENT,
    SsoStack,
    form_post,
    jwt_claims,
    start_sso_stack,
)

ROOT = Path(__file__).resolve().parents[1]
#: Long base64url runs: tokens all look like this.
SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")
#: A JWT the IdP never saw (it parses, its signature is nonsense).
FORGED = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwOi8vZXZpbC5leGFtcGxlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2lnbmF0dXJl"
LIFETIME = 5  # Kubeflow Dex's expiry.idTokens in this module's stack, in seconds


# -- Without a stack --


@pytest.mark.parametrize(
    "kw,argument",
    [
        ({}, "dex_auth_type"),
        ({"dex_auth_type": CONNECTOR_ID}, "subject_token"),
        ({"dex_auth_type": CONNECTOR_ID, "subject_token": FORGED, "subject_token_file": "/x"}, "subject_token"),
        ({"dex_auth_type": CONNECTOR_ID, "subject_token": "opaque"}, "subject_token"),
        ({"dex_auth_type": CONNECTOR_ID, "subject_token": FORGED, "dex_password": "hunter2-pw"}, "dex_password"),
        ({"dex_auth_type": CONNECTOR_ID, "subject_token": FORGED, "prompt": print}, "prompt"),
        ({"dex_auth_type": CONNECTOR_ID, "subject_token": FORGED, "subject_audience": "a"}, "subject_audience"),
        ({"dex_auth_type": "a/b", "subject_token": FORGED}, "dex_auth_type"),
        ({"login": "device", "subject_token": FORGED}, "subject_token"),
        ({"login": None, "subject_token_file": "/x"}, "subject_token_file"),
        ({"login": None, "subject_audience": "a"}, "subject_audience"),
        ({"dex_auth_type": CONNECTOR_ID, "subject_token": FORGED, "relogin": True}, "relogin"),
        ({"dex_auth_type": CONNECTOR_ID, "subject_token": FORGED, "scopes": "email"}, "scopes"),
    ],
)
def test_exchange_arguments_are_checked_at_construction(kw: dict[str, Any], argument: str) -> None:
    args = {"api_url": "http://127.0.0.1:9/pipeline", "login": "exchange", **kw}
    with pytest.raises(InvalidArgumentError) as ei:
        KFPClientManager(**args)
    assert ei.value.argument == argument, str(ei.value)
    assert "hunter2-pw" not in str(ei.value) and FORGED not in str(ei.value)


def test_a_subject_file_is_read_at_construction_and_nothing_is_sent(tmp_path: Path) -> None:
    with pytest.raises(
        TokenError,
        match=r"cannot read the token file .*; subject_token_file must hold the identity provider.s ID token",
    ):
        KFPClientManager(
            "http://127.0.0.1:9/p", login="exchange", dex_auth_type="c", subject_token_file=tmp_path / "none"
        )
    (tmp_path / "t").write_text(FORGED + "\n")
    m = KFPClientManager("http://127.0.0.1:9/p", login="exchange", dex_auth_type="c", subject_token_file=tmp_path / "t")
    assert m.auth_kind == "dex-token-exchange" and m.logins == 0 and m.token_claims() is None
    assert repr(m) == (
        "KFPClientManager(api_url='http://127.0.0.1:9/p', auth=\"Dex's token exchange of the subject token file "
        f'{tmp_path / "t"} (connector `c`) at http://127.0.0.1:9/dex for the client kfp-auth")'
    )


def test_github_actions_needs_the_jobs_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL", raising=False)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "r" * 50)
    with pytest.raises(InvalidArgumentError, match=r"id-token: write") as ei:
        KFPClientManager("http://127.0.0.1:9/p", login="exchange", dex_auth_type="c", subject_token="github-actions")
    assert "r" * 50 not in str(ei.value)
    with pytest.raises(InvalidArgumentError, match="audience"):
        BearerSession.from_dex_token_exchange("http://127.0.0.1:9/p", "c", subject_token=FORGED, audience="x")


def test_the_admin_snippet_is_the_docs_and_fits_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints the snippet docs/sso.md shows; it is YAML that holds what the test stack's
    Kubeflow Dex needs (the public client) and the grants it advertises there."""
    docs = (ROOT / "docs" / "sso.md").read_text()
    shown = re.search(r"<!-- admin-snippet:start -->\n```text\n(.*?)```\n<!-- admin-snippet:end -->", docs, re.S)
    assert shown is not None and shown.group(1) == admin_snippet()
    cli_main(["admin-snippet"])
    assert capsys.readouterr().out == admin_snippet()
    cli_main(["admin-snippet", "--client-id", "ci-kfp"])
    out = capsys.readouterr().out
    parsed = yaml.safe_load(out)
    assert parsed["staticClients"] == [{"id": "ci-kfp", "public": True, "name": "Kubeflow Pipelines SDK"}]
    assert set(parsed["oauth2"]["grantTypes"]) == {"authorization_code", "refresh_token", DEVICE_GRANT, TOKEN_EXCHANGE}
    assert parsed["connectors"][0]["type"] == "oidc"
    assert "offline_access" in parsed["connectors"][0]["config"]["scopes"]
    assert "--oidc-extra-audience=ci-kfp" in out and "kfp-auth" not in out.replace("kfp-auth's", "")
    with pytest.raises(SystemExit) as ei:
        cli_main(["admin-snippet", "--client-id", "a: b"])
    assert ei.value.code == 2 and "client id" in capsys.readouterr().err


# -- On the real SSO stack --


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    """Layout A with short Kubeflow-Dex ID tokens, so renewals happen within each test."""
    with start_sso_stack(tmp_path_factory.mktemp("sso"), id_token_expiry=f"{LIFETIME}s") as s:
        yield s


def idp_token(stack: SsoStack) -> str:
    """An ID token of the IdP for alice, issued to another client than any at Kubeflow's Dex."""
    status, got = form_post(
        f"{stack.idp_url}/token",
        {
            "grant_type": "password",
            "username": IDP_USER,
            "password": IDP_PASSWORD,
            "scope": "openid email profile",
            "client_id": WORKLOAD_CLIENT,
            "client_secret": (stack.secrets or {})[WORKLOAD_CLIENT],
        },
    )
    assert status == 200, got
    assert jwt_claims(got["id_token"])["aud"] == WORKLOAD_CLIENT
    return str(got["id_token"])


def rotate(path: Path, token: str) -> None:
    """The kubelet's way: a new file renamed over the old one."""
    new = path.with_suffix(".new")
    new.write_text(token)
    os.replace(new, path)


def exchange_manager(stack: SsoStack, **kw: Any) -> KFPClientManager:
    return KFPClientManager(stack.api_url, login="exchange", dex_auth_type=CONNECTOR_ID, **kw)


@pytest.mark.stack
def test_an_exchanged_token_lists_experiments_as_the_idp_user_and_is_renewed_by_exchanging_again(
    sso: SsoStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kfp_auth")
    subject = idp_token(sso)
    m = exchange_manager(sso, subject_token=subject)
    client = m.create_kfp_client()
    client.list_experiments(namespace=IDP_NAMESPACE)
    assert {r["user"] for r in sso.kfp_requests() if "/apis/" in r["path"]} == {IDP_USER}
    first = m.get_bearer_token() or ""
    claims = jwt_claims(first)
    assert (claims["iss"], claims["aud"], claims["email"]) == (sso.issuer, PUBLIC_CLIENT, IDP_USER)
    assert claims["exp"] - claims["iat"] == LIFETIME
    assert m.logins == 1 and m.bearer is not None and m.bearer.refreshes == 0
    # Past several lifetimes the client keeps working: each renewal is a new exchange.
    until = time.time() + 3 * LIFETIME
    while time.time() < until:
        client.list_experiments(namespace=IDP_NAMESPACE)
        time.sleep(0.5)
    assert 3 <= m.logins <= 6, m.logins
    assert m.get_bearer_token() != first
    assert "token is expired" not in sso.gateway_log(), "renewed ahead of expiry"
    # The clients' 401 hook: the refused token is replaced by another exchange.
    held = m.get_bearer_token() or ""
    time.sleep(1.1)  # a new `iat`: Dex's token for the same request within a second is the same
    replaced = m.bearer.refresh(held)
    assert replaced != held and jwt_claims(replaced)["email"] == IDP_USER
    shown = caplog.text + repr(m) + repr(m.bearer)
    assert "token exchange: Dex's connector `upstream` took the subject token given" in caplog.text
    assert subject not in shown and not SECRET_LIKE.search(shown), SECRET_LIKE.findall(shown)


@pytest.mark.stack
def test_a_rotated_subject_file_is_read_again_at_each_exchange(sso: SsoStack, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(idp_token(sso) + "\n")
    m = exchange_manager(sso, subject_token_file=path)
    first = m.get_bearer_token()
    assert first is not None and m.logins == 1
    # Rotated to a token the IdP did not sign: the next exchange reads it, and Dex refuses it.
    kubeflow_token = first  # Kubeflow Dex's own token: not the connector's issuer's
    rotate(path, kubeflow_token)
    with pytest.raises(TokenError) as ei:
        m.get_bearer_token(force_refresh=True)
    message = str(ei.value)
    assert f"refused the subject token from the subject token file {path}" in message, message
    assert f"issued by `{sso.issuer}`" in message and "`oidc` connector `upstream`" in message, message
    assert kubeflow_token not in message
    # Rotated to a fresh IdP token: the next exchange succeeds with it.
    rotate(path, idp_token(sso))
    time.sleep(1.1)
    renewed = m.get_bearer_token(force_refresh=True)
    assert renewed not in (None, first) and jwt_claims(renewed or "")["email"] == IDP_USER
    assert m.logins == 3
    m.create_kfp_client().list_experiments(namespace=IDP_NAMESPACE)


@pytest.mark.stack
@pytest.mark.parametrize("subject", ["kubeflow", "forged"])
def test_a_subject_token_the_idp_did_not_sign_is_a_token_error(sso: SsoStack, subject: str) -> None:
    token = (
        exchange_manager(sso, subject_token=idp_token(sso)).get_bearer_token() or ""
        if subject == "kubeflow"
        else FORGED
    )
    m = exchange_manager(sso, subject_token=token)
    with pytest.raises(TokenError) as ei:
        m.create_kfp_client()
    message = str(ei.value)
    issuer = sso.issuer if subject == "kubeflow" else "http://evil.example"
    assert "HTTP 401 access_denied" in message and f"issued by `{issuer}`" in message, message
    assert token not in message and not SECRET_LIKE.search(message)


@pytest.mark.stack
@pytest.mark.parametrize("connector", ["nope", "local"])
def test_a_connector_that_cannot_exchange_names_the_fix(sso: SsoStack, connector: str) -> None:
    """`nope` does not exist; `local` (the password connector) exists but is not `oidc`:
    Dex answers both alike."""
    subject = idp_token(sso)
    m = KFPClientManager(sso.api_url, login="exchange", dex_auth_type=connector, subject_token=subject)
    with pytest.raises(UnexpectedResponseError) as ei:
        m.get_bearer_token()
    message = str(ei.value)
    assert ei.value.status == 400 and ei.value.url == f"{sso.gateway_url}/dex/token", message
    assert f"Dex has no connector `{connector}` that can exchange tokens" in message
    assert "type `oidc`" in message and f"`{sso.idp_url}`" in message, message
    assert subject not in message


@pytest.mark.stack
def test_an_unknown_client_names_the_admin_change(sso: SsoStack) -> None:
    m = exchange_manager(sso, subject_token=idp_token(sso), dex_client_id="not-registered")
    with pytest.raises(UnexpectedResponseError, match=r"staticClients.*public: true"):
        m.get_bearer_token()


class GithubImitation:
    """An imitation of GitHub Actions' OIDC token endpoint (not GitHub's own): on
    `GET <url>&audience=<aud>` with `Authorization: bearer <request token>` it answers
    `{"count": ..., "value": <JWT>}`, the JWT here minted fresh by the test IdP for each
    request; any other request token gets 403, as GitHub answers."""

    def __init__(self, stack: SsoStack, request_token: str) -> None:
        self.requests: list[dict[str, Any]] = []
        imitation = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlsplit(self.path).query)
                ok = self.headers.get("Authorization") == f"bearer {request_token}"
                imitation.requests.append({"query": query, "authorized": ok})
                body = json.dumps({"count": 1, "value": idp_token(stack)}).encode() if ok else b"{}"
                self.send_response(200 if ok else 403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_apis/token?api-version=2.0"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.stack
def test_github_actions_token_asked_for_each_exchange(sso: SsoStack, monkeypatch: pytest.MonkeyPatch) -> None:
    request_token = "gh-request-" + "x" * 60
    gh = GithubImitation(sso, request_token)
    try:
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", gh.url)
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token)
        m = exchange_manager(sso, subject_token="github-actions")
        assert gh.requests == [], "nothing asked at construction"
        m.create_kfp_client().list_experiments(namespace=IDP_NAMESPACE)
        assert gh.requests == [{"query": {"api-version": ["2.0"], "audience": [PUBLIC_CLIENT]}, "authorized": True}]
        time.sleep(1.1)
        m.get_bearer_token(force_refresh=True)
        assert len(gh.requests) == 2 and m.logins == 2, "a renewal asks GitHub again"
        custom = exchange_manager(sso, subject_token="github-actions", subject_audience="https://kf.example")
        custom.get_bearer_token()
        assert gh.requests[-1]["query"]["audience"] == ["https://kf.example"]
        # A request token GitHub does not take: a TokenError that names the job's permission.
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong-" + "y" * 60)
        with pytest.raises(TokenError) as ei:
            exchange_manager(sso, subject_token="github-actions").get_bearer_token()
        message = str(ei.value)
        assert "HTTP 403" in message and "id-token: write" in message and "api-version=…" in message, message
        assert "y" * 60 not in message and request_token not in message
    finally:
        gh.close()
