"""The same manager with the real kfp 1.8 SDK, run in its own venv (kfp 1.8 and 2.x cannot share one)."""

from __future__ import annotations

import json
import subprocess

from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, Stack

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
    r = subprocess.run([kfp18_python, "-c", SCRIPT, kubeflow.api_url, FAST_USER, FAST_PASSWORD, FAST_NAMESPACE],
                       capture_output=True, text=True, timeout=120)
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
    p = subprocess.Popen([kfp18_python, "-c", RELOGIN, own_kubeflow.api_url, FAST_USER, FAST_PASSWORD, FAST_NAMESPACE],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdin is not None
    assert p.stdout.readline().strip() == "ready"
    own_kubeflow.restart_gateway(new_cookie_secret=True)
    out, err = p.communicate("go\n", timeout=120)
    assert p.returncode == 0, err[-3000:]
    assert out.split() == ["2", "True"]
