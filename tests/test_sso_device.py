"""The device login (RFC 8628) with refresh, on the real SSO stack: Kubeflow's Dex with an
`oidc` connector to a second Dex (the company IdP), behind the real oauth2-proxy. The
user's browser is tests/stack/browser.py, walking the real pages from the URL and code the
prompt shows. The tests at the top need no stack."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kfp_auth
from kfp_auth import (
    BearerSession,
    DeviceEvent,
    DeviceLoginError,
    DevicePrompt,
    InvalidArgumentError,
    KFPClientManager,
    LoginRequiredError,
    TokenError,
)
from stack import FAST_NAMESPACE, FAST_USER
from stack.device_user import User
from stack.sso import (
    CONNECTOR_ID,
    IDP_NAMESPACE,
    IDP_USER,
    IN_CLUSTER_ISSUER,
    SsoStack,
    api_get,
    jwt_claims,
    start_sso_stack,
)

#: Long base64url runs: tokens, refresh tokens and device codes all look like this.
SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")


def device_manager(stack: SsoStack, user: User, **kw: Any) -> KFPClientManager:
    return KFPClientManager(stack.api_url, login="device", prompt=user, **kw)


# -- Without a stack --


@pytest.mark.parametrize(
    "kw,argument",
    [
        ({"login": "password"}, "login"),
        ({"login": "device", "dex_password": "hunter2-pw"}, "dex_password"),
        ({"login": "device", "dex_client_secret": "s3cret"}, "dex_client_secret"),
        ({"login": "device", "existing_token": "t"}, "existing_token"),
        ({"login": "device", "dex_client_id": ""}, "dex_client_id"),
        ({"login": "device", "dex_auth_type": "a/b"}, "dex_auth_type"),
        ({"login": "device", "api_url": "https://kf.example/p", "dex_url": "http://dex.example/dex"}, "dex_url"),
        ({"prompt": print}, "prompt"),
        ({"relogin": True}, "relogin"),
        ({"scopes": "openid email"}, "scopes"),
        ({"login": "device", "scopes": "email offline_access"}, "scopes"),
    ],
)
def test_device_arguments_are_checked_at_construction(kw: dict[str, Any], argument: str) -> None:
    args = {"api_url": "http://127.0.0.1:9/pipeline", **kw}
    with pytest.raises(InvalidArgumentError) as ei:
        KFPClientManager(**args)
    assert ei.value.argument == argument, str(ei.value)
    assert "hunter2-pw" not in str(ei.value) and "s3cret" not in str(ei.value)


def test_a_device_manager_makes_no_request_until_used() -> None:
    m = KFPClientManager("http://127.0.0.1:9/pipeline", login="device", dex_auth_type="upstream")
    assert m.auth_kind == "dex-device" and m.logins == 0 and m.bearer is not None
    assert m.bearer.kind == "dex-device" and m.bearer.refreshes == 0
    assert "device login at http://127.0.0.1:9/dex for the client kfp-auth" in repr(m)
    assert m.token_claims() is None
    with pytest.raises(InvalidArgumentError, match="poll_interval"):
        BearerSession.from_dex_device("http://127.0.0.1:9/p", poll_interval=0)


CODE: DeviceEvent = {
    "event": "code",
    "verification_uri": "http://gw/dex/device",
    "verification_uri_complete": "http://gw/dex/device?user_code=ABCD-EFGH",
    "user_code": "ABCD-EFGH",
    "expires_in": 300.0,
    "connector": "upstream",
    "message": None,
}


def ended(kind: Any, message: str | None = None) -> DeviceEvent:
    return {
        "event": kind,
        "verification_uri": None,
        "verification_uri_complete": None,
        "user_code": None,
        "expires_in": None,
        "connector": None,
        "message": message,
    }


def test_the_terminal_prompt_shows_the_url_and_code_then_the_outcome() -> None:
    out = io.StringIO()
    p = DevicePrompt(out)
    p(CODE)
    p(ended("done"))
    text = out.getvalue()
    assert "http://gw/dex/device?user_code=ABCD-EFGH" in text and "ABCD-EFGH" in text
    assert "`upstream`" in text and "5 min 0 s" in text
    assert text.rstrip().endswith("kfp-auth: Logged in.")


def test_the_jupyter_prompt_is_a_link_updated_when_the_login_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, str]] = []

    class Handle:
        def update(self, obj: Any) -> None:
            shown.append(("update", obj.data))

    class HTML:
        def __init__(self, data: str) -> None:
            self.data = data

    def display(obj: Any, display_id: bool = False) -> Handle:
        assert display_id is True
        shown.append(("display", obj.data))
        return Handle()

    shell = types.SimpleNamespace(kernel=object())
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display, ipython_display.HTML = display, HTML  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)
    p = DevicePrompt()
    p({**CODE, "verification_uri_complete": 'http://gw/dex/device?user_code=A"<b>'})
    p(ended("failed", "the code <expired>"))
    (kind1, first), (kind2, second) = shown
    assert (kind1, kind2) == ("display", "update")
    assert '<a href="http://gw/dex/device?user_code=A&quot;&lt;b&gt;" target="_blank"' in first
    assert "Waiting for the login" in first
    assert "The login failed: the code &lt;expired&gt;" in second and "<a href=" in second
    # No kernel (plain IPython in a terminal): the terminal prompt.
    shell.kernel = None
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    DevicePrompt()(CODE)
    assert "ABCD-EFGH" in err.getvalue() and len(shown) == 2


# -- On the real SSO stack --


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    """Layout A; each test's login replaces the previous one's refresh token (same user)."""
    with start_sso_stack(tmp_path_factory.mktemp("sso")) as s:
        yield s


@pytest.mark.stack
def test_a_device_login_as_the_idp_user_lists_experiments_as_that_user(
    sso: SsoStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kfp_auth")
    user = User(sso)
    m = device_manager(sso, user, dex_auth_type=CONNECTOR_ID)
    client = m.create_kfp_client()  # kfp asks for the token as it builds the client: the login
    client.list_experiments(namespace=IDP_NAMESPACE)
    assert user.kinds() == ["code", "done"]
    code = user.events[0]
    assert code["verification_uri"] == f"{sso.gateway_url}/dex/device" and code["connector"] == CONNECTOR_ID
    assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", code["user_code"] or "")
    assert user.walks[0].page.heading == "Login Successful for kfp-auth"
    token = m.get_bearer_token()
    assert token is not None
    claims = jwt_claims(token)
    assert (claims["email"], claims["aud"], claims["iss"]) == (IDP_USER, "kfp-auth", sso.issuer)
    assert m.token_claims()["issuer"] == sso.issuer  # type: ignore[index]
    assert {r["user"] for r in sso.kfp_requests() if "/apis/" in r["path"]} == {IDP_USER}
    assert m.logins == 1 and m.bearer is not None and m.bearer.refreshes == 0
    # A forced refresh renews without asking the user.
    renewed = m.get_bearer_token(force_refresh=True)
    assert renewed != token and jwt_claims(renewed or "")["email"] == IDP_USER
    assert m.bearer.refreshes == 1 and user.kinds() == ["code", "done"]
    client.list_experiments(namespace=IDP_NAMESPACE)
    # The clients' 401 hook: the refused token is replaced by a refresh, once however
    # often the same token is reported.
    replaced = m.bearer.refresh(renewed or "")
    assert replaced not in (token, renewed) and m.bearer.refresh(renewed or "") == replaced
    assert m.bearer.refreshes == 2 and user.kinds() == ["code", "done"]
    # Nothing secret in the logs, the repr or the prompt's events.
    shown = caplog.text + repr(m) + repr(m.bearer) + repr(user.events)
    assert "device login: waiting for the user" in caplog.text
    assert not SECRET_LIKE.search(shown), SECRET_LIKE.findall(shown)


@pytest.mark.stack
def test_short_id_tokens_are_refreshed_for_several_lifetimes_without_a_prompt(tmp_path: Path) -> None:
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s") as s:
        user = User(s)
        m = device_manager(s, user)
        client = m.create_kfp_client()
        client.list_experiments(namespace=IDP_NAMESPACE)
        first = m.get_bearer_token()
        lifetime = jwt_claims(first or "")["exp"] - jwt_claims(first or "")["iat"]
        assert lifetime == 5
        until = time.time() + 4 * lifetime
        failures: list[BaseException] = []

        def in_a_thread() -> None:
            # Dex rotates the refresh token on every use: overlapping renewals would
            # void each other. Each thread asks for the token as it goes stale.
            try:
                while time.time() < until:
                    token = m.get_bearer_token()
                    assert api_get(s.experiments_url, token)[0] == 200
                    time.sleep(0.1)
            except BaseException as e:  # noqa: B036 - reported by the main thread
                failures.append(e)

        threads = [threading.Thread(target=in_a_thread) for _ in range(6)]
        for t in threads:
            t.start()
        while time.time() < until:
            client.list_experiments(namespace=IDP_NAMESPACE)
            time.sleep(0.5)
        for t in threads:
            t.join()
        assert not failures, failures
        assert user.kinds() == ["code", "done"], "one login, no prompt since"
        assert m.bearer is not None and m.logins == 1
        # One refresh per lifetime (4 s before a 5 s token expires), not one per thread.
        assert 4 <= m.bearer.refreshes <= 8, m.bearer.refreshes
        api = [r for r in s.kfp_requests() if "/apis/" in r["path"]]
        assert api and {r["user"] for r in api} == {IDP_USER}
        # Refreshed ahead of expiry: the gateway never refused a token (no 401 retried).
        assert "token is expired" not in s.gateway_log()


@pytest.mark.stack
def test_an_expired_device_code_is_a_typed_error(tmp_path: Path) -> None:
    with start_sso_stack(tmp_path / "sso", device_requests_expiry="3s") as s:
        user = User(s, walk=False)
        m = device_manager(s, user)
        started = time.monotonic()
        with pytest.raises(DeviceLoginError) as ei:
            m.get_bearer_token()
        assert time.monotonic() - started < 10
        assert "code expired before the login was finished" in str(ei.value)
        assert "staticClients" in str(ei.value), "it names the admin change a refusal in the browser would need"
        assert user.kinds() == ["code", "failed"]
        assert user.events[1]["message"] == str(ei.value)


@pytest.mark.stack
def test_slow_down_adds_five_seconds_and_the_login_still_completes(
    sso: SsoStack, caplog: pytest.LogCaptureFixture
) -> None:
    """Polling every second (against Dex's 5 s) gets `slow_down` on the second poll; the
    interval becomes 6 s, and the user's login, finished meanwhile, is picked up."""
    caplog.set_level(logging.DEBUG, logger="kfp_auth")
    user = User(sso, delay=2.5)
    b = BearerSession.from_dex_device(sso.api_url, prompt=user, poll_interval=1.0)
    started = time.monotonic()
    token = b.token()
    took = time.monotonic() - started
    assert jwt_claims(token)["email"] == IDP_USER
    slow = [r.getMessage() for r in caplog.records if "slow down" in r.getMessage()]
    assert slow and "polling every 6 s" in slow[0], caplog.text
    assert took >= 6, f"{took:.1f} s: the poll after slow_down waited the longer interval"
    posts = re.findall(r"POST \S+/dex/token -> (\d+)", caplog.text)
    assert posts[:2] == ["400", "400"] and posts[-1] == "200", posts


@pytest.mark.stack
def test_a_second_login_of_the_same_user_kills_the_first_refresh_token(sso: SsoStack) -> None:
    first_user, second_user = User(sso), User(sso)
    # In memory: with the token cache (the default), the second would reuse the first's login.
    first = device_manager(sso, first_user, token_cache=False)
    second = device_manager(sso, second_user, token_cache=False)
    token = first.get_bearer_token()
    second.get_bearer_token()
    with pytest.raises(LoginRequiredError) as ei:
        first.get_bearer_token(force_refresh=True)
    e = ei.value
    assert isinstance(e, TokenError) and isinstance(e, kfp_auth.KFPAuthError)
    assert str(e).count("log in again") == 1 and "already been claimed" in str(e), str(e)
    assert token is not None and token not in str(e) and not SECRET_LIKE.search(str(e) + repr(vars(e)))
    # The error stays the answer, with no prompt, until a login is asked for.
    with pytest.raises(LoginRequiredError):
        first.get_bearer_token(force_refresh=True)
    assert first_user.kinds() == ["code", "done"]
    client = first.create_kfp_client(force_login=True)
    assert first_user.kinds() == ["code", "done", "code", "done"]
    client.list_experiments(namespace=IDP_NAMESPACE)


@pytest.mark.stack
def test_dex_restarted_the_client_gets_the_log_in_again_error(tmp_path: Path) -> None:
    with start_sso_stack(tmp_path / "sso") as s:
        user = User(s)
        m = device_manager(s, user)
        client = m.create_kfp_client()
        client.list_experiments(namespace=IDP_NAMESPACE)
        s.restart("dex")  # memory storage: its refresh tokens are gone
        with pytest.raises(LoginRequiredError, match="log in again"):
            m.get_bearer_token(force_refresh=True)
        assert user.kinds() == ["code", "done"]


@pytest.mark.stack
def test_an_in_cluster_issuer_is_reached_through_the_gateway(tmp_path: Path) -> None:
    with start_sso_stack(tmp_path / "sso", issuer_unreachable=True) as s:
        user = User(s)
        m = device_manager(s, user)
        m.create_kfp_client().list_experiments(namespace=FAST_NAMESPACE)
        code = user.events[0]
        assert code["verification_uri"] == f"{s.gateway_url}/dex/device"
        assert (code["verification_uri_complete"] or "").startswith(f"{s.gateway_url}/dex/device?user_code=")
        claims = jwt_claims(m.get_bearer_token() or "")
        assert (claims["iss"], claims["email"]) == (IN_CLUSTER_ISSUER, FAST_USER)
        assert m.get_bearer_token(force_refresh=True) and m.bearer is not None and m.bearer.refreshes == 1


@pytest.mark.stack
def test_async_login_never_blocks_the_loop_and_cancelling_stops_the_poll(
    sso: SsoStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kfp_auth")

    async def main() -> tuple[int, str | None, User]:
        waiting = User(sso, walk=False)
        m = device_manager(sso, waiting)
        task = asyncio.ensure_future(m.get_bearer_token_async())
        ticks = 0
        while not waiting.code_shown.is_set():
            await asyncio.sleep(0.01)
            ticks += 1
        await asyncio.sleep(1)  # polling meanwhile; the loop keeps turning
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        polls = len(re.findall(r"POST \S+/dex/token", caplog.text))
        await asyncio.sleep(6)  # longer than Dex's interval: a poll still running would show
        assert len(re.findall(r"POST \S+/dex/token", caplog.text)) == polls, "the poll stopped"
        assert waiting.kinds() == ["code", "cancelled"]
        # The same manager logs in when asked again, and the user finishes this time.
        waiting.walk, waiting.stack = True, sso
        return ticks, await m.get_bearer_token_async(), waiting

    ticks, token, user = asyncio.run(main())
    assert ticks > 0 and jwt_claims(token or "")["email"] == IDP_USER
    assert user.kinds() == ["code", "cancelled", "code", "done"]


@pytest.mark.stack
def test_ctrl_c_stops_the_blocking_poll_at_once(sso: SsoStack) -> None:
    code = textwrap.dedent(f"""
        from kfp_auth import KFPClientManager
        m = KFPClientManager({sso.api_url!r}, login="device")
        try:
            m.get_bearer_token()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None
        lines = [p.stderr.readline() for _ in range(3)]
        assert lines[0].startswith("kfp-auth: to log in, open this page in a browser"), lines
        assert f"{sso.gateway_url}/dex/device?user_code=" in lines[1]
        time.sleep(0.5)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        assert time.monotonic() - sent < 2
    finally:
        p.kill()
    assert out.strip() == "interrupted", err
    assert "kfp-auth: The login was cancelled." in err
