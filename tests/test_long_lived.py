"""Long-lived sessions on the real stack: reuse, re-login on expiry, single-flight, asyncio."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, Stack, start_kubeflow_stack


def _text(body: object) -> str:
    return body.decode() if isinstance(body, bytes) else str(body)


def rejected_api_calls(s: Stack) -> list[str]:
    """The gateway's log lines of API calls it answered 401."""
    return [line for line in s.gateway_log().splitlines() if '"/pipeline/apis/' in line and '" 401 ' in line]


def manager(s: Stack, **kw: object) -> KFPClientManager:
    return KFPClientManager(s.api_url, FAST_USER, FAST_PASSWORD, **kw)  # type: ignore[arg-type]


def test_session_is_reused_until_a_fresh_login_is_asked_for(kubeflow: Stack) -> None:
    before = kubeflow.logins_at_dex(FAST_USER)
    m = manager(kubeflow)
    clients = [m.create_kfp_client() for _ in range(10)]
    cookies = m.get_session_cookies()
    assert m.logins == 1
    assert kubeflow.logins_at_dex(FAST_USER) == before + 1
    for c in clients[::3]:
        c.list_experiments(namespace=FAST_NAMESPACE)

    fresh = m.get_session_cookies(force_login=True)
    assert m.logins == 2 and fresh != cookies
    m.create_kfp_client(force_login=True)
    assert m.logins == 3
    assert kubeflow.logins_at_dex(FAST_USER) == before + 3


def at_once(n: int, call: Callable[[], str]) -> tuple[list[str], list[BaseException]]:
    """`call` from `n` threads released together: (results, errors)."""
    barrier = threading.Barrier(n)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(call())
        except BaseException as e:  # noqa: BLE001 - the caller asserts on them
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_one_login_for_many_threads_at_once(kubeflow: Stack) -> None:
    before = kubeflow.logins_at_dex(FAST_USER)
    m = manager(kubeflow)
    results, errors = at_once(50, m.get_session_cookies)
    assert not errors
    assert len(results) == 50 and len(set(results)) == 1
    assert m.logins == 1
    assert kubeflow.logins_at_dex(FAST_USER) == before + 1


def test_a_failed_login_is_shared_by_the_threads_that_waited_for_it(kubeflow: Stack) -> None:
    """Fifty threads with a wrong password make one attempt at Dex, not fifty (which
    could lock the account in an LDAP directory); each gets the same typed error."""

    def password_posts() -> int:
        return kubeflow.gateway_log().count('POST /dex/ "/dex/auth/local/login')

    before = password_posts()
    m = KFPClientManager(kubeflow.api_url, FAST_USER, "wrong-password")
    _, errors = at_once(50, m.get_session_cookies)
    assert len(errors) == 50 and all(isinstance(e, kfp_auth.InvalidCredentialsError) for e in errors)
    assert m.logins == 1 and password_posts() == before + 1
    # A later call is a new attempt, not the old error again.
    with pytest.raises(kfp_auth.InvalidCredentialsError):
        m.get_session_cookies()
    assert m.logins == 2


@pytest.fixture
def restartable(tmp_path) -> Iterator[Stack]:
    with start_kubeflow_stack(tmp_path / "stack", run_seconds=4) as s:
        yield s


def test_client_logs_in_again_after_a_gateway_restart(restartable: Stack) -> None:
    m = manager(restartable)
    client = m.create_kfp_client()
    client.create_experiment(name="before", namespace=FAST_NAMESPACE)
    restartable.restart_gateway(new_cookie_secret=True)  # every existing session is now void

    names = [e.display_name for e in client.list_experiments(namespace=FAST_NAMESPACE).experiments]
    assert names == ["before"]
    assert m.logins == 2
    # The request was rejected with oauth2-proxy's 401 (api_routes), then retried once after the login.
    assert len(rejected_api_calls(restartable)) == 1


def test_rbac_denial_is_not_mistaken_for_an_expired_session(kubeflow: Stack) -> None:
    import kfp_server_api

    m = manager(kubeflow)
    client = m.create_kfp_client()
    with pytest.raises(kfp_server_api.ApiException) as ei:
        client.list_experiments(namespace="someone-elses-namespace")
    assert ei.value.status == 403
    assert "is not authorized" in _text(ei.value.body)
    assert m.logins == 1


def test_wait_for_run_completion_survives_a_session_loss(restartable: Stack, monkeypatch) -> None:
    import kfp.client.client as kfp_client_module
    import kfp_server_api

    m = manager(restartable)
    client = m.create_kfp_client()
    exp = client.create_experiment(name="waits", namespace=FAST_NAMESPACE)
    run = client._run_api.run_service_create_run(
        run=kfp_server_api.V2beta1Run(display_name="r", experiment_id=exp.experiment_id)
    )

    # Void the session between two of kfp's polls (not during one: a gateway
    # that is down refuses connections, which no login can help).
    sleeps = []
    real_sleep = time.sleep

    class PatchedTime:  # kfp's module sees this `time`; everything else keeps the real one
        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) == 1:
                restartable.restart_gateway(new_cookie_secret=True)
            real_sleep(seconds)

    monkeypatch.setattr(kfp_client_module, "time", PatchedTime())
    done = client.wait_for_run_completion(run.run_id, timeout=60, sleep_duration=1)
    assert done.state == "SUCCEEDED"
    assert sleeps  # the gateway restarted between two polls
    assert m.logins == 2
    assert len(rejected_api_calls(restartable)) == 1


@pytest.fixture
def short_cookies(tmp_path) -> Iterator[Stack]:
    with start_kubeflow_stack(tmp_path / "stack", cookie_expire="4s") as s:
        yield s


def test_expiring_cookie_is_renewed_before_use(short_cookies: Stack) -> None:
    m = manager(short_cookies)
    client = m.create_kfp_client()
    client.create_experiment(name="short", namespace=FAST_NAMESPACE)
    assert m.logins == 1
    time.sleep(4.5)  # past oauth2-proxy's cookie_expire
    assert client.list_experiments(namespace=FAST_NAMESPACE).experiments[0].display_name == "short"
    assert m.logins == 2
    # Renewed from the cookie's expiry, before sending: no request was rejected.
    assert rejected_api_calls(short_cookies) == []


@pytest.fixture
def no_api_routes(tmp_path) -> Iterator[Stack]:
    with start_kubeflow_stack(tmp_path / "stack", skip_provider_button=True, api_routes=False) as s:
        yield s


def test_gateway_without_api_routes(no_api_routes: Stack) -> None:
    """Kubeflow 1.9's gateway with no api_routes and skip_provider_button: oauth2-proxy
    still answers kfp's `Accept: application/json` requests with 401 rather than a
    redirect. (A login page where JSON was expected, which oidc-authservice's redirect
    gives, is recognised by detect.rs and its unit tests.)"""
    m = manager(no_api_routes)
    client = m.create_kfp_client()
    client.create_experiment(name="html", namespace=FAST_NAMESPACE)
    no_api_routes.restart_gateway(new_cookie_secret=True)
    assert client.list_experiments(namespace=FAST_NAMESPACE).experiments[0].display_name == "html"
    assert m.logins == 2
    assert len(rejected_api_calls(no_api_routes)) == 1


def test_async_logins_share_one_event_loop(kubeflow: Stack) -> None:
    async def main() -> tuple[list[str], int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        managers = [manager(kubeflow) for _ in range(20)]
        cookies = await asyncio.gather(*(m.get_session_cookies_async() for m in managers))
        stop.set()
        await t
        return cookies, ticks

    cookies, ticks = asyncio.run(main())
    assert len(set(cookies)) == 20 and all(c.startswith("oauth2_proxy_kubeflow=") for c in cookies)
    # 20 logins at bcrypt cost 10 take well over 100 ms; a blocked loop would not tick at all meanwhile.
    assert ticks > 10


def test_cancelling_the_task_cancels_the_login() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/pipeline"

    async def main() -> bytes:
        m = KFPClientManager(url, "u", "p", timeout=60)
        task = asyncio.create_task(m.get_session_cookies_async())
        loop = asyncio.get_running_loop()
        conn, _ = await loop.run_in_executor(None, srv.accept)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The Rust future was dropped, so its connection closes: the server reads EOF.
        conn.settimeout(10)
        data = await loop.run_in_executor(None, lambda: conn.recv(65536) and conn.recv(65536))
        conn.close()
        return data

    try:
        assert asyncio.run(main()) == b""
    finally:
        srv.close()


def test_async_errors_are_the_same_types(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url, FAST_USER, "wrong")
    with pytest.raises(kfp_auth.InvalidCredentialsError):
        asyncio.run(m.get_session_cookies_async())


def test_a_new_client_after_a_session_loss_logs_in_again(restartable: Stack) -> None:
    """kfp's constructor makes its own first request: it must go through the hook too."""
    m = manager(restartable)
    m.create_kfp_client()
    restartable.restart_gateway(new_cookie_secret=True)
    client = m.create_kfp_client()  # the held session is void; kfp's healthz check meets the 401
    client.list_experiments(namespace=FAST_NAMESPACE)
    assert m.logins == 2
    assert len(rejected_api_calls(restartable)) == 1


def test_a_session_that_never_works_gives_a_clear_error(tmp_path) -> None:
    """When even a fresh session is refused, the error says so, rather than a bare 401
    (which kfp's wait_for_run_completion misreads) or kfp's 25 s of healthz retries."""
    # A KFP API that refuses every request with its own 401 (as when no user identity reaches it).
    with start_kubeflow_stack(tmp_path / "stack", refuse_all=True) as s:
        m = manager(s)
        with pytest.raises(kfp_auth.UnexpectedResponseError, match="still answers GET .*healthz with a login"):
            m.create_kfp_client()
        assert m.logins == 2  # the first login, and exactly one re-login


@pytest.fixture
def server_side_sessions(tmp_path) -> Iterator[Stack]:
    # oauth2-proxy keeps sessions in a real redis-server (Debian's), so they can be deleted.
    with start_kubeflow_stack(tmp_path / "stack", redis=True) as s:
        yield s


def test_client_logs_in_again_after_its_session_is_deleted_server_side(server_side_sessions: Stack) -> None:
    import urllib.request

    s = server_side_sessions
    m = manager(s)
    client = m.create_kfp_client()
    client.create_experiment(name="redis", namespace=FAST_NAMESPACE)
    # Sign the session out at the gateway, which deletes it from redis. The client keeps the old ticket.
    req = urllib.request.Request(s.gateway_url + "/oauth2/sign_out", headers={"Cookie": m.get_session_cookies()})
    opener = urllib.request.build_opener(
        type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {"redirect_request": lambda *a, **k: None})
    )
    try:
        opener.open(req, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 302
    assert client.list_experiments(namespace=FAST_NAMESPACE).experiments[0].display_name == "redis"
    assert m.logins == 2
    assert len(rejected_api_calls(s)) == 1


def test_a_script_that_ends_right_after_an_asyncio_login_exits_cleanly(kubeflow: Stack) -> None:
    """Python finalizing while our completion thread was still in call_soon_threadsafe
    crashed about 1 exit in 10 under load (SIGSEGV/SIGABRT). 40 exits, 4 at a time."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    script = (
        "import asyncio\nfrom kfp_auth import KFPClientManager\n"
        f"m = KFPClientManager({kubeflow.api_url!r}, {FAST_USER!r}, {FAST_PASSWORD!r})\n"
        "print(bool(asyncio.run(m.get_session_cookies_async())))\n"
    )

    def run(_: int) -> tuple[int, str]:
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout.strip()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(40)))
    assert results == [(0, "True")] * 40


def test_an_async_call_from_a_later_atexit_handler_fails_instead_of_hanging() -> None:
    """atexit runs handlers last-registered first: one registered before kfp_auth was
    imported runs after kfp-auth's own exit hook, when async results can no longer be
    delivered. Its async call raises at once; the blocking one still works."""
    import subprocess
    import sys

    script = """
import atexit, asyncio

def late():
    from kfp_auth import KFPAuthError, KFPClientManager
    m = KFPClientManager("http://127.0.0.1:9/pipeline", "u", "p")
    try:
        asyncio.run(m.get_session_cookies_async())
    except KFPAuthError as e:
        print("async:", e)
    try:
        m.get_session_cookies()
    except KFPAuthError as e:
        print("blocking:", type(e).__name__)

atexit.register(late)
import kfp_auth
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "async: Python is exiting: async calls can no longer complete; use the blocking method here",
        "blocking: ConnectError",
    ]
