"""Bearer tokens: the in-cluster ServiceAccount token volume, tokens given as strings or
files, Dex's password grant through the real oauth2-proxy, and the order of precedence."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kfp_auth
import stack
from kfp_auth import IN_CLUSTER_URL, KFPClientManager
from stack import (
    CLIENT_ID,
    CLIENT_SECRET,
    FAST_NAMESPACE,
    FAST_PASSWORD,
    FAST_USER,
    NAMESPACE,
    SA_IDENTITY,
    Stack,
)
from stack.tokens import TokenVolume, api_log, sa_token


def test_in_cluster_reads_the_env_var_path_and_follows_rotation(
    in_cluster: tuple[TokenVolume, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    vol, url, log = in_cluster
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(vol.path))
    m = KFPClientManager.in_cluster(url)
    assert m.auth_kind == "file" and m.bearer is not None and m.bearer.path == str(vol.path)
    client = m.create_kfp_client()
    client.create_experiment(name="in-cluster", namespace=NAMESPACE)
    for _ in range(5):
        client.list_experiments(namespace=NAMESPACE)
    # Many requests, one read: unchanged files are not read again.
    assert m.bearer.fetches == 1
    vol.rotate()
    names = [e.display_name for e in client.list_experiments(namespace=NAMESPACE).experiments]
    assert names == ["in-cluster"]
    assert m.bearer.fetches == 2
    entries = api_log(log)
    assert entries and all(e["bearer"] == "accepted" and e["user"] == SA_IDENTITY for e in entries)
    assert m.get_session_cookies() == ""


def test_a_rotation_the_stat_misses_is_caught_by_the_401(in_cluster: tuple[TokenVolume, str, Path]) -> None:
    """A token rewritten in place with the same size and modification time looks
    unchanged; the API's 401 makes the client read the file again and retry once."""
    vol, url, log = in_cluster
    m = KFPClientManager(url, token_path=vol.path)
    client = m.create_kfp_client()
    client.list_experiments(namespace=NAMESPACE)
    real = vol.path.resolve()
    st = real.stat()
    new = sa_token(7)  # one digit, as the serial it replaces
    assert len(new) == st.st_size
    with open(real, "r+") as f:  # same inode, same size
        f.write(new)
    os.utime(real, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = len(api_log(log))
    client.list_experiments(namespace=NAMESPACE)
    assert [e["bearer"] for e in api_log(log)[before:]] == ["refused", "accepted"]
    assert m.bearer is not None and m.bearer.fetches == 2


def test_the_client_gets_the_file_through_kfp_credentials(in_cluster: tuple[TokenVolume, str, Path]) -> None:
    from kfp.client.token_credentials_base import TokenCredentialsBase

    vol, url, _ = in_cluster
    client = KFPClientManager(url, token_path=vol.path).create_kfp_client()
    hook = client._existing_config.refresh_api_key_hook
    assert isinstance(hook.__self__, TokenCredentialsBase)
    assert client._existing_config.api_key_prefix["authorization"] == "Bearer"


def test_the_in_cluster_host_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vol = TokenVolume(tmp_path / "vol")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(vol.path))
    m = KFPClientManager.in_cluster()
    assert IN_CLUSTER_URL == "http://ml-pipeline-ui.kubeflow.svc.cluster.local"
    assert repr(m) == f"KFPClientManager(api_url='{IN_CLUSTER_URL}/', auth='the token file {vol.path}')"
    claims = m.token_claims()
    assert claims is not None and claims["audience"] == ["pipelines.kubeflow.org"]
    assert claims["subject"] == SA_IDENTITY and claims["expires"] > time.time()


@pytest.mark.parametrize(
    "content,what",
    [
        (None, "cannot read the token file"),
        ("", "is empty"),
        (" \n", "is empty"),
        ("not-a-jwt", "does not hold a JWT"),
        (b"\xff\xfe", "is not text"),
        ("dir", "cannot read the token file"),
    ],
)
def test_unusable_token_files_name_the_path_and_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes | None, what: str
) -> None:
    p = tmp_path / "token"
    if content == "dir":
        p.mkdir()
    elif isinstance(content, bytes):
        p.write_bytes(content)
    elif content is not None:
        p.write_text(content)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(p))
    with pytest.raises(kfp_auth.TokenError) as ei:
        KFPClientManager.in_cluster("http://127.0.0.1:9")
    msg = str(ei.value)
    assert what in msg and str(p) in msg and "KF_PIPELINES_SA_TOKEN_PATH" in msg
    assert "not-a-jwt" not in msg


def test_the_default_path_when_the_env_var_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_SA_TOKEN_PATH", raising=False)
    with pytest.raises(kfp_auth.TokenError, match="/var/run/secrets/kubeflow/pipelines/token"):
        KFPClientManager.in_cluster()


def test_an_explicit_token_goes_to_kfp_as_existing_token(in_cluster: tuple[TokenVolume, str, Path]) -> None:
    vol, url, log = in_cluster
    token = vol.path.read_text()
    m = KFPClientManager(url, existing_token=token)
    client = m.create_kfp_client()
    assert client._existing_config.api_key["authorization"] == token
    client.list_experiments(namespace=NAMESPACE)
    assert m.get_bearer_token() == token and m.auth_kind == "token"
    # A fixed token cannot follow a rotation: the 401 is a TokenError that says so, without the token.
    vol.rotate()
    with pytest.raises(kfp_auth.TokenError) as ei:
        client.list_experiments(namespace=NAMESPACE)
    assert "existing_token" in str(ei.value) and "401" in str(ei.value)
    assert token not in str(ei.value) and token not in repr(m)


def test_precedence_token_then_file_then_dex_then_none(in_cluster: tuple[TokenVolume, str, Path]) -> None:
    vol, url, log = in_cluster
    token = vol.path.read_text()
    everything = dict(existing_token=token, token_path=vol.path)
    m = KFPClientManager(url, "someone", "secret", **everything)
    assert m.auth_kind == "token"
    m.create_kfp_client().list_experiments(namespace=NAMESPACE)
    assert m.logins == 0  # no Dex login was tried
    m = KFPClientManager(url, "someone", "secret", token_path=vol.path)
    assert m.auth_kind == "file"
    m.create_kfp_client().list_experiments(namespace=NAMESPACE)
    seen = api_log(log)
    assert seen and all(e["bearer"] == "accepted" for e in seen)
    assert KFPClientManager(url, "someone", "secret").auth_kind == "dex-login"
    none = KFPClientManager(url)
    assert none.auth_kind == "none" and none.get_session_cookies() == "" and none.get_bearer_token() is None


def test_no_credentials_work_unsecured_and_fail_clearly_when_a_login_is_asked(
    standalone_kfp: str, kubeflow: Stack
) -> None:
    client = KFPClientManager(standalone_kfp + "/pipeline").create_kfp_client()
    client.create_experiment(name="no-credentials")
    with pytest.raises(kfp_auth.UnexpectedResponseError, match="given no credentials"):
        KFPClientManager(kubeflow.api_url).create_kfp_client()


@pytest.mark.parametrize(
    "kw,missing",
    [
        ({"dex_username": "u"}, "dex_password"),
        ({"dex_password": "p"}, "dex_username"),
        ({"dex_client_id": "c"}, "dex_client_secret"),
        ({"dex_client_id": "c", "dex_client_secret": "s"}, "dex_username"),
    ],
)
def test_incomplete_credentials_are_value_errors(kw: dict, missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        KFPClientManager("http://127.0.0.1:9/pipeline", **kw)


# -- Dex's password grant, through the real oauth2-proxy with --skip-jwt-bearer-tokens --


@pytest.fixture(scope="module")
def grant_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("grant"), password_grant=True) as s:
        yield s


def grant_manager(s: Stack, **kw: object) -> KFPClientManager:
    return KFPClientManager(
        s.api_url, FAST_USER, FAST_PASSWORD, dex_client_id=CLIENT_ID, dex_client_secret=CLIENT_SECRET, **kw
    )  # type: ignore[arg-type]


def test_password_grant_token_passes_the_real_gateway(grant_kubeflow: Stack) -> None:
    before = len(grant_kubeflow.kfp_requests())
    m = grant_manager(grant_kubeflow)
    assert m.auth_kind == "dex-password-grant"
    client = m.create_kfp_client()
    client.create_experiment(name="m2m", namespace=FAST_NAMESPACE)
    assert [e.display_name for e in client.list_experiments(namespace=FAST_NAMESPACE).experiments] == ["m2m"]
    assert m.logins == 1
    api = [q for q in grant_kubeflow.kfp_requests()[before:] if "/apis/" in q["path"]]
    # oauth2-proxy verified Dex's JWT and forwarded the user; no session cookie was involved.
    assert api and all(q["user"] == FAST_USER and q["cookie_names"] == [] for q in api)
    claims = m.token_claims()
    assert claims is not None and CLIENT_ID in claims["audience"]
    assert claims["issuer"] == grant_kubeflow.dex_url and claims["expires"] > time.time()
    # No browser-style login happened: Dex's log has no password-form login for this run.
    assert "/dex/auth/local/login" not in grant_kubeflow.gateway_log()


def test_password_grant_is_renewed_when_dex_changes_its_keys(tmp_path: Path) -> None:
    """Dex restarted with memory storage signs with new keys; once the gateway has
    restarted too (and forgotten the old keys), it refuses the old token, and the client
    gets a new grant and retries once."""
    with stack.start_kubeflow_stack(tmp_path / "s", password_grant=True) as s:
        m = grant_manager(s)
        client = m.create_kfp_client()
        client.list_experiments(namespace=FAST_NAMESPACE)
        old = m.get_bearer_token()
        s.procs["dex"].stop()
        s.procs["dex"].start()
        s.restart_gateway(new_cookie_secret=False)
        client.list_experiments(namespace=FAST_NAMESPACE)
        assert m.logins == 2 and m.get_bearer_token() != old


def test_password_grant_is_renewed_before_it_expires(tmp_path: Path) -> None:
    """Dex's ID tokens last 8 s here: the token is renewed a quarter of its life before
    its expiry, before it is used, so the gateway never refuses a request."""
    with stack.start_kubeflow_stack(tmp_path / "s", password_grant=True, id_token_expiry="8s") as s:
        m = grant_manager(s)
        client = m.create_kfp_client()
        client.list_experiments(namespace=FAST_NAMESPACE)
        claims = m.token_claims()
        assert claims is not None and claims["expires"] - claims["issued"] == 8
        time.sleep(max(0.0, claims["expires"] - 2 - time.time()) + 0.3)  # into the renewal margin
        client.list_experiments(namespace=FAST_NAMESPACE)
        assert m.logins == 2
        assert (m.token_claims() or {}).get("issued", 0) > claims["issued"]
        refused = [
            line for line in s.gateway_log().splitlines() if "/apis/" in line and ('" 401 ' in line or '" 403 ' in line)
        ]
        assert refused == []


def test_password_grant_errors(grant_kubeflow: Stack, kubeflow: Stack) -> None:
    with pytest.raises(kfp_auth.InvalidCredentialsError) as ei:
        KFPClientManager(
            grant_kubeflow.api_url, FAST_USER, "wrong", dex_client_id=CLIENT_ID, dex_client_secret=CLIENT_SECRET
        ).get_bearer_token()
    assert "wrong" not in str(ei.value)
    with pytest.raises(kfp_auth.UnexpectedResponseError, match="dex_client_secret"):
        KFPClientManager(
            grant_kubeflow.api_url,
            FAST_USER,
            FAST_PASSWORD,
            dex_client_id=CLIENT_ID,
            dex_client_secret="not-the-secret",
        ).get_bearer_token()
    # Kubeflow's own Dex config has no passwordConnector.
    with pytest.raises(kfp_auth.UnexpectedResponseError, match="passwordConnector"):
        grant_manager(kubeflow).get_bearer_token()
    with pytest.raises(kfp_auth.UnexpectedResponseError, match="dex_url="):
        grant_manager(kubeflow, dex_url=kubeflow.gateway_url + "/not-dex").get_bearer_token()


def test_password_grant_from_asyncio(grant_kubeflow: Stack) -> None:
    import asyncio

    m = grant_manager(grant_kubeflow)
    token = asyncio.run(m.get_bearer_token_async())
    assert token and token == m.get_bearer_token() and m.logins == 1


def test_a_token_client_sends_no_cookie_from_kfps_context_file(in_cluster: tuple[TokenVolume, str, Path]) -> None:
    """kfp falls back to the context file's cookie when given none; `kfp-auth context` may
    have written one for another deployment. A token client sends the token only."""
    vol, url, log = in_cluster
    context = Path(os.path.expanduser("~/.config/kfp/context.json"))
    context.parent.mkdir(parents=True, exist_ok=True)
    context.write_text(
        json.dumps({"client_authentication_cookie": "stray_session=not-for-this-api", "namespace": NAMESPACE})
    )
    try:
        for m in (
            KFPClientManager(url, token_path=vol.path),
            KFPClientManager(url, existing_token=vol.path.read_text()),
        ):
            m.create_kfp_client().list_experiments(namespace=NAMESPACE)
    finally:
        context.unlink()
    seen = api_log(log)
    assert seen and all(e["cookie_names"] == [] and e["bearer"] == "accepted" for e in seen)


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"api_url": "not a url"}, "api_url"),
        ({"api_url": "http://u:p@h/pipeline"}, "api_url"),
        ({"timeout": -1}, "timeout"),
        ({"proxy": "ftp://x"}, "proxy"),
        ({"proxy": "socks5://p:1080"}, "SOCKS"),
        ({"ssl_ca_cert": "/nonexistent/ca.pem"}, "ssl_ca_cert"),
    ],
)
def test_token_modes_check_their_settings_at_construction(kw: dict, name: str) -> None:
    args = {"api_url": "http://127.0.0.1:9/pipeline", "existing_token": sa_token(1), **kw}
    with pytest.raises(ValueError, match=name) as ei:
        KFPClientManager(**args)
    assert "u:p" not in str(ei.value)


def test_the_password_grant_refuses_to_send_secrets_in_clear() -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        KFPClientManager(
            "https://kubeflow.example.com/pipeline",
            "u",
            "p",
            dex_client_id="c",
            dex_client_secret="s",
            dex_url="http://dex.example.com/dex",
        )


def test_absurd_token_times_are_unknown_not_a_crash(tmp_path: Path) -> None:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    token = f"{enc({'alg': 'none'})}.{enc({'exp': 1e300, 'iat': -5, 'sub': 'x'})}.sig"
    assert kfp_auth._native.inspect_token(token)["expires"] is None
    p = tmp_path / "token"
    p.write_text(token)
    claims = KFPClientManager("http://127.0.0.1:9/pipeline", token_path=p).token_claims()
    assert claims is not None and claims["expires"] is None and claims["issued"] is None


def test_a_socks_proxy_from_the_environment_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    for kw in ({"dex_username": "u", "dex_password": "p"}, {"existing_token": sa_token(1)}, {}):
        with pytest.raises(ValueError, match="SOCKS is not supported"):
            KFPClientManager("http://127.0.0.1:9/pipeline", **kw)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    KFPClientManager("http://127.0.0.1:9/pipeline", existing_token=sa_token(1))


# -- kfp's own credentials hook: kfp.Client(credentials=manager.create_kfp_credentials()) --


def test_a_plain_kfp_client_on_the_credentials_follows_a_rotating_token_file(
    in_cluster: tuple[TokenVolume, str, Path],
) -> None:
    import kfp

    vol, url, log = in_cluster
    m = KFPClientManager(url, token_path=vol.path)
    creds = m.create_kfp_credentials()
    client = kfp.Client(host=url, credentials=creds, cookies="")
    assert type(client) is kfp.Client
    client.create_experiment(name="hooked", namespace=NAMESPACE)
    for _ in range(5):
        client.list_experiments(namespace=NAMESPACE)
    assert m.bearer is not None and m.bearer.fetches == 1, "served from memory while the file is unchanged"
    for _ in range(3):
        vol.rotate()
        names = [e.display_name for e in client.list_experiments(namespace=NAMESPACE).experiments]
        assert names == ["hooked"]
    assert m.bearer.fetches == 4, "each rotation read once"
    entries = api_log(log)
    # The test server accepts only what the volume holds now: no request went with a rotated-away token.
    assert entries and all(e["bearer"] == "accepted" and e["user"] == SA_IDENTITY for e in entries)
    token = m.get_bearer_token() or ""
    assert token and token not in repr(creds) and token not in str(vars(creds))


def test_the_credentials_hold_a_password_grant_token_until_it_is_due(grant_kubeflow: Stack) -> None:
    import kfp

    before = len(grant_kubeflow.kfp_requests())
    m = grant_manager(grant_kubeflow)
    client = kfp.Client(host=grant_kubeflow.api_url, credentials=m.create_kfp_credentials(), cookies="")
    for _ in range(5):
        client.list_experiments(namespace=FAST_NAMESPACE)
    assert m.logins == 1, "one grant for all requests: the hook served the held token"
    api = [q for q in grant_kubeflow.kfp_requests()[before:] if "/apis/" in q["path"]]
    # kfp's healthz at construction, then the five calls.
    assert len(api) == 6 and all(q["user"] == FAST_USER and q["cookie_names"] == [] for q in api)


def test_credentials_are_refused_for_cookie_sessions_and_no_credentials(kubeflow: Stack) -> None:
    cookie = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    with pytest.raises(kfp_auth.InvalidArgumentError) as ei:
        cookie.create_kfp_credentials()
    assert ei.value.argument == "credentials" and "session cookies" in str(ei.value)
    assert "create_kfp_client()" in str(ei.value)
    with pytest.raises(kfp_auth.InvalidArgumentError) as ei:
        KFPClientManager(kubeflow.api_url).create_kfp_credentials()
    assert "no credentials" in str(ei.value)
    assert cookie.logins == 0, "refused before any login"
