"""The opt-in session cache on disk, across real processes, on the real stack."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import FAST_PASSWORD, FAST_USER, PASSWORD, USER, Stack
from stack.hostile_server import SESSION_COOKIE, HostileServer, script_login

CHILD = """
import hashlib, os, sys, time
from kfp_auth import KFPClientManager
url, user, password, cache, mode, start_when = sys.argv[1:7]
m = KFPClientManager(url, user, password, session_cache=cache)
while start_when and not os.path.exists(start_when):
    time.sleep(0.005)
if mode == "force":
    m.get_session_cookies(force_login=True)
    sys.exit(0)
if mode == "loop":
    print("ready", flush=True)
    while True:
        m.get_session_cookies(force_login=True)
cookies = m.get_session_cookies()
print(m.logins, cookies.split("=", 1)[0], hashlib.sha256(cookies.encode()).hexdigest(), flush=True)
"""


def child(
    s: Stack,
    cache: Path,
    mode: str = "once",
    user: str = FAST_USER,
    password: str = FAST_PASSWORD,
    start_when: Path | None = None,
    pause_ms: int | None = None,
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if pause_ms is not None:
        env["KFP_AUTH_TEST_PAUSE_BEFORE_RENAME_MS"] = str(pause_ms)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, s.api_url, user, password, str(cache), mode, str(start_when or "")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(p: subprocess.Popen[str]) -> list[str]:
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return out.split()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_second_process_reuses_the_session(kubeflow: Stack, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "sessions.json"
    before = kubeflow.logins_at_dex(USER)
    logins, name, first = finish(child(kubeflow, cache, user=USER, password=PASSWORD))
    assert (logins, name) == ("1", "oauth2_proxy_kubeflow")
    logins, _, second = finish(child(kubeflow, cache, user=USER, password=PASSWORD))
    assert logins == "0" and second == first
    assert kubeflow.logins_at_dex(USER) == before + 1

    assert mode_of(cache) == 0o600 and mode_of(cache.parent) == 0o700
    raw = cache.read_text()
    assert PASSWORD not in raw and "password" not in raw
    data = json.loads(raw)
    assert list(data["sessions"]) == [f"local:{USER}@{kubeflow.api_url}"]


def test_two_processes_at_once_log_in_once(kubeflow: Stack, tmp_path: Path) -> None:
    cache = tmp_path / "sessions.json"
    go = tmp_path / "go"
    before = kubeflow.logins_at_dex(USER)
    # Both wait for the same signal, then log in as the cost-12 user (~0.25 s at Dex): they overlap.
    a, b = (child(kubeflow, cache, user=USER, password=PASSWORD, start_when=go) for _ in range(2))
    time.sleep(1.0)  # both are up and waiting
    go.touch()
    ra, rb = finish(a), finish(b)
    assert sorted([ra[0], rb[0]]) == ["0", "1"]  # one logged in, the other waited for it and reused it
    assert ra[2] == rb[2]
    assert kubeflow.logins_at_dex(USER) == before + 1


def test_kill_9_between_write_and_rename_leaves_the_file_whole(kubeflow: Stack, tmp_path: Path) -> None:
    """The extension is a debug build, whose cache writer can be told to pause before its rename."""
    cache = tmp_path / "sessions.json"
    finish(child(kubeflow, cache))  # a first, complete file
    whole = cache.read_text()
    p = child(kubeflow, cache, mode="force", pause_ms=5000)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".kfp-auth-sessions.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".kfp-auth-sessions.*")), "the writer never reached its pause"
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    for f in (p.stdout, p.stderr):
        assert f is not None
        f.close()
    assert cache.read_text() == whole  # the old file, untouched
    # The next writer removes the half-done temporary file, and the result is whole.
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    m.get_session_cookies(force_login=True)
    assert not list(tmp_path.glob(".kfp-auth-sessions.*"))
    assert json.loads(cache.read_text())["version"] == 1


def test_kill_9_at_random_points_never_corrupts_the_file(kubeflow: Stack, tmp_path: Path) -> None:
    cache = tmp_path / "sessions.json"
    rng = random.Random(7)
    for _ in range(6):
        p = child(kubeflow, cache, mode="loop")
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        for f in (p.stdout, p.stderr):
            assert f is not None
            f.close()
        if cache.exists():
            json.loads(cache.read_text())
            assert mode_of(cache) == 0o600
    # A new process uses what the killed ones left, without a warning.
    assert cache.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
        assert m.get_session_cookies().startswith("oauth2_proxy_kubeflow=")
    assert m.logins == 0


def test_a_corrupt_file_is_replaced_with_a_warning(kubeflow: Stack, tmp_path: Path) -> None:
    cache = tmp_path / "sessions.json"
    cache.write_text('{"version": 1, "sessions": {"x": {"cookies": 5')
    os.chmod(cache, 0o600)
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    with pytest.warns(RuntimeWarning, match=r"is corrupt \(at line 1, column \d+\); starting it afresh"):
        cookies = m.get_session_cookies()
    assert cookies.startswith("oauth2_proxy_kubeflow=") and m.logins == 1
    assert json.loads(cache.read_text())["version"] == 1


def test_a_file_others_can_read_is_refused(kubeflow: Stack, tmp_path: Path) -> None:
    cache = tmp_path / "sessions.json"
    cache.write_text('{"version": 1, "sessions": {}}')
    os.chmod(cache, 0o644)
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    with pytest.raises(kfp_auth.SessionCacheError, match=r"readable by other users \(mode 644\).*chmod 600"):
        m.get_session_cookies()
    assert m.logins == 0


def test_expired_entries_are_ignored(kubeflow: Stack, tmp_path: Path) -> None:
    cache = tmp_path / "sessions.json"
    key = f"local:{FAST_USER}@{kubeflow.api_url}"
    past = int(time.time()) - 10
    cache.write_text(
        json.dumps(
            {
                "version": 1,
                "sessions": {
                    key: {"cookies": "oauth2_proxy_kubeflow=stale", "refresh_at": past, "saved_at": past - 100}
                },
            }
        )
    )
    os.chmod(cache, 0o600)
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    assert m.get_session_cookies() != "oauth2_proxy_kubeflow=stale"
    assert m.logins == 1


def test_a_session_rejected_by_the_gateway_is_replaced_in_the_cache_for_other_processes(
    own_kubeflow: Stack, tmp_path: Path
) -> None:
    cache = tmp_path / "sessions.json"
    m = KFPClientManager(own_kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    client = m.create_kfp_client()
    own_kubeflow.restart_gateway(new_cookie_secret=True)
    client.list_experiments(namespace="kubeflow-fast-example-com")
    assert m.logins == 2
    # The cache now holds the new session, which another process can use.
    other = KFPClientManager(own_kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    assert other.get_session_cookies() == m.get_session_cookies()
    assert other.logins == 0


# -- Attacks on the cache's folder and files (issue 16). A scripted server stands in for the
#    gateway, so these need no stack. ---------------------------------------------------------

OTHER_UID = 4242  # a user other than this one, for the folders an attacker would own


def _cached(cache: Path, url: str, cookies: str) -> None:
    """Write `cache` as a valid file holding `cookies` for a login to `url`, private."""
    cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = int(time.time())
    cache.write_text(
        json.dumps(
            {
                "version": 1,
                "sessions": {
                    f"local:{FAST_USER}@{url}": {"cookies": cookies, "refresh_at": now + 3600, "saved_at": now}
                },
            }
        )
    )
    cache.chmod(0o600)


def _wait_for_a_blocked_lock(lock: Path, seconds: float = 20) -> None:
    """Until a process waits for the flock on `lock` (a `->` line in /proc/locks)."""
    inode = f":{lock.stat().st_ino} "
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any("->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()):
            return
        time.sleep(0.01)
    raise AssertionError("the session cache never waited for the lock")


@pytest.fixture
def gateway() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        script_login(srv)
        yield srv


@pytest.mark.parametrize("entry", ["cached", "logged-in"])
def test_a_folder_swapped_between_check_and_use_is_not_used(gateway: HostileServer, tmp_path: Path, entry: str) -> None:
    """Someone who can rename the cache's folder swaps in their own between the checks and
    the read (or, after a login, the write). The cache keeps to the folder it checked: it
    reads the session there, and writes the new one there. Emulated with the lock: while
    this test holds it, the cache has checked its folder and waits; then the swap."""
    url = gateway.url + "/pipeline"
    folder = tmp_path / "cache"
    cache = folder / "sessions.json"
    if entry == "cached":
        _cached(cache, url, "victim=v1")
    else:
        folder.mkdir(mode=0o700)
    lock = folder / "sessions.json.lock"
    lock.touch(mode=0o600)
    got: list[object] = []
    m = KFPClientManager(url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: got.append(_cookies_or_error(m)))
        t.start()
        _wait_for_a_blocked_lock(lock)
        folder.rename(tmp_path / "checked")
        _cached(cache, url, "attacker=a1")  # the same path, now the attacker's folder and file
    t.join(30)
    assert not t.is_alive()
    checked = json.loads((tmp_path / "checked" / "sessions.json").read_text())["sessions"]
    planted = json.loads(cache.read_text())["sessions"]
    if entry == "cached":
        assert got == ["victim=v1"]
    else:
        assert got == [f"{SESSION_COOKIE}=s3ss10n"] and m.logins == 1
        # The new session went to the folder that was checked, not to the planted one.
        assert [e["cookies"] for e in checked.values()] == [f"{SESSION_COOKIE}=s3ss10n"]
    assert [e["cookies"] for e in planted.values()] == ["attacker=a1"]


def _cookies_or_error(m: KFPClientManager) -> object:
    try:
        return m.get_session_cookies()
    except kfp_auth.KFPAuthError as e:
        return e


def test_a_lock_file_planted_as_a_link_is_not_followed(gateway: HostileServer, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "sessions.json.lock").symlink_to(elsewhere / "created-by-the-victim")
    m = KFPClientManager(gateway.url + "/pipeline", FAST_USER, FAST_PASSWORD, session_cache=folder / "sessions.json")
    with pytest.raises(kfp_auth.SessionCacheError, match="lock file .*is a link") as ei:
        m.get_session_cookies()
    assert not (elsewhere / "created-by-the-victim").exists()  # O_CREAT did not follow the link
    assert m.logins == 0 and "refusing" in str(ei.value)


def test_a_data_file_planted_as_a_link_is_refused(gateway: HostileServer, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    theirs = tmp_path / "theirs" / "sessions.json"
    _cached(theirs, gateway.url + "/pipeline", "attacker=a1")
    folder.mkdir(mode=0o700)
    (folder / "sessions.json").symlink_to(theirs)
    m = KFPClientManager(gateway.url + "/pipeline", FAST_USER, FAST_PASSWORD, session_cache=folder / "sessions.json")
    with pytest.raises(kfp_auth.SessionCacheError, match="not a regular file"):
        m.get_session_cookies()
    assert m.logins == 0


@pytest.mark.parametrize(
    "mode,owner,refused",
    [
        (0o775, 0, "group"),
        (0o757, 0, "others"),
        (0o755, OTHER_UID, f"uid {OTHER_UID}"),
        (0o1777, OTHER_UID, f"uid {OTHER_UID}"),
        (0o1777, 0, None),
        (0o755, 0, None),
    ],
    ids=["group-writable", "world-writable", "another-users", "sticky-but-not-root", "sticky-root", "private"],
)
def test_an_ancestor_others_can_write_is_refused(
    gateway: HostileServer, tmp_path: Path, mode: int, owner: int, refused: str | None
) -> None:
    """Whoever can write a folder above the cache can rename the folders below it: such an
    ancestor is refused, unless it is sticky and root's (as /tmp is), where only an entry's
    owner may rename it. (This test runs as root: root owns what it makes.)"""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (as `make test` runs in CI), to give a folder to another user")
    above = tmp_path / "above"
    above.mkdir()
    cache = above / "mine" / "sessions.json"
    _cached(cache, gateway.url + "/pipeline", "victim=v1")
    os.chown(above, owner, -1)
    above.chmod(mode)
    m = KFPClientManager(gateway.url + "/pipeline", FAST_USER, FAST_PASSWORD, session_cache=cache)
    if refused is None:
        assert m.get_session_cookies() == "victim=v1"
        return
    with pytest.raises(kfp_auth.SessionCacheError) as ei:
        m.get_session_cookies()
    msg = str(ei.value)
    assert str(above) in msg and refused in msg and "can rename" in msg, msg
    assert m.logins == 0


def test_the_cache_under_tmp_is_allowed(gateway: HostileServer) -> None:
    """/tmp itself is world-writable, sticky and root's: a private folder in it is fine."""
    folder = Path(tempfile.mkdtemp())  # 0700, in the system's temporary folder
    try:
        assert os.stat(folder.parent).st_mode & stat.S_ISVTX
        m = KFPClientManager(gateway.url + "/pipeline", FAST_USER, FAST_PASSWORD, session_cache=folder / "s.json")
        assert m.get_session_cookies() == f"{SESSION_COOKIE}=s3ss10n"
        assert stat.S_IMODE((folder / "s.json").stat().st_mode) == 0o600
    finally:
        shutil.rmtree(folder)
