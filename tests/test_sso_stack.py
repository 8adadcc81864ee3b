"""The SSO test stack (tests/stack/sso.py, tests/stack/browser.py), proven with plain
urllib and no kfp_auth: Kubeflow's real Dex v2.45.1 with an `oidc` connector to a second
real Dex (the company IdP), behind the real oauth2-proxy v7.15.6.

Each docstring records the behaviour of Dex and oauth2-proxy that the test verifies:
the facts the SSO feature is built on. Token endpoint errors are JSON
`{"error": …, "error_description": …}` (the description absent where shown without one).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stack import FAST_USER
from stack.browser import Browser, browser_command
from stack.sso import (
    ACCESS_TOKEN_TYPE,
    CONNECTOR_ID,
    DEVICE_GRANT,
    ID_TOKEN_TYPE,
    IDP_PASSWORD,
    IDP_USER,
    IN_CLUSTER_ISSUER,
    PUBLIC_CLIENT,
    SSO_SCOPES,
    TOKEN_EXCHANGE,
    WORKLOAD_CLIENT,
    SsoStack,
    api_get,
    form_post,
    jwt_claims,
    start_sso_stack,
)

pytestmark = pytest.mark.stack

INVALID_REFRESH = "Refresh token is invalid or has already been claimed by another client."


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    """Layout A, shared by tests that leave no session behind that others depend on."""
    with start_sso_stack(tmp_path_factory.mktemp("sso")) as s:
        yield s


@pytest.fixture
def own_sso(tmp_path: Path) -> Iterator[SsoStack]:
    """Layout A of the test's own: for tests that log the user in again or restart a part."""
    with start_sso_stack(tmp_path / "sso") as s:
        yield s


def device_code(stack: SsoStack, client_id: str = PUBLIC_CLIENT) -> dict:
    status, code = form_post(f"{stack.provider_url}/device/code", {"client_id": client_id, "scope": SSO_SCOPES})
    assert status == 200, code
    return code


def poll(stack: SsoStack, code: dict, client_id: str = PUBLIC_CLIENT) -> tuple[int, dict]:
    return form_post(
        f"{stack.provider_url}/token",
        {"grant_type": DEVICE_GRANT, "device_code": code["device_code"], "client_id": client_id},
    )


def refresh(stack: SsoStack, token: str) -> tuple[int, dict]:
    return form_post(
        f"{stack.provider_url}/token",
        {"grant_type": "refresh_token", "refresh_token": token, "client_id": PUBLIC_CLIENT},
    )


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(stack: SsoStack, redirect_uri: str, challenge: str, **extra: str) -> str:
    q = {
        "client_id": PUBLIC_CLIENT,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": SSO_SCOPES,
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{stack.provider_url}/auth?{urllib.parse.urlencode(q)}"


def test_discovery_through_the_gateway(sso: SsoStack) -> None:
    """`<gateway>/dex/.well-known/openid-configuration` (Dex behind oauth2-proxy's skip-auth
    route `^/dex/`) gives issuer `<gateway>/dex`, `device_authorization_endpoint`
    `<issuer>/device/code`, `grant_types_supported` [authorization_code, refresh_token,
    …device_code, …token-exchange] (no password grant: no `passwordConnector`), and
    `code_challenge_methods_supported` [S256, plain]."""
    status, body = api_get(f"{sso.provider_url}/.well-known/openid-configuration")
    assert status == 200
    d = json.loads(body)
    assert d["issuer"] == sso.issuer == f"{sso.gateway_url}/dex"
    assert d["device_authorization_endpoint"] == f"{sso.issuer}/device/code"
    assert d["token_endpoint"] == f"{sso.issuer}/token"
    assert sorted(d["grant_types_supported"]) == sorted(
        ["authorization_code", "refresh_token", DEVICE_GRANT, TOKEN_EXCHANGE]
    )
    assert "S256" in d["code_challenge_methods_supported"]


def test_device_grant_through_the_upstream_idp(sso: SsoStack) -> None:
    """(a) RFC 8628 at Kubeflow's Dex, through the gateway.

    - `POST /dex/device/code` (client_id, scope) → 200 with device_code, user_code
      (`XXXX-XXXX`), verification_uri `<issuer>/device`, verification_uri_complete
      `<issuer>/device?user_code=…`, expires_in 300, interval 5.
    - Polling `POST /dex/token` (grant_type …device_code, device_code, client_id) before
      the user is done: 400 `authorization_pending`; again within `interval`: 400
      `slow_down` (by Dex's source each early poll adds 5 s to the interval it expects;
      not timed here).
    - The pages: `/dex/device` (form posting `user_code` to `/dex/device/auth/verify_code`)
      → 302 `/dex/auth?…redirect_uri=/device/callback` → 200 connector choice (two
      connectors) → `/dex/auth/upstream` → the IdP's `/auth` → its password form → 303
      its approval screen → 303 Kubeflow Dex's `/dex/callback` → 303
      `/dex/device/callback` → 200 "Login Successful for kfp-auth".
    - Once done, the poll answers 200 at once, whatever the earlier slow_down: access_token,
      token_type "bearer", expires_in, refresh_token, id_token. Polling again still
      gives 200 with the same answer until the device code expires.
    - The ID token: iss = issuer, aud "kfp-auth", the IdP's email, email_verified, name."""
    code = device_code(sso)
    assert set(code) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert code["verification_uri"] == f"{sso.issuer}/device"
    assert code["verification_uri_complete"] == f"{sso.issuer}/device?user_code={code['user_code']}"
    assert (code["expires_in"], code["interval"]) == (300, 5)
    assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", code["user_code"])
    assert poll(sso, code) == (400, {"error": "authorization_pending"})
    assert poll(sso, code) == (400, {"error": "slow_down"})

    walk = Browser(IDP_USER, IDP_PASSWORD, connector=CONNECTOR_ID).walk(code["verification_uri_complete"])
    idp = urllib.parse.urlsplit(sso.idp_url).path
    assert walk.steps == [
        ("GET", "/dex/device", 200),
        ("POST", "/dex/device/auth/verify_code", 302),
        ("GET", "/dex/auth", 200),
        ("GET", f"/dex/auth/{CONNECTOR_ID}", 302),
        ("GET", f"{idp}/auth", 302),
        ("GET", f"{idp}/auth/local", 302),
        ("GET", f"{idp}/auth/local/login", 200),
        ("POST", f"{idp}/auth/local/login", 303),
        ("GET", f"{idp}/approval", 200),
        ("POST", f"{idp}/approval", 303),
        ("GET", "/dex/callback", 303),
        ("GET", "/dex/device/callback", 200),
    ]
    assert walk.page is not None and walk.page.heading == "Login Successful for kfp-auth"

    status, tokens = poll(sso, code)
    assert status == 200, tokens
    assert {"access_token", "token_type", "expires_in", "refresh_token", "id_token"} <= set(tokens)
    assert tokens["token_type"] == "bearer"
    claims = jwt_claims(tokens["id_token"])
    assert claims["iss"] == sso.issuer and claims["aud"] == PUBLIC_CLIENT
    assert claims["email"] == IDP_USER and claims["email_verified"] is True
    assert poll(sso, code) == (200, tokens)


def test_connector_choice_page_lists_both_connectors(sso: SsoStack) -> None:
    """With `local` (Kubeflow's password DB) beside the `oidc` connector, `/dex/auth` is a
    200 page of "Log in with <name>" links to `/dex/auth/<id>?…`; `connector_id=<id>`
    in the query skips it with a 302."""
    _, challenge = pkce()
    url = authorize_url(sso, "http://127.0.0.1:9/cb", challenge)
    page = Browser().fetch(url)
    assert page.status == 200
    links = {urllib.parse.urlsplit(h).path: t for h, t in page.links if t.startswith("Log in with")}
    assert links == {"/dex/auth/local": "Log in with Email", f"/dex/auth/{CONNECTOR_ID}": "Log in with Corp SSO"}
    direct = Browser().fetch(authorize_url(sso, "http://127.0.0.1:9/cb", challenge, connector_id=CONNECTOR_ID))
    assert direct.status == 302 and urllib.parse.urlsplit(direct.location or "").path == f"/dex/auth/{CONNECTOR_ID}"


def test_dex_id_token_is_a_bearer_at_the_gateway(sso: SsoStack) -> None:
    """(b) oauth2-proxy with `--skip-jwt-bearer-tokens` and `--oidc-extra-audience=kfp-auth`
    takes Dex's ID token (iss = its `--oidc-issuer-url`, aud = its client id or an extra
    audience) as `Authorization: Bearer`, and passes the `email` claim on as
    X-Forwarded-Email. Dex's access_token is a JWT with the same iss, aud and email, and
    passes too. No token, a malformed one, or a valid JWT from another issuer (the IdP's):
    401 with body `{}` on the API routes."""
    tokens = sso.device_login()
    before = len(sso.kfp_requests())
    assert api_get(sso.experiments_url, tokens["id_token"]) == (200, b"{}")
    assert api_get(sso.experiments_url, tokens["access_token"]) == (200, b"{}")
    seen = [r for r in sso.kfp_requests()[before:] if r["path"].endswith("/experiments")]
    assert [r["user"] for r in seen] == [IDP_USER, IDP_USER]

    status, foreign = form_post(
        f"{sso.idp_url}/token",
        {
            "grant_type": "password",
            "username": IDP_USER,
            "password": IDP_PASSWORD,
            "scope": "openid email",
            "client_id": WORKLOAD_CLIENT,
            "client_secret": (sso.secrets or {})[WORKLOAD_CLIENT],
        },
    )
    assert status == 200 and jwt_claims(foreign["id_token"])["email"] == IDP_USER
    for token in (None, "a.b.c", foreign["id_token"]):
        assert api_get(sso.experiments_url, token) == (401, b"{}")
    assert len([r for r in sso.kfp_requests()[before:] if r["path"].endswith("/experiments")]) == 2


def test_refresh_rotates_and_refuses_the_old_token(sso: SsoStack) -> None:
    """(c) `grant_type=refresh_token` with `client_id=kfp-auth` (no secret: public client)
    → 200 with a new id_token and a new refresh_token (rotation is Dex's default; no
    `reuseInterval` is set, so there is no grace period). The old refresh token then
    → 400 `invalid_request` "Refresh token is invalid or has already been claimed by
    another client." Presenting it does not revoke the new one, which still works. A
    made-up refresh token gets the same 400. The refresh goes through the `oidc`
    connector to the IdP (see test_refresh_needs_the_idp)."""
    tokens = sso.device_login()
    status, renewed = refresh(sso, tokens["refresh_token"])
    assert status == 200, renewed
    assert renewed["refresh_token"] != tokens["refresh_token"] and renewed["id_token"] != tokens["id_token"]
    assert jwt_claims(renewed["id_token"])["email"] == IDP_USER
    assert api_get(sso.experiments_url, renewed["id_token"]) == (200, b"{}")
    assert refresh(sso, tokens["refresh_token"]) == (
        400,
        {"error": "invalid_request", "error_description": INVALID_REFRESH},
    )
    status, again = refresh(sso, renewed["refresh_token"])
    assert status == 200 and again["refresh_token"] != renewed["refresh_token"]
    assert refresh(sso, "not-a-refresh-token") == (
        400,
        {"error": "invalid_request", "error_description": INVALID_REFRESH},
    )


def test_a_second_login_voids_the_first_refresh_token(own_sso: SsoStack) -> None:
    """Dex keeps one refresh token per user, connector and client: a new login of the
    same user with the same client (another machine, another process that logs in
    afresh) deletes the earlier refresh token, which then gets the 400 "…already
    claimed…" error. A cache must not hand out a refresh token that a later login
    replaced."""
    first = own_sso.device_login()
    second = own_sso.device_login()
    assert refresh(own_sso, first["refresh_token"]) == (
        400,
        {"error": "invalid_request", "error_description": INVALID_REFRESH},
    )
    assert refresh(own_sso, second["refresh_token"])[0] == 200


def test_a_gateway_login_breaks_refresh_through_a_dex_idp(own_sso: SsoStack) -> None:
    """A stack property to keep in mind: the same user's web login through oauth2-proxy
    (which asks Kubeflow's Dex for no offline_access) makes the IdP (a Dex, which keeps
    one refresh token per user and client) issue Kubeflow's Dex a new upstream refresh
    token and void the old one, while Kubeflow's Dex keeps the old one for the CLI's
    session (it stores connector data only from logins that ask offline_access). The
    CLI's next refresh → 500 `{"error":"invalid_request"}`, Dex logging "failed to
    refresh identity … Refresh token is invalid or has already been claimed". Tests that
    refresh must not share a user with a gateway login on one stack."""
    tokens = own_sso.device_login()
    b = Browser(IDP_USER, IDP_PASSWORD, connector=CONNECTOR_ID)
    walk = b.walk(f"{own_sso.gateway_url}/oauth2/start?rd=%2Fpipeline%2F")
    assert walk.steps[-2:] == [("GET", "/oauth2/callback", 302), ("GET", "/pipeline/", 200)]
    assert [c.name for c in b.jar] == ["oauth2_proxy_kubeflow"]
    assert refresh(own_sso, tokens["refresh_token"]) == (500, {"error": "invalid_request"})
    assert "failed to refresh identity" in own_sso.log("dex")


def test_short_id_tokens_expire_at_the_gateway_and_refresh_renews(tmp_path: Path) -> None:
    """(d) Dex `expiry.idTokens: 5s`: the token answer's expires_in is 4 (whole seconds
    left), exp − iat = 5. oauth2-proxy refuses the ID token once `exp` is past (go-oidc
    allows no leeway): 401 `{}`, logging "oidc: token is expired". The refreshed ID token
    passes. `expiry.deviceRequests: 3s`: a device code past it → 400 `expired_token`, and
    its user code on the device page → 400 with "Invalid or Expired User Code"."""
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s", device_requests_expiry="3s") as s:
        tokens = s.device_login()
        claims = jwt_claims(tokens["id_token"])
        assert claims["exp"] - claims["iat"] == 5 and tokens["expires_in"] in (4, 5)
        assert api_get(s.experiments_url, tokens["id_token"]) == (200, b"{}")
        time.sleep(max(0.0, claims["exp"] + 1.5 - time.time()))
        assert api_get(s.experiments_url, tokens["id_token"]) == (401, b"{}")
        assert "oidc: token is expired" in s.gateway_log()
        status, renewed = refresh(s, tokens["refresh_token"])
        assert status == 200
        assert api_get(s.experiments_url, renewed["id_token"]) == (200, b"{}")

        code = device_code(s)
        assert code["expires_in"] == 3
        time.sleep(3.5)
        assert poll(s, code) == (400, {"error": "expired_token"})
        walk = Browser(s.user, s.password, connector=CONNECTOR_ID).walk(code["verification_uri_complete"])
        assert walk.steps[-1] == ("POST", "/dex/device/auth/verify_code", 400)
        assert walk.page is not None and walk.page.error == "Invalid or Expired User Code"


def test_authorization_code_with_pkce_and_a_loopback_redirect(sso: SsoStack) -> None:
    """(e) Authorization code + PKCE (S256) for the public client, walked by the browser.
    Dex ends with 303 to `<redirect_uri>?code=…&state=<state>`. The public client has no
    `redirectURIs`, so Dex takes any `http` loopback redirect: 127.0.0.1 or localhost or
    [::1], any port or none, any path; an https or non-loopback one → 400 page
    "Unregistered redirect_uri." (shown once the connector is chosen). At `/dex/token`
    (grant_type authorization_code, code, redirect_uri, client_id, code_verifier):
    200 with id_token (carrying `nonce`) and refresh_token; without code_verifier → 400
    `invalid_grant` "Expecting parameter code_verifier in PKCE flow."; a wrong one → 400
    `invalid_grant` "Invalid code_verifier."; a code used twice → 400 `invalid_grant`
    "Invalid or expired code parameter."."""
    browser = lambda: Browser(IDP_USER, IDP_PASSWORD, connector=CONNECTOR_ID)  # noqa: E731
    token_url = f"{sso.provider_url}/token"
    redirect_uri = "http://127.0.0.1:49152/callback"
    verifier, challenge = pkce()

    def code_for(ru: str) -> str:
        walk = browser().walk(authorize_url(sso, ru, challenge))
        assert walk.redirect is not None and walk.redirect.startswith(ru + "?"), walk.steps
        assert walk.steps[-1] == ("GET", "/dex/callback", 303) and walk.query["state"] == "state-123"
        return walk.query["code"]

    base = {"grant_type": "authorization_code", "redirect_uri": redirect_uri, "client_id": PUBLIC_CLIENT}
    code = code_for(redirect_uri)
    assert form_post(token_url, {**base, "code": code}) == (
        400,
        {"error": "invalid_grant", "error_description": "Expecting parameter code_verifier in PKCE flow."},
    )
    code = code_for(redirect_uri)
    assert form_post(token_url, {**base, "code": code, "code_verifier": pkce()[0]}) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid code_verifier."},
    )
    code = code_for(redirect_uri)
    status, tokens = form_post(token_url, {**base, "code": code, "code_verifier": verifier})
    assert status == 200 and "refresh_token" in tokens
    claims = jwt_claims(tokens["id_token"])
    assert (claims["nonce"], claims["aud"], claims["email"]) == ("nonce-456", PUBLIC_CLIENT, IDP_USER)
    assert form_post(token_url, {**base, "code": code, "code_verifier": verifier}) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid or expired code parameter."},
    )

    for ru in ("http://localhost:8/", "http://127.0.0.1/cb", "http://[::1]:5000/x/y"):
        code_for(ru)
    for ru in ("https://127.0.0.1:4000/cb", "http://kubeflow.example/cb"):
        walk = browser().walk(authorize_url(sso, ru, challenge))
        assert walk.redirect is None and walk.page is not None
        assert (walk.page.status, walk.page.error) == (400, "Bad Request: Unregistered redirect_uri.")


class _Loopback:
    """A CLI's loopback redirect listener: records the query, serves a success page."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.queries.append(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)))
                body = b"<html><body><h2>Logged in</h2></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
def test_the_browser_as_dollar_browser(sso: SsoStack, tmp_path: Path, detach: bool) -> None:
    """Python's `webbrowser.open(url)` with `$BROWSER` set to the wrapper from
    `browser_command` runs the test browser on the authorization URL; it walks to the
    loopback redirect and fetches it, as a desktop browser would. webbrowser runs
    `$BROWSER` as one executable and waits for it to exit (GenericBrowser.open), so a
    CLI must be listening on its port before it opens the browser;
    `TEST_BROWSER_DETACH=1` returns at once instead."""
    loop = _Loopback()
    result = tmp_path / "browser.json"
    env = {
        **os.environ,
        "BROWSER": browser_command(tmp_path),
        "TEST_BROWSER_USERNAME": IDP_USER,
        "TEST_BROWSER_PASSWORD": IDP_PASSWORD,
        "TEST_BROWSER_CONNECTOR": CONNECTOR_ID,
        "TEST_BROWSER_RESULT": str(result),
        "TEST_BROWSER_DETACH": "1" if detach else "0",
    }
    try:
        url = authorize_url(sso, loop.url, pkce()[1])
        r = subprocess.run(
            [sys.executable, "-c", "import sys, webbrowser; sys.exit(not webbrowser.open(sys.argv[1]))", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 30
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        outcome = json.loads(result.read_text())
    finally:
        loop.close()
    assert outcome["ok"] and outcome["reached_redirect"] and outcome["heading"] == "Logged in", outcome
    assert len(loop.queries) == 1 and loop.queries[0]["state"] == "state-123" and loop.queries[0]["code"]
    assert ["GET", "/callback", 200] == outcome["steps"][-1]


@pytest.mark.parametrize("device_callback", [False, True], ids=["fixed-port-only", "with-device-callback"])
def test_registered_redirect_uris_turn_off_the_loopback_rule(tmp_path: Path, device_callback: bool) -> None:
    """Once the public client lists `redirectURIs`, Dex matches redirect URIs exactly:
    another loopback port → 400 "Unregistered redirect_uri.", and so does the device flow
    (its `/device/callback`), unless `/device/callback` is listed too. So an admin who
    registers a fixed port must also list `/device/callback`."""
    fixed = "http://127.0.0.1:8085/callback"
    uris = [fixed, "/device/callback"] if device_callback else [fixed]
    with start_sso_stack(tmp_path / "sso", public_redirect_uris=uris) as s:
        _, challenge = pkce()
        browser = lambda: Browser(IDP_USER, IDP_PASSWORD, connector=CONNECTOR_ID)  # noqa: E731
        assert browser().walk(authorize_url(s, fixed, challenge)).redirect is not None
        walk = browser().walk(authorize_url(s, "http://127.0.0.1:8086/callback", challenge))
        assert walk.page is not None and (walk.page.status, walk.page.error) == (
            400,
            "Bad Request: Unregistered redirect_uri.",
        )
        if device_callback:
            assert s.device_login()["id_token"]
        else:
            code = device_code(s)
            walk = browser().walk(code["verification_uri_complete"])
            assert walk.page is not None and (walk.page.status, walk.page.error) == (
                400,
                "Bad Request: Unregistered redirect_uri.",
            )
            assert poll(s, code) == (400, {"error": "authorization_pending"})


def test_device_codes_for_clients_that_cannot_use_them(sso: SsoStack) -> None:
    """Dex does not check `client_id` at `/dex/device/code`: an unknown client gets a
    device code (200). The failure shows only in the browser, after the connector is
    chosen: an unknown client → 404 page "Invalid client_id."; Kubeflow's confidential
    client (redirectURIs only `/oauth2/callback`) → 400 page "Unregistered redirect_uri.".
    The poll stays `authorization_pending` until the code expires; a made-up device code
    → 400 `invalid_request` "Invalid Device code."."""
    for client, status, error in (
        ("no-such-client", 404, "Not Found: Invalid client_id."),
        ("kubeflow-oidc-authservice", 400, "Bad Request: Unregistered redirect_uri."),
    ):
        code = device_code(sso, client)
        walk = Browser(IDP_USER, IDP_PASSWORD, connector=CONNECTOR_ID).walk(code["verification_uri_complete"])
        assert walk.steps[-1] == ("GET", f"/dex/auth/{CONNECTOR_ID}", status)
        assert walk.page is not None and walk.page.error == error
        assert poll(sso, code, client)[1] == {"error": "authorization_pending"}
    assert poll(sso, {"device_code": "made-up"}) == (
        400,
        {"error": "invalid_request", "error_description": "Invalid Device code."},
    )


def test_refusals_on_the_pages(sso: SsoStack) -> None:
    """What the user can get wrong, and what the CLI's poll sees meanwhile:
    - a wrong password at the IdP → 401, the form again with "Invalid Email Address and
      password." in `#login-error`;
    - "Cancel" on the IdP's approval screen → 500 page "Approval rejected." (Dex does not
      redirect back with `error=access_denied`);
    - a wrong user code → 400, the device page again with "Invalid or Expired User Code".
    In each case the poll stays 400 `authorization_pending`: Dex 2.45.1's device token
    endpoint never answers `access_denied`."""
    code = device_code(sso)
    url = code["verification_uri_complete"]
    walk = Browser(IDP_USER, "not-the-password", connector=CONNECTOR_ID).walk(url)
    assert walk.steps[-1][2] == 401 and walk.page is not None
    assert walk.page.error == "Invalid Email Address and password."
    walk = Browser(IDP_USER, IDP_PASSWORD, connector=CONNECTOR_ID, approve=False).walk(url)
    assert walk.steps[-1][1:] == (f"{urllib.parse.urlsplit(sso.idp_url).path}/approval", 500)
    assert walk.page is not None and walk.page.error == "Internal Server Error: Approval rejected."
    walk = Browser(IDP_USER, IDP_PASSWORD, user_code="ABCD-EFGH").walk(f"{sso.provider_url}/device")
    assert walk.steps[-1] == ("POST", "/dex/device/auth/verify_code", 400)
    assert walk.page is not None and walk.page.error == "Invalid or Expired User Code"
    assert poll(sso, code) == (400, {"error": "authorization_pending"})


def test_refresh_needs_the_idp(own_sso: SsoStack) -> None:
    """Refresh through the `oidc` connector refreshes at the IdP too. The IdP restarted
    (memory storage: its refresh tokens gone, as if revoked there) → Kubeflow's Dex
    answers 500 `{"error":"invalid_request"}` (no description). Kubeflow's Dex restarted
    → 400 "…already claimed…" (its own refresh tokens gone) and signs with a new key
    (a new `kid`; the old one leaves `/dex/keys`). The ID tokens already issued still pass
    the gateway until they expire, even those signed with the key Dex no longer has
    (oauth2-proxy keeps the keys it fetched); a new login after the restart passes too."""
    tokens = own_sso.device_login()
    status, renewed = refresh(own_sso, tokens["refresh_token"])
    assert status == 200
    own_sso.restart("idp")
    assert refresh(own_sso, renewed["refresh_token"]) == (500, {"error": "invalid_request"})
    assert api_get(own_sso.experiments_url, tokens["id_token"]) == (200, b"{}")

    tokens = own_sso.device_login()
    own_sso.restart("dex")
    assert refresh(own_sso, tokens["refresh_token"]) == (
        400,
        {"error": "invalid_request", "error_description": INVALID_REFRESH},
    )
    old_kid = jwt_claims(tokens["id_token"], 0)["kid"]
    assert old_kid not in [k["kid"] for k in json.loads(api_get(f"{own_sso.dex_url}/keys")[1])["keys"]]
    assert api_get(own_sso.experiments_url, tokens["id_token"]) == (200, b"{}")
    after = own_sso.device_login()
    assert jwt_claims(after["id_token"], 0)["kid"] != old_kid
    assert api_get(own_sso.experiments_url, after["id_token"]) == (200, b"{}")


def test_refresh_without_offline_access_in_the_connector(tmp_path: Path) -> None:
    """The fact sheet's warning, reproduced: an `oidc` connector whose `scopes` lack
    `offline_access` still lets the login succeed and returns a refresh token, but the
    refresh → 500 `{"error":"invalid_request"}`; Dex logs "oauth2: token expired and
    refresh token is not set"."""
    with start_sso_stack(tmp_path / "sso", connector_scopes=["openid", "profile", "email"]) as s:
        tokens = s.device_login()
        assert tokens["refresh_token"]
        assert refresh(s, tokens["refresh_token"]) == (500, {"error": "invalid_request"})
        assert "refresh token is not set" in s.log("dex")


def test_layout_b_oauth2_proxy_straight_to_the_idp(tmp_path: Path) -> None:
    """(f) No Kubeflow Dex: oauth2-proxy's provider is the IdP (`--oidc-issuer-url`, an
    absolute `--login-url`, `--redirect-url=<gateway>/oauth2/callback`). The device flow
    runs at the IdP itself (its single `local` connector: no choice page); its ID token
    (iss the IdP, aud kfp-auth) passes the gateway by `--oidc-extra-audience`; refresh
    works; the web login through `/oauth2/start` sets `oauth2_proxy_kubeflow`.
    `id_token_expiry` applies to the IdP here."""
    with start_sso_stack(tmp_path / "sso", direct=True, id_token_expiry="1h") as s:
        assert s.provider_url == s.issuer == s.idp_url and s.connector_id is None
        code = device_code(s)
        assert code["verification_uri"] == f"{s.idp_url}/device"
        tokens = s.device_login()
        claims = jwt_claims(tokens["id_token"])
        assert (claims["iss"], claims["aud"], claims["email"]) == (s.idp_url, PUBLIC_CLIENT, IDP_USER)
        assert claims["exp"] - claims["iat"] == 3600
        assert api_get(s.experiments_url, tokens["id_token"]) == (200, b"{}")
        assert refresh(s, tokens["refresh_token"])[0] == 200
        b = Browser(IDP_USER, IDP_PASSWORD)
        walk = b.walk(f"{s.gateway_url}/oauth2/start?rd=%2Fpipeline%2F")
        assert walk.steps[0] == ("GET", "/oauth2/start", 302) and walk.steps[-1] == ("GET", "/pipeline/", 200)
        assert [c.name for c in b.jar] == ["oauth2_proxy_kubeflow"]
        assert s.kfp_requests()[-1]["user"] == IDP_USER


def test_token_exchange_for_a_workload_token(sso: SsoStack) -> None:
    """(g) RFC 8693 works on Dex 2.45.1 with the `oidc` connector, on by default (no
    `oauth2.grantTypes` set). The subject is an ID token the IdP issued to another
    client (here by the IdP's password grant, standing in for a CI or workload token):
    `POST /dex/token` grant_type …token-exchange, client_id kfp-auth (public: no secret),
    connector_id, subject_token, subject_token_type …id_token, requested_token_type
    …id_token, scope → 200 `{access_token, issued_token_type, token_type: "bearer",
    expires_in}`: the new token is in `access_token` (no id_token, no refresh_token). It
    is a Dex ID token for kfp-auth with the subject's email, and passes the gateway.
    Without requested_token_type, an access token (also a JWT that passes).
    Without `email` in `scope`, the token has no email claim. Refusals: no or a
    non-oidc connector_id → 400 `invalid_request` "Requested connector does not exist.";
    a token the IdP did not sign (Kubeflow Dex's own, garbage) → 401 `access_denied`;
    no subject_token_type → 400 `request_not_supported` "Invalid subject_token_type.";
    subject_token_type access_token → 401 `access_denied` (the connector lacks
    `getUserInfo`)."""
    status, workload = form_post(
        f"{sso.idp_url}/token",
        {
            "grant_type": "password",
            "username": IDP_USER,
            "password": IDP_PASSWORD,
            "scope": "openid email profile",
            "client_id": WORKLOAD_CLIENT,
            "client_secret": (sso.secrets or {})[WORKLOAD_CLIENT],
        },
    )
    assert status == 200 and jwt_claims(workload["id_token"])["aud"] == WORKLOAD_CLIENT
    url = f"{sso.provider_url}/token"
    base = {
        "grant_type": TOKEN_EXCHANGE,
        "client_id": PUBLIC_CLIENT,
        "connector_id": CONNECTOR_ID,
        "subject_token": workload["id_token"],
        "subject_token_type": ID_TOKEN_TYPE,
    }

    status, got = form_post(url, {**base, "requested_token_type": ID_TOKEN_TYPE, "scope": "openid email profile"})
    assert status == 200, got
    assert set(got) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert (got["issued_token_type"], got["token_type"]) == (ID_TOKEN_TYPE, "bearer")
    claims = jwt_claims(got["access_token"])
    assert (claims["iss"], claims["aud"], claims["email"]) == (sso.issuer, PUBLIC_CLIENT, IDP_USER)
    assert api_get(sso.experiments_url, got["access_token"]) == (200, b"{}")

    status, access = form_post(url, {**base, "scope": "openid email"})
    assert status == 200 and access["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert api_get(sso.experiments_url, access["access_token"]) == (200, b"{}")
    status, bare = form_post(url, {**base, "requested_token_type": ID_TOKEN_TYPE, "scope": "openid"})
    assert status == 200 and "email" not in jwt_claims(bare["access_token"])

    no_connector = (400, {"error": "invalid_request", "error_description": "Requested connector does not exist."})
    assert form_post(url, {k: v for k, v in base.items() if k != "connector_id"}) == no_connector
    assert form_post(url, {**base, "connector_id": "local"}) == no_connector
    kubeflow_token = sso.device_login()["id_token"]
    for subject in (kubeflow_token, "a.b.c"):
        assert form_post(url, {**base, "subject_token": subject}) == (401, {"error": "access_denied"})
    assert form_post(url, {**base, "subject_token_type": ""}) == (
        400,
        {"error": "request_not_supported", "error_description": "Invalid subject_token_type."},
    )
    assert form_post(
        url, {**base, "subject_token": workload["access_token"], "subject_token_type": ACCESS_TOKEN_TYPE}
    ) == (401, {"error": "access_denied"})


def test_issuer_unreachable_served_through_the_gateway(tmp_path: Path) -> None:
    """Dex with Kubeflow's in-cluster issuer `http://dex.auth.svc.cluster.local:5556/dex`,
    served through the gateway's /dex (Dex routes by the issuer's path only). Discovery
    read through the gateway names the unreachable host in every endpoint, and so does
    the device code's verification_uri; mapped onto `<gateway>/dex`, the whole device
    flow works, since Dex's own pages redirect and post to paths, not URLs
    (`/dex/device/auth/verify_code`, `/dex/auth`, `/dex/device/callback`). Tokens carry
    the in-cluster `iss`, and pass the gateway (its `--oidc-issuer-url` is the same).
    No SSO connector here: the IdP would send the browser to `<issuer>/callback`, a name it
    cannot resolve, and Dex refuses a connector `redirectURI` other than that. The user is
    Dex's `local` one."""
    with start_sso_stack(tmp_path / "sso", issuer_unreachable=True) as s:
        assert s.issuer == IN_CLUSTER_ISSUER and s.connector_id is None and s.user == FAST_USER
        status, body = api_get(f"{s.provider_url}/.well-known/openid-configuration")
        d = json.loads(body)
        assert status == 200 and d["issuer"] == IN_CLUSTER_ISSUER
        assert d["device_authorization_endpoint"] == f"{IN_CLUSTER_ISSUER}/device/code"
        code = device_code(s)
        assert code["verification_uri"] == f"{IN_CLUSTER_ISSUER}/device"
        walk = Browser(s.user, s.password).walk(s.reachable(code["verification_uri_complete"]))
        assert [p for _, p, _ in walk.steps] == [
            "/dex/device",
            "/dex/device/auth/verify_code",
            "/dex/auth",
            "/dex/auth/local",
            "/dex/auth/local/login",
            "/dex/auth/local/login",
            "/dex/device/callback",
        ]
        status, tokens = poll(s, code)
        assert status == 200
        claims = jwt_claims(tokens["id_token"])
        assert (claims["iss"], claims["email"]) == (IN_CLUSTER_ISSUER, FAST_USER)
        assert api_get(s.experiments_url, tokens["id_token"]) == (200, b"{}")
