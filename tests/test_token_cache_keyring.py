"""The keyring token cache (``token_cache="keyring"``, ``kfp-auth ... --keyring``): the
SSO login's tokens in the OS keyring, the token cache file keeping only the rest. With
the real ``keyring`` package and keyrings.alt's plaintext file backend standing in for
a desktop's keyring (named by $PYTHON_KEYRING_BACKEND, as a user would), on the real SSO
stack (tests/stack/sso.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
import pytest
from keyrings.alt.file import PlaintextKeyring
from test_sso_device import SECRET_LIKE
from test_token_cache import OTHERS, cli_device_login, entries, plant

from kfp_auth import InvalidArgumentError, KeyringError, KFPClientManager, SessionCacheError
from stack.cli import run
from stack.device_user import User
from stack.sso import CONNECTOR_ID, IDP_USER, SsoStack, api_get, jwt_claims, start_sso_stack

URL = "http://127.0.0.1:9/pipeline"
FILE_BACKEND = "keyrings.alt.file.PlaintextKeyring"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home whose keyring is a file: this process's (set with keyring.set_keyring), and the
    subprocesses' (by $PYTHON_KEYRING_BACKEND, under their $HOME, as the CLI tests set it)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / ".local" / "share"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FILE_BACKEND)
    monkeypatch.delenv("KFP_AUTH_TOKEN_CACHE", raising=False)
    before = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    yield tmp_path
    keyring.set_keyring(before)


def cache_of(home: Path) -> Path:
    return home / ".cache" / "kfp-auth" / "tokens.json"


def no_keyring_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


# -- Without a stack --


def test_no_keyring_backend_is_a_typed_error_at_construction(home: Path) -> None:
    # keyring's own "no backend" (what it chooses on a machine without one).
    r = no_keyring_python(
        f"""
        from kfp_auth import KFPClientManager, KeyringError
        try:
            KFPClientManager({URL!r}, login="device", token_cache="keyring")
        except KeyringError as e:
            print(type(e).__name__, e)
        """,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("KeyringError the `keyring` package found no keyring backend"), r.stdout
    assert 'pip install "kfp-auth[keyring]"' in r.stdout and "file cache" in r.stdout
    assert not cache_of(home).exists(), "nothing written"


def test_the_keyring_package_missing_is_a_typed_error_saying_what_to_install() -> None:
    r = no_keyring_python(
        f"""
        import sys
        sys.modules["keyring"] = None  # as if not installed
        from kfp_auth import KFPClientManager, KeyringError, SessionCacheError
        try:
            KFPClientManager({URL!r}, login="browser", token_cache="keyring")
        except KeyringError as e:
            assert isinstance(e, SessionCacheError)
            print(e)
        """
    )
    assert r.returncode == 0, r.stderr
    assert "needs the `keyring` package, which is not installed" in r.stdout, r.stdout
    assert 'pip install "kfp-auth[keyring]"' in r.stdout


def test_the_environment_variable_chooses_the_keyring_and_a_bad_value_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_AUTH_TOKEN_CACHE", "keyring")
    m = KFPClientManager(URL, login="device")
    assert m.bearer is not None
    monkeypatch.setenv("KFP_AUTH_TOKEN_CACHE", "keychain")
    with pytest.raises(InvalidArgumentError, match="KFP_AUTH_TOKEN_CACHE is 'keychain'; it takes `keyring` or `file`"):
        KFPClientManager(URL, login="device")
    r = run(["token", "--url", URL], home, extra_env={"KFP_AUTH_TOKEN_CACHE": "keychain"})
    assert r.returncode == 2 and "it takes `keyring` or `file`" in r.stderr, r
    r = run(["token", "--keyring", "--token-cache", str(home / "t.json"), "--url", URL], home)
    assert r.returncode == 2 and "drop --token-cache" in r.stderr, r


# -- On the real SSO stack --


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    with start_sso_stack(tmp_path_factory.mktemp("sso")) as s:
        yield s


WORKER = textwrap.dedent("""
    import json, logging, os, sys
    from kfp_auth import KFPClientManager
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    logging.getLogger("kfp_auth").setLevel(logging.DEBUG)
    api, force = sys.argv[1:3]

    def prompt(event):
        print("the worker was asked to log in", file=sys.stderr, flush=True)
        os._exit(3)

    m = KFPClientManager(api, login="device", token_cache="keyring", prompt=prompt)
    token = m.get_bearer_token(force_refresh=force == "1")
    print(json.dumps({"logins": m.logins, "refreshes": m.bearer.refreshes, "last": token}))
""")


def worker(s: SsoStack, *, force: bool = False) -> tuple[dict[str, Any], str]:
    p = subprocess.run(
        [sys.executable, "-c", WORKER, s.api_url, "1" if force else "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p.stderr


def gone(key: str) -> bool:
    """Whether the keyring holds no item for `key` (a bool: a failing assert shows no token)."""
    return item(key) is None


def item(key: str) -> dict[str, Any] | None:
    value = PlaintextKeyring().get_password("kfp-auth", key)
    return None if value is None else dict(json.loads(value))


def assert_no_token_in(path: Path, *tokens: str) -> None:
    text = path.read_text()
    for t in tokens:
        assert t not in text
    assert not SECRET_LIKE.search(text), SECRET_LIKE.findall(text)


@pytest.mark.stack
def test_a_device_login_keeps_its_tokens_in_the_keyring_and_a_second_process_reuses_it(
    sso: SsoStack, home: Path
) -> None:
    cache = cache_of(home)
    m = KFPClientManager(
        sso.api_url, login="device", token_cache="keyring", prompt=User(sso), dex_auth_type=CONNECTOR_ID
    )
    token = m.get_bearer_token()
    (key,) = entries(cache)
    assert key == f"{sso.issuer} kfp-auth {CONNECTOR_ID} {IDP_USER}"
    saved = entries(cache)[key]
    # The file: the login's metadata and the marker, and no token.
    assert saved["secrets"] == "keyring" and (saved["user"], saved["api_url"]) == (IDP_USER, sso.api_url)
    assert "id_token" not in saved and saved["refresh_token"] is None
    secrets = item(key)
    assert secrets is not None and secrets["id_token"] == token and secrets["refresh_token"]
    assert_no_token_in(cache, token, secrets["refresh_token"])

    # A new process: the login from the keyring, no prompt, no request to Dex.
    r, err = worker(sso)
    assert r["logins"] == 0 and r["refreshes"] == 0 and r["last"] == token, r
    assert "using the ID token saved in" in err and not SECRET_LIKE.search(err)
    # Another renews now: the keyring's refresh token, rotated by Dex, goes back to the keyring.
    r, err = worker(sso, force=True)
    assert r["logins"] == 0 and r["refreshes"] == 1 and api_get(sso.experiments_url, r["last"])[0] == 200, r
    rotated = item(key)
    assert rotated is not None and rotated["refresh_token"] != secrets["refresh_token"]
    assert rotated["id_token"] == r["last"]
    assert_no_token_in(cache, r["last"], rotated["refresh_token"])
    # This process's refresh token was rotated away: it takes the keyring's under the lock.
    renewed = m.get_bearer_token(force_refresh=True)
    assert api_get(sso.experiments_url, renewed)[0] == 200
    assert item(key)["id_token"] == renewed  # type: ignore[index]

    # `kfp-auth token` reads it with --keyring; without, it says how to reach it.
    r2 = run(["token", "--keyring", "--url", sso.api_url], home, extra_env={"PYTHON_KEYRING_BACKEND": FILE_BACKEND})
    assert r2.returncode == 0 and r2.stderr == "" and jwt_claims(r2.stdout.strip())["email"] == IDP_USER, r2
    r2 = run(["token", "--url", sso.api_url], home)
    assert r2.returncode == 6 and "keeps its tokens in the OS keyring" in r2.stderr and "--keyring" in r2.stderr, r2
    assert not SECRET_LIKE.search(r2.stderr)

    # logout removes the login and its keyring item (the keyring found from the file's marker).
    r2 = run(["logout", "--url", sso.api_url], home, extra_env={"PYTHON_KEYRING_BACKEND": FILE_BACKEND})
    assert r2.returncode == 0 and f"logged out {IDP_USER}" in r2.stderr, r2
    assert entries(cache) == {} and gone(key)


@pytest.mark.stack
def test_cli_login_keyring_then_logout_all_removes_every_item(sso: SsoStack, home: Path) -> None:
    cache = cache_of(home)
    plant(cache, OTHERS)  # logins in the file, as before: they stay where they are
    r = cli_device_login(sso, home, "--url", sso.api_url, "-c", CONNECTOR_ID, "--keyring")
    assert r.returncode == 0 and r.stdout == "", r
    assert f"the login is saved in {cache}, its tokens in the OS keyring" in r.stderr
    assert not SECRET_LIKE.search(r.stderr)
    key = f"{sso.issuer} kfp-auth {CONNECTOR_ID} {IDP_USER}"
    saved = entries(cache)
    assert {k: saved[k] for k in OTHERS} == OTHERS and saved[key]["secrets"] == "keyring"
    secrets = item(key)
    assert secrets is not None
    assert secrets["id_token"] not in cache.read_text() and secrets["refresh_token"] not in cache.read_text()
    # The environment variable instead of --keyring.
    r = run(
        ["token", "--url", sso.api_url],
        home,
        extra_env={"PYTHON_KEYRING_BACKEND": FILE_BACKEND, "KFP_AUTH_TOKEN_CACHE": "keyring"},
    )
    assert r.returncode == 0 and api_get(sso.experiments_url, r.stdout.strip())[0] == 200, r
    # Without a usable keyring, logout refuses rather than leave the item behind.
    r = run(["logout", "--all"], home, extra_env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert r.returncode == 6 and "found no keyring backend" in r.stderr and cache.exists(), r
    assert not gone(key)
    r = run(["logout", "--all"], home, extra_env={"PYTHON_KEYRING_BACKEND": FILE_BACKEND})
    assert r.returncode == 0 and not cache.exists() and gone(key), r


def test_a_login_in_the_keyring_read_without_it_is_a_typed_error(home: Path) -> None:
    cache = cache_of(home)
    login = dict(next(iter(OTHERS.values())))
    del login["id_token"]
    login.update(refresh_token=None, secrets="keyring")
    plant(cache, {"https://other.example/dex kfp-auth github bob@corp.example": login})
    with pytest.raises(SessionCacheError, match="keeps its tokens in the OS keyring"):
        KFPClientManager(
            "https://other.example/pipeline", login="device", token_cache=cache, dex_auth_type="github"
        ).get_bearer_token()


class LockedKeyring(PlaintextKeyring):
    """A keyring the user did not unlock."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("refresh-token-Zq81-not-for-messages")


def test_a_failing_keyring_backend_is_a_keyring_error_naming_only_the_exception_type(home: Path) -> None:
    cache = cache_of(home)
    login = dict(next(iter(OTHERS.values())))
    del login["id_token"]
    login.update(refresh_token=None, secrets="keyring")
    plant(cache, {"https://other.example/dex kfp-auth github bob@corp.example": login})
    keyring.set_keyring(LockedKeyring())
    m = KFPClientManager(
        "https://other.example/pipeline", login="device", token_cache="keyring", dex_auth_type="github"
    )
    with pytest.raises(KeyringError, match="the OS keyring: cannot read the login of bob@corp.example") as ei:
        m.get_bearer_token()
    assert "KeyringLocked" in str(ei.value) and "Zq81" not in str(ei.value)
