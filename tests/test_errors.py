"""Bad input and broken endpoints: each ends in a typed error, promptly, with no secret in it."""

from __future__ import annotations

import time

import pytest
from stack import free_port

import kfp_auth
from kfp_auth import KFPClientManager

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


def test_error_hierarchy() -> None:
    for cls in (kfp_auth.InvalidCredentialsError, kfp_auth.UnknownConnectorError,
                kfp_auth.UnexpectedResponseError, kfp_auth.TLSError, kfp_auth.ConnectError,
                kfp_auth.LoginTimeoutError):
        assert issubclass(cls, kfp_auth.KFPAuthError)
    # Code written for the documented class catches RuntimeError.
    assert issubclass(kfp_auth.KFPAuthError, RuntimeError)
    assert kfp_auth.KFPAuthError.__module__ == "kfp_auth"


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
