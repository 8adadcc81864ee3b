"""The smoke suite every claimed Python runs against the installed wheel.

`make test` (scripts/wheel-smoke.sh) installs the built x86_64 wheel into a
clean venv per CPython, from the floor to the newest, with no Rust toolchain on
PATH, and runs this file there; the release workflow runs it on each platform's
wheel. It is not part of the main run (`norecursedirs`), whose venv holds an
editable build. Tests marked `stack` need the real Dex and oauth2-proxy; the
rest need only Python.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import NAMESPACE, PASSWORD, USER, Stack

REPO = Path(__file__).resolve().parents[2]


def test_the_package_is_an_installed_wheel_of_this_version() -> None:
    dist = metadata.distribution("kfp-auth")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    # pip records an install from a file as archive_info; an editable or source
    # checkout would be dir_info, and then this run would not test the wheel.
    assert "archive_info" in direct and direct["url"].endswith(".whl"), direct
    assert Path(kfp_auth.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert not Path(kfp_auth.__file__).resolve().is_relative_to(REPO / "python")
    assert kfp_auth.__version__ == dist.version
    # Cargo.toml holds the one version; the wheel's metadata comes from it.
    cargo = re.search(r'^version = "(.+)"', (REPO / "Cargo.toml").read_text(), re.M)
    assert cargo and cargo.group(1) == dist.version
    # A plain `pip install kfp-auth` pulls in nothing; kfp comes with the [kfp] extra.
    requires = dist.requires or []
    assert requires and all("extra ==" in r for r in requires), requires


def test_import_needs_no_kfp() -> None:
    # kfp is installed in this venv (the client test needs it), so make it unimportable.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'kfp' or name.startswith('kfp.') or name.startswith('kfp_server_api'):\n"
        "            raise ImportError('kfp is blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import kfp_auth\n"
        "m = kfp_auth.KFPClientManager('http://127.0.0.1:9/pipeline')\n"
        "assert m.auth_kind == 'none', m.auth_kind\n"
        "assert not [n for n in sys.modules if n == 'kfp' or n.startswith('kfp.')]\n"
        "print('ok', kfp_auth.__version__)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("ok "), r.stderr


def test_cli_version_is_the_package_version() -> None:
    cli = shutil.which("kfp-auth", path=sysconfig.get_path("scripts"))
    assert cli, "the wheel installed no kfp-auth command"
    r = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"kfp-auth {metadata.version('kfp-auth')}"


def test_unsecured_endpoint(standalone_kfp: str) -> None:
    m = KFPClientManager(standalone_kfp + "/pipeline", "nobody", "unused")
    assert m.get_session_cookies() == ""
    client = m.create_kfp_client()
    client.create_experiment(name="smoke-standalone")
    assert "smoke-standalone" in [e.display_name for e in client.list_experiments().experiments]


def test_unsecured_endpoint_async(standalone_kfp: str) -> None:
    m = KFPClientManager(standalone_kfp + "/pipeline")
    assert asyncio.run(m.get_session_cookies_async()) == ""


def _whoami(stack: Stack, cookies: str) -> str:
    """The user the KFP API test server saw behind the gateway, for these cookies."""
    req = urllib.request.Request(
        f"{stack.api_url}/apis/v2beta1/experiments?namespace={NAMESPACE}", headers={"Cookie": cookies}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    return str(stack.kfp_requests()[-1].get("user"))


@pytest.mark.stack
def test_dex_login(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url, USER, PASSWORD)
    cookies = m.get_session_cookies()
    assert "oauth2_proxy_kubeflow=" in cookies
    assert _whoami(kubeflow, cookies) == USER
    assert m.logins == 1


@pytest.mark.stack
def test_async_login(kubeflow: Stack) -> None:
    m = KFPClientManager(kubeflow.api_url, USER, PASSWORD)

    async def twice() -> tuple[str, str]:
        return await m.get_session_cookies_async(), await m.get_session_cookies_async()

    first, again = asyncio.run(twice())
    assert first == again and "oauth2_proxy_kubeflow=" in first
    assert m.logins == 1
    assert _whoami(kubeflow, first) == USER


@pytest.mark.stack
def test_create_kfp_client(kubeflow: Stack) -> None:
    import kfp

    m = KFPClientManager(kubeflow.api_url, USER, PASSWORD)
    client = m.create_kfp_client()
    assert type(client) is kfp.Client
    client.create_experiment(name="smoke", namespace=NAMESPACE)
    names = [e.display_name for e in client.list_experiments(namespace=NAMESPACE).experiments]
    assert "smoke" in names
