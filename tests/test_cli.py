"""The kfp-auth command line, run as a subprocess against the real stack."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import stack
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, Stack
from stack.cli import run

BIN = Path(sys.executable).parent


def login_args(s: Stack, *more: str) -> list[str]:
    return ["login", "--url", s.api_url, "-u", FAST_USER, *more]


def test_help_everywhere(tmp_path: Path) -> None:
    for args in (["--help"], ["login", "--help"], ["context", "--help"], ["kfp", "--help"]):
        r = run(args, tmp_path)
        assert r.returncode == 0 and "usage: kfp-auth" in r.stdout
    assert "never taken from the command line" in run(["--help"], tmp_path).stdout


def test_login_prints_the_cookie_in_each_format(kubeflow: Stack, tmp_path: Path) -> None:
    r = run(login_args(kubeflow), tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("oauth2_proxy_kubeflow=")

    r = run(login_args(kubeflow, "-o", "json"), tmp_path)
    out = json.loads(r.stdout)
    assert out["cookie"].startswith("oauth2_proxy_kubeflow=") and out["unsecured"] is False

    r = run(login_args(kubeflow, "-o", "export"), tmp_path)
    lines = [shlex.split(line) for line in r.stdout.splitlines()]
    assert lines[0] == ["export", f"KF_PIPELINES_ENDPOINT={kubeflow.api_url}"]
    assert lines[1][1].startswith("KFP_AUTH_COOKIE=oauth2_proxy_kubeflow=")


@pytest.fixture(scope="module")
def grant_kubeflow(tmp_path_factory: pytest.TempPathFactory):
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("cli-grant"), password_grant=True) as s:
        yield s


def test_login_prints_a_bearer_token_from_the_password_grant(grant_kubeflow: Stack, tmp_path: Path) -> None:
    import urllib.request

    secret = {"KFP_AUTH_CLIENT_SECRET": stack.CLIENT_SECRET}
    grant = ["--dex-client-id", stack.CLIENT_ID]
    r = run(login_args(grant_kubeflow, *grant), tmp_path, extra_env=secret)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.count(".") == 2 and "oauth2_proxy" not in token
    # The printed token is usable as it is: the real gateway lets it through to the API.
    req = urllib.request.Request(
        grant_kubeflow.gateway_url + "/pipeline/apis/v2beta1/healthz",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and json.load(resp)["multi_user"] is True

    out = json.loads(run(login_args(grant_kubeflow, *grant, "-o", "json"), tmp_path, extra_env=secret).stdout)
    assert out["bearer_token"].count(".") == 2 and out["expires"] > 0
    r = run(login_args(grant_kubeflow, *grant, "-o", "export"), tmp_path, extra_env=secret)
    assert shlex.split(r.stdout.splitlines()[1])[1].startswith("KFP_AUTH_TOKEN=")

    r = run(login_args(grant_kubeflow, *grant), tmp_path)
    assert r.returncode == 2 and "KFP_AUTH_CLIENT_SECRET" in r.stderr
    r = run(login_args(grant_kubeflow, *grant), tmp_path, password="wrong", extra_env=secret)
    assert r.returncode == 3 and "wrong" not in r.stderr + r.stdout
    r = run(
        ["context", "--any-host", "--url", grant_kubeflow.api_url, "-u", FAST_USER, *grant], tmp_path, extra_env=secret
    )
    assert r.returncode == 2 and "drop --dex-client-id" in r.stderr


def test_url_and_user_from_the_environment(kubeflow: Stack, tmp_path: Path) -> None:
    r = run(["login"], tmp_path, extra_env={"KF_PIPELINES_ENDPOINT": kubeflow.api_url, "KFP_AUTH_USERNAME": FAST_USER})
    assert r.returncode == 0 and r.stdout.startswith("oauth2_proxy_kubeflow="), r.stderr


def test_password_sources(kubeflow: Stack, tmp_path: Path) -> None:
    r = run(login_args(kubeflow, "--password-stdin"), tmp_path, password=None, stdin=FAST_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    f = tmp_path / "pw"
    f.write_text(FAST_PASSWORD + "\n")
    r = run(login_args(kubeflow, "--password-file", str(f)), tmp_path, password=None)
    assert r.returncode == 0, r.stderr
    r = run(
        login_args(kubeflow, "--password-env", "MY_PW"), tmp_path, password=None, extra_env={"MY_PW": FAST_PASSWORD}
    )
    assert r.returncode == 0, r.stderr
    # There is no option that takes the password itself, and the refusal does not echo it.
    for wrong in (["--password", "s3cr3t-x"], ["--password=s3cr3t-x"], ["-p", "s3cr3t-x"], ["s3cr3t-x"]):
        r = run(login_args(kubeflow, *wrong), tmp_path)
        assert r.returncode == 2 and "s3cr3t-x" not in r.stderr + r.stdout, r.stderr


def test_exit_codes_for_each_failure(kubeflow: Stack, tmp_path: Path) -> None:
    bad = run(login_args(kubeflow), tmp_path, password="wrong-pw-8086")
    assert bad.returncode == 3 and "rejected the username or password" in bad.stderr
    assert "wrong-pw-8086" not in bad.stderr + bad.stdout
    assert run(login_args(kubeflow, "-c", "ldap"), tmp_path).returncode == 3
    assert run(["login", "--url", f"http://127.0.0.1:{stack.free_port()}/p"], tmp_path).returncode == 4
    assert run(["login"], tmp_path).returncode == 2  # no URL
    assert run(login_args(kubeflow, "-c", "bad/id"), tmp_path).returncode == 2

    cache = tmp_path / ".cache" / "kfp-auth" / "sessions.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{}")
    cache.chmod(0o644)
    r = run(login_args(kubeflow, "--session-cache"), tmp_path)
    assert r.returncode == 6 and "chmod 600" in r.stderr


def test_tls_failure_exit_code(tmp_path: Path) -> None:
    proc, url = stack.start_kfp_api(tmp_path, require_auth=False, tls=stack.self_signed_cert(tmp_path))
    try:
        r = run(["login", "--url", url + "/pipeline"], tmp_path)
        assert r.returncode == 5 and "skip_tls_verify" in r.stderr
        r = run(["login", "--url", url + "/pipeline", "--skip-tls-verify", "-o", "json"], tmp_path)
        assert r.returncode == 0 and json.loads(r.stdout)["unsecured"] is True
    finally:
        proc.stop()


def test_context_file_makes_the_stock_kfp_cli_work(kubeflow: Stack, tmp_path: Path) -> None:
    ctx = tmp_path / ".config" / "kfp" / "context.json"
    ctx.parent.mkdir(parents=True)
    ctx.write_text(json.dumps({"client_authentication_header_name": None, "keep": "me"}))

    r = run(["context", "--any-host", "--url", kubeflow.api_url, "-u", FAST_USER, "-n", FAST_NAMESPACE], tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(ctx.read_text())
    assert data["keep"] == "me" and data["namespace"] == FAST_NAMESPACE
    assert data["client_authentication_cookie"].startswith("oauth2_proxy_kubeflow=")
    assert stat.S_IMODE(ctx.stat().st_mode) == 0o600

    # A bare kfp.Client(host=...) picks the session up from the context file...
    code = (
        f"import kfp; c = kfp.Client(host={kubeflow.api_url!r}); c.create_experiment(name='via-context'); "
        "print([e.display_name for e in c.list_experiments().experiments])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "via-context" in r.stdout
    # ...and so does the stock kfp CLI.
    r = run(["--endpoint", kubeflow.api_url, "experiment", "list"], tmp_path, tool="kfp")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "via-context" in r.stdout


@pytest.mark.parametrize("content", ["[1, 2]", "{not json"])
def test_a_broken_context_file_is_reported_not_overwritten(kubeflow: Stack, tmp_path: Path, content: str) -> None:
    ctx = tmp_path / "ctx.json"
    ctx.write_text(content)
    r = run(["context", "--any-host", "--url", kubeflow.api_url, "-u", FAST_USER, "--context-file", str(ctx)], tmp_path)
    assert r.returncode == 1 and "fix or delete it" in r.stderr
    assert ctx.read_text() == content


def test_interactive_prompt_does_not_echo(kubeflow: Stack, tmp_path: Path) -> None:
    import pty
    import select
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_"))}
    env["HOME"] = str(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child, on its own terminal
        os.execve(str(BIN / "kfp-auth"), ["kfp-auth", *login_args(kubeflow)], env)

    def read_until(marker: bytes, seconds: float = 30) -> bytes:
        out, deadline = b"", time.monotonic() + seconds
        while marker not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        return out

    assert b"Password for fast@example.com:" in read_until(b":")
    os.write(fd, FAST_PASSWORD.encode() + b"\n")
    rest = read_until(b"oauth2_proxy_kubeflow=")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"oauth2_proxy_kubeflow=" in rest
    assert FAST_PASSWORD.encode() not in rest.split(b"oauth2_proxy_kubeflow=")[0]  # typed, not echoed


def diagnose(args: list[str], home: Path, **kw: object) -> tuple[int, dict]:
    r = run(["diagnose", *args, "-o", "json"], home, **kw)  # type: ignore[arg-type]
    return r.returncode, json.loads(r.stdout)


def test_diagnose_kubeflow_110(kubeflow: Stack, tmp_path: Path) -> None:
    code, d = diagnose(["--url", kubeflow.api_url, "-u", FAST_USER], tmp_path)
    assert code == 0, d
    assert d["gateway"].startswith("oauth2-proxy (Kubeflow 1.9+)")
    assert d["connectors"] == ["local"] and d["approval"] == "not shown"
    assert d["tls"].startswith("none: plain http")
    assert [s["status"] for s in d["steps"]] == [403, 302, 302, 302, 200, 303, 302]
    assert d["verdict"].startswith("OK: logged in as fast@example.com") and "oauth2_proxy_kubeflow" in d["verdict"]
    # Query values that carry state are hidden; the cookie value is never shown.
    secrets = set(re.findall(r"(?:state|code|req|hmac)=([^&\s\"]+)", kubeflow.gateway_log()))
    shown = json.dumps(d)
    assert not [s for s in secrets if len(s) >= 6 and s in shown]


def test_diagnose_a_bad_password_step_by_step(kubeflow: Stack, tmp_path: Path) -> None:
    r = run(["diagnose", "--url", kubeflow.api_url, "-u", FAST_USER], tmp_path, password="wrong-pw-1234")
    assert r.returncode == 3
    assert "POST http://127.0.0.1" in r.stdout and "/dex/auth/local/login?back=…&state=…  ->  401" in r.stdout
    assert "verdict:    FAILED: Dex rejected the username or password" in r.stdout
    assert "wrong-pw-1234" not in r.stdout + r.stderr


def test_diagnose_kubeflow_19_and_unsecured_and_unreachable(tmp_path: Path, standalone_kfp: str) -> None:
    with stack.start_kubeflow_stack(tmp_path / "kf19", skip_provider_button=True, prompt=None) as s:
        code, d = diagnose(["--url", s.api_url, "-u", FAST_USER], tmp_path)
    assert code == 0
    assert "skip_provider_button=true" in d["gateway"]
    assert d["approval"] == "forced by the gateway (approval_prompt=force), and granted"

    code, d = diagnose(["--url", standalone_kfp + "/pipeline"], tmp_path)
    assert code == 0 and d["gateway"] == "none: no login was asked for" and d["verdict"].startswith("OK: the endpoint")

    code, d = diagnose(["--url", f"http://127.0.0.1:{stack.free_port()}/pipeline"], tmp_path)
    assert code == 4 and d["error"] == "ConnectError" and [s["status"] for s in d["steps"]] == [None]


def test_other_failures_exit_1_and_context_fails_like_login(own_kubeflow: Stack, tmp_path: Path) -> None:
    r = run(["context", "--any-host", "--url", own_kubeflow.api_url, "-u", FAST_USER], tmp_path, password="wrong")
    assert r.returncode == 3
    assert not (tmp_path / ".config" / "kfp" / "context.json").exists()
    own_kubeflow.procs["dex"].stop()
    r = run(["login", "--url", own_kubeflow.api_url, "-u", FAST_USER], tmp_path)
    assert r.returncode == 1 and "HTTP 502" in r.stderr and "is Dex running?" in r.stderr


def test_diagnose_tls_shows_the_certificate_and_why_it_was_rejected(tmp_path: Path) -> None:
    ca, cert, key = stack.ca_signed_cert(tmp_path)
    proc, url = stack.start_kfp_api(tmp_path, require_auth=False, tls=(cert, key))
    try:
        r = run(["diagnose", "--url", url + "/pipeline"], tmp_path)
        assert r.returncode == 5
        assert "REJECTED: TLS failed" in r.stdout and "does not trust" in r.stdout
        assert "presents subject CN=127.0.0.1, issuer CN=kfp-auth test CA, names [IP:127.0.0.1]" in r.stdout
        assert r.stderr == ""  # nothing from other crates' logs
        r = run(["diagnose", "--url", url + "/pipeline", "--ca-cert", str(ca)], tmp_path)
        assert r.returncode == 0 and f"verified against {ca}" in r.stdout and "h left)" in r.stdout
    finally:
        proc.stop()


def test_help_for_every_subcommand(tmp_path: Path) -> None:
    for sub in ("login", "context", "kfp", "diagnose", "inspect", "token", "logout"):
        r = run([sub, "--help"], tmp_path)
        assert r.returncode == 0 and f"usage: kfp-auth {sub}" in r.stdout


def test_context_and_diagnose_exit_codes(kubeflow: Stack, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{stack.free_port()}/pipeline"
    assert run(["context", "--any-host", "--url", dead], tmp_path).returncode == 4
    assert run(["diagnose", "--url", kubeflow.api_url, "-u", FAST_USER, "-c", "nope"], tmp_path).returncode == 3
    cache = tmp_path / ".cache" / "kfp-auth" / "sessions.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{}")
    cache.chmod(0o644)
    assert (
        run(
            ["context", "--any-host", "--url", kubeflow.api_url, "-u", FAST_USER, "--session-cache"], tmp_path
        ).returncode
        == 6
    )
