"""Bad input and broken endpoints: each ends in a typed error, promptly, with no secret in it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import free_port
from stack.hostile_server import PASSWORD_FORM, HostileServer, script_login, truncated

SECRET = "pw-that-must-never-show-7d1c"


def test_nothing_listening() -> None:
    m = KFPClientManager(f"http://127.0.0.1:{free_port()}/pipeline", "u", SECRET)
    with pytest.raises(kfp_auth.ConnectError) as ei:
        m.get_session_cookies()
    assert "Connection refused" in str(ei.value)
    assert SECRET not in str(ei.value)


def test_timeout(silent_server: str) -> None:
    m = KFPClientManager(silent_server, "u", SECRET, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(kfp_auth.LoginTimeoutError) as ei:
        m.create_kfp_client()
    # Behaviour, not speed: the error came from our timeout, not from a test-runner limit.
    assert time.monotonic() - started < 30
    assert "timed out after 0.5 s" in str(ei.value)
    assert isinstance(ei.value, RuntimeError)


@pytest.mark.parametrize("bad", ["", "a/b", "ldap?x", "with space", "../local", "x" * 129])
def test_malformed_connector_id_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="dex_auth_type"):
        KFPClientManager("http://127.0.0.1:1/pipeline", "u", SECRET, dex_auth_type=bad)


@pytest.mark.parametrize("good", ["local", "ldap", "github", "corp-ad", "my_saml.2"])
def test_any_valid_connector_id_is_accepted(good: str) -> None:
    m = KFPClientManager("http://127.0.0.1:1/pipeline", "u", SECRET, dex_auth_type=good)
    assert m._session.connector == good


@pytest.mark.parametrize("url", ["localhost:8080/pipeline", "ftp://h/x", "", "http://"])
def test_malformed_api_url_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="api_url"):
        KFPClientManager(url, "u", SECRET)


def test_credentials_in_the_url_are_refused_without_echo() -> None:
    with pytest.raises(ValueError) as ei:
        KFPClientManager(f"http://alice:{SECRET}@127.0.0.1/pipeline", "u", SECRET)
    assert SECRET not in str(ei.value)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_bad_timeout_is_a_value_error(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        KFPClientManager("http://127.0.0.1:1/pipeline", "u", SECRET, timeout=timeout)


def test_repr_hides_query_values() -> None:
    m = KFPClientManager("http://127.0.0.1:1/pipeline?token=abc123secret", "u", SECRET)
    assert "abc123secret" not in repr(m) + repr(m._session)
    assert "http://127.0.0.1:1/pipeline?token=…" in repr(m)


def test_repr_masks_the_password() -> None:
    m = KFPClientManager("http://127.0.0.1:1/pipeline", "jane@example.com", SECRET, "ldap")
    for text in (repr(m), repr(m._session), str(m)):
        assert SECRET not in text
        assert "********" in text
    assert "jane@example.com" in repr(m) and "ldap" in repr(m)
    # The password is not kept on the Python object at all.
    assert SECRET not in repr(vars(m))


def test_ctrl_c_interrupts_a_login(silent_server: str) -> None:
    import signal
    import subprocess
    import sys

    # Python installs its KeyboardInterrupt handler only when SIGINT is not ignored, and a
    # background job of a non-interactive shell (CI's, or `make test &`) inherits it ignored.
    code = f"""
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from kfp_auth import KFPClientManager
m = KFPClientManager({silent_server!r}, 'u', 'p', timeout=120)
print('ready', flush=True)
try:
    m.get_session_cookies()
except KeyboardInterrupt:
    print('interrupted', flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert out.strip() == "interrupted"


def test_pickling_is_refused_with_a_clear_error() -> None:
    import pickle

    m = KFPClientManager("http://127.0.0.1:1/pipeline", "u", SECRET)
    for obj in (m, m._session):
        with pytest.raises(TypeError) as ei:
            pickle.dumps(obj)
        assert SECRET not in str(ei.value)
    with pytest.raises(TypeError, match="never writes"):
        pickle.dumps(m)


def test_errors_carry_the_redacted_request_history(silent_server: str) -> None:
    with pytest.raises(kfp_auth.LoginTimeoutError) as ei:
        KFPClientManager(silent_server + "?token=abc", "u", SECRET, timeout=0.3).get_session_cookies()
    (step,) = ei.value.history
    assert step["method"] == "GET" and step["status"] is None
    assert step["url"].endswith("/pipeline?token=…") and step["elapsed_ms"] >= 250
    # A refused connection is a step without a status.
    with pytest.raises(kfp_auth.ConnectError) as ei2:
        KFPClientManager(f"http://127.0.0.1:{free_port()}/p", "u", SECRET).get_session_cookies()
    assert [s["status"] for s in ei2.value.history] == [None]


def test_a_child_forked_during_a_login_does_not_inherit_it(silent_server: str) -> None:
    """The child must not wait on a login lock held by a parent thread it does not have."""
    import subprocess
    import sys

    code = f"""
import os, threading, time
import kfp_auth
m = kfp_auth.KFPClientManager({silent_server!r}, 'u', 'p', timeout=2)

def login_in_a_thread():
    try:
        m.get_session_cookies()
    except kfp_auth.KFPAuthError:
        pass

threading.Thread(target=login_in_a_thread, daemon=True).start()
time.sleep(0.5)  # the thread's login is in flight, holding the login lock
pid = os.fork()
if pid == 0:
    try:
        m.get_session_cookies()
    except kfp_auth.LoginTimeoutError:
        os._exit(0)  # its own login ran, and timed out as it should
    os._exit(3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "child 0", r.stderr[-2000:]


# -- The exception tree: each error is a KFPAuthError (a RuntimeError), and some also
#    the built-in exception Python code catches for that failure --

#: Every exception class kfp_auth offers, and the built-in it is besides KFPAuthError.
TREE: dict[type[BaseException], type[BaseException] | None] = {
    kfp_auth.KFPAuthError: RuntimeError,
    kfp_auth.InvalidArgumentError: ValueError,
    kfp_auth.InvalidCredentialsError: None,
    kfp_auth.UnknownConnectorError: None,
    kfp_auth.UnexpectedResponseError: None,
    kfp_auth.TLSError: None,
    kfp_auth.ConnectError: ConnectionError,
    kfp_auth.IncompleteBodyError: None,
    kfp_auth.LoginTimeoutError: TimeoutError,
    kfp_auth.TokenError: None,
    kfp_auth.LoginRequiredError: None,
    kfp_auth.DeviceLoginError: None,
    kfp_auth.BrowserLoginError: None,
    kfp_auth.BrowserStateMismatchError: None,
    kfp_auth.LoopbackPortInUseError: None,
    kfp_auth.BrowserTimeoutError: TimeoutError,
    kfp_auth.BrowserLoginRefusedError: None,
    kfp_auth.SessionCacheError: None,
    kfp_auth.KeyringError: None,
    kfp_auth.PermissionDeniedError: None,
    kfp_auth.KFPVersionError: ImportError,
}
BUILTINS = (ValueError, ConnectionError, TimeoutError, ImportError)


def test_the_tree_is_the_documented_one() -> None:
    offered = {v for v in vars(kfp_auth).values() if isinstance(v, type) and issubclass(v, BaseException)}
    offered -= {kfp_auth.KFPAuthWarning}
    assert offered == set(TREE), "every exception class is in the table, and only those"
    for cls, also in TREE.items():
        assert issubclass(cls, kfp_auth.KFPAuthError) and issubclass(cls, RuntimeError), cls
        # Exactly the built-ins of the table: a cut-short body is not a ConnectionError.
        assert [b for b in BUILTINS if issubclass(cls, b)] == ([also] if also in BUILTINS else []), cls
        assert cls.__module__ == "kfp_auth", cls
        assert getattr(kfp_auth._native, cls.__name__) is cls, "the Rust core raises the same classes"
    assert issubclass(kfp_auth.KFPAuthWarning, RuntimeWarning)
    assert not issubclass(kfp_auth.KFPAuthWarning, kfp_auth.KFPAuthError)


def test_the_attributes_are_declared_and_typed() -> None:
    hints = typing.get_type_hints(kfp_auth.KFPAuthError)
    assert hints == {
        "status": typing.Optional[int],
        "url": typing.Optional[str],
        "history": list[kfp_auth.LoginStep],
    }
    assert typing.get_type_hints(kfp_auth.UnknownConnectorError)["offered"] == list[str]
    assert typing.get_type_hints(kfp_auth.InvalidArgumentError)["argument"] == typing.Optional[str]
    assert typing.get_type_hints(kfp_auth.KFPVersionError)["installed"] == typing.Optional[str]
    # A user-made error has them too, and an error survives pickling (process pools) with them.
    e = kfp_auth.LoginTimeoutError(
        "slow", url="http://h/p", history=[{"method": "GET", "url": "http://h/p", "status": None, "elapsed_ms": 5}]
    )
    assert (kfp_auth.KFPAuthError("x").status, kfp_auth.KFPAuthError("x").history) == (None, [])
    import pickle

    back = pickle.loads(pickle.dumps(e))
    assert type(back) is kfp_auth.LoginTimeoutError and str(back) == "slow"
    assert (back.url, back.history, back.status) == (e.url, e.history, None)


def test_the_kinds_are_literal_types() -> None:
    assert set(typing.get_args(kfp_auth.AuthKind)) == {
        "dex-login",
        "token",
        "file",
        "dex-password-grant",
        "dex-device",
        "dex-token-exchange",
        "dex-browser",
        "none",
    }
    assert set(typing.get_args(kfp_auth.BearerKind)) == {
        "token",
        "file",
        "dex-password-grant",
        "dex-device",
        "dex-token-exchange",
        "dex-browser",
    }
    assert issubclass(kfp_auth.LoginRequiredError, kfp_auth.TokenError)
    url = "http://127.0.0.1:1/pipeline"
    for m in (
        KFPClientManager(url),
        KFPClientManager(url, "u", SECRET),
        KFPClientManager(url, existing_token="t"),
        KFPClientManager(url, login="device"),
        KFPClientManager(url, login="exchange", dex_auth_type="c", subject_token="eyJhbGciOiJub25lIn0.e30.c2ln"),
        KFPClientManager(url, login="browser"),
    ):
        assert m.auth_kind in typing.get_args(kfp_auth.AuthKind)


def test_the_dict_shapes_are_public() -> None:
    for name in ("LoginStep", "TokenClaims", "Diagnosis", "RBACDenial", "DeviceEvent"):
        assert typing.is_typeddict(getattr(kfp_auth, name)), name
        assert name in kfp_auth.__all__
    assert typing.get_type_hints(kfp_auth.Diagnosis)["steps"] == list[kfp_auth.LoginStep]


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for var in (
        "NO_PROXY",
        "no_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch


URL = "http://127.0.0.1:9/pipeline"
BAD_ARGUMENTS: list[tuple[str, dict[str, typing.Any], str]] = [
    # Checked in the Rust core:
    ("api_url", {"api_url": "not a url"}, "not an absolute URL"),
    ("api_url", {"api_url": f"http://alice:{SECRET}@127.0.0.1/p"}, "must not contain user:password@"),
    ("timeout", {"timeout": float("nan")}, "finite number of seconds above zero"),
    ("timeout", {"timeout": 0, "existing_token": "t"}, "finite number of seconds above zero"),
    ("timeout", {"timeout": -1, "dex_client_id": "c", "dex_client_secret": "s"}, "above zero"),
    ("dex_auth_type", {"dex_auth_type": "a/b"}, "'/' at position 2"),
    ("proxy", {"proxy": "socks5://127.0.0.1:1080"}, "SOCKS proxies are not supported"),
    ("ssl_ca_cert", {"ssl_ca_cert": "/nonexistent/ca.pem"}, "cannot read"),
    ("dex_client_id", {"dex_client_id": "", "dex_client_secret": "s"}, "is empty"),
    (
        "dex_url",
        {
            "api_url": "https://kf.example.com/p",
            "dex_client_id": "c",
            "dex_client_secret": "s",
            "dex_url": "http://dex.example.com/dex",
        },
        "unencrypted",
    ),
    # Checked by the manager, in Python:
    ("dex_password", {"dex_password": None}, "a Dex login needs both"),
    ("dex_client_secret", {"dex_client_id": "c"}, "needs both dex_client_id and dex_client_secret"),
]


@pytest.mark.parametrize(
    "argument,kw,says", BAD_ARGUMENTS, ids=[f"{a}:{i}" for i, (a, _, _) in enumerate(BAD_ARGUMENTS)]
)
def test_a_bad_argument_is_a_kfp_auth_error_and_a_value_error(
    argument: str, kw: dict[str, typing.Any], says: str, no_proxy_env: pytest.MonkeyPatch
) -> None:
    args = {"api_url": URL, "dex_username": "u", "dex_password": SECRET, **kw}
    for catch in (kfp_auth.KFPAuthError, ValueError):
        with pytest.raises(catch) as ei:
            KFPClientManager(**args)
        e = ei.value
        assert type(e) is kfp_auth.InvalidArgumentError
        assert e.argument == argument and says in str(e), str(e)
        assert SECRET not in str(e) + repr(vars(e))


def test_a_socks_proxy_from_the_environment_is_a_bad_argument(no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ValueError, match="SOCKS is not supported") as ei:
        KFPClientManager(URL, existing_token="t")
    assert isinstance(ei.value, kfp_auth.InvalidArgumentError) and ei.value.argument == "proxy"
    # Set after the manager was made: the client it builds is refused by the same check, in the core.
    no_proxy_env.delenv("ALL_PROXY")
    m = KFPClientManager(URL, existing_token="t")
    no_proxy_env.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(kfp_auth.InvalidArgumentError, match="SOCKS is not supported"):
        m.create_kfp_client()


def test_session_cache_true_without_a_home_is_a_bad_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    with pytest.raises(kfp_auth.KFPAuthError) as ei:
        KFPClientManager(URL, "u", SECRET, session_cache=True)
    assert isinstance(ei.value, ValueError) and ei.value.argument == "session_cache"


def test_a_login_timeout_is_a_timeout_error(silent_server: str) -> None:
    m = KFPClientManager(silent_server, "u", SECRET, timeout=0.3)
    with pytest.raises(TimeoutError) as ei:
        m.get_session_cookies()
    e = ei.value
    assert type(e) is kfp_auth.LoginTimeoutError and isinstance(e, kfp_auth.KFPAuthError)
    assert e.url == silent_server and e.status is None and len(e.history) == 1


def test_an_async_login_timeout_is_a_timeout_error(silent_server: str) -> None:
    m = KFPClientManager(silent_server, "u", SECRET, timeout=0.3)
    with pytest.raises(TimeoutError) as ei:
        asyncio.run(m.get_session_cookies_async())
    assert type(ei.value) is kfp_auth.LoginTimeoutError and ei.value.history


def test_a_refused_connection_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/pipeline"
    with pytest.raises(ConnectionError) as ei:
        KFPClientManager(url, "u", SECRET).get_session_cookies()
    e = ei.value
    assert type(e) is kfp_auth.ConnectError and isinstance(e, kfp_auth.KFPAuthError)
    assert "Connection refused" in str(e) and e.url is not None and e.status is None


def test_a_body_cut_short_is_its_own_error() -> None:
    with HostileServer() as srv:
        script_login(srv)
        srv.route("/dex/auth/local", truncated(PASSWORD_FORM.encode()[:60], declared=5000), method="GET")
        with pytest.raises(kfp_auth.KFPAuthError) as ei:
            KFPClientManager(srv.url + "/pipeline", "u", SECRET).get_session_cookies()
    e = ei.value
    assert type(e) is kfp_auth.IncompleteBodyError and not isinstance(e, ConnectionError)
    assert "cut short" in str(e) and e.url is not None and e.url.startswith(srv.url + "/dex/auth/local?")
    assert e.history and e.history[-1]["url"] == e.url


def corrupt_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "sessions.json"
    cache.write_text('{"version": 1, "sessions": {"x": {"cookies": 5')
    os.chmod(cache, 0o600)
    return cache


def test_a_warning_is_a_kfp_auth_warning_users_can_filter(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/pipeline"  # the warning comes before the login fails
    m = KFPClientManager(url, "u", SECRET, session_cache=corrupt_cache(tmp_path))
    with pytest.warns(kfp_auth.KFPAuthWarning, match="is corrupt") as seen, pytest.raises(kfp_auth.ConnectError):
        m.get_session_cookies()
    assert [type(w.message) for w in seen] == [kfp_auth.KFPAuthWarning]
    # Filtered by its category: ignored...
    m = KFPClientManager(url, "u", SECRET, session_cache=corrupt_cache(tmp_path))
    with warnings.catch_warnings(record=True) as recorded, pytest.raises(kfp_auth.ConnectError):
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=kfp_auth.KFPAuthWarning)
        m.get_session_cookies()
    assert recorded == []
    # ...or made an error, raised as the warning itself.
    m = KFPClientManager(url, "u", SECRET, session_cache=corrupt_cache(tmp_path))
    with warnings.catch_warnings(), pytest.raises(kfp_auth.KFPAuthWarning, match="is corrupt"):
        warnings.filterwarnings("error", category=kfp_auth.KFPAuthWarning)
        m.get_session_cookies()


def test_an_async_call_raises_its_warnings_as_kfp_auth_warnings(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/pipeline"
    m = KFPClientManager(url, "u", SECRET, session_cache=corrupt_cache(tmp_path))
    with pytest.warns(kfp_auth.KFPAuthWarning, match="is corrupt"), pytest.raises(ConnectionError):
        asyncio.run(m.get_session_cookies_async())


def test_get_bearer_token_async_takes_force_refresh(tmp_path: Path) -> None:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    token = f"{enc({'alg': 'RS256'})}.{enc({'sub': 'x', 'exp': int(time.time()) + 3600})}.c2ln"
    path = tmp_path / "token"
    path.write_text(token)
    m = KFPClientManager(URL, token_path=path)
    assert m.bearer is not None
    reads = m.bearer.fetches
    assert asyncio.run(m.get_bearer_token_async()) == token
    assert m.bearer.fetches == reads  # the file did not change: not read again
    assert asyncio.run(m.get_bearer_token_async(force_refresh=True)) == token
    assert m.bearer.fetches == reads + 1  # read again, as get_bearer_token(force_refresh=True) does
    assert m.get_bearer_token(force_refresh=True) == token and m.bearer.fetches == reads + 2
