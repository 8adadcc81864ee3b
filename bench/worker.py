"""One benchmark measurement in a process of its own, so its peak RSS and CPU are its own.

    python bench/worker.py imports  STATEMENT
    python bench/worker.py concurrent --impl kfp-auth|baseline --api URL --users N [--pool K] [--documented-imports]

The users are the stack's `user<i>@example.com`; their password comes in
$KFP_BENCH_PASSWORD (never an argument). The worker imports nothing of the
test stack, so its memory is the login's alone.

Prints one JSON object, with the process's peak RSS (VmHWM: `wait4`'s
ru_maxrss would count the parent's memory at fork time too). The parent
(bench/run.py) reads the process's CPU time from `os.wait4`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def imports(statement: str) -> dict:
    t = time.perf_counter()
    exec(statement, {})
    return {"wall": time.perf_counter() - t}


def concurrent(impl: str, api: str, users: int, pool: int, documented_imports: bool) -> dict:
    password = os.environ["KFP_BENCH_PASSWORD"]
    emails = [f"user{i}@example.com" for i in range(users)]  # stack.many_users
    if impl == "kfp-auth":
        import asyncio

        from kfp_auth import KFPClientManager

        async def run() -> list[str]:
            managers = [KFPClientManager(api, e, password) for e in emails]
            return await asyncio.gather(*(m.get_session_cookies_async() for m in managers))

        t = time.perf_counter()
        cookies = asyncio.run(run())
    else:
        from concurrent.futures import ThreadPoolExecutor

        import baseline

        if documented_imports:  # the documented class's module imports kfp too
            exec(baseline.DOCUMENTED_IMPORTS, {})
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=pool) as ex:
            cookies = list(ex.map(lambda e: baseline.session_cookies(api, e, password), emails))
    wall = time.perf_counter() - t
    return {"wall": wall, "sessions": sum(1 for c in cookies if c)}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("imports")
    i.add_argument("statement")
    c = sub.add_parser("concurrent")
    c.add_argument("--impl", choices=["kfp-auth", "baseline"], required=True)
    c.add_argument("--api", required=True)
    c.add_argument("--users", type=int, required=True)
    c.add_argument("--pool", type=int, default=200)
    c.add_argument("--documented-imports", action="store_true")
    a = p.parse_args()
    out = (
        imports(a.statement)
        if a.what == "imports"
        else concurrent(a.impl, a.api, a.users, a.pool, a.documented_imports)
    )
    status = Path("/proc/self/status").read_text()
    out["peak_rss_kib"] = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
