"""The opt-in session cache on disk, across real processes, on the real stack."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from stack import FAST_PASSWORD, FAST_USER, PASSWORD, USER, Stack

import kfp_auth
from kfp_auth import KFPClientManager

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


def child(s: Stack, cache: Path, mode: str = "once", user: str = FAST_USER, password: str = FAST_PASSWORD,
          start_when: Path | None = None, pause_ms: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if pause_ms is not None:
        env["KFP_AUTH_TEST_PAUSE_BEFORE_RENAME_MS"] = str(pause_ms)
    return subprocess.Popen([sys.executable, "-c", CHILD, s.api_url, user, password, str(cache), mode,
                             str(start_when or "")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


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
    cache.write_text(json.dumps({"version": 1, "sessions": {
        key: {"cookies": "oauth2_proxy_kubeflow=stale", "refresh_at": past, "saved_at": past - 100}}}))
    os.chmod(cache, 0o600)
    m = KFPClientManager(kubeflow.api_url, FAST_USER, FAST_PASSWORD, session_cache=cache)
    assert m.get_session_cookies() != "oauth2_proxy_kubeflow=stale"
    assert m.logins == 1


def test_a_session_rejected_by_the_gateway_is_replaced_in_the_cache_for_other_processes(
        own_kubeflow: Stack, tmp_path: Path) -> None:
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
