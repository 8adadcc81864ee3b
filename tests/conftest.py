"""Fixtures that run the real Dex and oauth2-proxy (see tests/stack)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# kfp reads ~/.config/kfp/context.json when a Client is built (and resolves the
# path at import): point HOME at an empty folder so a developer's context never
# changes what the tests see.
os.environ["HOME"] = tempfile.mkdtemp(prefix="kfp-auth-home-")

sys.path.insert(0, str(Path(__file__).parent))

import stack as stack_mod  # noqa: E402
from stack import SA_IDENTITY  # noqa: E402
from stack.tokens import TokenVolume  # noqa: E402


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return

    def show(line: str) -> None:
        # Past pytest's output capture, so the run shows each real process it started.
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[stack] {line}")

    stack_mod.on_start = show


# Modules whose tests all run on the real stack; elsewhere a test is marked by the
# stack fixtures it uses, or by its own @pytest.mark.stack.
STACK_MODULES = {
    "test_bearer",
    "test_cli",
    "test_client",
    "test_connectors",
    "test_credential_safety",
    "test_kfp18",
    "test_legacy_authservice",
    "test_login",
    "test_long_lived",
    "test_shapes",
}
STACK_FIXTURES = {
    "kubeflow",
    "own_kubeflow",
    "grant_kubeflow",
    "https_kubeflow",
    "kubeflow_19",
    "ldap_kubeflow",
    "legacy",
    "safe_stack",
    "faulty_dex",
    "restartable",
    "short_cookies",
    "server_side_sessions",
    "no_api_routes",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if (module is not None and module.__name__ in STACK_MODULES) or STACK_FIXTURES & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(autouse=True)
def _own_cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own empty $XDG_CACHE_HOME: SSO logins go to the token cache there by
    default, and one test's login must not serve the next (nor a developer's own)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))


_current: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[:] = [item]


def _check_stack_mark() -> None:
    if _current and _current[0].get_closest_marker("stack") is None:
        pytest.fail(
            f"{_current[0].nodeid} starts the real stack: mark it @pytest.mark.stack "
            "(or add its fixture to STACK_FIXTURES in tests/conftest.py)",
            pytrace=False,
        )


stack_mod.before_stack = _check_stack_mark


def pytest_report_header(config: pytest.Config) -> str:
    # Reported, not built: a run that needs no stack (the wheel smoke tests with
    # -m "not stack") must not need Go; the first stack fixture builds them.
    try:
        v = stack_mod.versions()
    except OSError:
        return f"real components: not built yet in {stack_mod.BIN} (the first stack test builds them)"
    return f"real components: dex {v['dex']}, oauth2-proxy {v['oauth2-proxy']} (from {stack_mod.BIN})"


@pytest.fixture(scope="session")
def kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack_mod.Stack]:
    """Kubeflow 1.10's layout, shared by the tests that do not disturb it."""
    with stack_mod.start_kubeflow_stack(tmp_path_factory.mktemp("kubeflow")) as s:
        yield s


@pytest.fixture
def own_kubeflow(tmp_path: Path) -> Iterator[stack_mod.Stack]:
    """A stack of the test's own, for tests that stop or break a component."""
    with stack_mod.start_kubeflow_stack(tmp_path / "stack") as s:
        yield s


@pytest.fixture(scope="session")
def standalone_kfp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The KFP API test server with no gateway: standalone or port-forwarded KFP."""
    proc, url = stack_mod.start_kfp_api(tmp_path_factory.mktemp("standalone"), require_auth=False)
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def in_cluster(tmp_path: Path) -> Iterator[tuple[TokenVolume, str, Path]]:
    """The KFP API test server checking bearer tokens against what the volume holds now,
    as the real API server's TokenReview would: (the volume, its URL, its request log)."""
    vol = TokenVolume(tmp_path / "token-volume")
    proc, url = stack_mod.start_kfp_api(tmp_path, require_auth=True, token_files={vol.path: SA_IDENTITY})
    try:
        yield vol, url, tmp_path / "kfp-requests.jsonl"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def private_ca_kfp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The KFP API test server over https with a certificate of a private CA: (its URL, the CA's PEM)."""
    d: Path = tmp_path_factory.mktemp("private-ca")
    ca, cert, key = stack_mod.ca_signed_cert(d)
    proc, url = stack_mod.start_kfp_api(d, require_auth=False, tls=(cert, key))
    try:
        yield url + "/pipeline", ca
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def kfp18_python() -> str:
    """The interpreter of the kfp 1.8 venv that `make test` builds (kfp 1.8 and 2.x cannot share one)."""
    py = stack_mod.CACHE / "venv-kfp18" / "bin" / "python"
    if not py.exists():
        pytest.fail(f"{py} is missing: run `make test`, which creates the kfp 1.8 venv")
    return str(py)


@contextmanager
def _tcp_server(on_accept: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback TCP server that hands each connection to `on_accept`; yields an api_url on it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                on_accept(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/pipeline"
    finally:
        stop.set()
        t.join()
        srv.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never answers: the classic hang of the documented class."""
    held: list[socket.socket] = []
    with _tcp_server(held.append) as url:
        yield url
    for c in held:
        c.close()


@pytest.fixture
def slamming_server() -> Iterator[str]:
    """Accepts connections and closes them at once, answering nothing (a broken connection)."""

    def slam(c: socket.socket) -> None:
        c.recv(65536)
        c.close()

    with _tcp_server(slam) as url:
        yield url
