"""The same manager with the real kfp 1.8 SDK, run in its own venv (kfp 1.8 and 2.x cannot share one)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import stack
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
from stack.authservice import drop_sessions, gateway_requests, start_authservice_stack
from stack.ldap import LDAP_EMAIL, LDAP_NAMESPACE, LDAP_PASSWORD, LDAP_USER
from stack.tokens import TokenVolume

SCRIPT = """
import json, sys
import kfp
from kfp_auth import KFPClientManager
url, user, password, ns = sys.argv[1:5]
load_config = kfp.Client._load_config
insecure = KFPClientManager(url, user, password, skip_tls_verify=True).create_kfp_client()
secure = KFPClientManager(url, user, password).create_kfp_client()
insecure.create_experiment(name="from-kfp18", namespace=ns)
names = [e.name for e in secure.list_experiments(namespace=ns).experiments]
print(json.dumps({
    "kfp": kfp.__version__,
    "insecure_is_kfp_client": isinstance(insecure, kfp.Client),
    "insecure_type_is_subclass": type(insecure) is not kfp.Client,
    "insecure_verify": insecure._existing_config.verify_ssl,
    "secure_type_is_kfp_client": type(secure) is kfp.Client,
    "secure_verify": secure._existing_config.verify_ssl,
    "kfp_client_untouched": kfp.Client._load_config is load_config,
    "names": names,
}))
"""


def test_kfp_18_client_and_tls_subclass(kubeflow: Stack, kfp18_python: str) -> None:
    before = len(kubeflow.kfp_requests())
    r = subprocess.run(
        [kfp18_python, "-c", SCRIPT, kubeflow.api_url, FAST_USER, FAST_PASSWORD, FAST_NAMESPACE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["kfp"].startswith("1.8.")
    assert out["insecure_is_kfp_client"] and out["insecure_type_is_subclass"]
    assert out["insecure_verify"] is False
    assert out["secure_type_is_kfp_client"] and out["secure_verify"] is True
    assert out["kfp_client_untouched"]
    assert "from-kfp18" in out["names"]
    # kfp 1.8 speaks v1beta1, through the gateway, as the logged-in user.
    paths = [q["path"] for q in kubeflow.kfp_requests()[before:] if q["user"] == FAST_USER]
    assert "/pipeline/apis/v1beta1/experiments" in paths


RELOGIN = """
import sys
from kfp_auth import KFPClientManager
url, user, password, ns = sys.argv[1:5]
m = KFPClientManager(url, user, password)
client = m.create_kfp_client()
client.create_experiment(name="kfp18-relogin", namespace=ns)
print("ready", flush=True)
sys.stdin.readline()  # the test restarts the gateway with a new cookie secret meanwhile
names = [e.name for e in client.list_experiments(namespace=ns).experiments]
print(m.logins, "kfp18-relogin" in names, flush=True)
"""


def test_kfp_18_client_logs_in_again_after_a_gateway_restart(own_kubeflow: Stack, kfp18_python: str) -> None:
    p = subprocess.Popen(
        [kfp18_python, "-c", RELOGIN, own_kubeflow.api_url, FAST_USER, FAST_PASSWORD, FAST_NAMESPACE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdin is not None
    assert p.stdout.readline().strip() == "ready"
    own_kubeflow.restart_gateway(new_cookie_secret=True)
    out, err = p.communicate("go\n", timeout=120)
    assert p.returncode == 0, err[-3000:]
    assert out.split() == ["2", "True"]


# -- The end-to-end scenarios of the kfp 2 suite, with kfp 1.8 (v1beta1 paths; no `verify_ssl`) --
#
# Each scenario runs as a script in the kfp 1.8 interpreter, which prints one JSON line
# for this process to assert on. Secrets reach it in its environment, never on its
# command line, and no script prints one.

PRELUDE = """
import json, os, sys, warnings
import kfp, kfp_server_api
import kfp_auth
from kfp_auth import KFPClientManager
args = sys.argv[1:]
password = os.environ.get("KFP18_PASSWORD")

def ready():
    # The test does something to the stack meanwhile, then lets the script go on.
    print("ready", flush=True)
    sys.stdin.readline()

def done(**result):
    print(json.dumps({"kfp": kfp.__version__, **result}), flush=True)
"""


def run_kfp18(
    python: str,
    script: str,
    *args: str,
    env: dict[str, str] | None = None,
    meanwhile: Callable[[], None] | None = None,
    timeout: float = 120,
) -> dict:
    """Run `script` (after PRELUDE) in the kfp 1.8 interpreter and return its last JSON line.
    With `meanwhile`, the script calls ready(); `meanwhile` runs while it waits."""
    p = subprocess.Popen(
        [python, "-c", PRELUDE + script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    stdout = p.stdout
    assert stdout is not None
    try:
        if meanwhile is not None:
            # Read the first line in a thread, so that a script that never gets ready fails the test in time.
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = ""
            if line.strip() != "ready":
                p.kill()
                _, err = p.communicate()
                pytest.fail(f"the kfp 1.8 script did not get ready (got {line!r}):\n{err[-3000:]}")
            meanwhile()
        out, err = p.communicate("go\n" if meanwhile else "", timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["kfp"].startswith("1.8."), result["kfp"]
    return result


def api_seen(entries: list[dict]) -> set[tuple[str, str, str | None]]:
    """(method, path, user) of the KFP API requests in a slice of the test server's log."""
    return {(e["method"], e["path"], e["user"]) for e in entries if "/apis/" in e["path"]}


# -- in the cluster: the ServiceAccount token volume, rotated while the client runs --


IN_CLUSTER = """
url, ns = args
m = KFPClientManager.in_cluster(url)
client = m.create_kfp_client()
hook = client._existing_config.refresh_api_key_hook
client.create_experiment(name="kfp18-in-cluster", namespace=ns)
for _ in range(5):
    client.list_experiments(namespace=ns)
fetches_before = m.bearer.fetches
ready()  # the test rotates the token volume
names = [e.name for e in client.list_experiments(namespace=ns).experiments]
done(auth_kind=m.auth_kind, path=m.bearer.path, fetches_before=fetches_before, fetches=m.bearer.fetches,
     names=names, credentials_is_kfp_base=isinstance(getattr(hook, "__self__", None), kfp.auth.TokenCredentialsBase),
     prefix=client._existing_config.api_key_prefix.get("authorization"), cookies=m.get_session_cookies())
"""


def test_kfp_18_in_cluster_token_file_follows_rotation(
    in_cluster: tuple[TokenVolume, str, Path], kfp18_python: str
) -> None:
    vol, url, log = in_cluster
    out = run_kfp18(
        kfp18_python,
        IN_CLUSTER,
        url,
        NAMESPACE,
        env={"KF_PIPELINES_SA_TOKEN_PATH": str(vol.path)},
        meanwhile=vol.rotate,
    )
    assert out["auth_kind"] == "file" and out["path"] == str(vol.path)
    # kfp 1.8 gets kfp_auth's credentials as its own TokenCredentialsBase.
    assert out["credentials_is_kfp_base"] and out["prefix"] == "Bearer"
    assert out["fetches_before"] == 1  # many requests, one read
    assert out["names"] == ["kfp18-in-cluster"] and out["fetches"] == 2
    assert out["cookies"] == ""
    entries = [json.loads(line) for line in log.read_text().splitlines() if '"/_test/' not in line]
    assert entries and all(e["bearer"] == "accepted" and e["user"] == SA_IDENTITY for e in entries)
    assert {
        ("GET", "/apis/v1beta1/experiments", SA_IDENTITY),
        ("POST", "/apis/v1beta1/experiments", SA_IDENTITY),
    } <= api_seen(entries)
    assert not [e for e in entries if "/v2beta1/" in e["path"]]


# -- Dex's password grant through the real oauth2-proxy --


@pytest.fixture(scope="module")
def grant_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("kfp18-grant"), password_grant=True) as s:
        yield s


PASSWORD_GRANT = """
url, user, ns, client_id = args
m = KFPClientManager(url, user, password, dex_client_id=client_id, dex_client_secret=os.environ["KFP18_CLIENT_SECRET"])
client = m.create_kfp_client()
hook = client._existing_config.refresh_api_key_hook
client.create_experiment(name="kfp18-m2m", namespace=ns)
names = [e.name for e in client.list_experiments(namespace=ns).experiments]
claims = m.token_claims()
done(auth_kind=m.auth_kind, logins=m.logins, names=names, audience=claims["audience"], issuer=claims["issuer"],
     credentials_is_kfp_base=isinstance(getattr(hook, "__self__", None), kfp.auth.TokenCredentialsBase))
"""


def test_kfp_18_password_grant_token_passes_the_real_gateway(grant_kubeflow: Stack, kfp18_python: str) -> None:
    before = len(grant_kubeflow.kfp_requests())
    out = run_kfp18(
        kfp18_python,
        PASSWORD_GRANT,
        grant_kubeflow.api_url,
        FAST_USER,
        FAST_NAMESPACE,
        CLIENT_ID,
        env={"KFP18_PASSWORD": FAST_PASSWORD, "KFP18_CLIENT_SECRET": CLIENT_SECRET},
    )
    assert out["auth_kind"] == "dex-password-grant" and out["credentials_is_kfp_base"]
    assert out["names"] == ["kfp18-m2m"] and out["logins"] == 1
    assert CLIENT_ID in out["audience"] and out["issuer"] == grant_kubeflow.dex_url
    api = [q for q in grant_kubeflow.kfp_requests()[before:] if "/apis/" in q["path"]]
    # oauth2-proxy verified Dex's JWT and forwarded the user; no session cookie was involved.
    assert api and all(q["user"] == FAST_USER and q["cookie_names"] == [] for q in api)
    assert {
        ("GET", "/pipeline/apis/v1beta1/experiments", FAST_USER),
        ("POST", "/pipeline/apis/v1beta1/experiments", FAST_USER),
    } <= api_seen(api)
    assert "/dex/auth/local/login" not in grant_kubeflow.gateway_log()


# -- an HTTPS gateway whose certificate a CA made for the run signed --


@pytest.fixture(scope="module")
def https_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("kfp18-https"), tls=True) as s:
        assert s.gateway_url.startswith("https://") and s.ca is not None
        yield s


HTTPS = """
url, user, ns, ca = args
load_config = kfp.Client._load_config

def insecure_warnings(caught):
    return [str(w.message)[:80] for w in caught if "Unverified HTTPS request" in str(w.message)]

try:
    KFPClientManager(url, user, password).get_session_cookies()
    unknown_ca = None
except kfp_auth.TLSError as e:
    unknown_ca = str(e)

m = KFPClientManager(url, user, password, ssl_ca_cert=ca)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    verified = m.create_kfp_client()
    verified.create_experiment(name="kfp18-verified", namespace=ns)
verified_warnings = insecure_warnings(caught)

s = KFPClientManager(url, user, password, skip_tls_verify=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    skipping = s.create_kfp_client()
    names = [e.name for e in skipping.list_experiments(namespace=ns).experiments]
skipping_warnings = insecure_warnings(caught)

done(unknown_ca=unknown_ca, logins=m.logins,
     verified_verify=verified._existing_config.verify_ssl, verified_ca=verified._existing_config.ssl_ca_cert,
     verified_type_is_kfp_client=type(verified) is kfp.Client, verified_warnings=verified_warnings,
     skipping_verify=skipping._existing_config.verify_ssl, skipping_is_kfp_client=isinstance(skipping, kfp.Client),
     skipping_type_is_subclass=type(skipping) is not kfp.Client, skipping_warnings=len(skipping_warnings),
     skipping_cookie_names=[c.split("=", 1)[0] for c in s.get_session_cookies().split("; ")],
     names=names, kfp_client_untouched=kfp.Client._load_config is load_config)
"""


def test_kfp_18_https_gateway_with_the_runs_ca_and_with_skip_tls_verify(
    https_kubeflow: Stack, kfp18_python: str
) -> None:
    assert https_kubeflow.ca is not None
    before = len(https_kubeflow.kfp_requests())
    out = run_kfp18(
        kfp18_python,
        HTTPS,
        https_kubeflow.api_url,
        FAST_USER,
        FAST_NAMESPACE,
        str(https_kubeflow.ca),
        env={"KFP18_PASSWORD": FAST_PASSWORD},
    )
    # Without the CA the login refuses the gateway, and says what to do.
    assert out["unknown_ca"] is not None
    assert "ssl_ca_cert=" in out["unknown_ca"] and "skip_tls_verify=True" in out["unknown_ca"]
    # With it, the login and kfp 1.8's client verify the gateway against it (kfp 1.8 has no verify_ssl).
    assert out["verified_verify"] is True and out["verified_ca"] == str(https_kubeflow.ca)
    assert out["verified_type_is_kfp_client"] and out["verified_warnings"] == [] and out["logins"] == 1
    # skip_tls_verify=True: a subclass of kfp 1.8's Client turns verification off for its own instances.
    assert out["skipping_verify"] is False and out["skipping_is_kfp_client"] and out["skipping_type_is_subclass"]
    assert out["skipping_warnings"] > 0 and out["skipping_cookie_names"] == ["oauth2_proxy_kubeflow"]
    assert out["names"] == ["kfp18-verified"] and out["kfp_client_untouched"]
    seen = api_seen(https_kubeflow.kfp_requests()[before:])
    assert {
        ("GET", "/pipeline/apis/v1beta1/experiments", FAST_USER),
        ("POST", "/pipeline/apis/v1beta1/experiments", FAST_USER),
    } <= seen


# -- RBAC: a namespace the user is not granted --

RBAC = """
url, user, ns = args
m = KFPClientManager(url, user, password)
client = m.create_kfp_client()
models = kfp_server_api.models
owned_by_ns = models.ApiResourceReference(key=models.ApiResourceKey(id=ns, type=models.ApiResourceType.NAMESPACE),
                                          relationship=models.ApiRelationship.OWNER)
found = {}
# kfp 1.8's create_experiment looks the name up with a GET first: the POST is also sent on its own,
# with the namespace in its resource_references as kfp 1.8 puts it.
for verb, call in [("list", lambda: client.list_experiments(namespace=ns)),
                   ("create_experiment", lambda: client.create_experiment(name="kfp18-not-mine", namespace=ns)),
                   ("create", lambda: client._experiment_api.create_experiment(
                       body=models.ApiExperiment(name="kfp18-not-mine", resource_references=[owned_by_ns])))]:
    try:
        call()
        found[verb] = None
    except kfp_auth.PermissionDeniedError as e:
        found[verb] = {"api_exception": isinstance(e, kfp_server_api.ApiException),
                       "kfp_auth_error": isinstance(e, kfp_auth.KFPAuthError), "status": e.status,
                       "namespace": e.namespace, "verb": e.verb, "user": e.user, "resource": e.resource,
                       "message": str(e)}
done(denied=found, logins=m.logins)
"""


def test_kfp_18_rbac_denial_names_the_namespace_and_verb(kubeflow: Stack, kfp18_python: str) -> None:
    before = len(kubeflow.kfp_requests())
    out = run_kfp18(kfp18_python, RBAC, kubeflow.api_url, FAST_USER, NAMESPACE, env={"KFP18_PASSWORD": FAST_PASSWORD})
    listed = out["denied"]["list"]
    assert listed is not None and listed["api_exception"] and listed["kfp_auth_error"]
    assert (listed["status"], listed["namespace"], listed["verb"], listed["user"], listed["resource"]) == (
        403,
        NAMESPACE,
        "list",
        FAST_USER,
        "experiments",
    )
    assert f"namespace '{NAMESPACE}'" in listed["message"] and "contributor" in listed["message"]
    # kfp 1.8's create_experiment looks the name up first: that GET is what is denied.
    looked_up = out["denied"]["create_experiment"]
    assert looked_up is not None and (looked_up["namespace"], looked_up["verb"]) == (NAMESPACE, "list")
    created = out["denied"]["create"]
    assert created is not None and created["api_exception"] and created["status"] == 403
    assert (created["namespace"], created["verb"], created["user"]) == (NAMESPACE, "create", FAST_USER)
    assert out["logins"] == 1  # a denial is the API's answer, not a reason to log in again
    assert {
        ("GET", "/pipeline/apis/v1beta1/experiments", FAST_USER),
        ("POST", "/pipeline/apis/v1beta1/experiments", FAST_USER),
    } <= api_seen(kubeflow.kfp_requests()[before:])


# -- Kubeflow <= 1.8: oidc-authservice, with every session dropped while the client runs --


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_authservice_stack(tmp_path_factory.mktemp("kfp18-authservice")) as s:
        yield s


LEGACY = """
url, user, ns = args
m = KFPClientManager(url, user, password)
client = m.create_kfp_client()
client.create_experiment(name="kfp18-before-drop", namespace=ns)
logins_before = m.logins
cookie_names = [c.split("=", 1)[0] for c in m.get_session_cookies().split("; ")]
ready()  # the test drops every session
names = [e.name for e in client.list_experiments(namespace=ns).experiments]
done(logins_before=logins_before, logins=m.logins, names=names, cookie_names=cookie_names)
"""


def test_kfp_18_authservice_client_logs_in_again_after_sessions_are_dropped(legacy: Stack, kfp18_python: str) -> None:
    api_before = len(legacy.kfp_requests())
    mark: dict[str, int] = {}

    def drop() -> None:
        drop_sessions(legacy)
        mark["gateway"] = len(gateway_requests(legacy))

    out = run_kfp18(
        kfp18_python,
        LEGACY,
        legacy.api_url,
        FAST_USER,
        FAST_NAMESPACE,
        env={"KFP18_PASSWORD": FAST_PASSWORD},
        meanwhile=drop,
    )
    assert out["cookie_names"] == ["authservice_session"] and out["logins_before"] == 1
    assert out["logins"] == 2 and "kfp18-before-drop" in out["names"]
    # The gateway's 302 to Dex came back to the hook, which logged in and retried once.
    calls = [
        (r["method"], r["path"], r["status"], r["location_path"])
        for r in gateway_requests(legacy)[mark["gateway"] :]
        if r["path"].startswith("/pipeline/apis/")
    ]
    assert calls == [
        ("GET", "/pipeline/apis/v1beta1/experiments", 302, "/dex/auth"),
        ("GET", "/pipeline/apis/v1beta1/experiments", 200, None),
    ]
    seen = api_seen(legacy.kfp_requests()[api_before:])
    assert {
        ("GET", "/pipeline/apis/v1beta1/experiments", FAST_USER),
        ("POST", "/pipeline/apis/v1beta1/experiments", FAST_USER),
    } <= seen
    assert seen and all(user == FAST_USER for _, _, user in seen)


# -- Dex's LDAP connector, with a real slapd --


@pytest.fixture(scope="module")
def ldap_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("kfp18-ldap"), ldap=True) as s:
        yield s


LDAP = """
url, user, ns = args
m = KFPClientManager(url, user, password, dex_auth_type="ldap")
client = m.create_kfp_client()
created = client.create_experiment(name="kfp18-from-ldap", namespace=ns)
listed = client.list_experiments(namespace=ns)
done(created=created.id, listed=[e.id for e in listed.experiments], logins=m.logins)
"""


def test_kfp_18_ldap_user_logs_in(ldap_kubeflow: Stack, kfp18_python: str) -> None:
    before = len(ldap_kubeflow.kfp_requests())
    out = run_kfp18(
        kfp18_python, LDAP, ldap_kubeflow.api_url, LDAP_USER, LDAP_NAMESPACE, env={"KFP18_PASSWORD": LDAP_PASSWORD}
    )
    assert out["listed"] == [out["created"]] and out["logins"] == 1
    # The API knew the user by the mail slapd holds.
    seen = api_seen(ldap_kubeflow.kfp_requests()[before:])
    assert {
        ("GET", "/pipeline/apis/v1beta1/experiments", LDAP_EMAIL),
        ("POST", "/pipeline/apis/v1beta1/experiments", LDAP_EMAIL),
    } <= seen
    assert seen and all(user == LDAP_EMAIL for _, _, user in seen)
    dex_log = (ldap_kubeflow.workdir / "dex.log").read_text(errors="replace")
    ok = [line for line in dex_log.splitlines() if 'msg="login successful"' in line and "connector_id=ldap " in line]
    assert len(ok) == 1 and f"email={LDAP_EMAIL} " in ok[0]
