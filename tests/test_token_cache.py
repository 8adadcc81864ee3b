"""The SSO token cache: logins that outlive the process, shared by processes that renew
them one at a time (Dex rotates refresh tokens on every use), and the `kfp-auth login
--device`, `token`, `logout` commands on it. On the real SSO stack (tests/stack/sso.py);
the user's browser is tests/stack/browser.py. The tests at the top need no stack."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_sso_device import SECRET_LIKE, User

from kfp_auth import KFPClientManager, LoginRequiredError, SessionCacheError, _native
from stack.browser import Browser, browser_command
from stack.cli import run
from stack.sso import CONNECTOR_ID, IDP_NAMESPACE, IDP_USER, SsoStack, api_get, jwt_claims, start_sso_stack

URL = "http://127.0.0.1:9/pipeline"


def entries(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())["logins"])


def other_login(issuer: str, user: str) -> dict[str, Any]:
    """A login of another cluster or user, as another process would have saved it."""
    return {
        "issuer": issuer,
        "client_id": "kfp-auth",
        "connector": "github",
        "user": user,
        "dex_url": issuer,
        "api_url": issuer.replace("/dex", "/pipeline"),
        "id_token": "other-id-token",
        "refresh_token": "other-refresh-token",
        "expires_at": 1,
        "saved_at": 2,
    }


def plant(path: Path, logins: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "logins": logins}))
    path.chmod(0o600)


OTHERS = {
    "https://other.example/dex kfp-auth github bob@corp.example": other_login(
        "https://other.example/dex", "bob@corp.example"
    ),
    "https://other.example/dex kfp-auth github carol@corp.example": other_login(
        "https://other.example/dex", "carol@corp.example"
    ),
}


# -- Without a stack --


@pytest.mark.parametrize(
    "content,mode,said",
    [
        ("{not json", 0o600, "is not valid JSON (at line 1, column 2)"),
        ("[1, 2, 3]", 0o600, "does not hold a JSON object"),
        ('"a string"', 0o600, "does not hold a JSON object"),
        ('{"version": 1, "logins": {"k": {"id_token": 5}}}', 0o600, "is not a kfp-auth token cache"),
        ('{"version": 1, "logins": {}}', 0o644, "readable by other users (mode 644)"),
    ],
)
def test_a_cache_file_that_cannot_be_used_is_a_typed_error_before_any_request(
    tmp_path: Path, content: str, mode: int, said: str
) -> None:
    path = tmp_path / "kfp-auth" / "tokens.json"
    path.parent.mkdir(mode=0o700)
    path.write_text(content)
    path.chmod(mode)
    # Port 9 answers nothing: the error comes from the file, before any request.
    m = KFPClientManager(URL, login="device", token_cache=path, prompt=lambda e: pytest.fail("prompted"))
    with pytest.raises(SessionCacheError) as ei:
        m.get_bearer_token()
    msg = str(ei.value)
    assert msg.startswith(f"token cache {path}: ") and said in msg, msg
    assert ("chmod 600" if mode != 0o600 else "kfp-auth logout --all") in msg, msg
    assert path.read_text() == content, "a file that cannot be read is left as it is"
    # The command says the same, with the cache's exit code, and nothing on stdout.
    r = run(["token", "--url", URL, "--token-cache", str(path)], tmp_path)
    assert (r.returncode, r.stdout) == (6, ""), r
    assert said in r.stderr
    # `logout --all` is the way out that the message names.
    r = run(["logout", "--all", "--token-cache", str(path)], tmp_path)
    assert r.returncode == 0 and not path.exists(), r


def test_a_cache_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    m = KFPClientManager(URL, login="device", token_cache=folder / "tokens.json")
    with pytest.raises(SessionCacheError, match="is not private"):
        m.get_bearer_token()


def test_the_default_is_a_cache_under_xdg_cache_home_and_false_turns_it_off(tmp_path: Path) -> None:
    assert _native.default_token_cache() == f"{os.environ['XDG_CACHE_HOME']}/kfp-auth/tokens.json"
    with pytest.raises(ValueError, match='token_cache is for login="device" and login="browser"'):
        KFPClientManager(URL, "u", "p", token_cache=True)
    with pytest.raises(ValueError, match='login="exchange" takes no token_cache') as ei:
        KFPClientManager(URL, login="exchange", dex_auth_type="idp", subject_token="t", token_cache=True)
    assert ei.value.argument == "token_cache"  # type: ignore[attr-defined]
    # In memory only: nothing is read, so a bad file at the default place does not matter.
    plant(Path(os.environ["XDG_CACHE_HOME"]) / "kfp-auth" / "tokens.json", {})
    (Path(os.environ["XDG_CACHE_HOME"]) / "kfp-auth" / "tokens.json").write_text("{bad")
    off = KFPClientManager(URL, login="device", token_cache=False, timeout=0.5, prompt=lambda e: None)
    with pytest.raises(Exception) as ei:
        off.get_bearer_token()
    assert not isinstance(ei.value, SessionCacheError), ei.value
    on = KFPClientManager(URL, login="device")
    with pytest.raises(SessionCacheError):
        on.get_bearer_token()


def test_token_without_a_saved_login_says_to_log_in(tmp_path: Path) -> None:
    r = run(["token"], tmp_path, extra_env={"KF_PIPELINES_ENDPOINT": URL})
    assert r.returncode == 3 and r.stdout == "", r
    assert "no saved login for http://127.0.0.1:9/dex" in r.stderr
    assert f"kfp-auth login --device --url {URL}" in r.stderr
    r = run(["token"], tmp_path)
    assert r.returncode == 2 and "pass --url or set KF_PIPELINES_ENDPOINT" in r.stderr
    # The decoding command moved; its old options say where.
    r = run(["token", "--stdin"], tmp_path, stdin="x")
    assert r.returncode == 2 and "moved to `kfp-auth inspect`" in r.stderr


# -- On the real SSO stack --


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    with start_sso_stack(tmp_path_factory.mktemp("sso")) as s:
        yield s


WORKER = textwrap.dedent("""
    import json, logging, os, sys, time, urllib.error, urllib.request
    from kfp_auth import KFPClientManager
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    logging.getLogger("kfp_auth").setLevel(logging.DEBUG)
    api, cache, url, start, seconds, force = sys.argv[1:7]
    events = []

    def prompt(event):
        # A login would wait for a user who never comes: fail at once, and say why.
        print("the worker was asked to log in", file=sys.stderr, flush=True)
        os._exit(3)

    m = KFPClientManager(api, login="device", token_cache=cache, prompt=prompt)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    time.sleep(max(0.0, float(start) - time.time()))
    statuses, tokens = [], set()
    until = time.time() + float(seconds)
    while True:
        token = m.get_bearer_token(force_refresh=force == "1")
        tokens.add(token)
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        try:
            statuses.append(opener.open(req, timeout=10).status)
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
        if time.time() >= until:
            break
        time.sleep(0.05)
    print(json.dumps({"events": events, "logins": m.logins,
                      "refreshes": m.bearer.refreshes, "statuses": sorted(set(statuses)),
                      "tokens": len(tokens), "last": token}))
""")


def worker(
    s: SsoStack, cache: Path, *, start: float = 0.0, seconds: float = 0.0, force: bool = False
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            s.api_url,
            str(cache),
            s.experiments_url,
            str(start),
            str(seconds),
            "1" if force else "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(p: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return json.loads(out), err


def logged_in(s: SsoStack, cache: Path, **kw: Any) -> KFPClientManager:
    """A device login in this process, saved in `cache`."""
    m = KFPClientManager(s.api_url, login="device", token_cache=cache, prompt=User(s), **kw)
    m.get_bearer_token()
    return m


@pytest.mark.stack
def test_a_second_process_reuses_the_login_and_both_keep_renewing(sso: SsoStack, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "tokens.json"
    plant(cache, OTHERS)
    first = logged_in(sso, cache, dex_auth_type=CONNECTOR_ID)
    token = first.get_bearer_token()
    saved = entries(cache)
    assert set(OTHERS) < set(saved) and len(saved) == 3, "the other logins stay"
    for k, v in OTHERS.items():
        assert saved[k] == v
    (key,) = set(saved) - set(OTHERS)
    mine = saved[key]
    assert key == f"{sso.issuer} kfp-auth {CONNECTOR_ID} {IDP_USER}"
    assert (mine["user"], mine["connector"], mine["api_url"]) == (IDP_USER, CONNECTOR_ID, sso.api_url)
    assert mine["id_token"] == token and mine["refresh_token"]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600 and stat.S_IMODE(cache.parent.stat().st_mode) == 0o700

    # A new process: the saved ID token, with no prompt and no request to Dex.
    before = sso.log("dex").count("\n")
    r, err = outcome(worker(sso, cache))
    assert r["events"] == [] and r["logins"] == 0 and r["refreshes"] == 0, r
    assert r["last"] == token and r["statuses"] == [200]
    assert "using the ID token saved in" in err
    assert not SECRET_LIKE.search(err), SECRET_LIKE.findall(err)
    # Another new process renews now: it refreshes with the saved refresh token, asks nothing.
    r, err = outcome(worker(sso, cache, force=True))
    assert r["events"] == [] and r["refreshes"] == 1 and r["statuses"] == [200], r
    rotated = entries(cache)[key]
    assert rotated["refresh_token"] != mine["refresh_token"] and rotated["id_token"] == r["last"]
    # The first process's refresh token was rotated away by the other: it takes the saved
    # one under the lock instead of presenting its own, which Dex would refuse.
    renewed = first.get_bearer_token(force_refresh=True)
    assert renewed not in (token, r["last"]) and api_get(sso.experiments_url, renewed)[0] == 200
    assert entries(cache)[key]["id_token"] == renewed
    assert "claimed" not in sso.log("dex").split("\n", before)[-1].lower()
    first.create_kfp_client().list_experiments(namespace=IDP_NAMESPACE)


@pytest.mark.stack
def test_two_processes_renewing_at_once_both_succeed_and_dex_never_sees_a_reused_token(tmp_path: Path) -> None:
    with start_sso_stack(tmp_path / "sso", id_token_expiry="4s") as s:
        cache = tmp_path / "cache" / "tokens.json"
        logged_in(s, cache)
        start = time.time() + 1.5  # both start together, past their imports
        procs = [worker(s, cache, start=start, seconds=12) for _ in range(2)]
        results = [outcome(p) for p in procs]
        for r, err in results:
            assert r["events"] == [] and r["logins"] == 0, r
            assert r["statuses"] == [200], r
            assert r["tokens"] >= 3, "the token was renewed several times in each process"
            assert "already been claimed" not in err and "LoginRequired" not in err
        # One refresh per lifetime between them (12 s of 4 s tokens), not one per process:
        # each renewal is taken by the other process from the cache.
        refreshes = sum(r["refreshes"] for r, _ in results)
        assert 3 <= refreshes <= 7, [r for r, _ in results]
        assert any("using the ID token saved in" in err for _, err in results[:2])
        assert "claimed" not in s.log("dex").lower()


@pytest.mark.stack
def test_a_refresh_token_rotated_away_or_killed_by_another_login_is_login_required(
    sso: SsoStack, tmp_path: Path
) -> None:
    cache = tmp_path / "tokens.json"
    logged_in(sso, cache)
    spent = tmp_path / "spent.json"
    shutil.copy(cache, spent)
    assert outcome(worker(sso, cache, force=True))[0]["refreshes"] == 1
    # A cache put back from before the rotation holds a refresh token Dex already rotated.
    shutil.copy(spent, cache)
    m = KFPClientManager(sso.api_url, login="device", token_cache=cache, prompt=User(sso, walk=False))
    with pytest.raises(LoginRequiredError) as ei:
        m.get_bearer_token(force_refresh=True)
    msg = str(ei.value)
    assert "already been claimed" in msg and "kfp-auth login --device" in msg, msg
    assert not SECRET_LIKE.search(msg + repr(vars(ei.value)))
    assert entries(cache) == {}, "the dead login is removed for every process"
    assert "claimed" in sso.log("dex").lower(), "Dex's log shows a reuse (what the other tests check is absent)"

    # A new login of the same user elsewhere (not through the cache) kills the saved one.
    logged_in(sso, cache)
    KFPClientManager(sso.api_url, login="device", token_cache=False, prompt=User(sso)).get_bearer_token()
    r = run(["token", "--url", sso.api_url, "--token-cache", str(cache)], tmp_path)
    assert r.returncode == 0, "the saved ID token is still fresh: no refresh needed"
    with pytest.raises(LoginRequiredError, match="already been claimed"):
        KFPClientManager(sso.api_url, login="device", token_cache=cache).get_bearer_token(force_refresh=True)


@pytest.mark.stack
def test_dex_restarted_a_saved_login_ends_in_login_required_and_token_says_to_log_in(tmp_path: Path) -> None:
    with start_sso_stack(tmp_path / "sso", id_token_expiry="3s") as s:
        cache = tmp_path / "tokens.json"
        user = User(s)
        m = KFPClientManager(s.api_url, login="device", token_cache=cache, prompt=user)
        m.get_bearer_token()
        s.restart("dex")  # memory storage: the refresh token is gone
        time.sleep(3)  # the saved ID token expires
        r = run(["token", "--url", s.api_url, "--token-cache", str(cache)], tmp_path)
        assert r.returncode == 3 and r.stdout == "", r
        assert "Dex no longer accepts this login's refresh token" in r.stderr
        assert "kfp-auth login --device" in r.stderr
        assert not SECRET_LIKE.search(r.stderr)
        # The dead login was removed: the next call says there is none, at once.
        r = run(["token", "--url", s.api_url, "--token-cache", str(cache)], tmp_path)
        assert r.returncode == 3 and "no saved login" in r.stderr, r
        # The manager of the first process gets the error too, with no prompt.
        with pytest.raises(LoginRequiredError, match="log in again"):
            m.get_bearer_token()
        assert user.kinds() == ["code", "done"]


def cli_device_login(s: SsoStack, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kfp-auth login --device`, with the user walking the pages it shows on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_", "XDG_"))}
    env["HOME"] = str(home)
    p = subprocess.Popen(
        [str(Path(sys.executable).parent / "kfp-auth"), "login", "--device", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stderr is not None
    lines = [p.stderr.readline() for _ in range(2)]
    url = lines[1].strip()
    assert url.startswith(f"{s.gateway_url}/dex/device?user_code="), lines
    walker = threading.Thread(target=Browser(s.user, s.password, connector=s.connector_id).walk, args=(url,))
    walker.start()
    out, err = p.communicate(timeout=60)
    walker.join()
    return subprocess.CompletedProcess(p.args, p.returncode, out, "".join(lines) + err)


@pytest.mark.stack
def test_cli_login_device_token_inspect_logout(sso: SsoStack, tmp_path: Path) -> None:
    cache = tmp_path / ".cache" / "kfp-auth" / "tokens.json"  # the default under the command's HOME
    plant(cache, OTHERS)
    r = cli_device_login(sso, tmp_path, "--url", sso.api_url, "-c", CONNECTOR_ID)
    assert r.returncode == 0 and r.stdout == "", r
    assert f"logged in to {sso.api_url} as {IDP_USER}; the login is saved in {cache}" in r.stderr
    assert not SECRET_LIKE.search(r.stderr), "no token on stderr"

    # `token` from the endpoint alone (the environment's), as a bearer token at the gateway.
    started = time.monotonic()
    r = run(["token"], tmp_path, extra_env={"KF_PIPELINES_ENDPOINT": sso.api_url})
    took = time.monotonic() - started
    assert r.returncode == 0 and r.stderr == "", r
    token = r.stdout.strip()
    assert r.stdout == token + "\n" and jwt_claims(token)["email"] == IDP_USER
    assert api_get(sso.experiments_url, token)[0] == 200
    assert took < 5, took
    assert run(["token", "--url", sso.api_url + "/", "-c", CONNECTOR_ID, "-u", IDP_USER], tmp_path).stdout == r.stdout
    other = run(["token", "--url", sso.api_url, "-u", "bob@corp.example"], tmp_path)
    assert other.returncode == 3 and "user bob@corp.example" in other.stderr
    # `inspect` decodes it without printing it.
    r = run(["inspect", "--stdin"], tmp_path, stdin=token)
    assert r.returncode == 0 and token not in r.stdout + r.stderr
    assert f"issuer:   {sso.issuer}" in r.stdout

    # `logout` removes that login and no other.
    r = run(["logout", "--url", sso.api_url], tmp_path)
    assert r.returncode == 0 and f"logged out {IDP_USER}" in r.stderr, r
    assert entries(cache) == OTHERS
    r = run(["token", "--url", sso.api_url], tmp_path)
    assert r.returncode == 3 and "kfp-auth login --device" in r.stderr
    # Several logins for one endpoint: logout asks which.
    r = run(["logout", "--url", "https://other.example/pipeline"], tmp_path)
    assert r.returncode == 2 and "bob@corp.example" in r.stderr and "carol@corp.example" in r.stderr
    r = run(["logout", "--url", "https://other.example/pipeline", "-u", "bob@corp.example"], tmp_path)
    assert r.returncode == 0 and list(entries(cache)) == [next(k for k in OTHERS if "carol" in k)]
    r = run(["logout", "--all"], tmp_path)
    assert r.returncode == 0 and not cache.exists()


@pytest.mark.stack
def test_cli_login_browser_saves_the_login_for_token(sso: SsoStack, tmp_path: Path) -> None:
    # $BROWSER is the test browser, logging in as the IdP user through the real pages.
    env = {
        "BROWSER": browser_command(tmp_path),
        "TEST_BROWSER_USERNAME": IDP_USER,
        "TEST_BROWSER_PASSWORD": sso.password,
        "TEST_BROWSER_CONNECTOR": CONNECTOR_ID,
        "TEST_BROWSER_DETACH": "1",
    }
    r = run(["login", "--browser", "--url", sso.api_url, "-c", CONNECTOR_ID], tmp_path, extra_env=env)
    assert r.returncode == 0 and r.stdout == "", r
    assert f"as {IDP_USER}; the login is saved in" in r.stderr
    saved = entries(tmp_path / ".cache" / "kfp-auth" / "tokens.json")
    assert [e["user"] for e in saved.values()] == [IDP_USER]
    # The page to open by hand is shown (its PKCE challenge and state are public); no token is.
    (login,) = saved.values()
    assert login["id_token"] not in r.stderr and login["refresh_token"] not in r.stderr
    r = run(["token", "--url", sso.api_url], tmp_path)
    assert r.returncode == 0 and api_get(sso.experiments_url, r.stdout.strip())[0] == 200, r
