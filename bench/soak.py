"""A soak: many long-lived sessions against the local real stack, with short-lived cookies.

    .venv/bin/python bench/soak.py --duration 600     # make soak (10 minutes)
    .venv/bin/python bench/soak.py --duration 60      # make soak-ci (60 s; part of make test)

One process holds 100 KFPClientManager sessions (over 50 Dex users, two each) and a
kfp.Client per session, against the real Dex and oauth2-proxy, with oauth2-proxy's
cookies lasting 20 s: every session is renewed again and again while a few threads keep
calling the API (list_experiments in each user's own namespace). After a warm-up of one
cookie lifetime (every session renewed once), it measures for the duration and prints:
errors, open file descriptors (/proc/self/fd) and RSS at start and end, logins per
minute (from manager.logins, cross-checked with Dex's own log), and requests made.

This is a report with a verdict: it exits 1 if any call failed, if no session was
renewed while measuring (then it proved nothing), or if descriptors or RSS grew beyond
the noise bounds below, so `make soak-ci` can fail. It never prints a credential:
failures are shown by type, and by message only for kfp-auth's own (redacted) errors.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import kfp_auth  # noqa: E402
import stack  # noqa: E402
from kfp_auth import KFPClientManager  # noqa: E402

# Noise bounds between the start (after warm-up) and the end of the measured run. The
# descriptors are sockets and files: each kfp.Client keeps one pooled connection, which
# the gateway may close when idle and urllib3 reopens; the login client's pool varies by
# a few. RSS is taken after glibc's malloc_trim(0), so that freed memory the allocator
# keeps (which made the raw RSS creep by about 0.25 MiB a minute here, while the trimmed
# figure stayed within 0.3 MiB over 5 minutes) is not taken for a leak; the raw figure is
# printed too. A leak of one descriptor per login, or of 4 KiB per login over a 10-minute
# run (about 3 800 logins), exceeds the bounds.
FD_BOUND = 20
RSS_BOUND_MIB = 16.0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _libc_trim() -> object | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: the RSS figures are raw


MALLOC_TRIM = _libc_trim()


def dex_logins(s: stack.Stack) -> int:
    log = (s.workdir / "dex.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "login successful" in line)


def describe(e: BaseException) -> str:
    """A failure, safe to print: kfp-auth's messages are redacted; others (kfp's ApiException
    prints the response headers, which may hold a Set-Cookie) by type and status only."""
    if isinstance(e, kfp_auth.KFPAuthError):
        return f"{type(e).__name__}: {e}"
    status = getattr(e, "status", None)
    return type(e).__name__ + (f" (HTTP {status})" if status is not None else "")


class Soak:
    def __init__(self, s: stack.Stack, sessions: int, users: int) -> None:
        self.stack = s
        self.users = stack.many_users(users)
        self.sessions: list[tuple[KFPClientManager, str]] = []
        for i in range(sessions):
            user, ns = self.users[i % users]
            self.sessions.append((KFPClientManager(s.api_url, user, stack.FAST_PASSWORD), ns))
        self.clients: list[object] = [None] * sessions
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def logins(self) -> int:
        return sum(m.logins for m, _ in self.sessions)

    def _fail(self, e: BaseException) -> None:
        with self.lock:
            self.errors[describe(e)] += 1

    def work(self, mine: list[int], pause: float) -> None:
        done = 0
        while not self.stop.is_set():
            for i in mine:
                if self.stop.is_set():
                    break
                m, ns = self.sessions[i]
                try:
                    if self.clients[i] is None:
                        self.clients[i] = m.create_kfp_client()
                    self.clients[i].list_experiments(namespace=ns)  # type: ignore[attr-defined]
                    done += 1
                except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                    self._fail(e)
                if pause:
                    self.stop.wait(pause)
            with self.lock:
                self.requests += done
            done = 0


def snapshot(soak: Soak) -> dict[str, float]:
    gc.collect()
    with soak.lock:
        raw = rss_mib()
        if MALLOC_TRIM is not None:
            MALLOC_TRIM(0)  # type: ignore[operator]
        return {
            "t": time.monotonic(),
            "fds": fds(),
            "raw_rss": raw,
            "rss": rss_mib(),
            "logins": soak.logins(),
            "dex": dex_logins(soak.stack),
            "requests": soak.requests,
            "errors": sum(soak.errors.values()),
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds measured, after the warm-up")
    p.add_argument("--sessions", type=int, default=100, help="KFPClientManager sessions held at once")
    p.add_argument("--users", type=int, default=50, help="distinct Dex users they belong to")
    p.add_argument("--threads", type=int, default=4, help="threads calling the API")
    p.add_argument("--cookie-expire", default="20s", help="oauth2-proxy's --cookie-expire")
    p.add_argument("--pause", type=float, default=0.02, help="seconds each thread waits between calls")
    a = p.parse_args()
    lifetime = float(a.cookie_expire.rstrip("s"))
    warmup = lifetime + 5

    os.environ.setdefault("HOME", tempfile.mkdtemp(prefix="kfp-auth-soak-home-"))
    with (
        tempfile.TemporaryDirectory(prefix="kfp-auth-soak-") as d,
        stack.start_kubeflow_stack(Path(d), cookie_expire=a.cookie_expire, extra_users=a.users) as s,
    ):
        v = stack.versions()
        print(
            f"soak: {a.sessions} sessions over {a.users} users, {a.threads} threads, cookies last "
            f"{a.cookie_expire}, {a.duration:.0f} s measured after a {warmup:.0f} s warm-up; dex {v['dex']}, "
            f"oauth2-proxy {v['oauth2-proxy']}, {os.cpu_count()} cores",
            flush=True,
        )
        trimmed = " (after malloc_trim)" if MALLOC_TRIM is not None else " (raw)"
        soak = Soak(s, a.sessions, a.users)
        threads = [
            threading.Thread(target=soak.work, args=(list(range(k, a.sessions, a.threads)), a.pause), daemon=True)
            for k in range(a.threads)
        ]
        for t in threads:
            t.start()
        time.sleep(warmup)
        start = snapshot(soak)
        print(
            f"  start (after warm-up): {start['fds']} fds, RSS {start['rss']:.1f} MiB{trimmed}, "
            f"{start['logins']} logins and {start['requests']} requests so far",
            flush=True,
        )
        step = min(60.0, a.duration / 4)
        end_at = start["t"] + a.duration
        while (left := end_at - time.monotonic()) > 0:
            time.sleep(min(step, left))
            now = snapshot(soak)
            print(
                f"  +{now['t'] - start['t']:5.0f} s: {now['requests'] - start['requests']:7} requests, "
                f"{now['logins'] - start['logins']:5} logins, {now['fds']} fds, RSS {now['rss']:.1f} MiB, "
                f"{now['errors']} errors",
                flush=True,
            )
        soak.stop.set()
        for t in threads:
            t.join(60)
        end = snapshot(soak)

        minutes = (end["t"] - start["t"]) / 60
        logins = end["logins"] - start["logins"]
        requests = end["requests"] - start["requests"]
        print("results:")
        print(f"  duration measured:  {end['t'] - start['t']:.0f} s (plus {warmup:.0f} s warm-up)")
        print(f"  errors:             {end['errors']} (whole run, warm-up included)")
        for what, n in soak.errors.most_common(10):
            print(f"    {n:6} x {what}")
        print(
            f"  file descriptors:   {start['fds']} at start, {end['fds']} at end "
            f"({end['fds'] - start['fds']:+d}; bound +{FD_BOUND})"
        )
        print(
            f"  RSS:                {start['rss']:.1f} MiB at start, {end['rss']:.1f} MiB at end{trimmed} "
            f"({end['rss'] - start['rss']:+.1f} MiB; bound +{RSS_BOUND_MIB:.0f} MiB)"
        )
        print(
            f"  RSS, raw:           {start['raw_rss']:.1f} MiB at start, {end['raw_rss']:.1f} MiB at end "
            f"({end['raw_rss'] - start['raw_rss']:+.1f} MiB)"
        )
        if logins:
            print(f"  RSS per login:      {(end['rss'] - start['rss']) * 2**20 / logins:+.0f} bytes")
        print(
            f"  logins:             {logins} ({logins / minutes:.0f} per minute; Dex logged "
            f"{end['dex'] - start['dex']} successful logins in the same time)"
        )
        print(f"  API requests:       {requests} ({requests / (minutes * 60):.1f} per second)")

        failures = []
        if end["errors"]:
            failures.append(f"{end['errors']} calls failed")
        if logins == 0:
            failures.append("no session was renewed while measuring: the soak exercised no expiry")
        if end["fds"] - start["fds"] > FD_BOUND:
            failures.append(f"file descriptors grew by {end['fds'] - start['fds']} (bound {FD_BOUND})")
        if end["rss"] - start["rss"] > RSS_BOUND_MIB:
            failures.append(f"RSS grew by {end['rss'] - start['rss']:.1f} MiB (bound {RSS_BOUND_MIB:.0f} MiB)")
        if any(t.is_alive() for t in threads):
            failures.append("a worker thread did not stop within 60 s")
        if failures:
            print("FAIL: " + "; ".join(failures))
            return 1
        print("PASS")
        return 0


if __name__ == "__main__":
    sys.exit(main())
