"""The smoke suite of the kfp version matrix: what every kfp version users run must do.

`make kfp-matrix` (scripts/kfp-matrix.sh) runs this file in one venv per kfp version
(requirements-kfp-<version>.txt), each holding the built wheel as a user installs it,
against the real Dex and oauth2-proxy, with `KFP_MATRIX_KFP` naming the kfp version the
venv must hold. It is not part of the main run (`norecursedirs`): kfp 1.8 and 2.x cannot
share a venv. scripts/kfp_versions.py writes docs/kfp-versions.md from the JUnit files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import kfp
import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, NAMESPACE, SA_IDENTITY, Stack, start_kfp_api
from stack import start_kubeflow_stack as start_stack
from stack.device_user import User
from stack.sso import IDP_NAMESPACE, IDP_USER, jwt_claims, start_sso_stack
from stack.tokens import TokenVolume

pytestmark = pytest.mark.stack

KFP_1 = kfp.__version__.startswith("1.")
# kfp's PipelinesClient (create_pipelines_client()) came with kfp 2.17.
HAS_PIPELINES_CLIENT = tuple(int(p) for p in kfp.__version__.split(".")[:2]) >= (2, 17)
# kfp 1.8 speaks the v1beta1 API and names an experiment `name`; kfp 2.x v2beta1 and `display_name`.
API = "v1beta1" if KFP_1 else "v2beta1"


def names(experiments: Any) -> list[str]:
    return [e.name if KFP_1 else e.display_name for e in experiments.experiments or []]


def api_calls(entries: list[dict]) -> set[tuple[str, str, str | None]]:
    """(method, path, user) of the KFP API requests in a slice of the test server's log."""
    return {(e["method"], e["path"].removeprefix("/pipeline"), e["user"]) for e in entries if "/apis/" in e["path"]}


def rejected_api_calls(s: Stack) -> list[str]:
    """The gateway's log lines of API calls it answered 401."""
    return [line for line in s.gateway_log().splitlines() if '"/pipeline/apis/' in line and '" 401 ' in line]


@pytest.fixture(scope="session", autouse=True)
def _record_versions(record_testsuite_property: Any) -> None:
    # The docs' table is written from these, so it shows what ran, not what was asked for.
    record_testsuite_property("kfp", kfp.__version__)
    record_testsuite_property("kfp-auth", metadata.version("kfp-auth"))


def test_the_venv_holds_the_expected_kfp_and_the_built_wheel() -> None:
    want = os.environ.get("KFP_MATRIX_KFP")
    assert want, "KFP_MATRIX_KFP is not set: run this suite with scripts/kfp-matrix.sh"
    assert kfp.__version__ == want == metadata.version("kfp")
    # pip records an install from a file as archive_info; an editable build would be dir_info.
    direct = json.loads(metadata.distribution("kfp-auth").read_text("direct_url.json") or "{}")
    assert "archive_info" in direct and direct["url"].endswith(".whl"), direct


def test_password_login_and_a_client_that_lists_and_creates_experiments(kubeflow: Stack) -> None:
    before, dex_before = len(kubeflow.kfp_requests()), kubeflow.logins_at_dex(FAST_USER)
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    client = m.create_kfp_client()
    assert type(client) is kfp.Client
    client.create_experiment(name="matrix", namespace=FAST_NAMESPACE)
    assert "matrix" in names(client.list_experiments(namespace=FAST_NAMESPACE))
    assert m.logins == 1 and kubeflow.logins_at_dex(FAST_USER) == dex_before + 1
    # Through the real oauth2-proxy, as the logged-in user, on this kfp's API version.
    assert {
        ("GET", f"/apis/{API}/experiments", FAST_USER),
        ("POST", f"/apis/{API}/experiments", FAST_USER),
    } <= api_calls(kubeflow.kfp_requests()[before:])


def test_pipelines_client_from_kfp_2_17_and_a_typed_error_before(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    if not HAS_PIPELINES_CLIENT:
        with pytest.raises(kfp_auth.KFPVersionError) as ei:
            m.create_pipelines_client(FAST_NAMESPACE)
        assert (ei.value.installed, ei.value.required) == (kfp.__version__, ">=2.17")
        assert m.logins == 0  # refused before any login
        return
    pc = m.create_pipelines_client(FAST_NAMESPACE)
    pc.create_experiment("matrix-pc")
    assert "matrix-pc" in [e.display_name for e in pc.list_experiments().experiments]
    assert m.logins == 1


@pytest.fixture(scope="module")
def short_cookies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("short"), cookie_expire="4s") as s:
        yield s


def test_a_client_logs_in_again_when_its_session_expires(short_cookies: Stack) -> None:
    m = KFPClientManager(short_cookies.api_url, FAST_USER, FAST_PASSWORD)
    client = m.create_kfp_client()
    client.create_experiment(name="expiring", namespace=FAST_NAMESPACE)
    assert m.logins == 1
    time.sleep(4.5)  # past oauth2-proxy's cookie_expire
    assert names(client.list_experiments(namespace=FAST_NAMESPACE)) == ["expiring"]
    assert m.logins == 2
    # Renewed from the cookie's expiry before sending: the gateway refused nothing.
    assert rejected_api_calls(short_cookies) == []


def test_a_client_logs_in_again_when_the_gateway_drops_its_session(own_kubeflow: Stack) -> None:
    m = KFPClientManager(own_kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    client = m.create_kfp_client()
    client.create_experiment(name="dropped", namespace=FAST_NAMESPACE)
    own_kubeflow.restart_gateway(new_cookie_secret=True)  # every session is void
    assert names(client.list_experiments(namespace=FAST_NAMESPACE)) == ["dropped"]
    # The gateway's 401 reached kfp-auth's hook in this kfp's REST layer: one login, one retry.
    assert m.logins == 2
    assert len(rejected_api_calls(own_kubeflow)) == 1


@pytest.fixture
def token_api(tmp_path: Path) -> Iterator[tuple[TokenVolume, str, Path]]:
    """The KFP API test server checking bearer tokens against what a token volume holds now."""
    vol = TokenVolume(tmp_path / "token-volume")
    proc, url = start_kfp_api(tmp_path, require_auth=True, token_files={vol.path: SA_IDENTITY})
    try:
        yield vol, url, tmp_path / "kfp-requests.jsonl"
    finally:
        proc.stop()


def test_a_token_file_client_follows_the_rotation(token_api: tuple[TokenVolume, str, Path]) -> None:
    vol, url, log = token_api
    m = KFPClientManager(url, token_path=vol.path)
    client = m.create_kfp_client()
    client.create_experiment(name="bearer", namespace=NAMESPACE)
    assert m.bearer is not None and m.bearer.fetches == 1
    vol.rotate()  # the old token is refused from now on
    assert names(client.list_experiments(namespace=NAMESPACE)) == ["bearer"]
    assert m.bearer.fetches == 2 and m.get_session_cookies() == ""
    entries = [json.loads(line) for line in log.read_text().splitlines() if '"/_test/' not in line]
    assert entries and all(e["bearer"] == "accepted" and e["user"] == SA_IDENTITY for e in entries)
    assert {
        ("GET", f"/apis/{API}/experiments", SA_IDENTITY),
        ("POST", f"/apis/{API}/experiments", SA_IDENTITY),
    } <= api_calls(entries)


def test_an_sso_device_login_whose_token_is_refreshed_past_its_lifetime(tmp_path: Path) -> None:
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s") as s:
        user = User(s)
        m = KFPClientManager(s.api_url, login="device", prompt=user)
        client = m.create_kfp_client()
        client.create_experiment(name="sso", namespace=IDP_NAMESPACE)
        first = m.get_bearer_token()
        claims = jwt_claims(first or "")
        assert claims["email"] == IDP_USER and claims["exp"] - claims["iat"] == 5
        time.sleep(max(0.0, claims["exp"] - time.time()) + 0.5)  # the first token has expired
        assert names(client.list_experiments(namespace=IDP_NAMESPACE)) == ["sso"]
        assert m.get_bearer_token() != first
        assert m.bearer is not None and m.bearer.refreshes >= 1 and m.logins == 1
        assert user.kinds() == ["code", "done"], "one login, no prompt since"
        assert {
            ("GET", f"/apis/{API}/experiments", IDP_USER),
            ("POST", f"/apis/{API}/experiments", IDP_USER),
        } <= api_calls(s.kfp_requests())
        # Refreshed ahead of expiry: the gateway never saw an expired token.
        assert "token is expired" not in s.gateway_log()
