"""`kfp-auth token`: decode a bearer token's claims, never print the token.

The JWTs here are made by the test (a ServiceAccount token's shape, with a
dummy signature): claims are decoded, never verified, so no cluster is needed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kfp_auth
from stack.cli import run


def b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def sa_token(exp: float) -> str:
    claims = {
        "aud": ["pipelines.kubeflow.org"],
        "exp": int(exp),
        "iat": int(exp) - 7200,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:kubeflow-user-example-com:default-editor",
    }
    return f"{b64(json.dumps({'alg': 'RS256', 'kid': 'test'}))}.{b64(json.dumps(claims))}.ZHVtbXktc2lnbmF0dXJl"


def test_token_from_the_env_var_path(tmp_path: Path) -> None:
    token = sa_token(time.time() + 3600)
    f = tmp_path / "token"
    f.write_text(token + "\n")
    r = run(["inspect"], tmp_path, extra_env={"KF_PIPELINES_SA_TOKEN_PATH": str(f)})
    assert r.returncode == 0, r.stderr
    assert "subject:  system:serviceaccount:kubeflow-user-example-com:default-editor" in r.stdout
    assert "audience: pipelines.kubeflow.org" in r.stdout
    assert "(in 0h59m)" in r.stdout or "(in 1h00m)" in r.stdout
    assert token not in r.stdout and token.split(".")[1] not in r.stdout


def test_token_from_file_and_stdin_as_json(tmp_path: Path) -> None:
    token = sa_token(time.time() + 600)
    f = tmp_path / "t"
    f.write_text(token)
    for args, stdin in (
        (["inspect", "--file", str(f), "-o", "json"], None),
        (["inspect", "--stdin", "-o", "json"], token),
    ):
        r = run(args, tmp_path, stdin=stdin)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["audience"] == ["pipelines.kubeflow.org"] and abs(out["expires"] - (time.time() + 600)) < 5


def test_expired_token_exits_3(tmp_path: Path) -> None:
    r = run(["inspect", "--stdin"], tmp_path, stdin=sa_token(time.time() - 120))
    assert r.returncode == 3 and "EXPIRED 0h02m ago" in r.stdout


@pytest.mark.parametrize(
    "content,what",
    [(None, "cannot read the token file"), ("", "is empty"), ("not-a-jwt-secret", "does not hold a JWT")],
)
def test_unusable_token_files_name_the_path_and_the_env_var(tmp_path: Path, content: str | None, what: str) -> None:
    f = tmp_path / "token"
    if content is not None:
        f.write_text(content)
    r = run(["inspect", "--file", str(f)], tmp_path)
    assert r.returncode == 2
    assert what in r.stderr and "KF_PIPELINES_SA_TOKEN_PATH" in r.stderr
    # A file that exists is named; a path that names nothing is not quoted (it may be a
    # password typed in the wrong place): the option is named instead.
    assert (str(f) in r.stderr) if f.exists() else ("<the --file value>" in r.stderr and str(f) not in r.stderr)
    assert "not-a-jwt-secret" not in r.stderr


def test_python_api() -> None:
    c = kfp_auth._native.inspect_token(sa_token(2_000_000_000))
    assert c["subject"].endswith(":default-editor") and c["expires"] == 2_000_000_000.0
    with pytest.raises(kfp_auth.TokenError, match="not a JWT"):
        kfp_auth._native.inspect_token("abc")


# -- Token files an attacker, or an accident, made (issue 16) ----------------------------------


def test_a_jwt_file_with_a_second_line_is_refused_without_showing_the_token(tmp_path: Path) -> None:
    """The signature part used to go unchecked, so `<jwt>\\nmore` passed and http.client then
    put the whole token in its `Invalid header value` traceback."""
    token = sa_token(time.time() + 3600)
    f = tmp_path / "token"
    f.write_text(token + "\nsecond line\n")
    with pytest.raises(kfp_auth.TokenError) as ei:
        kfp_auth.KFPClientManager("http://127.0.0.1:9/pipeline", token_path=f)
    shown = str(ei.value) + repr(ei.value)
    for part in (token, *token.split(".")):
        assert part not in shown, "the token shows in the error"
    assert str(f) in shown
    r = run(["inspect", "--file", str(f)], tmp_path)
    assert r.returncode == 2 and "token" in r.stderr
    assert not any(part in r.stdout + r.stderr for part in token.split("."))
    # The same string as existing_token is refused as it always was.
    with pytest.raises(ValueError, match="existing_token"):
        kfp_auth.KFPClientManager("http://127.0.0.1:9/pipeline", existing_token=token + "\nsecond line")


@pytest.mark.parametrize("bad", ["header", "signature"])
def test_each_part_of_the_jwt_is_checked(bad: str) -> None:
    header, payload, signature = sa_token(time.time() + 3600).split(".")
    if bad == "header":
        header = b64("not json")
    else:
        signature = "sig nature!"
    with pytest.raises(kfp_auth.TokenError, match="not a JWT"):
        kfp_auth._native.inspect_token(f"{header}.{payload}.{signature}")


PROMPTLY = """
import resource, sys, time, kfp_auth
def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before, started = peak_kib(), time.monotonic()
try:
    kfp_auth.KFPClientManager("http://127.0.0.1:9/pipeline", token_path=sys.argv[1])
    print("no error")
except kfp_auth.KFPAuthError as e:
    print(type(e).__name__, round(time.monotonic() - started, 2), peak_kib() - before, str(e))
"""


@pytest.mark.parametrize("kind", ["sparse-300MiB", "dev-zero", "fifo"])
def test_token_files_that_are_not_small_regular_files_are_refused_promptly(tmp_path: Path, kind: str) -> None:
    """A 300 MiB file grew the process by as much; /dev/zero read until memory ran out; a
    FIFO blocked construction (and Ctrl-C did not end it). Each is now a TokenError at once:
    the file must be a regular file, checked on the open descriptor, of at most 64 KiB."""
    if kind == "sparse-300MiB":
        path = tmp_path / "token"
        with open(path, "wb") as f:
            f.truncate(300 << 20)
        says = "larger than 64 KiB"
    elif kind == "dev-zero":
        path, says = Path("/dev/zero"), "not a regular file"
    else:
        path = tmp_path / "token"
        os.mkfifo(path)
        says = "not a regular file"
    r = subprocess.run([sys.executable, "-c", PROMPTLY, str(path)], capture_output=True, text=True, timeout=60)
    name, took, grown_kib, msg = r.stdout.split(" ", 3)
    print(f"{kind}: {name} after {took} s, peak RSS grew {grown_kib} KiB")
    assert name == "TokenError", r.stdout + r.stderr[-2000:]
    assert says in msg and str(path) in msg and "KF_PIPELINES_SA_TOKEN_PATH" in msg
    assert float(took) < 5 and int(grown_kib) < 16 * 1024
