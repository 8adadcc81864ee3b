"""Login steps reach Python's `kfp_auth` logger at DEBUG, and no credential ever does."""

from __future__ import annotations

import logging
import re

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import FAST_PASSWORD, FAST_USER, Stack


def test_debug_log_shows_each_step_and_no_secret(kubeflow: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kfp_auth")
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    cookies = m.get_session_cookies()
    with pytest.raises(kfp_auth.InvalidCredentialsError):
        KFPClientManager(kubeflow.api_url, FAST_USER, "wrong-pw-5150").get_session_cookies()

    records = [r for r in caplog.records if r.name.startswith("kfp_auth")]
    text = "\n".join(r.getMessage() for r in records)
    path = kubeflow.api_url.split("//", 1)[1].split("/", 1)[1]
    assert re.search(rf"GET http://127\.0\.0\.1:\d+/{path} -> 403 in \d+ ms", text), text
    assert re.search(r"POST http://127\.0\.0\.1:\d+/dex/auth/local/login\?back=…&state=… -> 303 in \d+ ms", text)
    assert "logged in to" in text and "login to" in text and "failed" in text

    secrets = {FAST_PASSWORD, "wrong-pw-5150", cookies.split("=", 1)[1]}
    secrets |= set(re.findall(r"(?:state|code|req|hmac)=([^&\s\"]+)", kubeflow.gateway_log()))
    secrets = {s for s in secrets if len(s) >= 6 and s != "password"}
    assert not [s for s in secrets if s in text]


def test_nothing_is_logged_above_the_configured_level(kubeflow: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kfp_auth")
    KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD).get_session_cookies()
    assert not [r for r in caplog.records if r.name.startswith("kfp_auth")]


def test_only_kfp_auth_records_reach_python(caplog: pytest.LogCaptureFixture, tmp_path) -> None:
    """Other crates' records (hyper, reqwest, rustls) are not redacted, so they are dropped."""
    import stack

    caplog.set_level(logging.DEBUG)
    proc, url = stack.start_kfp_api(tmp_path, require_auth=False, tls=stack.self_signed_cert(tmp_path))
    try:
        with pytest.raises(kfp_auth.TLSError):
            KFPClientManager(url + "/pipeline?x=secret-query", "u", "p").get_session_cookies()
    finally:
        proc.stop()
    names = {r.name for r in caplog.records}
    assert "kfp_auth" in names
    assert not [n for n in names if not n.startswith(("kfp_auth", "urllib3"))], names
    assert not [r for r in caplog.records if "secret-query" in r.getMessage()]
