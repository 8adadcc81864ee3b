"""create_pipelines_client(): kfp 2.17's PipelinesClient (re-exported as
kubeflow.pipelines.PipelinesClient) on the manager's credentials, on the real stack."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kfp_auth
import stack
from kfp_auth import KFPClientManager
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, NAMESPACE, SA_IDENTITY, Stack, start_kubeflow_stack
from stack.device_user import User
from stack.sso import IDP_NAMESPACE, IDP_USER, start_sso_stack
from stack.tokens import TokenVolume, api_log, sa_token


def rejected_api_calls(s: Stack) -> list[str]:
    """The gateway's log lines of API calls it answered 401."""
    return [line for line in s.gateway_log().splitlines() if '"/pipeline/apis/' in line and '" 401 ' in line]


def hello_pipeline() -> Any:
    """A one-step pipeline, for PipelinesClient.run() to compile and submit."""
    from kfp import dsl

    # No annotations: this module's `from __future__ import annotations` makes them strings,
    # which kfp's compiler does not resolve.
    @dsl.component(base_image="python:3.11")
    def hello():  # type: ignore[no-untyped-def]
        print("hello")

    @dsl.pipeline(name="hello")
    def pipeline():  # type: ignore[no-untyped-def]
        hello()

    return pipeline


def void_between_polls(monkeypatch: pytest.MonkeyPatch, void: Any) -> list[float]:
    """Call `void` at PipelinesClient's first sleep between two polls of a run (not during
    one: a gateway that is down refuses connections, which no login can help)."""
    import kfp.kubeflow_client.backends.kubernetes.backend as backend_module

    sleeps: list[float] = []
    real_sleep = time.sleep

    class PatchedTime:  # kfp's backend module sees this `time`; everything else keeps the real one
        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) == 1:
                void()
            real_sleep(seconds)

    monkeypatch.setattr(backend_module, "time", PatchedTime())
    return sleeps


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Stack]:
    with start_kubeflow_stack(tmp_path / "stack", run_seconds=4) as s:
        yield s


def test_a_dex_session_client_of_both_import_paths_logs_in_again_once(restartable: Stack) -> None:
    import kfp.kubeflow_client.api.pipelines_client as kfp_module
    import kfp_server_api
    from kfp.kubeflow_client import KubernetesBackendConfig
    from kfp.kubeflow_client import PipelinesClient as FromKfp
    from kubeflow.pipelines import PipelinesClient as FromKubeflow

    request = kfp_server_api.rest.RESTClientObject.request
    backend_cls = kfp_module.KubernetesBackend
    m = KFPClientManager(restartable.api_url, FAST_USER, FAST_PASSWORD)
    pc = m.create_pipelines_client(FAST_NAMESPACE)
    assert isinstance(pc, FromKfp) and isinstance(pc, FromKubeflow)
    assert type(pc).__name__ == "PipelinesClient"
    assert type(pc._backend) is backend_cls and pc._backend.namespace == FAST_NAMESPACE

    exp = pc.create_experiment("pc-before", description="made by PipelinesClient")
    assert pc.get_experiment("pc-before").experiment_id == exp.experiment_id
    assert pc.create_experiment("pc-before").experiment_id == exp.experiment_id  # found by name, not made again
    restartable.restart_gateway(new_cookie_secret=True)  # every existing session is now void

    names = [e.display_name for e in pc.list_experiments().experiments]
    assert names == ["pc-before"]
    assert m.logins == 2
    assert len(rejected_api_calls(restartable)) == 1  # refused once, then retried after the login

    # Its kfp.Client (built on first use) is on the same session, not kfp's credential-less one.
    import kfp

    client = pc.kfp_client
    assert isinstance(client, kfp.Client) and pc.kfp_client is client
    assert [e.display_name for e in client.list_experiments(namespace=FAST_NAMESPACE).experiments] == names
    assert m.logins == 2

    # Nothing of kfp's was changed for the process: its own PipelinesClient still sends no credentials.
    assert kfp_server_api.rest.RESTClientObject.request is request and kfp_module.KubernetesBackend is backend_cls
    assert "kfp_client" in vars(FromKfp) and not hasattr(FromKfp, "_kfp_auth_kfp_client")
    m.create_pipelines_client(FAST_NAMESPACE, force_login=True)
    assert m.logins == 3

    plain = FromKfp(KubernetesBackendConfig(base_url=restartable.api_url, namespace=FAST_NAMESPACE))
    with pytest.raises(kfp_server_api.ApiException) as ei:
        plain.list_experiments()
    assert ei.value.status == 401


def test_wait_for_run_status_survives_a_session_loss_between_polls(
    restartable: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = KFPClientManager(restartable.api_url, FAST_USER, FAST_PASSWORD)
    pc = m.create_pipelines_client(FAST_NAMESPACE)
    pc.create_experiment("waits")
    run = pc.run(hello_pipeline(), experiment="waits", name="r")
    assert run.state == "RUNNING"

    sleeps = void_between_polls(monkeypatch, lambda: restartable.restart_gateway(new_cookie_secret=True))
    done = pc.wait_for_run_status(run, timeout=60, polling_interval=1)
    assert done.state == "SUCCEEDED" and done.run_id == run.run_id
    assert sleeps  # the gateway restarted between two polls
    assert m.logins == 2
    assert len(rejected_api_calls(restartable)) == 1
    assert [r.run_id for r in pc.list_runs(experiment="waits").runs] == [run.run_id]


@pytest.mark.stack
def test_an_sso_token_past_its_lifetime_is_refreshed_with_one_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_sso_stack(tmp_path / "sso", id_token_expiry="5s") as s:
        user = User(s)
        m = KFPClientManager(s.api_url, login="device", prompt=user)
        pc = m.create_pipelines_client(IDP_NAMESPACE)  # the login, for kfp's health check
        assert user.kinds() == ["code", "done"]
        pc.create_experiment("sso")
        first = m.get_bearer_token()
        run = pc.run(hello_pipeline(), experiment="sso")

        def stale() -> None:
            pc._backend.refresh_credentials()  # kfp's own refresh hook is the manager's
            time.sleep(5.5)  # the token's lifetime passes between two polls

        sleeps = void_between_polls(monkeypatch, stale)
        assert pc.wait_for_run_status(run, timeout=60, polling_interval=1).state == "SUCCEEDED"
        assert sleeps
        time.sleep(6)  # past the last token's lifetime
        assert [e.display_name for e in pc.list_experiments().experiments] == ["sso"]
        assert m.get_bearer_token() != first
        assert user.kinds() == ["code", "done"], "one login, no prompt since"
        assert m.logins == 1 and m.bearer is not None and m.bearer.refreshes >= 1
        api = [r for r in s.kfp_requests() if "/apis/" in r["path"]]
        assert api and {r["user"] for r in api} == {IDP_USER}
        assert "token is expired" not in s.gateway_log()  # renewed before use: nothing refused


@pytest.mark.stack
def test_a_rotated_token_file_is_followed_and_a_fixed_token_cannot_be(
    in_cluster: tuple[TokenVolume, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfp.client.token_credentials_base import TokenCredentialsBase

    vol, url, log = in_cluster
    # kfp's own in-cluster token search is not what is sent: the manager's source is.
    other = tmp_path / "other-token"
    other.write_text(sa_token(99))
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(other))
    m = KFPClientManager(url, token_path=vol.path)
    pc = m.create_pipelines_client(NAMESPACE)
    config = pc._backend.api_config
    assert isinstance(config.refresh_api_key_hook.__self__, TokenCredentialsBase)
    pc.create_experiment("in-cluster")
    for _ in range(5):
        pc.list_experiments()
    assert m.bearer is not None and m.bearer.fetches == 1  # many requests, one read
    vol.rotate()
    assert [e.display_name for e in pc.list_experiments().experiments] == ["in-cluster"]
    assert m.bearer.fetches == 2
    entries = api_log(log)
    assert entries and all(e["bearer"] == "accepted" and e["user"] == SA_IDENTITY for e in entries)

    token = vol.path.read_text()
    fixed = KFPClientManager(url, existing_token=token).create_pipelines_client(NAMESPACE)
    fixed.list_experiments()
    vol.rotate()
    with pytest.raises(kfp_auth.TokenError) as ei:
        fixed.list_experiments()
    assert "existing_token" in str(ei.value) and token not in str(ei.value) and token not in repr(ei.value)


@pytest.mark.stack
def test_no_credentials_work_unsecured_and_fail_clearly_when_a_login_is_asked(
    standalone_kfp: str,
    kubeflow: Stack,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A token kfp would find and send by itself: the manager was given none, and sends none.
    pod_token = tmp_path / "pod-token"
    pod_token.write_text(sa_token(98))
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(pod_token))
    pc = KFPClientManager(standalone_kfp + "/pipeline").create_pipelines_client()
    pc.create_experiment("no-credentials")
    assert pc._backend.namespace == "kubeflow"  # kfp's default, with no cluster around
    assert pc._backend.api_config.api_key == {} and pc._backend.api_config.refresh_api_key_hook is None
    # Nor does kfp look for one: it would warn of a missing file the manager was never told of.
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "missing"))
    KFPClientManager(standalone_kfp + "/pipeline").create_pipelines_client().list_experiments()
    assert "Token file not found" not in caplog.text
    with pytest.raises(kfp_auth.UnexpectedResponseError, match="given no credentials"):
        KFPClientManager(kubeflow.api_url).create_pipelines_client(FAST_NAMESPACE)
    assert "not reachable" not in caplog.text  # raised, not logged by kfp as a health check failure


def test_a_kfp_without_pipelines_client_is_a_typed_error(kfp18_python: str) -> None:
    code = """
import json, kfp, kfp_auth
m = kfp_auth.KFPClientManager("http://127.0.0.1:9/pipeline", "u", "secret-pw")
try:
    m.create_pipelines_client("ns")
except ImportError as e:
    print(json.dumps({"kfp": kfp.__version__, "type": type(e).__name__,
        "kfp_auth": isinstance(e, kfp_auth.KFPAuthError), "installed": e.installed,
        "required": e.required, "name": e.name, "msg": str(e)}))
"""
    r = subprocess.run([kfp18_python, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout)
    assert out["kfp"].startswith("1.8.")
    assert out["type"] == "KFPVersionError" and out["kfp_auth"] is True
    assert (out["installed"], out["required"], out["name"]) == (out["kfp"], ">=2.17", "kfp")
    assert f"kfp {out['kfp']} is installed" in out["msg"] and 'pip install "kfp>=2.17"' in out["msg"]
    assert "secret-pw" not in out["msg"]


@pytest.mark.stack
def test_tls_settings_pass_through(private_ca_kfp: tuple[str, Path], recwarn: pytest.WarningsRecorder) -> None:
    url, ca = private_ca_kfp
    pc = KFPClientManager(url, "u", "p", ssl_ca_cert=ca).create_pipelines_client()
    assert pc._backend.api_config.verify_ssl is True and pc._backend.api_config.ssl_ca_cert == str(ca)
    pc.create_experiment("verified")
    assert not [w for w in recwarn if "Unverified HTTPS" in str(w.message)]
    # kfp alone trusts the system's CAs only: the private CA's certificate is refused.
    from kfp.kubeflow_client import KubernetesBackendConfig, PipelinesClient

    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        PipelinesClient(KubernetesBackendConfig(base_url=url)).list_experiments()

    insecure = KFPClientManager(url, "u", "p", skip_tls_verify=True).create_pipelines_client()
    assert insecure._backend.api_config.verify_ssl is False
    with pytest.warns(Warning, match="Unverified HTTPS request"):  # urllib3's warning is left on
        assert [e.display_name for e in insecure.list_experiments().experiments] == ["verified"]


@pytest.mark.stack
def test_a_proxy_with_credentials_passes_through(
    kubeflow: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    proc, url, log = stack.start_squid(tmp_path, users={"proxyuser": "proxy-secret"})
    try:
        authed = url.replace("http://", "http://proxyuser:proxy-secret@")
        m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, proxy=authed)
        pc = m.create_pipelines_client(FAST_NAMESPACE)
        pc.list_experiments()
        time.sleep(0.5)  # squid writes its line as it answers
        lines = [line for line in log.read_text().splitlines() if "proxyuser" in line]
        assert any("/pipeline/apis/v2beta1/experiments" in line for line in lines)
        assert pc._backend.api_config.proxy == url  # no user:password in kfp's settings
        assert "proxy-secret" not in repr(pc._backend.config) + repr(vars(pc))
    finally:
        proc.stop()


def test_credentials_appear_in_no_repr_log_or_error(kubeflow: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    pc = m.create_pipelines_client("someone-elses-namespace")
    with pytest.raises(kfp_auth.PermissionDeniedError) as ei:
        pc.list_experiments()
    secrets = [c.split("=", 1)[1] for c in m.get_session_cookies().split("; ")] + [FAST_PASSWORD]
    shown = (
        repr(pc._backend.config)
        + repr(vars(pc))
        + repr(vars(pc._backend))
        + str(ei.value)
        + repr(ei.value)
        + repr(ei.value.headers)
        + caplog.text
    )
    for secret in secrets:
        assert secret not in shown
    assert "namespace 'someone-elses-namespace'" in str(ei.value)
    assert m.logins == 1
