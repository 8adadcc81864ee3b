"""Figures for long-lived sessions, from one run against the local real stack.

    .venv/bin/python bench/sessions.py

1. Logins (and gateway round trips) for 10 successive create_kfp_client() calls:
   a fresh login each time (the documented class's behaviour, here with
   force_login=True) against kfp-auth's session reuse.
2. Logins for 50 threads that all need a session at once.
3. Wall time of 200 concurrent asyncio logins against 200 sequential ones
   (200 managers, one user, Dex's bcrypt cost 10).

Counts come from Dex's own log ("login successful") and oauth2-proxy's request
log. This is a report, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import stack  # noqa: E402
from kfp_auth import KFPClientManager  # noqa: E402


def main() -> None:
    os.environ.setdefault("HOME", tempfile.mkdtemp())
    with tempfile.TemporaryDirectory() as d, stack.start_kubeflow_stack(Path(d)) as s:
        mk = lambda: KFPClientManager(s.api_url, stack.FAST_USER, stack.FAST_PASSWORD)  # noqa: E731
        print(
            f"stack: dex {stack.versions()['dex']}, oauth2-proxy {stack.versions()['oauth2-proxy']}, "
            f"{os.cpu_count()} cores"
        )

        for label, force in (("fresh login each time", True), ("session reuse", False)):
            m = mk()
            dex0, gw0 = s.logins_at_dex(stack.FAST_USER), s.gateway_requests()
            t = time.perf_counter()
            for _ in range(10):
                m.create_kfp_client(force_login=force)
            took = time.perf_counter() - t
            print(
                f"10 x create_kfp_client, {label:22}: {s.logins_at_dex(stack.FAST_USER) - dex0:2} logins at Dex, "
                f"{s.gateway_requests() - gw0:3} gateway requests (incl. kfp's healthz), {took:.2f} s"
            )

        m = mk()
        dex0 = s.logins_at_dex(stack.FAST_USER)
        barrier = threading.Barrier(50)
        threads = [threading.Thread(target=lambda: (barrier.wait(), m.get_session_cookies())) for _ in range(50)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        print(
            f"50 threads needing a session at once: {s.logins_at_dex(stack.FAST_USER) - dex0} login(s) at Dex, "
            f"manager.logins = {m.logins}"
        )

        managers = [mk() for _ in range(200)]
        t = time.perf_counter()
        for x in managers:
            x.get_session_cookies()
        sequential = time.perf_counter() - t

        async def concurrent() -> float:
            ms = [mk() for _ in range(200)]
            t = time.perf_counter()
            await asyncio.gather(*(x.get_session_cookies_async() for x in ms))
            return time.perf_counter() - t

        conc = asyncio.run(concurrent())
        print(
            f"200 logins: sequential {sequential:.2f} s, concurrent asyncio {conc:.2f} s "
            f"(ratio {sequential / conc:.2f}x; Dex's bcrypt on {os.cpu_count()} cores is the floor)"
        )


if __name__ == "__main__":
    main()
