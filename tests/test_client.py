"""How the kfp.Client is built: lazily imported, per-manager TLS settings, no global patching."""

from __future__ import annotations

import subprocess
import sys

from kfp_auth import KFPClientManager
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, Stack


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_does_not_import_kfp() -> None:
    r = run_python("import sys, kfp_auth; print('kfp' in sys.modules, 'kfp_server_api' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def test_missing_kfp_names_the_package(standalone_kfp: str) -> None:
    code = f"""
import sys
sys.modules['kfp'] = None  # as if kfp were not installed
from kfp_auth import KFPClientManager
m = KFPClientManager({standalone_kfp!r}, 'u', 'p')
try:
    m.create_kfp_client()
except ModuleNotFoundError as e:
    print(e.name, '|', e)
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    name, msg = r.stdout.strip().split(" | ", 1)
    assert name == "kfp"
    assert "pip install kfp" in msg


def test_skip_tls_verify_is_per_client_and_patches_nothing(kubeflow: Stack) -> None:
    import kfp

    load_config = kfp.Client._load_config
    insecure = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, skip_tls_verify=True).create_kfp_client()
    manager = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD)
    secure = manager.create_kfp_client()

    assert type(insecure) is kfp.Client  # kfp 2.x takes verify_ssl: no subclass needed
    assert insecure._existing_config.verify_ssl is False
    assert secure._existing_config.verify_ssl is True
    assert kfp.Client._load_config is load_config
    assert kfp.Client(host=kubeflow.api_url, cookies=manager.get_session_cookies())._existing_config.verify_ssl is True
    # Both clients work.
    for c in (insecure, secure):
        c.list_experiments(namespace=FAST_NAMESPACE)
