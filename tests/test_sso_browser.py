"""The browser login (authorization code with PKCE on a loopback redirect) on the real SSO
stack: Kubeflow's Dex with an `oidc` connector to a second Dex (the company IdP), behind the
real oauth2-proxy. The user's browser is `$BROWSER`, opened through Python's webbrowser:
tests/stack/browser.py walking the real pages, or small programs playing an old tab, a
foreign client, or a browser that never comes back. The tests at the top need no stack."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_sso_device import SECRET_LIKE, User

import kfp_auth
from kfp_auth import (
    BearerSession,
    BrowserLoginError,
    BrowserLoginRefusedError,
    BrowserStateMismatchError,
    BrowserTimeoutError,
    DeviceEvent,
    DevicePrompt,
    InvalidArgumentError,
    KFPClientManager,
    LoopbackPortInUseError,
    TokenError,
)
from stack import free_port
from stack.browser import Browser, browser_command
from stack.sso import (
    CONNECTOR_ID,
    IDP_NAMESPACE,
    IDP_PASSWORD,
    IDP_USER,
    SsoStack,
    api_get,
    jwt_claims,
    start_sso_stack,
)

TESTS = Path(__file__).resolve().parent


class Events:
    """The prompt of the tests: records each event."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []

    def __call__(self, event: DeviceEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]

    def url(self) -> dict[str, str]:
        """The query of the authorization URL the browser was sent to."""
        page = next(e["verification_uri"] for e in self.events if e["event"] == "browser")
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page or "").query))


def program(folder: Path, name: str, body: str) -> str:
    """An executable Python program for `$BROWSER` (webbrowser runs it with the URL)."""
    exe = folder / name
    exe.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    exe.chmod(0o755)
    return str(exe)


def wait_for(path: Path, timeout: float = 60) -> Any:
    """The JSON a `$BROWSER` program wrote to `path`, once it is whole: the program may still
    be writing it when the login it answered has already ended."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def shown_then_failed(events: Events, e: BaseException) -> bool:
    """The page is shown once the browser has started (or after a second); a login that
    fails before, as quickly as a foreign callback can, ends with the error alone."""
    kinds = events.kinds()
    return kinds == [] or (kinds == ["browser", "failed"] and events.events[1]["message"] == str(e))


UseBrowser = Callable[..., Path]


@pytest.fixture
def use_browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> UseBrowser:
    """Set `$BROWSER` (default: the test browser, detached, as alice at the IdP) and make
    webbrowser read it again (it reads `$BROWSER` once per process). Returns the file the
    test browser writes its outcome to."""

    def use(browser: str | None = None, **env: str) -> Path:
        result = tmp_path / f"browser-{time.monotonic_ns()}.json"
        settings = {
            "BROWSER": browser or browser_command(tmp_path),
            "TEST_BROWSER_USERNAME": IDP_USER,
            "TEST_BROWSER_PASSWORD": IDP_PASSWORD,
            "TEST_BROWSER_RESULT": str(result),
            "TEST_BROWSER_DETACH": "1",
            **env,
        }
        for k, v in settings.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(webbrowser, "_tryorder", None)
        monkeypatch.setattr(webbrowser, "_browsers", {})
        return result

    return use


def browser_manager(stack: SsoStack, prompt: Any, **kw: Any) -> KFPClientManager:
    return KFPClientManager(stack.api_url, login="browser", prompt=prompt, **kw)


# -- Without a stack --


@pytest.mark.parametrize(
    "kw,argument",
    [
        ({"login": "password"}, "login"),
        ({"login": "browser", "dex_password": "hunter2-pw"}, "dex_password"),
        ({"login": "browser", "existing_token": "t"}, "existing_token"),
        ({"login": "browser", "browser_port": 0}, "browser_port"),
        ({"login": "browser", "browser_port": 70000}, "browser_port"),
        ({"login": "browser", "browser_timeout": 0}, "browser_timeout"),
        ({"login": "browser", "browser_timeout": -1.0}, "browser_timeout"),
        ({"login": "browser", "dex_auth_type": "a/b"}, "dex_auth_type"),
        ({"login": "device", "browser_port": 8085}, "browser_port"),
        ({"browser_port": 8085}, "browser_port"),
    ],
)
def test_browser_arguments_are_checked_at_construction(kw: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidArgumentError) as ei:
        KFPClientManager("http://127.0.0.1:9/pipeline", **kw)
    assert ei.value.argument == argument, str(ei.value)
    assert "hunter2-pw" not in str(ei.value)


def test_a_browser_manager_makes_no_request_until_used() -> None:
    m = KFPClientManager("http://127.0.0.1:9/pipeline", login="browser", dex_auth_type="upstream")
    assert m.auth_kind == "dex-browser" and m.logins == 0 and m.bearer is not None
    assert m.bearer.kind == "dex-browser"
    assert "browser login at http://127.0.0.1:9/dex for the client kfp-auth" in repr(m)


def test_the_terminal_prompt_shows_the_page_to_open_by_hand() -> None:
    out = io.StringIO()
    p = DevicePrompt(out)
    p(
        {
            "event": "browser",
            "verification_uri": "http://gw/dex/auth?client_id=kfp-auth",
            "verification_uri_complete": None,
            "user_code": None,
            "expires_in": None,
            "connector": None,
            "message": None,
        }
    )
    p({**p._code, "event": "done"})  # type: ignore[typeddict-item]
    text = out.getvalue()
    assert "If no browser window appeared, open this page on this machine" in text
    assert "    http://gw/dex/auth?client_id=kfp-auth\n" in text and text.rstrip().endswith("Logged in.")


def test_the_jupyter_prompt_links_the_page_and_escapes_it() -> None:
    event: DeviceEvent = {
        "event": "browser",
        "verification_uri": 'http://gw/dex/auth?client_id=kfp-auth&x="<b>',
        "verification_uri_complete": None,
        "user_code": None,
        "expires_in": None,
        "connector": None,
        "message": None,
    }
    shown = DevicePrompt._html(event, None)
    assert '<a href="http://gw/dex/auth?client_id=kfp-auth&amp;x=&quot;&lt;b&gt;" target="_blank"' in shown
    assert "Waiting for the login" in shown
    assert "Logged in." in DevicePrompt._html(event, "Logged in.")


# -- On the real SSO stack --


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    """Layout A; each test's login replaces the previous one's refresh token (same user)."""
    with start_sso_stack(tmp_path_factory.mktemp("sso")) as s:
        yield s


@pytest.mark.stack
def test_a_browser_login_with_the_connector_chosen_lists_experiments_as_alice(
    sso: SsoStack, use_browser: UseBrowser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kfp_auth")
    result = use_browser()
    events = Events()
    m = browser_manager(sso, events, dex_auth_type=CONNECTOR_ID)
    client = m.create_kfp_client()  # kfp asks for the token as it builds the client: the login
    client.list_experiments(namespace=IDP_NAMESPACE)
    assert events.kinds() == ["browser", "done"]
    sent = events.url()
    assert sent["connector_id"] == CONNECTOR_ID and sent["code_challenge_method"] == "S256"
    assert sent["response_type"] == "code" and "offline_access" in sent["scope"].split()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", sent["redirect_uri"]), sent["redirect_uri"]
    assert len(sent["code_challenge"]) == 43 and len(sent["state"]) >= 22 and len(sent["nonce"]) >= 22
    walk = wait_for(result)
    assert walk["ok"] and walk["heading"] == "Logged in", walk
    paths = [tuple(s) for s in walk["steps"]]
    assert ("GET", "/dex/auth", 200) not in paths, "the connector was chosen: no choice page"
    assert paths[-1] == ("GET", "/callback", 200)
    token = m.get_bearer_token()
    claims = jwt_claims(token or "")
    assert (claims["email"], claims["aud"], claims["iss"]) == (IDP_USER, "kfp-auth", sso.issuer)
    assert claims["nonce"] == sent["nonce"]
    assert {r["user"] for r in sso.kfp_requests() if "/apis/" in r["path"]} == {IDP_USER}
    assert m.auth_kind == "dex-browser" and m.logins == 1
    # Renewed by the refresh token, with no new login.
    renewed = m.get_bearer_token(force_refresh=True)
    assert renewed != token and jwt_claims(renewed or "")["email"] == IDP_USER
    assert m.bearer is not None and m.bearer.refreshes == 1 and events.kinds() == ["browser", "done"]
    client.list_experiments(namespace=IDP_NAMESPACE)
    # Nothing secret in the logs or the reprs: no state, nonce, code or token.
    shown = caplog.text + repr(m) + repr(m.bearer)
    assert "browser login: waiting for the browser" in caplog.text
    assert sent["state"] not in shown and sent["nonce"] not in shown
    assert not SECRET_LIKE.search(shown), SECRET_LIKE.findall(shown)


@pytest.mark.stack
def test_without_a_connector_dex_shows_its_choice_page(sso: SsoStack, use_browser: UseBrowser) -> None:
    """The browser runs in the foreground here: webbrowser.open waits for it to exit, and the
    login is served meanwhile. (The page is shown to the user once the browser has started,
    or after a second: a login as quick as this one may end before.)"""
    result = use_browser(TEST_BROWSER_CONNECTOR=CONNECTOR_ID, TEST_BROWSER_DETACH="0")
    events = Events()
    b = BearerSession.from_dex_browser(sso.api_url, prompt=events)
    assert jwt_claims(b.token())["email"] == IDP_USER
    walk = wait_for(result)
    assert ["GET", "/dex/auth", 200] in walk["steps"], "Dex's connector choice page"
    assert walk["steps"][-1] == ["GET", "/callback", 200] and walk["heading"] == "Logged in"
    assert events.kinds() in ([], ["browser", "done"])


@pytest.mark.stack
def test_a_callback_with_another_state_ends_the_login(sso: SsoStack, use_browser: UseBrowser, tmp_path: Path) -> None:
    """An old tab (or another program) sends a callback with a state that is not this login's:
    it gets a 400 page and the login ends with a typed error."""
    seen = tmp_path / "old-tab.json"
    old_tab = program(
        tmp_path,
        "old-tab",
        f"""
        import json, sys, urllib.error, urllib.parse, urllib.request
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(sys.argv[1]).query))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
        try:
            with opener.open(q["redirect_uri"] + "?code=forged-code&state=another-login", timeout=10) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        open({str(seen)!r}, "w").write(json.dumps({{"status": status, "body": body.decode()}}))
        """,
    )
    use_browser(old_tab)
    events = Events()
    m = browser_manager(sso, events)
    with pytest.raises(BrowserStateMismatchError) as ei:
        m.get_bearer_token()
    e = ei.value
    assert isinstance(e, BrowserLoginError) and isinstance(e, kfp_auth.KFPAuthError)
    assert "without this login's `state`" in str(e) and "log in again" in str(e)
    assert "forged-code" not in str(e) and "another-login" not in str(e)
    page = wait_for(seen)
    assert page["status"] == 400 and "Not this login" in page["body"]
    assert shown_then_failed(events, e), events.events


@pytest.mark.stack
def test_foreign_and_slow_requests_on_the_port_are_refused_and_the_login_goes_on(
    sso: SsoStack, use_browser: UseBrowser, tmp_path: Path
) -> None:
    """Before the real browser comes back: a connection that never finishes its request
    (held open all along), requests for other paths and methods, and an oversized head.
    Each is refused; the login still completes."""
    seen = tmp_path / "foreign.json"
    noisy = program(
        tmp_path,
        "noisy-browser",
        f"""
        import json, socket, sys, urllib.error, urllib.parse, urllib.request
        sys.path.insert(0, {str(TESTS)!r})
        from stack import browser
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(sys.argv[1]).query))
        root = q["redirect_uri"].rsplit("/", 1)[0]
        port = int(urllib.parse.urlsplit(root).port)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /callback?state=")  # and never more
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
        def status(url, data=None, headers={{}}):
            try:
                with opener.open(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        statuses = [
            status(root + "/favicon.ico"),
            status(root + "/"),
            status(q["redirect_uri"], data=b"x=1"),
            status(root + "/other", headers={{"X-Big": "a" * 9000}}),
        ]
        open({str(seen)!r}, "w").write(json.dumps(statuses))
        sys.exit(browser.main(["browser.py", sys.argv[1]]))
        """,
    )
    result = use_browser(noisy, TEST_BROWSER_CONNECTOR=CONNECTOR_ID)
    events = Events()
    started = time.monotonic()
    token = browser_manager(sso, events).get_bearer_token()
    assert jwt_claims(token or "")["email"] == IDP_USER
    assert time.monotonic() - started < 30
    assert wait_for(seen) == [404, 404, 405, 431]
    assert wait_for(result)["heading"] == "Logged in"
    assert events.kinds() == ["browser", "done"]


@pytest.mark.stack
def test_a_fixed_port_in_use_is_a_typed_error_naming_it(sso: SsoStack, use_browser: UseBrowser) -> None:
    use_browser()
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        m = browser_manager(sso, Events(), browser_port=port)
        with pytest.raises(LoopbackPortInUseError) as ei:
            m.get_bearer_token()
        assert f"port {port} on 127.0.0.1 is in use" in str(ei.value) and "browser_port" in str(ei.value)
    # Free again: the same manager logs in on that port, the one the admin registered.
    events = Events()
    m = browser_manager(sso, events, browser_port=port, dex_auth_type=CONNECTOR_ID)
    assert jwt_claims(m.get_bearer_token() or "")["email"] == IDP_USER
    assert events.url()["redirect_uri"] == f"http://127.0.0.1:{port}/callback"


@pytest.mark.stack
def test_a_browser_that_never_comes_back_times_out(sso: SsoStack, use_browser: UseBrowser, tmp_path: Path) -> None:
    use_browser(program(tmp_path, "idle-browser", "import sys; sys.exit(0)\n"))
    events = Events()
    m = browser_manager(sso, events, browser_timeout=2)
    started = time.monotonic()
    with pytest.raises(BrowserTimeoutError) as ei:
        m.get_bearer_token()
    assert 2 <= time.monotonic() - started < 10
    e = ei.value
    assert isinstance(e, TimeoutError) and isinstance(e, BrowserLoginError)
    assert "never came back to kfp-auth within 2 s" in str(e) and 'login="device"' in str(e)
    assert "Unregistered redirect_uri." in str(e), "it names the admin change a refusal in the browser needs"
    assert events.kinds() == ["browser", "failed"]


@pytest.mark.stack
def test_dex_sending_the_browser_back_with_an_error_is_a_typed_error(sso: SsoStack, use_browser: UseBrowser) -> None:
    """A scope Dex does not know: Dex redirects to the loopback with `error=invalid_scope`. (With a
    `/`, kfp-auth leaves it for Dex to judge rather than refusing it against scopes_supported.)"""
    result = use_browser(TEST_BROWSER_CONNECTOR=CONNECTOR_ID)
    events = Events()
    b = BearerSession.from_dex_browser(sso.api_url, prompt=events, scopes="openid offline_access x/nonsense")
    with pytest.raises(BrowserLoginRefusedError) as ei:
        b.token()
    assert "Dex refused the browser login: invalid_scope" in str(ei.value), str(ei.value)
    assert "check scopes=" in str(ei.value)
    walk = wait_for(result)
    assert walk["steps"][-1] == ["GET", "/callback", 400] and walk["heading"] == "The login failed"
    assert 'invalid_scope (Unrecognized scope(s) ["x/nonsense"])' in walk["error"], "the page says why"
    assert shown_then_failed(events, ei.value), events.events


def injecting(*, same_challenge: bool, seen: list[Any]) -> Callable[[str], bool]:
    """An opener that plays an attacker who knows this login's `state` (and, as anyone can
    read it from the URL, its `code_challenge`): it logs in through an authorization request
    of its own, with its own nonce, and sends that request's code to the loopback callback
    with this login's state. It returns once the callback was answered."""

    def open_browser(url: str) -> bool:
        try:
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            theirs = {**q, "state": "the-attackers-state", "nonce": "the-attackers-nonce"}
            if not same_challenge:
                theirs["code_challenge"] = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
            walk = Browser(IDP_USER, IDP_PASSWORD, connector=CONNECTOR_ID).walk(
                f"{url.split('?', 1)[0]}?{urllib.parse.urlencode(theirs)}"
            )
            injected = urllib.parse.urlencode({"code": walk.query["code"], "state": q["state"]})
            seen.append(Browser().fetch(f"{q['redirect_uri']}?{injected}"))
        except Exception as e:  # noqa: BLE001 - the test reports it; the login then times out
            seen.append(e)
        return True

    return open_browser


def answered(seen: list[Any]) -> list[Any]:
    """What the injecting opener saw: it reads the answer just after the login ended."""
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


@pytest.mark.stack
def test_a_code_from_another_authorization_request_is_refused_by_pkce(sso: SsoStack) -> None:
    seen: list[Any] = []
    b = BearerSession.from_dex_browser(
        sso.api_url, prompt=Events(), open_browser=injecting(same_challenge=False, seen=seen), browser_timeout=30
    )
    with pytest.raises(BrowserLoginError) as ei:
        b.token()
    assert type(ei.value) is BrowserLoginError, ei.value
    assert "Dex refused the browser login's code: invalid_grant (Invalid code_verifier.)" in str(ei.value)
    assert "log in again" in str(ei.value)
    (page,) = answered(seen)
    assert page.status == 500 and page.heading == "The login failed", page


@pytest.mark.stack
def test_an_id_token_with_another_logins_nonce_is_refused(sso: SsoStack) -> None:
    """The same challenge (public in the URL) passes PKCE; the nonce in the ID token is
    the attacker's, not this login's."""
    seen: list[Any] = []
    b = BearerSession.from_dex_browser(
        sso.api_url, prompt=Events(), open_browser=injecting(same_challenge=True, seen=seen), browser_timeout=30
    )
    with pytest.raises(TokenError) as ei:
        b.token()
    assert "Dex's ID token carries another login's `nonce`" in str(ei.value), str(ei.value)
    assert "the-attackers-nonce" not in str(ei.value)
    (page,) = answered(seen)
    assert page.status == 500 and "another login" in page.body, page


@pytest.mark.stack
def test_a_client_dex_does_not_know_times_out_naming_the_admin_change(sso: SsoStack, use_browser: UseBrowser) -> None:
    """Dex shows "Invalid client_id." in the browser and never sends it back."""
    result = use_browser(TEST_BROWSER_CONNECTOR=CONNECTOR_ID)
    b = BearerSession.from_dex_browser(sso.api_url, prompt=Events(), client_id="not-registered", browser_timeout=3)
    with pytest.raises(BrowserTimeoutError) as ei:
        b.token()
    assert "Invalid client_id" in wait_for(result)["error"]
    assert "adds the public client `not-registered` to Dex's staticClients" in str(ei.value), str(ei.value)


@pytest.mark.stack
def test_with_no_browser_the_device_login_runs_instead(
    sso: SsoStack, use_browser: UseBrowser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kfp_auth")
    # webbrowser.open returns False: the only browser it has fails.
    use_browser(program(tmp_path, "broken-browser", "import sys; sys.exit(1)\n"))
    user = User(sso)
    m = browser_manager(sso, user)
    m.create_kfp_client().list_experiments(namespace=IDP_NAMESPACE)
    assert user.kinds() == ["code", "done"], "the device code, and no page that no browser showed"
    assert "no browser could be opened here; logging in with the device login instead" in caplog.text
    assert m.auth_kind == "dex-browser" and m.logins == 1
    # An opener that raises: the same.
    user = User(sso)

    def raising(url: str) -> bool:
        raise RuntimeError(f"no display for {url}")

    b = BearerSession.from_dex_browser(sso.api_url, prompt=user, open_browser=raising)
    assert jwt_claims(b.token())["email"] == IDP_USER
    assert user.kinds() == ["code", "done"]
    assert "opening it raised RuntimeError" in caplog.text and "no display for" not in caplog.text


@pytest.mark.stack
def test_short_id_tokens_are_refreshed_without_a_new_browser_login(tmp_path: Path, use_browser: UseBrowser) -> None:
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s") as s:
        use_browser(TEST_BROWSER_CONNECTOR=CONNECTOR_ID)
        events = Events()
        m = browser_manager(s, events)
        client = m.create_kfp_client()
        first = m.get_bearer_token()
        claims = jwt_claims(first or "")
        assert claims["exp"] - claims["iat"] == 5
        until = time.time() + 3 * 5
        while time.time() < until:
            client.list_experiments(namespace=IDP_NAMESPACE)
            assert api_get(s.experiments_url, m.get_bearer_token())[0] == 200
            time.sleep(0.5)
        assert events.kinds() == ["browser", "done"], "one login, no prompt since"
        assert m.logins == 1 and m.bearer is not None and 2 <= m.bearer.refreshes <= 6, m.bearer.refreshes
        assert "token is expired" not in s.gateway_log()


@pytest.mark.stack
def test_cancelling_the_awaiting_task_closes_the_port_at_once(
    sso: SsoStack, use_browser: UseBrowser, tmp_path: Path
) -> None:
    use_browser(program(tmp_path, "idle-browser", "import sys; sys.exit(0)\n"))
    port = free_port()

    async def main() -> tuple[int, list[str]]:
        events = Events()
        m = browser_manager(sso, events, browser_port=port)
        task = asyncio.ensure_future(m.get_bearer_token_async())
        ticks = 0
        while "browser" not in events.kinds():
            await asyncio.sleep(0.01)
            ticks += 1
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # served meanwhile
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        return ticks, events.kinds()

    ticks, kinds = asyncio.run(main())
    assert ticks > 0 and kinds == ["browser", "cancelled"]


@pytest.mark.stack
def test_ctrl_c_stops_the_blocking_browser_login_at_once(sso: SsoStack, tmp_path: Path) -> None:
    idle = program(tmp_path, "idle-browser", "import sys; sys.exit(0)\n")
    code = textwrap.dedent(f"""
        from kfp_auth import KFPClientManager
        m = KFPClientManager({sso.api_url!r}, login="browser")
        try:
            m.get_bearer_token()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    env = {"BROWSER": idle, "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert p.stderr is not None
        lines = [p.stderr.readline() for _ in range(2)]
        assert lines[0].startswith("kfp-auth: logging in with your browser"), lines
        assert f"{sso.gateway_url}/dex/auth?client_id=kfp-auth" in lines[1]
        time.sleep(0.5)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        assert time.monotonic() - sent < 2
    finally:
        p.kill()
    assert out.strip() == "interrupted", err
    assert "kfp-auth: The login was cancelled." in err


# -- A real browser: headless Chromium, driven with selenium --

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def drive_chromium(driver: Any, url: str, redirect_uri: str) -> tuple[str, str]:
    """As a desktop user: on each page, log in at the IdP's form or approve, until the
    browser is back on the loopback callback. Returns that page's heading and text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    def state(d: Any) -> str | bool:
        if d.current_url.startswith(redirect_uri):
            return "back" if d.find_elements(By.TAG_NAME, "h2") else False
        if d.find_elements(By.CSS_SELECTOR, "input[name=login]") and d.find_elements(
            By.CSS_SELECTOR, "input[name=password]"
        ):
            return "login"
        if d.find_elements(By.CSS_SELECTOR, "input[name=approval][value=approve]"):
            return "approve"
        return False

    driver.get(url)
    for _ in range(10):
        now = WebDriverWait(driver, 30).until(state)
        if now == "back":
            return driver.find_element(By.TAG_NAME, "h2").text, driver.find_element(By.TAG_NAME, "body").text
        if now == "login":
            driver.find_element(By.CSS_SELECTOR, "input[name=login]").send_keys(IDP_USER)
            old = driver.find_element(By.CSS_SELECTOR, "input[name=password]")
            old.send_keys(IDP_PASSWORD)
        else:
            old = driver.find_element(By.CSS_SELECTOR, "input[name=approval][value=approve]")
        old.find_element(By.XPATH, "./ancestor::form").submit()
        WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))
    raise AssertionError(f"Chromium never came back to the loopback; last page {driver.current_url}")


@pytest.mark.stack
def test_a_real_headless_chromium_logs_in_and_sees_the_success_page(
    sso: SsoStack, use_browser: UseBrowser, tmp_path: Path
) -> None:
    """`$BROWSER` hands the URL to a selenium-driven Chromium, which walks Dex and the IdP's
    real pages (the IdP's login form, its approval) as a desktop user does, and lands on
    the loopback success page."""
    from concurrent.futures import ThreadPoolExecutor

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    handed = tmp_path / "url.txt"
    hand_over = program(
        tmp_path,
        "hand-to-chromium",
        f"""
        import os, sys
        open({str(handed)!r} + ".tmp", "w").write(sys.argv[1])
        os.replace({str(handed)!r} + ".tmp", {str(handed)!r})
        """,
    )
    use_browser(hand_over)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    events = Events()
    m = browser_manager(sso, events, dex_auth_type=CONNECTOR_ID)
    try:
        with ThreadPoolExecutor(1) as pool:
            login = pool.submit(m.get_bearer_token)
            url = wait_for_text(handed)
            redirect_uri = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["redirect_uri"]
            heading, text = drive_chromium(driver, url, redirect_uri)
            token = login.result(timeout=60)
    finally:
        driver.quit()
    assert heading == "Logged in" and "kfp-auth has its token. You can close this window." in text, text
    claims = jwt_claims(token or "")
    assert (claims["email"], claims["aud"]) == (IDP_USER, "kfp-auth")
    assert events.kinds() == ["browser", "done"] and m.logins == 1
    m.create_kfp_client().list_experiments(namespace=IDP_NAMESPACE)


def wait_for_text(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.read_text()
