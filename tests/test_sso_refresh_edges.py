"""Refresh tokens that die, on the real SSO stack (layout A), seen through the kfp.Client a
user holds: revoked by Dex's admin, the grant revoked at the company IdP, Kubeflow's Dex
restarted, and a refresh token past its lifetime. Each ends in `LoginRequiredError` saying to log in again, with no
prompt in the middle of the job, and a login asked for then works. With `relogin=True`, the
manager logs in again by itself instead (the user is prompted once).

tests/test_sso_device.py has the rest: a rotated-away refresh token, Dex restarted under
`get_bearer_token`, the in-cluster issuer, and refresh over several ID-token lifetimes."""

from __future__ import annotations

import re
import time
import webbrowser
from pathlib import Path

import pytest

from kfp_auth import KFPClientManager, LoginRequiredError
from stack.browser import browser_command
from stack.device_user import User
from stack.sso import CONNECTOR_ID, IDP_NAMESPACE, IDP_PASSWORD, IDP_USER, SsoStack, jwt_claims, start_sso_stack

pytestmark = pytest.mark.stack

#: Long base64url runs: tokens, refresh tokens and device codes all look like this.
SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")


def logged_in(stack: SsoStack) -> tuple[KFPClientManager, User]:
    user = User(stack)
    m = KFPClientManager(stack.api_url, login="device", prompt=user)
    m.create_kfp_client().list_experiments(namespace=IDP_NAMESPACE)
    assert user.kinds() == ["code", "done"]
    return m, user


def until_stale(m: KFPClientManager) -> None:
    """Wait until the held ID token is due for renewal (kfp-auth renews a short one a
    quarter of its life ahead), so the client's next request needs a refresh."""
    claims = jwt_claims(m.get_bearer_token() or "")
    time.sleep(max(0.0, claims["exp"] - (claims["exp"] - claims["iat"]) / 4 - time.time() + 0.5))


def assert_login_required(e: LoginRequiredError, *causes: str) -> None:
    text = str(e)
    assert text.count("log in again") == 1 and "create_kfp_client(force_login=True)" in text, text
    for cause in causes:
        assert cause in text, text
    assert not SECRET_LIKE.search(text + repr(vars(e))), text


def test_a_refresh_token_revoked_by_the_admin_stops_the_client_with_login_required(tmp_path: Path) -> None:
    """Dex revokes a refresh token only through its gRPC admin API: `RevokeRefresh` with the
    user (an ID token's `sub`) and the client. Dex then answers the refresh 400
    `invalid_request` "Refresh token is invalid or has already been claimed by another client.",
    as for a token rotated away."""
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s", admin_api=True) as s:
        m, user = logged_in(s)
        client = m.create_kfp_client()
        subject = jwt_claims(m.get_bearer_token() or "")["sub"]
        assert s.revoke_refresh(subject, "kubeflow-oidc-authservice") == "not found", "per client"
        assert s.revoke_refresh(subject) == "revoked"
        assert s.revoke_refresh(subject) == "not found"
        until_stale(m)
        with pytest.raises(LoginRequiredError) as ei:
            client.list_experiments(namespace=IDP_NAMESPACE)
        assert_login_required(ei.value, "HTTP 400", "(Refresh token is invalid or has already been claimed")
        assert user.kinds() == ["code", "done"] and m.logins == 1
        client = m.create_kfp_client(force_login=True)
        client.list_experiments(namespace=IDP_NAMESPACE)
        assert user.kinds() == ["code", "done", "code", "done"]
        # The new login has a refresh token of its own, which renews.
        assert m.get_bearer_token(force_refresh=True) and m.bearer is not None and m.bearer.refreshes >= 2


def test_a_grant_revoked_at_the_idp_stops_the_client_with_login_required(tmp_path: Path) -> None:
    """Dex refreshes through the `oidc` connector, so the IdP must still honour the grant.
    The IdP restarted (memory storage) has forgotten it, as an IdP where the user's
    sessions were revoked: Dex answers the refresh 500 `invalid_request`."""
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s") as s:
        m, user = logged_in(s)
        client = m.create_kfp_client()
        s.restart("idp")
        until_stale(m)
        with pytest.raises(LoginRequiredError) as ei:
            client.list_experiments(namespace=IDP_NAMESPACE)
        assert_login_required(ei.value, "HTTP 500", "upstream identity provider")
        # The answer stays the error, with nobody prompted, until a login is asked for.
        with pytest.raises(LoginRequiredError):
            client.list_experiments(namespace=IDP_NAMESPACE)
        assert user.kinds() == ["code", "done"] and m.logins == 1
        client = m.create_kfp_client(force_login=True)
        client.list_experiments(namespace=IDP_NAMESPACE)
        assert user.kinds() == ["code", "done", "code", "done"] and m.logins == 2
        assert s.kfp_requests()[-1]["user"] == IDP_USER


def test_dex_restarted_stops_the_client_with_login_required(tmp_path: Path) -> None:
    """Kubeflow's Dex with memory storage forgets its refresh tokens on a restart: 400."""
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s") as s:
        m, user = logged_in(s)
        client = m.create_kfp_client()
        s.restart("dex")
        until_stale(m)
        with pytest.raises(LoginRequiredError) as ei:
            client.list_experiments(namespace=IDP_NAMESPACE)
        assert_login_required(ei.value, "HTTP 400", "Dex or the upstream identity provider restarted")
        assert user.kinds() == ["code", "done"]
        client = m.create_kfp_client(force_login=True)
        client.list_experiments(namespace=IDP_NAMESPACE)
        assert user.kinds() == ["code", "done", "code", "done"]


def test_a_refresh_token_past_its_lifetime_is_login_required(tmp_path: Path) -> None:
    """Dex's `expiry.refreshTokens.absoluteLifetime`: a refresh token older than that is
    refused, whether or not it was rotated meanwhile (the lifetime runs from the login)."""
    with start_sso_stack(
        tmp_path / "sso", id_token_expiry="5s", refresh_tokens_expiry={"absoluteLifetime": "12s"}
    ) as s:
        m, user = logged_in(s)
        client = m.create_kfp_client()
        assert m.bearer is not None
        login_at = time.time()
        until_stale(m)
        client.list_experiments(namespace=IDP_NAMESPACE)  # refreshed within the lifetime
        assert m.bearer.refreshes >= 1
        while time.time() < login_at + 13:  # past the lifetime, and past the refreshed ID token's
            time.sleep(0.5)
        with pytest.raises(LoginRequiredError) as ei:
            client.list_experiments(namespace=IDP_NAMESPACE)
        assert_login_required(ei.value, "HTTP 400", "Refresh token expired.")
        assert user.kinds() == ["code", "done"] and m.logins == 1


@pytest.mark.parametrize("login", ["device", "browser"])
def test_with_relogin_a_dead_refresh_token_prompts_once_and_the_call_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, login: str
) -> None:
    """Opt-in: the client's call after Dex forgot the refresh token shows the prompt once,
    the user logs in again, and the call goes through. Kept in the token cache (the default)
    and in memory only: the two renewal paths. The browser is the test browser as `$BROWSER`."""
    if login == "browser":
        for k, v in {
            "BROWSER": browser_command(tmp_path),
            "TEST_BROWSER_USERNAME": IDP_USER,
            "TEST_BROWSER_PASSWORD": IDP_PASSWORD,
            "TEST_BROWSER_CONNECTOR": CONNECTOR_ID,
            "TEST_BROWSER_RESULT": str(tmp_path / "browser.json"),
            "TEST_BROWSER_DETACH": "1",
        }.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(webbrowser, "_tryorder", None)
        monkeypatch.setattr(webbrowser, "_browsers", {})
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s") as s:
        held = []
        for token_cache in (None, False):
            user = User(s)
            m = KFPClientManager(s.api_url, login=login, prompt=user, relogin=True, token_cache=token_cache)
            client = m.create_kfp_client()
            client.list_experiments(namespace=IDP_NAMESPACE)
            assert user.kinds() == ["code" if login == "device" else "browser", "done"]
            held.append((m, user, client))
        s.restart("dex")
        for m, user, client in held:
            until_stale(m)
            before = len(s.kfp_requests())
            client.list_experiments(namespace=IDP_NAMESPACE)
            assert user.kinds()[2:] == user.kinds()[:2], "the login was shown again, once"
            assert m.logins == 2 and m.bearer is not None
            api = [r["user"] for r in s.kfp_requests()[before:] if "/apis/" in r["path"]]
            assert api and set(api) == {IDP_USER}
            # The new login's refresh token renews, with nobody asked.
            refreshes = m.bearer.refreshes
            assert m.get_bearer_token(force_refresh=True) and m.bearer.refreshes == refreshes + 1
            assert len(user.events) == 4 and m.logins == 2
