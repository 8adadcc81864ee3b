"""kfp-auth against the pure-Python baseline (bench/baseline.py), side by side, in one run.

    make bench        (a release build in its own venv; writes bench/RESULTS.md,
                       bench/results.txt and bench/ratios.png)

Everything runs against the local real stack the tests use: the real Dex and
the real oauth2-proxy (and, for Kubeflow <= 1.8, the oidc-authservice and
Envoy test doubles), in front of the KFP API test server. Within each figure
the baseline and kfp-auth alternate, and the figures are medians with their
spread (the 25th to 75th percentile) and ratios: absolute times on a shared
2-core machine mean little. This is a report: nothing here passes or fails,
and no test depends on it.

B1 round trips per fresh login, per gateway shape, counted at the gateway
B2 client CPU (user+sys of this process) per login, 200 sequential logins
B3 10 successive create_kfp_client() calls in one process
B4 import cost, wall and peak RSS, each in a fresh interpreter
B5 200 concurrent logins of 200 distinct users: asyncio against a thread pool
B6 per-request time of a kfp-auth kfp.Client against a bare one, same cookie
B7 SSO: a renewal by refresh token against a fresh password login, server CPU and wall
B8 `kfp-auth token` from a warm token cache in a fresh process, against `python -c pass`
B9 per-call cost of kfp's credentials hook on kfp-auth's credentials, against kfp's own file credentials
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import baseline  # noqa: E402

import kfp_auth  # noqa: E402
import stack  # noqa: E402
from kfp_auth import KFPClientManager  # noqa: E402
from stack.authservice import gateway_requests as authservice_requests  # noqa: E402
from stack.authservice import start_authservice_stack  # noqa: E402
from stack.device_user import User  # noqa: E402
from stack.sso import start_sso_stack  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SSO_REFRESH = "refresh, oidc connector (IdP)"
IMPLS = ("baseline", "kfp-auth")

# The fewest requests a client that is told only api_url and the credentials
# can log in with, per shape (docs/benchmarks.md, "Round trips"):
#   GET api_url            the only way to learn whether and how it is guarded
#   GET /oauth2/start      oauth2-proxy's CSRF cookie, state and PKCE challenge
#   GET <dex>/auth/<id>    Dex makes the auth request whose id the form posts back
#   POST the credentials   straight to Dex's form URL, which Dex fixes
#   POST the approval      (1.9's approval screen) straight to Dex's approval URL
#   GET the callback       the gateway redeems the code and sets the session
MINIMUM = {
    "1.10+ oauth2-proxy": 5,
    "1.9 approval screen": 6,
    "two connectors (LDAP too)": 5,
    "<=1.8 oidc-authservice": 4,
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def order(i: int) -> tuple[str, str]:
    """Alternate which implementation goes first, round by round."""
    return IMPLS if i % 2 == 0 else IMPLS[::-1]


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def fmt_ms(xs: list[float]) -> str:
    lo, hi = spread(xs)
    return f"{median(xs) * 1e3:8.2f} ms ({lo * 1e3:.2f}-{hi * 1e3:.2f})"


# B1 -------------------------------------------------------------------------------------------


@contextmanager
def shape_stacks(workdir: Path) -> Iterator[list[tuple[str, stack.Stack, Callable[[stack.Stack], int]]]]:
    stacks = []
    try:
        for name, kw in (
            ("1.9 approval screen", {"skip_approval": False}),
            ("two connectors (LDAP too)", {"ldap": True}),
        ):
            s = stack.start_kubeflow_stack(workdir / name.split()[0], **kw)
            stacks.append((name, s, stack.Stack.gateway_requests))
        stacks.append(
            (
                "<=1.8 oidc-authservice",
                start_authservice_stack(workdir / "authservice"),
                lambda s: len(authservice_requests(s)),
            )
        )
        yield stacks
    finally:
        for _, s, _ in stacks:
            s.stop()


def b1(r: Report, main: stack.Stack, workdir: Path, rounds: int) -> None:
    r.say("B1  HTTP requests per fresh login, counted at the gateway (every request goes through it)")
    rows = {}
    with shape_stacks(workdir) as others:
        for name, s, count in [("1.10+ oauth2-proxy", main, stack.Stack.gateway_requests), *others]:
            seen: dict[str, list[int]] = {i: [] for i in IMPLS}
            for i in range(rounds):
                for impl in order(i):
                    n0 = count(s)
                    if impl == "kfp-auth":
                        KFPClientManager(s.api_url, stack.FAST_USER, stack.FAST_PASSWORD).get_session_cookies()
                    else:
                        baseline.session_cookies(s.api_url, stack.FAST_USER, stack.FAST_PASSWORD)
                    seen[impl].append(count(s) - n0)
            b, k = median(seen["baseline"]), median(seen["kfp-auth"])
            rows[name] = {
                "baseline": b,
                "kfp-auth": k,
                "minimum": MINIMUM[name],
                "constant": all(len(set(v)) == 1 for v in seen.values()),
            }
            r.say(
                f"    {name:28} baseline {b:4.0f}   kfp-auth {k:4.0f}   protocol minimum {MINIMUM[name]}"
                f"   ({'the same in every round' if rows[name]['constant'] else 'varied: ' + str(seen)})"
            )
    r.data["B1"] = rows


# B2 -------------------------------------------------------------------------------------------


def b2(r: Report, s: stack.Stack, logins: int, label: str, user: str, password: str) -> None:
    pids = {n: s.procs[n].popen.pid for n in ("dex", "oauth2-proxy", "kfp-api")}  # type: ignore[union-attr]
    walls: dict[str, list[float]] = {i: [] for i in IMPLS}
    cpus: dict[str, list[float]] = {i: [] for i in IMPLS}
    server: dict[str, dict[str, float]] = {i: {n: 0.0 for n in pids} for i in IMPLS}

    def one(impl: str) -> tuple[float, float]:
        c, t = time.process_time(), time.perf_counter()
        if impl == "kfp-auth":
            KFPClientManager(s.api_url, user, password).get_session_cookies()
        else:
            baseline.session_cookies(s.api_url, user, password)
        return time.perf_counter() - t, time.process_time() - c

    for impl in IMPLS:  # warm-up: first-use costs (connection pools, lazy imports) are not per login
        for _ in range(3):
            one(impl)
    for i in range(logins):
        for impl in order(i):
            before = {n: cpu_seconds(p) for n, p in pids.items()}
            wall, cpu = one(impl)
            for n, p in pids.items():
                server[impl][n] += cpu_seconds(p) - before[n]
            walls[impl].append(wall)
            cpus[impl].append(cpu)
    row = {}
    r.say(f"B2  per fresh login, {logins} sequential logins each, {label}")
    for impl in IMPLS:
        per = {n: v / logins for n, v in server[impl].items()}
        row[impl] = {
            "wall": median(walls[impl]),
            "cpu": median(cpus[impl]),
            "cpu_spread": spread(cpus[impl]),
            "wall_spread": spread(walls[impl]),
            "server": per,
        }
        r.say(
            f"    {impl:9} wall {fmt_ms(walls[impl])}   client CPU {fmt_ms(cpus[impl])}   "
            f"server CPU (mean): Dex {per['dex'] * 1e3:.1f} ms, oauth2-proxy {per['oauth2-proxy'] * 1e3:.1f} ms,"
            f" API {per['kfp-api'] * 1e3:.1f} ms"
        )
    ratio = row["baseline"]["cpu"] / row["kfp-auth"]["cpu"]
    r.say(f"    client CPU: kfp-auth uses 1/{ratio:.1f} of the baseline's (target: at most 1/5)")
    row["ratio"] = ratio
    r.data.setdefault("B2", {})[label] = row


# B3 -------------------------------------------------------------------------------------------


def b3(r: Report, s: stack.Stack, rounds: int) -> None:
    walls: dict[str, list[float]] = {i: [] for i in IMPLS}
    trips: dict[str, list[int]] = {i: [] for i in IMPLS}
    logins: dict[str, list[int]] = {i: [] for i in IMPLS}
    for i in range(rounds):
        for impl in order(i):
            n0, d0, t = s.gateway_requests(), s.logins_at_dex(stack.USER), time.perf_counter()
            if impl == "kfp-auth":
                m = KFPClientManager(s.api_url, stack.USER, stack.PASSWORD)
            else:
                m = baseline.BaselineClientManager(s.api_url, stack.USER, stack.PASSWORD)  # type: ignore[assignment]
            for _ in range(10):
                m.create_kfp_client()
            walls[impl].append(time.perf_counter() - t)
            trips[impl].append(s.gateway_requests() - n0)
            logins[impl].append(s.logins_at_dex(stack.USER) - d0)
    r.say(f"B3  10 successive create_kfp_client() in one process (bcrypt cost 12), {rounds} rounds each")
    row = {}
    for impl in IMPLS:
        row[impl] = {
            "wall": median(walls[impl]),
            "wall_spread": spread(walls[impl]),
            "requests": median(trips[impl]),
            "logins": median(logins[impl]),
        }
        r.say(
            f"    {impl:9} {median(logins[impl]):3.0f} logins at Dex   {median(trips[impl]):4.0f} gateway requests"
            f" (kfp's own included)   wall {fmt_ms(walls[impl])}"
        )
    row["ratio"] = row["baseline"]["wall"] / row["kfp-auth"]["wall"]
    r.say(
        f"    wall: kfp-auth takes 1/{row['ratio']:.1f} of the baseline's; requests "
        f"{row['baseline']['requests']:.0f} -> {row['kfp-auth']['requests']:.0f}"
    )
    r.data["B3"] = row


# B4 -------------------------------------------------------------------------------------------


def run_worker(args: list[str]) -> tuple[dict, float, float]:
    """(its JSON, its peak RSS in MiB, its user+sys CPU seconds from wait4)."""
    p = subprocess.Popen([sys.executable, "-W", "ignore", str(HERE / "worker.py"), *args], stdout=subprocess.PIPE)
    out = p.stdout.read()  # type: ignore[union-attr]
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"worker {args[:2]} exited with {p.returncode}")
    res = json.loads(out)
    return res, res["peak_rss_kib"] / 1024, ru.ru_utime + ru.ru_stime


def b4(r: Report, rounds: int) -> None:
    cases = {
        "nothing (the interpreter alone)": "pass",
        "baseline (the documented imports)": baseline.DOCUMENTED_IMPORTS,
        "baseline (requests alone)": "import requests",
        "kfp-auth": "import kfp_auth",
        # What B5's workers import before their first login, to tell the logins' own memory.
        "B5 baseline worker (requests, threads)": "import requests, concurrent.futures",
        "B5 kfp-auth worker (kfp_auth, asyncio)": "import kfp_auth, asyncio",
    }
    walls: dict[str, list[float]] = {c: [] for c in cases}
    rss: dict[str, list[float]] = {c: [] for c in cases}
    for i in range(rounds):
        names = list(cases) if i % 2 == 0 else list(cases)[::-1]
        for c in names:
            out, peak, _ = run_worker(["imports", cases[c]])
            walls[c].append(out["wall"])
            rss[c].append(peak)
    r.say(f"B4  import cost in a fresh interpreter, {rounds} runs each (peak RSS includes the interpreter)")
    row = {}
    for c in cases:
        row[c] = {"wall": median(walls[c]), "wall_spread": spread(walls[c]), "rss": median(rss[c])}
        r.say(f"    {c:40} {fmt_ms(walls[c])}   peak RSS {median(rss[c]):6.1f} MiB")
    doc, ours = row["baseline (the documented imports)"], row["kfp-auth"]
    row["ratio"] = doc["wall"] / ours["wall"]
    row["ratio_requests"] = row["baseline (requests alone)"]["wall"] / ours["wall"]
    r.say(
        f"    wall: import kfp_auth takes 1/{row['ratio']:.0f} of the documented imports' "
        f"(target: at most 1/10), 1/{row['ratio_requests']:.1f} of `import requests` alone"
    )
    r.data["B4"] = row


# B8 -------------------------------------------------------------------------------------------


def warm_token_cache(folder: Path, api_url: str) -> None:
    """A token cache holding a login whose ID token is fresh for an hour: what `kfp-auth
    token` finds after `kfp-auth login --device`. Its path makes no request (no discovery,
    no refresh), so the token is made here, unsigned, and sent nowhere."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    dex, now = api_url.rsplit("/", 1)[0] + "/dex", int(time.time())
    claims = {"iss": dex, "aud": "kfp-auth", "sub": "bench", "email": "bench@example.com", "iat": now}
    claims["exp"] = now + 3600
    token = ".".join(b64(json.dumps(part).encode()) for part in ({"alg": "RS256"}, claims)) + "." + b64(b"sig")
    login = {
        "issuer": dex,
        "client_id": "kfp-auth",
        "connector": None,
        "user": "bench@example.com",
        "dex_url": dex,
        "api_url": api_url,
        "id_token": token,
        "refresh_token": "not-used",
        "expires_at": now + 3600,
        "saved_at": now,
    }
    path = folder / "kfp-auth" / "tokens.json"
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_text(json.dumps({"version": 1, "logins": {f"{dex} kfp-auth - bench@example.com": login}}))
    path.chmod(0o600)


def b8(r: Report, runs: int) -> None:
    api_url = "http://127.0.0.1:9/pipeline"  # nothing listens: a request would fail the run
    with tempfile.TemporaryDirectory() as d:
        warm_token_cache(Path(d), api_url)
        env = {**os.environ, "XDG_CACHE_HOME": d}
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "kfp-auth token": [str(Path(sys.executable).parent / "kfp-auth"), "token", "--url", api_url],
        }
        walls: dict[str, list[float]] = {c: [] for c in cases}
        for i in range(runs):
            for c in list(cases) if i % 2 == 0 else list(cases)[::-1]:
                t = time.perf_counter()
                p = subprocess.run(cases[c], env=env, capture_output=True)
                walls[c].append(time.perf_counter() - t)
                if p.returncode != 0:
                    raise RuntimeError(f"{c} exited with {p.returncode}: {p.stderr.decode()[-300:]}")
    r.say(f"B8  `kfp-auth token` from a warm token cache, each in a fresh process, {runs} runs each")
    for c in cases:
        r.say(f"    {c:40} {fmt_ms(walls[c])}")
    ratio = median(walls["kfp-auth token"]) / median(walls["python -c pass"])
    r.say(f"    kfp-auth token takes {ratio:.2f}x a bare interpreter's start (target: at most 2.5x)")
    r.data["B8"] = {"ratio": ratio, **{c: median(walls[c]) for c in cases}}


# B9 -------------------------------------------------------------------------------------------


def b9(r: Report, calls: int, repeats: int) -> None:
    """kfp calls the credentials' refresh_api_key_hook before every request. Timed with the
    token fresh, so every call is served from memory; kfp's own ServiceAccountTokenVolumeCredentials
    (which reads its file on every call) is the reference."""
    import timeit

    import kfp_server_api
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    api_url = "http://127.0.0.1:9/pipeline"  # nothing listens: a request would fail the run
    with tempfile.TemporaryDirectory() as d:
        warm_token_cache(Path(d), api_url)
        token = json.loads((Path(d) / "kfp-auth" / "tokens.json").read_text())
        token = next(iter(token["logins"].values()))["id_token"]
        token_file = Path(d) / "token"
        token_file.write_text(token)
        sso = kfp_auth.BearerSession.from_token_cache(api_url, token_cache=Path(d) / "kfp-auth" / "tokens.json")
        managers = {
            "fixed token (existing_token)": KFPClientManager(api_url, existing_token=token),
            "token file (token_path), unchanged": KFPClientManager(api_url, token_path=token_file),
        }
        hooks = {name: m.create_kfp_credentials().refresh_api_key_hook for name, m in managers.items()}
        sso_creds = kfp_auth._client.kfp_credentials(sso)
        hooks["SSO token from the token cache, fresh"] = sso_creds.refresh_api_key_hook
        hooks["kfp's ServiceAccountTokenVolumeCredentials (reference)"] = ServiceAccountTokenVolumeCredentials(
            str(token_file)
        ).refresh_api_key_hook
        config = kfp_server_api.Configuration()
        per_call: dict[str, list[float]] = {name: [] for name in hooks}
        for i in range(repeats):
            for name in list(hooks) if i % 2 == 0 else list(hooks)[::-1]:
                per_call[name].append(timeit.timeit(lambda h=hooks[name]: h(config), number=calls) / calls * 1e6)
                if config.api_key.get("authorization") != token:
                    raise RuntimeError(f"{name}: the hook did not set the token")
        reads = {name: m.bearer.fetches for name, m in managers.items() if m.bearer is not None}
        if sso.fetches != 0 or reads["token file (token_path), unchanged"] != 1:
            raise RuntimeError(f"a fresh token was fetched again: {reads}, token cache {sso.fetches}")
    r.say(f"B9  kfp's credentials hook, per call, {repeats} runs of {calls} calls each (median, 25th-75th pct)")
    for name, xs in per_call.items():
        lo, hi = spread(xs)
        r.say(f"    {name:58} {median(xs):6.2f} us  ({lo:.2f}-{hi:.2f})")
    ours = max(median(xs) for name, xs in per_call.items() if "reference" not in name)
    r.say(f"    slowest kfp-auth case {ours:.2f} us per call (target: at most 5 us)")
    r.data["B9"] = {name: median(xs) for name, xs in per_call.items()} | {"slowest": ours}


# B5 -------------------------------------------------------------------------------------------


def b5(r: Report, s: stack.Stack, users: int, rounds: int) -> None:
    dex = s.procs["dex"].popen.pid  # type: ignore[union-attr]
    pool = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
    variants = {
        "kfp-auth (asyncio)": ["--impl", "kfp-auth"],
        f"baseline, documented imports, {users} threads": [
            "--impl",
            "baseline",
            "--pool",
            str(users),
            "--documented-imports",
        ],
        f"baseline, requests alone, {users} threads": ["--impl", "baseline", "--pool", str(users)],
        f"baseline, requests alone, {pool} threads": ["--impl", "baseline", "--pool", str(pool)],
    }
    res: dict[str, dict[str, list[float]]] = {v: {"wall": [], "rss": [], "cpu": [], "dex": []} for v in variants}
    os.environ["KFP_BENCH_PASSWORD"] = stack.FAST_PASSWORD
    for i in range(rounds):
        names = list(variants) if i % 2 == 0 else list(variants)[::-1]
        for v in names:
            d0 = cpu_seconds(dex)
            out, peak, cpu = run_worker(["concurrent", "--api", s.api_url, "--users", str(users), *variants[v]])
            if out["sessions"] != users:
                raise RuntimeError(f"{v}: {out['sessions']} of {users} logins gave a session")
            res[v]["wall"].append(out["wall"])
            res[v]["rss"].append(peak)
            res[v]["cpu"].append(cpu)
            res[v]["dex"].append(cpu_seconds(dex) - d0)
    r.say(
        f"B5  {users} concurrent logins of {users} distinct users (bcrypt cost 10), {rounds} rounds each;"
        " each in a fresh process"
    )
    row: dict = {}
    for v in variants:
        x = res[v]
        row[v] = {k: median(x[k]) for k in x} | {"wall_spread": spread(x["wall"])}
        r.say(
            f"    {v:42} wall {median(x['wall']):6.2f} s ({spread(x['wall'])[0]:.2f}-{spread(x['wall'])[1]:.2f})"
            f"   peak RSS {median(x['rss']):6.1f} MiB   client CPU {median(x['cpu']):5.2f} s"
            f"   Dex CPU {median(x['dex']):5.2f} s"
        )
    ours = row["kfp-auth (asyncio)"]
    documented = row[f"baseline, documented imports, {users} threads"]
    engine = row[f"baseline, requests alone, {users} threads"]
    row["wall_ratio"] = documented["wall"] / ours["wall"]
    row["wall_ratio_engine"] = engine["wall"] / ours["wall"]
    row["rss_ratio"] = documented["rss"] / ours["rss"]
    row["rss_ratio_engine"] = engine["rss"] / ours["rss"]
    row["rss_ratio_default_pool"] = row[f"baseline, requests alone, {pool} threads"]["rss"] / ours["rss"]
    r.say(
        f"    wall: {row['wall_ratio']:.2f}x the documented baseline's speed, {row['wall_ratio_engine']:.2f}x the "
        "requests-alone one's (target: at least 1x)"
    )
    r.say(
        f"    peak RSS: 1/{row['rss_ratio']:.1f} of the documented baseline's (target: at most 1/3); 1/"
        f"{row['rss_ratio_engine']:.1f} of the requests-alone baseline's, 1/{row['rss_ratio_default_pool']:.1f}"
        f" with {pool} threads"
    )
    imports = r.data["B4"]
    row["engine_rss"] = engine["rss"]
    row["own_rss"] = ours["rss"] - imports["B5 kfp-auth worker (kfp_auth, asyncio)"]["rss"]
    row["own_rss_engine"] = engine["rss"] - imports["B5 baseline worker (requests, threads)"]["rss"]
    row["own_rss_ratio_engine"] = row["own_rss_engine"] / row["own_rss"]
    r.say(
        f"    the logins' own memory (peak RSS less the worker's imports, from B4): kfp-auth "
        f"{row['own_rss']:.1f} MiB, the requests-alone baseline {row['own_rss_engine']:.1f} MiB "
        f"(1/{row['own_rss_ratio_engine']:.1f})"
    )
    floor = median(res["kfp-auth (asyncio)"]["dex"])
    r.say(
        f"    Dex's CPU for {users} logins is the floor: {floor:.1f} s on {os.cpu_count()} cores ="
        f" {floor / (os.cpu_count() or 1):.1f} s of wall, shared with the client and oauth2-proxy"
    )
    r.data["B5"] = row


# B6 -------------------------------------------------------------------------------------------


def b6(r: Report, s: stack.Stack, calls: int, block: int) -> None:
    import kfp

    m = KFPClientManager(s.api_url, stack.FAST_USER, stack.FAST_PASSWORD)
    clients = {
        "kfp-auth": m.create_kfp_client(),
        "bare kfp.Client": kfp.Client(host=s.api_url, cookies=m.get_session_cookies()),
    }
    times: dict[str, list[float]] = {c: [] for c in clients}
    for c in clients.values():
        for _ in range(20):
            c.list_experiments(namespace=stack.FAST_NAMESPACE)
    names = list(clients)
    for i in range(calls // block):
        for c in names if i % 2 == 0 else names[::-1]:
            client = clients[c]
            for _ in range(block):
                t = time.perf_counter()
                client.list_experiments(namespace=stack.FAST_NAMESPACE)
                times[c].append(time.perf_counter() - t)
    r.say(f"B6  list_experiments through the gateway, {calls} calls each, alternating in blocks of {block}")
    row = {
        c: {"median": median(times[c]), "spread": spread(times[c]), "mean": statistics.fmean(times[c])} for c in clients
    }
    for c in clients:
        r.say(f"    {c:16} per call {fmt_ms(times[c])}   mean {row[c]['mean'] * 1e3:.2f} ms")
    row["ratio"] = row["kfp-auth"]["median"] / row["bare kfp.Client"]["median"]
    row["ratio_mean"] = row["kfp-auth"]["mean"] / row["bare kfp.Client"]["mean"]
    r.say(
        f"    kfp-auth / bare: {row['ratio']:.3f}x by medians, {row['ratio_mean']:.3f}x by means (target: at most"
        " 1.05x)"
    )
    r.data["B6"] = row


# B7 -------------------------------------------------------------------------------------------


def b7(r: Report, workdir: Path, rounds: int, per_round: int) -> None:
    """On one SSO stack, alternating: a fresh password login (the cookie login of B2, the
    cost-12 user) against a renewal of a held device login by its refresh token, through
    Dex's `local` connector and through its `oidc` connector, which also refreshes at the
    upstream IdP. Server CPU is every server process's, from /proc (Dex, the IdP,
    oauth2-proxy, which forwards /dex/token); a refresh has no bcrypt in it."""
    with start_sso_stack(workdir / "sso") as s:
        pids = {n: s.procs[n].popen.pid for n in ("dex", "idp", "oauth2-proxy")}  # type: ignore[union-attr]
        # The local-connector login uses another user than the password logins: a web login
        # of the same user must not touch the refresh token under measurement.
        local_user = dataclasses.replace(s, user=stack.FAST_USER, password=stack.FAST_PASSWORD, connector_id="local")
        held = {
            "refresh, local connector": KFPClientManager(s.api_url, login="device", prompt=User(local_user)),
            "refresh, oidc connector (IdP)": KFPClientManager(s.api_url, login="device", prompt=User(s)),
        }
        for m in held.values():
            m.get_bearer_token()  # the device login, once, before anything is measured

        def login() -> None:
            KFPClientManager(s.api_url, stack.USER, stack.PASSWORD).get_session_cookies()

        ops: dict[str, Callable[[], object]] = {"password login (bcrypt cost 12)": login}
        for name, m in held.items():
            ops[name] = lambda m=m: m.get_bearer_token(force_refresh=True)
        walls: dict[str, list[float]] = {o: [] for o in ops}
        server: dict[str, dict[str, float]] = {o: {n: 0.0 for n in pids} for o in ops}
        counts = {o: 0 for o in ops}

        def one(op: str) -> None:
            before = {n: cpu_seconds(p) for n, p in pids.items()}
            t = time.perf_counter()
            ops[op]()
            walls[op].append(time.perf_counter() - t)
            for n, p in pids.items():
                server[op][n] += cpu_seconds(p) - before[n]
            counts[op] += 1

        for op in ops:  # warm-up
            ops[op]()
        names = list(ops)
        for i in range(rounds):
            for op in names if i % 2 == 0 else names[::-1]:
                for _ in range(1 if op == names[0] else per_round):
                    one(op)
        for name, m in held.items():
            if m.logins != 1:
                raise RuntimeError(f"{name}: {m.logins} device logins, expected the one before the run")

    r.say(
        f"B7  SSO renewal by refresh token against a fresh password login, one stack, {rounds} rounds of "
        f"1 login and {per_round} refreshes of each kind"
    )
    row: dict = {}
    for op in ops:
        per = {n: v / counts[op] for n, v in server[op].items()}
        row[op] = {
            "n": counts[op],
            "wall": median(walls[op]),
            "wall_spread": spread(walls[op]),
            "server": per,
            "server_total": sum(per.values()),
        }
        r.say(
            f"    {op:32} n={counts[op]:<4} wall {fmt_ms(walls[op])}   server CPU (mean): Dex "
            f"{per['dex'] * 1e3:.2f} ms, IdP {per['idp'] * 1e3:.2f} ms, oauth2-proxy "
            f"{per['oauth2-proxy'] * 1e3:.2f} ms"
        )
    login_row = row[names[0]]
    for op in names[1:]:
        x = row[op]
        x["dex_ratio"] = login_row["server"]["dex"] / max(x["server"]["dex"], 1e-9)
        x["server_ratio"] = login_row["server_total"] / max(x["server_total"], 1e-9)
        x["wall_ratio"] = login_row["wall"] / x["wall"]
        r.say(
            f"    {op}: 1/{x['dex_ratio']:.0f} of a login's Dex CPU, 1/{x['server_ratio']:.0f} of all servers' "
            f"(target: at most 1/20), 1/{x['wall_ratio']:.0f} of its wall"
        )
    r.data["B7"] = row


# Output ---------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    import importlib.metadata as md

    v = stack.versions()
    return {
        "kfp-auth": kfp_auth.__version__,
        "Dex": v["dex"],
        "oauth2-proxy": v["oauth2-proxy"],
        "kfp": md.version("kfp"),
        "requests": md.version("requests"),
        "Python": platform.python_version(),
    }


def chart(data: dict, path: Path) -> list[tuple[str, float, float]]:
    """A bar per target: how many times better than the baseline, against the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b1 = data["B1"]["1.10+ oauth2-proxy"]
    bars = [
        ("B1 requests per login (1.10+)", b1["baseline"] / b1["kfp-auth"], b1["baseline"] / b1["minimum"]),
        ("B2 client CPU per login (cost 12)", data["B2"]["bcrypt cost 12"]["ratio"], 5.0),
        ("B3 10 x create_kfp_client, wall", data["B3"]["ratio"], 1.0),
        ("B4 import, wall", data["B4"]["ratio"], 10.0),
        ("B5 200 concurrent logins, wall", data["B5"]["wall_ratio"], 1.0),
        ("B5 200 concurrent logins, peak RSS", data["B5"]["rss_ratio"], 3.0),
        ("B5 peak RSS, requests-only baseline", data["B5"]["rss_ratio_engine"], 3.0),
        ("B5 the logins' own RSS, requests-only", data["B5"]["own_rss_ratio_engine"], 3.0),
        ("B6 per request (bare / kfp-auth)", 1 / data["B6"]["ratio"], 1 / 1.05),
        ("B7 server CPU, cost-12 login / SSO refresh", data["B7"][SSO_REFRESH]["server_ratio"], 20.0),
        ("B8 kfp-auth token, wall (bare / token)", 1 / data["B8"]["ratio"], 1 / 2.5),
    ]
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    ys = range(len(bars))[::-1]
    for y, (_label, value, target) in zip(ys, bars):
        ax.barh(y, value, color="#2b7bba" if value >= target else "#d9534f")
        ax.plot([target, target], [y - 0.4, y + 0.4], color="black", lw=2)
        ax.text(value * 1.05, y, f"{value:.2f}x", va="center", fontsize=9)
    ax.set_yticks(list(ys), [b[0] for b in bars], fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(right=max(v for _, v, _ in bars) * 2.5)
    ax.axvline(1, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("baseline / kfp-auth (higher is better for kfp-auth; log scale). Black tick: the target.")
    ax.set_title("kfp-auth against the documented pure-Python login (B7: a login against a refresh), one run")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return bars


def missed(d: dict) -> str:
    """What the figures say about each target that the chart shows missed, from this run."""
    b4, b5, b6 = d["B4"], d["B5"], d["B6"]
    out = [f"B6 by means (slow outliers count there): kfp-auth / bare = {b6['ratio_mean']:.3f}x."]
    if b5["rss_ratio_engine"] < 3:
        ours = b4["B5 kfp-auth worker (kfp_auth, asyncio)"]["rss"]
        out.append(
            f"B5's peak RSS against the requests-only baseline is 1/{b5['rss_ratio_engine']:.1f}, short of 1/3. "
            f"A third of that baseline's peak is {b5['engine_rss'] / 3:.1f}"
            f" MiB, while kfp-auth's worker holds {ours:.1f} MiB before its first login: the interpreter "
            f"({b4['nothing (the interpreter alone)']['rss']:.1f} MiB), `import kfp_auth` (to "
            f"{b4['kfp-auth']['rss']:.1f} MiB) and Python's own `import asyncio`, which loads `ssl` and OpenSSL. "
            f"The logins' own memory, above those imports, is {b5['own_rss']:.1f} MiB against the baseline's "
            f"{b5['own_rss_engine']:.1f} MiB (1/{b5['own_rss_ratio_engine']:.1f}). Against the documented "
            f"baseline, whose module imports kfp, the peak is 1/{b5['rss_ratio']:.1f}."
        )
    return "\n\n".join(out)


def results_md(r: Report, info: dict, bars: list[tuple[str, float, float]], took: float) -> str:
    d = r.data
    met = lambda v, t: "met" if v >= t else "**missed**"  # noqa: E731
    c12, c10 = d["B2"]["bcrypt cost 12"], d["B2"]["bcrypt cost 10"]

    def split(row: dict) -> str:
        k = row["kfp-auth"]
        server = sum(k["server"].values())
        return (
            f"{k['wall'] * 1e3:.0f} ms wall (median); CPU per login: Dex {k['server']['dex'] * 1e3:.0f} ms, "
            f"oauth2-proxy {k['server']['oauth2-proxy'] * 1e3:.1f} ms, API {k['server']['kfp-api'] * 1e3:.1f} ms "
            f"(means; {server * 1e3:.0f} ms of server CPU in all), kfp-auth {k['cpu'] * 1e3:.2f} ms "
            f"(median; {k['cpu'] / k['wall'] * 100:.1f}% of the wall)"
        )

    table = "\n".join(
        f"| {label} | {value:.2f}x | {target:.2f}x | {met(value, target)} |" for label, value, target in bars
    )
    return f"""# Benchmark results

Made by `make bench` ({info["date"]}, {took / 60:.1f} minutes) on {info["cores"]} cores:
{", ".join(f"{k} {v}" for k, v in info["versions"].items())}.
Regenerated by every run; do not edit by hand. The method is in `bench/run.py`'s
docstring and in docs/benchmarks.md. The baseline is
`bench/baseline.py`: our own `requests` implementation of the documented login.

![ratios](ratios.png)

| figure | baseline / kfp-auth | target | |
|---|---|---|---|
{table}

B1's target is "fewer than the baseline, at the protocol's minimum"; its tick
marks the ratio that the minimum gives. B6's bar is bare / kfp-auth, so 1.0 is
no overhead and the target is kfp-auth at most 1.05 times the bare client. B7's
bar is not against the baseline: it is the server CPU of a fresh cost-12 password
login over that of an SSO renewal by refresh token through the IdP.

{missed(d)}

B9, kfp's credentials hook on kfp-auth's credentials: the slowest case takes
{d["B9"]["slowest"]:.2f} µs per call (target: at most 5 µs, {"met" if d["B9"]["slowest"] <= 5 else "**missed**"});
kfp's own file credentials take {d["B9"]["kfp's ServiceAccountTokenVolumeCredentials (reference)"]:.2f} µs.

## Where a login's time goes

The bcrypt cost of Dex's password hash dominates a login's wall time, and it
is Dex's time, not ours. kfp-auth's share is its own CPU:

- bcrypt cost 12 (Kubeflow's default hash): {split(c12)}
- bcrypt cost 10: {split(c10)}

## The whole run's output

```
{chr(10).join(r.lines)}
```
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logins", type=int, default=200, help="B2: sequential logins per implementation")
    p.add_argument("--users", type=int, default=200, help="B5: concurrent logins")
    p.add_argument("--rounds", type=int, default=3, help="B1, B3 and B5 rounds")
    p.add_argument("--import-runs", type=int, default=15, help="B4: runs per case")
    p.add_argument("--calls", type=int, default=500, help="B6: calls per client")
    p.add_argument("--sso-rounds", type=int, default=30, help="B7: rounds of one login and --sso-refreshes")
    p.add_argument("--sso-refreshes", type=int, default=5, help="B7: refreshes of each kind per round")
    p.add_argument("--only", choices=["B7", "B9"], help="run this figure alone; print it, write nothing")
    p.add_argument("--hook-calls", type=int, default=100_000, help="B9: calls per run")
    p.add_argument("--hook-runs", type=int, default=7, help="B9: runs per case")
    p.add_argument("--token-runs", type=int, default=30, help="B8: runs per case")
    p.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md, results.txt and ratios.png go")
    a = p.parse_args()

    os.environ.setdefault("HOME", tempfile.mkdtemp())
    started = time.perf_counter()
    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "versions": versions(),
    }
    r = Report()
    r.say(
        f"kfp-auth benchmarks, {info['date']}, {info['cores']} cores, "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    )
    if a.only == "B7":
        with tempfile.TemporaryDirectory() as d:
            b7(r, Path(d), a.sso_rounds, a.sso_refreshes)
        r.say(f"took {time.perf_counter() - started:.0f} s")
        return
    if a.only == "B9":
        b9(r, a.hook_calls, a.hook_runs)
        return
    with tempfile.TemporaryDirectory() as d, stack.start_kubeflow_stack(Path(d) / "main", extra_users=a.users) as s:
        b1(r, s, Path(d), a.rounds)
        b2(r, s, a.logins, "bcrypt cost 12", stack.USER, stack.PASSWORD)
        b2(r, s, a.logins, "bcrypt cost 10", stack.FAST_USER, stack.FAST_PASSWORD)
        b3(r, s, a.rounds)
        b4(r, a.import_runs)
        b5(r, s, a.users, a.rounds)
        b6(r, s, a.calls, 25)
        b7(r, Path(d), a.sso_rounds, a.sso_refreshes)
    b8(r, a.token_runs)
    b9(r, a.hook_calls, a.hook_runs)
    took = time.perf_counter() - started
    r.say(f"took {took:.0f} s")
    a.out.mkdir(parents=True, exist_ok=True)
    bars = chart(r.data, a.out / "ratios.png")
    (a.out / "results.txt").write_text("\n".join(r.lines) + "\n")
    (a.out / "RESULTS.md").write_text(results_md(r, info, bars, took))
    print(f"wrote {a.out / 'RESULTS.md'}, results.txt and ratios.png")


if __name__ == "__main__":
    main()
