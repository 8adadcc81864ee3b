"""Deployment shapes on the real stack: an HTTPS gateway with a CA made for the run, a real
forward proxy, oauth2-proxy losing the CSRF cookie mid-login, chunked session cookies,
Kubeflow 1.9's approval screen, and RBAC denials that name the namespace and verb."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kfp_auth
import stack
from kfp_auth import KFPClientManager
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, NAMESPACE, Stack
from stack.ldap import LDAP_NAMESPACE, LDAP_PASSWORD, MANY_GROUPS_EMAIL, MANY_GROUPS_USER


@pytest.fixture(scope="module")
def https_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("https-gw"), tls=True) as s:
        assert s.gateway_url.startswith("https://") and s.ca is not None
        yield s


def test_https_gateway_refuses_an_unknown_ca_with_the_remedies(https_kubeflow: Stack) -> None:
    with pytest.raises(kfp_auth.TLSError) as ei:
        KFPClientManager(https_kubeflow.api_url, FAST_USER, FAST_PASSWORD).get_session_cookies()
    msg = str(ei.value)
    assert "ssl_ca_cert=" in msg and "skip_tls_verify=True" in msg


def test_https_gateway_with_skip_tls_verify(https_kubeflow: Stack) -> None:
    m = KFPClientManager(https_kubeflow.api_url, FAST_USER, FAST_PASSWORD, skip_tls_verify=True)
    assert m.get_session_cookies().startswith("oauth2_proxy_kubeflow=")
    client = m.create_kfp_client()
    assert client._existing_config.verify_ssl is False
    with pytest.warns(Warning, match="Unverified HTTPS request"):
        client.list_experiments(namespace=FAST_NAMESPACE)


def test_https_gateway_verified_against_the_runs_ca(https_kubeflow: Stack) -> None:
    assert https_kubeflow.ca is not None
    m = KFPClientManager(https_kubeflow.api_url, FAST_USER, FAST_PASSWORD, ssl_ca_cert=https_kubeflow.ca)
    client = m.create_kfp_client()
    assert client._existing_config.verify_ssl is True
    assert client._existing_config.ssl_ca_cert == str(https_kubeflow.ca)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Warning)  # no InsecureRequestWarning: verification is on
        warnings.filterwarnings("ignore", category=FutureWarning)  # kfp's own version notice
        client.create_experiment(name="verified", namespace=FAST_NAMESPACE)
    assert m.logins == 1


# -- real forward proxies: tinyproxy for HTTPS (it logs each tunnel as it opens), squid for HTTP --


def _running(start: Callable[[Path], tuple[stack.Proc, str, Path]], workdir: Path) -> Iterator[tuple[str, Path]]:
    proc, url, log = start(workdir)
    try:
        yield url, log
    finally:
        proc.stop()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _running(stack.start_tinyproxy, tmp_path)


@pytest.fixture
def squid(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _running(stack.start_squid, tmp_path)


def logged(log: Path, parse: Callable[[str], str | None]) -> list[str]:
    # The proxy writes its line as it answers, a moment after the client has its answer.
    lines: list[str] = []
    for _ in range(20):
        lines = [r for r in map(parse, log.read_text().splitlines()) if r]
        time.sleep(0.05)
        if lines == [r for r in map(parse, log.read_text().splitlines()) if r]:
            break
    return lines


def carried(log: Path) -> list[str]:
    """The requests tinyproxy carried: `CONNECT host:port HTTP/1.1` (or `GET http://...`)."""
    return logged(log, lambda line: line.split("): ", 1)[1] if "Request (file descriptor" in line else None)


def squid_carried(log: Path) -> list[str]:
    """The requests squid carried: `METHOD URL` (squid drops query strings from its log)."""
    return logged(log, lambda line: " ".join(line.split()[5:7]) if len(line.split()) > 6 else None)


def test_https_proxy_and_no_proxy_as_requests_does(
    https_kubeflow: Stack, proxy: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, log = proxy
    port = https_kubeflow.gateway_url.rsplit(":", 1)[1]
    for var in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", url)
    m = KFPClientManager(https_kubeflow.api_url, FAST_USER, FAST_PASSWORD, ssl_ca_cert=https_kubeflow.ca)
    m.get_session_cookies()
    login = carried(log)
    # Every login request went through the proxy, as tunnels to the gateway.
    assert login and all(r.startswith(f"CONNECT 127.0.0.1:{port}") for r in login)
    client = m.create_kfp_client()
    assert client._existing_config.proxy == url
    client.list_experiments(namespace=FAST_NAMESPACE)
    assert len(carried(log)) > len(login)

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    before = len(carried(log))
    m = KFPClientManager(https_kubeflow.api_url, FAST_USER, FAST_PASSWORD, ssl_ca_cert=https_kubeflow.ca)
    m.get_session_cookies()
    client = m.create_kfp_client()
    assert client._existing_config.proxy is None
    client.list_experiments(namespace=FAST_NAMESPACE)
    assert len(carried(log)) == before


def test_an_explicit_proxy_over_plain_http(
    kubeflow: Stack, squid: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, log = squid
    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, proxy=url)
    m.create_kfp_client().list_experiments(namespace=FAST_NAMESPACE)
    seen = squid_carried(log)
    assert any(r.startswith(f"GET {kubeflow.gateway_url}/oauth2/start") for r in seen)  # the login
    assert any(r.startswith(f"GET {kubeflow.gateway_url}/pipeline/apis/v2beta1/experiments") for r in seen)
    with pytest.raises(ValueError, match="proxy"):
        KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, proxy="ftp://nope")


# -- oauth2-proxy losing the CSRF cookie between the start of a login and its callback --


def test_csrf_failure_restarts_the_login_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway restarts with a new cookie secret mid-login (as an unpinned secret does
    on a pod restart): the callback cannot read the CSRF cookie, so the login starts over."""
    # Debug builds of the core hold the first attempt before its callback until this file exists.
    go = tmp_path / "go"
    monkeypatch.setenv("KFP_AUTH_TEST_HOLD_CALLBACK_UNTIL", str(go))
    with stack.start_kubeflow_stack(tmp_path / "s") as s:
        m = KFPClientManager(s.api_url, FAST_USER, FAST_PASSWORD)
        result: dict[str, object] = {}

        def login() -> None:
            try:
                result["cookies"] = m.get_session_cookies()
            except BaseException as e:  # noqa: BLE001 - asserted below
                result["error"] = e

        t = threading.Thread(target=login)
        t.start()
        deadline = time.monotonic() + 20
        while s.logins_at_dex(FAST_USER) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.logins_at_dex(FAST_USER) == 1  # the password went in; the callback is held
        s.restart_gateway(new_cookie_secret=True)
        go.touch()
        t.join(30)
        assert "error" not in result, result["error"]
        assert str(result["cookies"]).startswith("oauth2_proxy_kubeflow=")
        assert "Unable to find a valid CSRF token" in s.gateway_log() or "CSRF" in s.gateway_log()
        assert s.logins_at_dex(FAST_USER) == 2 and m.logins == 1


def test_csrf_failure_twice_is_a_clear_error(tmp_path: Path) -> None:
    # A CSRF cookie that expires at once: every attempt's callback fails.
    with stack.start_kubeflow_stack(tmp_path / "s", cookie_csrf_expire="1ms") as s:
        with pytest.raises(kfp_auth.UnexpectedResponseError) as ei:
            KFPClientManager(s.api_url, FAST_USER, FAST_PASSWORD).get_session_cookies()
        msg = str(ei.value)
        assert "CSRF" in msg and "also after starting the login again" in msg and "cookie_csrf_expire" in msg
        assert ei.value.status == 403
        callbacks = [st for st in ei.value.history if st["url"].split("?")[0].endswith("/oauth2/callback")]
        assert [st["status"] for st in callbacks] == [403, 403]


# -- a session cookie split into chunks, and an api_url with a query string --


@pytest.fixture(scope="module")
def ldap_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("chunks"), ldap=True) as s:
        yield s


def test_chunked_session_cookies_all_reach_the_api(ldap_kubeflow: Stack) -> None:
    """An LDAP user in 80 groups: Dex's tokens carry them all, so oauth2-proxy splits its
    session cookie into _0, _1, ... chunks. api_url has a query string, which the login
    keeps for its redirect back and the client drops from its host."""
    m = KFPClientManager(ldap_kubeflow.api_url + "?ns=" + LDAP_NAMESPACE, MANY_GROUPS_USER, LDAP_PASSWORD, "ldap")
    names = [c.split("=", 1)[0] for c in m.get_session_cookies().split("; ")]
    assert len(names) >= 2 and names == [f"oauth2_proxy_kubeflow_{i}" for i in range(len(names))]
    before = len(ldap_kubeflow.kfp_requests())
    client = m.create_kfp_client()
    assert client._existing_config.host == ldap_kubeflow.api_url
    client.create_experiment(name="chunked", namespace=LDAP_NAMESPACE)
    api = [q for q in ldap_kubeflow.kfp_requests()[before:] if "/apis/" in q["path"]]
    # The gateway put the chunks back together: the API saw the user.
    assert api and all(q["user"] == MANY_GROUPS_EMAIL for q in api)
    assert '"/pipeline/apis/v2beta1/experiments' in ldap_kubeflow.gateway_log()
    assert m.logins == 1


# -- Kubeflow 1.9: the approval screen, forced by oauth2-proxy or by Dex's own setting --


@pytest.mark.parametrize(
    "prompt,skip_approval", [(None, True), ("none", False)], ids=["approval_prompt=force", "skipApprovalScreen=false"]
)
def test_dex_approval_screen(tmp_path: Path, prompt: str | None, skip_approval: bool) -> None:
    with stack.start_kubeflow_stack(
        tmp_path / "s", skip_provider_button=True, prompt=prompt, skip_approval=skip_approval
    ) as s:
        m = KFPClientManager(s.api_url, FAST_USER, FAST_PASSWORD)
        m.create_kfp_client().list_experiments(namespace=FAST_NAMESPACE)
        assert 'POST /dex/ "/dex/approval?req=' in s.gateway_log()
        assert m.logins == 1


# -- RBAC denials --


def test_rbac_denial_names_the_namespace_and_verb(kubeflow: Stack) -> None:
    import kfp_server_api

    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    client = m.create_kfp_client()
    with pytest.raises(kfp_auth.PermissionDeniedError) as ei:
        client.list_experiments(namespace=NAMESPACE)
    e = ei.value
    assert isinstance(e, kfp_server_api.ApiException) and isinstance(e, kfp_auth.KFPAuthError)
    assert (e.status, e.namespace, e.verb, e.user) == (403, NAMESPACE, "list", FAST_USER)
    assert f"namespace '{NAMESPACE}'" in str(e) and "'list'" in str(e) and "contributor" in str(e)
    with pytest.raises(kfp_auth.PermissionDeniedError) as ei:
        client.create_experiment(name="not-mine", namespace=NAMESPACE)
    assert ei.value.namespace == NAMESPACE and m.logins == 1


def test_permission_denied_survives_pickling(kubeflow: Stack) -> None:
    """Process pools send exceptions back pickled: the denial must arrive whole."""
    import pickle

    import kfp_server_api

    client = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD).create_kfp_client()
    with pytest.raises(kfp_auth.PermissionDeniedError) as ei:
        client.list_experiments(namespace=NAMESPACE)
    back = pickle.loads(pickle.dumps(ei.value))
    assert type(back) is type(ei.value) and isinstance(back, kfp_server_api.ApiException)
    assert (back.namespace, back.verb, back.status, str(back)) == (NAMESPACE, "list", 403, str(ei.value))
    assert not any(k.lower() == "set-cookie" for k in back.headers)


def test_other_redirects_are_followed_once(tmp_path: Path) -> None:
    """A redirect that is not a login is followed by urllib3 as before, and the request
    is not sent twice (a POST that creates something must reach the API once)."""
    import json as _json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str]] = []

    class Moved(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, method: str) -> None:
            seen.append((method, self.path.split("?")[0]))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/old/"):
                self.send_response(307)  # keeps the method and body
                self.send_header("Location", self.path.replace("/old/", "/new/", 1))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = _json.dumps(
                {
                    "experiment_id": "e1",
                    "display_name": _json.loads(body or b"{}").get("display_name", ""),
                    "namespace": "ns",
                }
                if method == "POST"
                else {}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/old"
        client = KFPClientManager(url).create_kfp_client()
        import kfp_server_api

        created = client._experiment_api.experiment_service_create_experiment(
            experiment=kfp_server_api.V2beta1Experiment(display_name="once", namespace="ns")
        )
        assert created.display_name == "once"
        posts = [p for m, p in seen if m == "POST"]
        assert posts == ["/old/apis/v2beta1/experiments", "/new/apis/v2beta1/experiments"]
    finally:
        server.shutdown()


def test_a_proxy_that_wants_credentials(kubeflow: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """squid with basic auth: the login and the client both authenticate to it, from
    user:password in the proxy URL; the password shows nowhere."""
    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    proc, url, log = stack.start_squid(tmp_path, users={"proxyuser": "proxy-secret"})
    try:
        authed = url.replace("http://", "http://proxyuser:proxy-secret@")
        m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, proxy=authed)
        m.create_kfp_client().list_experiments(namespace=FAST_NAMESPACE)
        lines = [line for line in log.read_text().splitlines() if "proxyuser" in line]
        assert any("/oauth2/callback" in line for line in lines)  # the login, authenticated
        assert any("/pipeline/apis/v2beta1/experiments" in line for line in lines)  # the client, too
        assert "proxy-secret" not in repr(m)
        # Without the credentials, squid refuses: 407, which the login reports.
        with pytest.raises(kfp_auth.UnexpectedResponseError) as ei:
            KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, proxy=url).get_session_cookies()
        assert ei.value.status == 407
    finally:
        proc.stop()
