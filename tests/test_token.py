"""`kfp-auth token`: decode a bearer token's claims, never print the token.

The JWTs here are made by the test (a ServiceAccount token's shape, with a
dummy signature): claims are decoded, never verified, so no cluster is needed.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from stack.cli import run

import kfp_auth


def b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def sa_token(exp: float) -> str:
    claims = {"aud": ["pipelines.kubeflow.org"], "exp": int(exp), "iat": int(exp) - 7200,
              "iss": "https://kubernetes.default.svc.cluster.local",
              "sub": "system:serviceaccount:kubeflow-user-example-com:default-editor"}
    return f"{b64(json.dumps({'alg': 'RS256', 'kid': 'test'}))}.{b64(json.dumps(claims))}.ZHVtbXktc2lnbmF0dXJl"


def test_token_from_the_env_var_path(tmp_path: Path) -> None:
    token = sa_token(time.time() + 3600)
    f = tmp_path / "token"
    f.write_text(token + "\n")
    r = run(["token"], tmp_path, extra_env={"KF_PIPELINES_SA_TOKEN_PATH": str(f)})
    assert r.returncode == 0, r.stderr
    assert "subject:  system:serviceaccount:kubeflow-user-example-com:default-editor" in r.stdout
    assert "audience: pipelines.kubeflow.org" in r.stdout
    assert "(in 0h59m)" in r.stdout or "(in 1h00m)" in r.stdout
    assert token not in r.stdout and token.split(".")[1] not in r.stdout


def test_token_from_file_and_stdin_as_json(tmp_path: Path) -> None:
    token = sa_token(time.time() + 600)
    f = tmp_path / "t"
    f.write_text(token)
    for args, stdin in ((["token", "--file", str(f), "-o", "json"], None), (["token", "--stdin", "-o", "json"], token)):
        r = run(args, tmp_path, stdin=stdin)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["audience"] == ["pipelines.kubeflow.org"] and abs(out["expires"] - (time.time() + 600)) < 5


def test_expired_token_exits_3(tmp_path: Path) -> None:
    r = run(["token", "--stdin"], tmp_path, stdin=sa_token(time.time() - 120))
    assert r.returncode == 3 and "EXPIRED 0h02m ago" in r.stdout


@pytest.mark.parametrize("content,what", [(None, "cannot read the token file"), ("", "is empty"),
                                          ("not-a-jwt-secret", "does not hold a JWT")])
def test_unusable_token_files_name_the_path_and_the_env_var(tmp_path: Path, content: str | None, what: str) -> None:
    f = tmp_path / "token"
    if content is not None:
        f.write_text(content)
    r = run(["token", "--file", str(f)], tmp_path)
    assert r.returncode == 2
    assert what in r.stderr and str(f) in r.stderr and "KF_PIPELINES_SA_TOKEN_PATH" in r.stderr
    assert "not-a-jwt-secret" not in r.stderr


def test_python_api() -> None:
    c = kfp_auth._native.inspect_token(sa_token(2_000_000_000))
    assert c["subject"].endswith(":default-editor") and c["expires"] == 2_000_000_000.0
    with pytest.raises(kfp_auth.TokenError, match="not a JWT"):
        kfp_auth._native.inspect_token("abc")
