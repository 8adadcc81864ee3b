"""End-to-end logins against the real Dex and oauth2-proxy (Kubeflow 1.10 layout)."""

from __future__ import annotations

import urllib.request

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import FAST_PASSWORD, FAST_USER, NAMESPACE, PASSWORD, USER, Stack


def get(url: str, cookies: str) -> int:
    req = urllib.request.Request(url, headers={"Cookie": cookies} if cookies else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_documented_usage_end_to_end(kubeflow: Stack) -> None:
    import kfp

    before = len(kubeflow.kfp_requests())

    m = KFPClientManager(
        api_url=kubeflow.api_url, dex_username=USER, dex_password=PASSWORD, dex_auth_type="local", skip_tls_verify=False
    )
    client = m.create_kfp_client()
    assert type(client) is kfp.Client

    created = client.create_experiment(name="e2e", namespace=NAMESPACE)
    listed = client.list_experiments(namespace=NAMESPACE)
    assert [e.experiment_id for e in listed.experiments] == [created.experiment_id]
    assert listed.experiments[0].display_name == "e2e"

    # The requests reached the KFP API through the gateway, as the logged-in user.
    seen = [r for r in kubeflow.kfp_requests()[before:] if "/experiments" in r["path"]]
    assert seen and all(r["user"] == USER and r["path"].startswith("/pipeline/apis/v2beta1/") for r in seen)


def test_cookie_string_holds_only_what_the_api_needs(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    cookies = m._get_session_cookies()
    names = [c.split("=", 1)[0] for c in cookies.split("; ")]
    # The session cookie only: not oauth2-proxy's CSRF cookie, which its callback clears.
    assert names == ["oauth2_proxy_kubeflow"]
    assert all("=" in c and c.split("=", 1)[1] for c in cookies.split("; "))
    # The public name gives a cookie of the same shape, and each one authenticates on its own.
    public = m.get_session_cookies()
    assert [c.split("=", 1)[0] for c in public.split("; ")] == names
    for c in (cookies, public):
        assert get(kubeflow.gateway_url + "/pipeline/apis/v2beta1/healthz", c) == 200
    assert get(kubeflow.gateway_url + "/pipeline/apis/v2beta1/healthz", "") == 401


def test_api_route_401_json_is_followed(kubeflow: Stack) -> None:
    # Under /apis/ oauth2-proxy answers 401 `{}` instead of its sign-in page.
    url = kubeflow.gateway_url + "/pipeline/apis/v2beta1/healthz"
    m = KFPClientManager(url, FAST_USER, FAST_PASSWORD)
    cookies = m.get_session_cookies()
    assert cookies.startswith("oauth2_proxy_kubeflow=")
    assert get(url, cookies) == 200


def test_bad_password(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url, FAST_USER, "wrong-password-xyz")
    with pytest.raises(kfp_auth.InvalidCredentialsError) as ei:
        m.create_kfp_client()
    e = ei.value
    assert isinstance(e, kfp_auth.KFPAuthError) and isinstance(e, RuntimeError)
    assert e.status == 401  # Dex >= 2.36 answers 401 with the form again
    assert "/dex/auth/local/login" in e.url
    assert "wrong-password-xyz" not in str(e) + repr(e)
    assert "check dex_username, dex_password" in str(e)


def test_unknown_connector_lists_what_dex_offers(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url, USER, PASSWORD, dex_auth_type="ldap")
    with pytest.raises(kfp_auth.UnknownConnectorError) as ei:
        m.get_session_cookies()
    assert ei.value.offered == ["local"]
    assert "`ldap`" in str(ei.value) and "local" in str(ei.value)


def test_unsecured_endpoint(standalone_kfp: str) -> None:
    import kfp

    m = KFPClientManager(standalone_kfp + "/pipeline", "nobody", "unused")
    assert m._get_session_cookies() == ""
    client = m.create_kfp_client()
    client.create_experiment(name="standalone")
    assert "standalone" in [e.display_name for e in client.list_experiments().experiments]
    assert type(client) is kfp.Client


def test_dex_down(own_kubeflow: Stack) -> None:
    own_kubeflow.procs["dex"].stop()
    m = KFPClientManager(own_kubeflow.api_url, USER, PASSWORD, timeout=10)
    with pytest.raises(kfp_auth.UnexpectedResponseError) as ei:
        m.get_session_cookies()
    # oauth2-proxy cannot reach its /dex/ upstream and answers 502.
    assert ei.value.status == 502
    assert "/dex/auth/local" in ei.value.url
    assert "is Dex running?" in str(ei.value)


@pytest.fixture(scope="module")
def kubeflow_19(tmp_path_factory: pytest.TempPathFactory):
    """Kubeflow 1.9: skip_provider_button=true and no prompt, so oauth2-proxy sends
    approval_prompt=force and Dex shows its approval screen despite skipApprovalScreen."""
    import stack

    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("kf19"), skip_provider_button=True, prompt=None) as s:
        yield s


def test_kubeflow_19_redirect_and_approval_screen(kubeflow_19: Stack) -> None:
    m = KFPClientManager(kubeflow_19.api_url, FAST_USER, FAST_PASSWORD)
    cookies = m.get_session_cookies()
    assert cookies.startswith("oauth2_proxy_kubeflow=")
    assert get(kubeflow_19.gateway_url + "/pipeline/apis/v2beta1/healthz", cookies) == 200
    # The approval screen was really shown and granted: Dex's log has the approval POST.
    proxy_log = (kubeflow_19.workdir / "oauth2-proxy.log").read_text()
    assert 'POST /dex/ "/dex/approval?req=' in proxy_log
    # And the first request got 1.9's 302 straight to the login, not the sign-in page.
    first = [line for line in proxy_log.splitlines() if 'GET - "/pipeline" HTTP/1.1 "kfp-auth' in line]
    assert first and all('kfp-auth/0.1.0" 302 ' in line for line in first)


def test_login_releases_the_gil(tmp_path) -> None:
    """Another Python thread keeps running while a login waits on the network."""
    import socket
    import threading
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts into the backlog and never answers
    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.01)

    t = threading.Thread(target=tick)
    t.start()
    try:
        with pytest.raises(kfp_auth.LoginTimeoutError):
            KFPClientManager(f"http://127.0.0.1:{srv.getsockname()[1]}/p", "u", "p", timeout=1.0).get_session_cookies()
    finally:
        done.set()
        t.join()
        srv.close()
    # ~100 ticks fit in the second the login waited; a held GIL would allow almost none.
    assert ticks > 30


def test_a_forked_child_can_log_in(kubeflow: Stack) -> None:
    """multiprocessing forks on Linux: the child must not inherit a runtime with no threads."""
    import subprocess
    import sys

    code = f"""
import os, sys
from kfp_auth import KFPClientManager
m = KFPClientManager({kubeflow.api_url!r}, {FAST_USER!r}, {FAST_PASSWORD!r}, timeout=20)
assert m.get_session_cookies().startswith('oauth2_proxy_kubeflow=')
pid = os.fork()
if pid == 0:
    ok = m.get_session_cookies().startswith('oauth2_proxy_kubeflow=')
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print('child', os.waitstatus_to_exitcode(status))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "child 0"


def test_rd_keeps_the_path_and_query_of_api_url(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url + "?ns=team-a&view=list", FAST_USER, FAST_PASSWORD)
    assert m.get_session_cookies().startswith("oauth2_proxy_kubeflow=")
    assert '"/oauth2/start?rd=%2Fpipeline%3Fns%3Dteam-a%26view%3Dlist"' in kubeflow.gateway_log()


def test_errors_hold_no_cookie_token_or_oauth_value(kubeflow: Stack, tmp_path) -> None:
    """Every error raised on the real stack is free of the session's secrets."""
    import re

    import stack

    cookie_value = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD).get_session_cookies().split("=", 1)[1]
    errors: list[BaseException] = []
    for attempt in (
        lambda: KFPClientManager(kubeflow.api_url, FAST_USER, "bad-pw-31337").get_session_cookies(),
        lambda: KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, "nope").get_session_cookies(),
    ):
        with pytest.raises(kfp_auth.KFPAuthError) as ei:
            attempt()
        errors.append(ei.value)
    with stack.start_kubeflow_stack(tmp_path / "down") as s:
        s.procs["dex"].stop()
        with pytest.raises(kfp_auth.KFPAuthError) as ei:
            KFPClientManager(s.api_url, FAST_USER, FAST_PASSWORD).get_session_cookies()
        errors.append(ei.value)

    # OAuth state, code, Dex's req and hmac, as the gateway logged them.
    secrets = set(re.findall(r"(?:state|code|req|hmac)=([^&\s\"]+)", kubeflow.gateway_log()))
    # (FAST_PASSWORD is the word "password", which messages name as a parameter.)
    secrets |= {cookie_value, "bad-pw-31337"}
    secrets = {s for s in secrets if len(s) >= 6}
    assert len(secrets) > 3
    for e in errors:
        shown = f"{e} {e!r} {getattr(e, 'url', '')} {vars(e)}"
        leaked = [s for s in secrets if s in shown]
        assert not leaked, f"{type(e).__name__} shows {len(leaked)} secret value(s)"


def test_a_failed_login_carries_its_steps(kubeflow: Stack) -> None:
    with pytest.raises(kfp_auth.InvalidCredentialsError) as ei:
        KFPClientManager(kubeflow.api_url, FAST_USER, "nope-nope").get_session_cookies()
    steps = [(s["method"], s["url"].split("/", 3)[3].split("?")[0], s["status"]) for s in ei.value.history]
    assert steps == [
        ("GET", "pipeline", 403),
        ("GET", "oauth2/start", 302),
        ("GET", "dex/auth/local", 302),
        # Dex's redirect to its password form takes the post directly (see docs/benchmarks.md, "Round trips").
        ("POST", "dex/auth/local/login", 401),
    ]
