"""The stock kfp CLI through kfp-auth, on the real stack: `kfp-auth kfp` (the session for one
endpoint only), `kfp --existing-token "$(kfp-auth token)"`, and the opt-in global context file
(`kfp-auth context --any-host`). The real `kfp` command and kfp's own CLI code run here."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_token_cache import cli_device_login

import stack
from kfp_auth._kfp_cli import same_endpoint
from stack import FAST_NAMESPACE, FAST_USER, Stack
from stack.cli import run
from stack.sso import CONNECTOR_ID, IDP_NAMESPACE, IDP_USER, SsoStack, start_sso_stack

COOKIE = "oauth2_proxy_kubeflow="


def wrapped(s: Stack, *kfp_args: str, login: tuple[str, ...] = ("-u", FAST_USER)) -> list[str]:
    return ["kfp", "--url", s.api_url, *login, "--", *kfp_args]


def shown(r: subprocess.CompletedProcess[str]) -> str:
    return f"rc={r.returncode}\n--- stdout\n{r.stdout[-2000:]}\n--- stderr\n{r.stderr[-2000:]}"


def context_file(home: Path) -> Path:
    return home / ".config" / "kfp" / "context.json"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Another host: records every request it gets (and its headers), answers 404."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        self.send_response(404)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_host() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/pipeline", seen
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    "other,same",
    [
        ("http://Kubeflow.example:80/pipeline/", True),
        ("http://kubeflow.example/pipeline?x=1", True),
        ("https://kubeflow.example/pipeline", False),
        ("http://kubeflow.example:8080/pipeline", False),
        ("http://kubeflow.example/pipeline2", False),
        ("http://kubeflow.example", False),
        ("http://kubeflow.example.evil/pipeline", False),
        ("http://kubeflow.example:notaport/pipeline", False),
    ],
)
def test_which_endpoints_are_the_same(other: str, same: bool) -> None:
    assert same_endpoint("http://kubeflow.example/pipeline", other) is same


def test_the_wrapper_runs_the_stock_kfp_cli_on_a_cookie_session(kubeflow: Stack, tmp_path: Path) -> None:
    r = run(wrapped(kubeflow, "-n", FAST_NAMESPACE, "experiment", "create", "through-kfp-auth"), tmp_path)
    assert r.returncode == 0, shown(r)
    r = run(wrapped(kubeflow, "-n", FAST_NAMESPACE, "--output", "json", "experiment", "list"), tmp_path)
    assert r.returncode == 0, shown(r)
    assert "through-kfp-auth" in {e["display_name"] for e in json.loads(r.stdout)}
    # kfp's -n reached the API as the namespace, asked for as the logged-in user.
    listed = [q for q in kubeflow.kfp_requests() if q["path"].endswith("/apis/v2beta1/experiments")]
    assert listed and listed[-1]["user"] == FAST_USER and listed[-1]["cookie_names"] == ["oauth2_proxy_kubeflow"]
    r = run(wrapped(kubeflow, "-n", "kubeflow-user-example-com", "experiment", "list"), tmp_path)
    assert r.returncode == 1 and "kubeflow-user-example-com" in r.stderr, shown(r)
    # kfp's --endpoint naming the same endpoint is fine; so is the URL from the environment.
    r = run(
        wrapped(kubeflow, "--endpoint", kubeflow.api_url + "/", "-n", FAST_NAMESPACE, "experiment", "list"), tmp_path
    )
    assert r.returncode == 0 and "through-kfp-auth" in r.stdout, shown(r)
    env = {"KF_PIPELINES_ENDPOINT": kubeflow.api_url, "KFP_AUTH_USERNAME": FAST_USER}
    r = run(["kfp", "--", "-n", FAST_NAMESPACE, "experiment", "list"], tmp_path, extra_env=env)
    assert r.returncode == 0 and "through-kfp-auth" in r.stdout, shown(r)
    # With no --url, kfp's --endpoint is the one endpoint.
    r = run(
        ["kfp", "-u", FAST_USER, "--", "--endpoint", kubeflow.api_url, "-n", FAST_NAMESPACE, "experiment", "list"],
        tmp_path,
    )
    assert r.returncode == 0 and "through-kfp-auth" in r.stdout, shown(r)
    # Nothing went to kfp's context file, and no cookie to the terminal.
    assert not context_file(tmp_path).exists() and not (tmp_path / ".config").exists()
    assert COOKIE not in r.stdout + r.stderr
    # kfp's exit code is kfp-auth's: a usage error (2), a failed request (1), --help (0).
    assert run(wrapped(kubeflow, "experiment", "no-such-command"), tmp_path).returncode == 2
    r = run(wrapped(kubeflow, "-n", FAST_NAMESPACE, "experiment", "get", "no-such-id"), tmp_path)
    assert r.returncode == 1 and "HTTP response body" in r.stderr, shown(r)
    # kfp prints the response headers of a failed request: the gateway's Authorization (the
    # user's ID token) and any cookie are dropped from them first.
    assert COOKIE not in r.stdout + r.stderr and "Bearer" not in r.stderr and "eyJ" not in r.stderr, shown(r)
    r = run(["kfp", "--", "--help"], tmp_path)
    assert r.returncode == 0 and "experiment" in r.stdout, shown(r)
    # kfp's arguments go after `--`; kfp's own -p is not taken for a password.
    r = run(["kfp", "--url", kubeflow.api_url, "experiment", "list"], tmp_path)
    assert r.returncode == 2 and "after `--`" in r.stderr, shown(r)
    r = run(wrapped(kubeflow, "-n", FAST_NAMESPACE, "pipeline", "list", "--help"), tmp_path)
    assert r.returncode == 0, shown(r)


def test_the_wrapper_logs_in_again_when_the_gateway_voids_the_session(own_kubeflow: Stack, tmp_path: Path) -> None:
    args = wrapped(own_kubeflow, "-n", FAST_NAMESPACE, "experiment", "list", login=("-u", FAST_USER, "--session-cache"))
    assert run(args, tmp_path).returncode == 0
    assert own_kubeflow.logins_at_dex(FAST_USER) == 1
    assert run(args, tmp_path).returncode == 0  # the cached session, no login
    assert own_kubeflow.logins_at_dex(FAST_USER) == 1
    own_kubeflow.restart_gateway(new_cookie_secret=True)  # every session is void now
    r = run(args, tmp_path)
    assert r.returncode == 0, shown(r)
    assert own_kubeflow.logins_at_dex(FAST_USER) == 2


def test_another_endpoint_is_refused_and_gets_nothing(
    kubeflow: Stack, tmp_path: Path, other_host: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = other_host
    r = run(wrapped(kubeflow, "--endpoint", url, "experiment", "list"), tmp_path)
    assert r.returncode == 2 and "one endpoint only" in r.stderr and url in r.stderr, shown(r)
    # kfp's own environment variable for --endpoint is refused the same way.
    r = run(wrapped(kubeflow, "experiment", "list"), tmp_path, extra_env={"KFP_ENDPOINT": url})
    assert r.returncode == 2 and "one endpoint only" in r.stderr, shown(r)
    # IAP's options would make kfp log in to Google: refused.
    r = run(wrapped(kubeflow, "--iap-client-id", "x", "experiment", "list"), tmp_path)
    assert r.returncode == 2 and "IAP" in r.stderr, shown(r)
    assert seen == []
    # A context file holding a cookie (the user's, for another deployment): the wrapper neither
    # sends it nor changes the file, and a stock kfp run after it sends the other host that
    # cookie only, nothing of kfp-auth's.
    ctx = context_file(tmp_path)
    ctx.parent.mkdir(parents=True)
    mine = {"namespace": FAST_NAMESPACE, "client_authentication_cookie": "planted=1", "keep": 1}
    ctx.write_text(json.dumps(mine))
    before = len(kubeflow.kfp_requests())
    assert run(wrapped(kubeflow, "experiment", "list"), tmp_path).returncode == 0
    sent = kubeflow.kfp_requests()[before:]
    assert sent and all(q["cookie_names"] == ["oauth2_proxy_kubeflow"] for q in sent), sent
    assert json.loads(ctx.read_text()) == mine
    run(["--endpoint", url, "experiment", "list"], tmp_path, tool="kfp")
    assert seen and all(
        {k.lower(): v for k, v in h.items()}.get("cookie") == "planted=1"
        and "authorization" not in {k.lower() for k in h}
        for h in seen
    ), seen


@pytest.fixture(scope="module")
def grant_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("kfp-cli-grant"), password_grant=True) as s:
        yield s


def test_bearer_tokens_with_the_stock_kfp_cli_and_the_wrapper(grant_kubeflow: Stack, tmp_path: Path) -> None:
    s = grant_kubeflow
    secret = {"KFP_AUTH_CLIENT_SECRET": stack.CLIENT_SECRET}
    grant = ("-u", FAST_USER, "--dex-client-id", stack.CLIENT_ID)
    r = run(["login", "--url", s.api_url, *grant], tmp_path, extra_env=secret)
    assert r.returncode == 0, shown(r)
    token = r.stdout.strip()
    # The stock CLI with the printed token: it goes to the one --endpoint named.
    r = run(
        ["--endpoint", s.api_url, "--existing-token", token, "-n", FAST_NAMESPACE, "experiment", "create", "by-token"],
        tmp_path,
        tool="kfp",
    )
    assert r.returncode == 0, shown(r)
    # The wrapper, with the password grant, with a token file, and with kfp's --existing-token.
    r = run(wrapped(s, "-n", FAST_NAMESPACE, "experiment", "list", login=grant), tmp_path, extra_env=secret)
    assert r.returncode == 0 and "by-token" in r.stdout, shown(r)
    f = tmp_path / "token"
    f.write_text(token + "\n")
    r = run(wrapped(s, "-n", FAST_NAMESPACE, "experiment", "list", login=("--token-file", str(f))), tmp_path)
    assert r.returncode == 0 and "by-token" in r.stdout, shown(r)
    r = run(wrapped(s, "--existing-token", token, "-n", FAST_NAMESPACE, "experiment", "list", login=()), tmp_path)
    assert r.returncode == 0 and "by-token" in r.stdout, shown(r)
    r = run(wrapped(s, "--existing-token", token, "experiment", "list", login=("--token-file", str(f))), tmp_path)
    assert r.returncode == 2 and "drop --token-file" in r.stderr, shown(r)
    r = run(wrapped(s, "experiment", "list", login=("--token-file", str(f), *grant)), tmp_path, extra_env=secret)
    assert r.returncode == 2 and "two ways to log in" in r.stderr, shown(r)
    assert {q["user"] for q in s.kfp_requests() if "/apis/" in q["path"]} == {FAST_USER}
    # No wrapper run shows the token, even a failed request's headers.
    r = run(
        wrapped(s, "-n", FAST_NAMESPACE, "experiment", "get", "no-such-id", login=("--token-file", str(f))), tmp_path
    )
    assert r.returncode == 1 and token not in r.stdout + r.stderr and "eyJ" not in r.stderr, shown(r)
    # A token file that is no token: kfp-auth's error and exit code, not a traceback.
    f.write_text("not-a-jwt")
    r = run(wrapped(s, "experiment", "list", login=("--token-file", str(f))), tmp_path)
    assert r.returncode == 2 and "does not hold a JWT" in r.stderr and "Traceback" not in r.stderr, shown(r)


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    with start_sso_stack(tmp_path_factory.mktemp("kfp-cli-sso")) as s:
        yield s


@pytest.mark.stack
def test_an_sso_login_with_the_stock_kfp_cli_and_the_wrapper(sso: SsoStack, tmp_path: Path) -> None:
    r = cli_device_login(sso, tmp_path, "--url", sso.api_url, "-c", CONNECTOR_ID)
    assert r.returncode == 0, shown(r)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_", "XDG_"))}
    env |= {
        "HOME": str(tmp_path),
        "KF_PIPELINES_ENDPOINT": sso.api_url,
        "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
    }
    # The documented form, as a shell runs it.
    script = (
        f'kfp --endpoint "$KF_PIPELINES_ENDPOINT" --existing-token "$(kfp-auth token)" -n {IDP_NAMESPACE} '
        "experiment create sso-by-token && "
        f'kfp --endpoint "$KF_PIPELINES_ENDPOINT" --existing-token "$(kfp-auth token)" -n {IDP_NAMESPACE} '
        "experiment list"
    )
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "sso-by-token" in r.stdout, shown(r)
    # The wrapper on the saved login: no prompt (a prompt would wait for a user nobody plays).
    r = run(
        ["kfp", "--device", "--", "-n", IDP_NAMESPACE, "experiment", "list"],
        tmp_path,
        extra_env={"KF_PIPELINES_ENDPOINT": sso.api_url},
    )
    assert r.returncode == 0 and "sso-by-token" in r.stdout, shown(r)
    assert "eyJ" not in r.stdout + r.stderr
    # --dex-client-id names the public client of the SSO login here, not the password grant.
    r = run(
        ["kfp", "--device", "--dex-client-id", "kfp-auth", "--", "-n", IDP_NAMESPACE, "experiment", "list"],
        tmp_path,
        extra_env={"KF_PIPELINES_ENDPOINT": sso.api_url},
    )
    assert r.returncode == 0 and "sso-by-token" in r.stdout, shown(r)
    assert {q["user"] for q in sso.kfp_requests() if "/apis/" in q["path"]} == {IDP_USER}


def test_context_needs_the_opt_in_and_then_warns(kubeflow: Stack, tmp_path: Path) -> None:
    ctx = context_file(tmp_path)
    before = kubeflow.gateway_requests()
    r = run(["context", "--url", kubeflow.api_url, "-u", FAST_USER], tmp_path)
    assert r.returncode == 2 and "--any-host" in r.stderr and "kfp-auth kfp" in r.stderr, shown(r)
    assert not ctx.exists() and not (tmp_path / ".config").exists()
    assert kubeflow.gateway_requests() == before  # refused before any login

    # Opted in, without -n: every key kfp's own file has, and the user's others kept.
    ctx.parent.mkdir(parents=True)
    ctx.write_text(json.dumps({"client_authentication_header_name": None, "mine": ["kept"]}))
    r = run(["context", "--any-host", "--url", kubeflow.api_url, "-u", FAST_USER], tmp_path)
    assert r.returncode == 0, shown(r)
    assert "WARNING" in r.stderr and "whatever that host is" in r.stderr and COOKIE not in r.stderr + r.stdout
    data = json.loads(ctx.read_text())
    assert data["namespace"] == "" and data["mine"] == ["kept"] and data["client_authentication_header_name"] is None
    assert data["client_authentication_cookie"].startswith(COOKIE)
    # kfp reads it without a KeyError: the stock CLI, and a bare kfp.Client.
    r = run(
        ["--endpoint", kubeflow.api_url, "-n", FAST_NAMESPACE, "experiment", "create", "via-global"],
        tmp_path,
        tool="kfp",
    )
    assert r.returncode == 0 and "KeyError" not in r.stderr, shown(r)
    r = run(["--endpoint", kubeflow.api_url, "-n", FAST_NAMESPACE, "experiment", "list"], tmp_path, tool="kfp")
    assert r.returncode == 0 and "via-global" in r.stdout, shown(r)
    code = (
        f"import kfp; c = kfp.Client(host={kubeflow.api_url!r}); "
        f"print([e.display_name for e in c.list_experiments(namespace={FAST_NAMESPACE!r}).experiments])"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0 and "via-global" in p.stdout, p.stderr[-2000:]
    # A namespace already in the file stays when -n is not given; -n replaces it.
    ctx.write_text(json.dumps({"namespace": FAST_NAMESPACE, "mine": 1}))
    assert run(["context", "--any-host", "--url", kubeflow.api_url, "-u", FAST_USER], tmp_path).returncode == 0
    assert json.loads(ctx.read_text())["namespace"] == FAST_NAMESPACE
    r = run(["context", "--any-host", "--url", kubeflow.api_url, "-u", FAST_USER, "-n", "other"], tmp_path)
    assert r.returncode == 0 and json.loads(ctx.read_text())["namespace"] == "other", shown(r)
    assert json.loads(ctx.read_text())["mine"] == 1


def test_the_wrapper_runs_kfp_18s_cli(kubeflow: Stack, tmp_path: Path, kfp18_python: str) -> None:
    kfp_auth = Path(kfp18_python).parent / "kfp-auth"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_", "XDG_"))}
    env |= {"HOME": str(tmp_path), "KFP_AUTH_PASSWORD": stack.FAST_PASSWORD}
    args = [str(kfp_auth), "kfp", "--url", kubeflow.api_url, "-u", FAST_USER, "--", "-n", FAST_NAMESPACE]
    r = subprocess.run(
        [*args, "experiment", "create", "kfp18-cli"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, shown(r)
    r = subprocess.run([*args, "experiment", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "kfp18-cli" in r.stdout, shown(r)
    assert not (tmp_path / ".config").exists() and COOKIE not in r.stdout + r.stderr
    r = subprocess.run(
        [*args[:-3], "--", "--endpoint", "http://127.0.0.1:9/pipeline", "experiment", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and "one endpoint only" in r.stderr, shown(r)
