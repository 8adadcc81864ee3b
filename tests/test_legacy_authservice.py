"""Kubeflow <= 1.8: oidc-authservice behind Istio, in front of the real Dex.

The gateway and oidc-authservice are test doubles (see tests/stack/authservice.py);
Dex is real. This gateway answers a request without a session with a 302
straight to Dex, also for the kfp client's API calls.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, Stack
from stack.authservice import CALLBACK, drop_sessions, gateway_requests, start_authservice_stack


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_authservice_stack(tmp_path_factory.mktemp("authservice")) as s:
        yield s


def raw(
    stack: Stack, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> http.client.HTTPResponse:
    """One request to the gateway, redirects not followed."""
    conn = http.client.HTTPConnection(urlsplit(stack.gateway_url).netloc, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r


def set_cookies(r: http.client.HTTPResponse) -> dict[str, str]:
    return {v.split("=", 1)[0]: v.split(";", 1)[0].split("=", 1)[1] for k, v in r.getheaders() if k == "Set-Cookie"}


def kfp_auth_requests(stack: Stack, since: int) -> list[dict]:
    return [r for r in gateway_requests(stack)[since:] if r["user_agent"].startswith("kfp-auth/")]


def api_calls(stack: Stack, since: int) -> list[dict]:
    return [r for r in gateway_requests(stack)[since:] if r["path"].startswith("/pipeline/apis/")]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_request_without_a_session_gets_a_302_straight_to_dex(legacy: Stack, method: str) -> None:
    body = b"{}" if method == "POST" else None
    r = raw(
        legacy, method, "/pipeline/apis/v2beta1/experiments?namespace=x", {"Content-Type": "application/json"}, body
    )
    assert r.status == 302
    location = urlsplit(r.getheader("Location", ""))
    assert (location.netloc, location.path) == ("", "/dex/auth")
    q = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert q["client_id"] == "kubeflow-oidc-authservice"
    assert q["redirect_uri"] == CALLBACK
    assert q["response_type"] == "code"
    assert q["scope"] == "openid profile email groups"
    cookies = set_cookies(r)
    assert list(cookies) == ["oidc_state_csrf"]
    state_is_the_cookie = cookies["oidc_state_csrf"] == q["state"]
    assert state_is_the_cookie  # (compared without showing either value)

    # A session the gateway does not know is no session.
    r = raw(legacy, method, "/pipeline/apis/v2beta1/experiments", {"Cookie": "authservice_session=unknown"}, body)
    assert r.status == 302 and urlsplit(r.getheader("Location", "")).path == "/dex/auth"


def test_login_and_list_experiments(legacy: Stack) -> None:
    before, api_before = len(gateway_requests(legacy)), len(legacy.kfp_requests())
    m = KFPClientManager(legacy.api_url, FAST_USER, FAST_PASSWORD)
    cookies = m.get_session_cookies()
    assert [c.split("=", 1)[0] for c in cookies.split("; ")] == ["authservice_session"]
    assert m.logins == 1

    # The login: a 302 straight to Dex (no sign-in page), Dex, then the callback sets the session.
    steps = [
        (r["method"], r["path"], r["status"], r["location_path"], r["set_cookie_names"])
        for r in kfp_auth_requests(legacy, before)
    ]
    assert steps == [
        ("GET", "/pipeline", 302, "/dex/auth", ["oidc_state_csrf"]),
        ("GET", "/dex/auth/local", 302, "/dex/auth/local/login", []),
        ("POST", "/dex/auth/local/login", 303, CALLBACK, []),
        ("GET", CALLBACK, 302, "/pipeline", ["oidc_state_csrf", "authservice_session"]),
    ]

    client = m.create_kfp_client()
    created = client.create_experiment(name="legacy", namespace=FAST_NAMESPACE)
    listed = client.list_experiments(namespace=FAST_NAMESPACE)
    assert created.experiment_id in [e.experiment_id for e in listed.experiments]
    assert m.logins == 1
    # The API calls passed the gateway, and reached the KFP API as the logged-in user.
    seen = [r for r in legacy.kfp_requests()[api_before:] if "/experiments" in r["path"]]
    assert len(seen) >= 2 and all(r["user"] == FAST_USER for r in seen)


def test_a_client_logs_in_again_after_all_sessions_are_dropped(legacy: Stack) -> None:
    """The "redirect to Dex" path of the re-login hook: the gateway's 302 to Dex comes back to
    the hook (urllib3 is told not to follow it), which logs in again and retries once."""
    m = KFPClientManager(legacy.api_url, FAST_USER, FAST_PASSWORD)
    client = m.create_kfp_client()
    client.create_experiment(name="before-drop", namespace=FAST_NAMESPACE)
    assert m.logins == 1

    drop_sessions(legacy)
    before = len(gateway_requests(legacy))
    names = [e.display_name for e in client.list_experiments(namespace=FAST_NAMESPACE).experiments]
    assert "before-drop" in names
    assert m.logins == 2
    calls = [(r["method"], r["status"], r["location_path"]) for r in api_calls(legacy, before)]
    assert calls == [("GET", 302, "/dex/auth"), ("GET", 200, None)]


def test_a_post_after_all_sessions_are_dropped_logs_in_again(legacy: Stack) -> None:
    """The redirect path with a POST. kfp's create_experiment looks the name up with a GET
    first (which would log in again), so the POST is sent on its own here."""
    import kfp_server_api

    m = KFPClientManager(legacy.api_url, FAST_USER, FAST_PASSWORD)
    client = m.create_kfp_client()
    client.list_experiments(namespace=FAST_NAMESPACE)
    drop_sessions(legacy)
    before = len(gateway_requests(legacy))
    client._experiment_api.experiment_service_create_experiment(
        experiment=kfp_server_api.V2beta1Experiment(display_name="post-after-drop", namespace=FAST_NAMESPACE)
    )
    assert m.logins == 2
    calls = [(r["method"], r["status"], r["location_path"]) for r in api_calls(legacy, before)]
    assert calls == [("POST", 302, "/dex/auth"), ("POST", 200, None)]
    names = [e.display_name for e in client.list_experiments(namespace=FAST_NAMESPACE).experiments]
    assert names.count("post-after-drop") == 1


def test_bad_password(legacy: Stack) -> None:
    m = KFPClientManager(legacy.api_url, FAST_USER, "wrong-password-xyz")
    with pytest.raises(kfp_auth.InvalidCredentialsError) as ei:
        m.create_kfp_client()
    e = ei.value
    assert e.status == 401 and "/dex/auth/local/login" in e.url
    assert "wrong-password-xyz" not in f"{e} {e!r} {e.history}"
    steps = [(s["method"], urlsplit(s["url"]).path, s["status"]) for s in e.history]
    assert steps == [
        ("GET", "/pipeline", 302),
        ("GET", "/dex/auth/local", 302),
        ("POST", "/dex/auth/local/login", 401),
    ]


def test_diagnose_names_oidc_authservice(legacy: Stack, tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_"))}
    env |= {"HOME": str(tmp_path), "KFP_AUTH_PASSWORD": FAST_PASSWORD}
    r = subprocess.run(
        [str(Path(sys.executable).parent / "kfp-auth"), "diagnose", "--url", legacy.api_url, "-u", FAST_USER],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "gateway:    oidc-authservice (Kubeflow 1.8 and older): callback /authservice/oidc/callback" in r.stdout
    assert "session cookie authservice_session" in r.stdout and FAST_PASSWORD not in r.stdout
