"""The local test stack: the real Dex and the real oauth2-proxy (built from their
Go modules by scripts/build-stack.sh) in Kubeflow 1.10's single-origin layout,
in front of our own small KFP API test server (kfp_api_server.py).

    client ──► oauth2-proxy :gw ──/dex/*──► Dex :dex   (skip-auth route ^/dex/)
                                └──/*─────► KFP API test server :kfp
    (with ldap=True, Dex also offers an LDAP connector to a real OpenLDAP slapd: ldap.py)

Every process starts on a free loopback port with a config in a temp folder,
is waited for on its health endpoint, and is stopped by ``Stack.stop``. A
component that fails to build or start raises ``StackError``: never a skip.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KFP_AUTH_CACHE", ROOT / ".cache"))
BIN = CACHE / "bin"
KFP_SERVER = Path(__file__).with_name("kfp_api_server.py")

# Kubeflow's defaults (kubeflow/manifests common/dex and common/oauth2-proxy).
CLIENT_ID = "kubeflow-oidc-authservice"
CLIENT_SECRET = "pUBnBOY80SnXgjibTYM9ZWNzY2xreNGQok"
USER = "user@example.com"
PASSWORD = "12341234"
# The bcrypt cost-12 hash Kubeflow ships for 12341234.
USER_HASH = "$2y$12$4K/VkmDd1q1Orb3xAt82zu8gk7Ad6ReFR4LCP9UeYE90NLiN9Df72"
NAMESPACE = "kubeflow-user-example-com"
# A second static user with a cost-10 hash of "password", for tests that log in often.
FAST_USER = "fast@example.com"
FAST_PASSWORD = "password"
FAST_HASH = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
FAST_NAMESPACE = "kubeflow-fast-example-com"


def many_users(n: int) -> list[tuple[str, str]]:
    """`n` more static users, `user<i>@example.com` with the cost-10 FAST_PASSWORD, and
    their namespaces: for benchmarks and the soak, which log in as many users at once."""
    return [(f"user{i}@example.com", f"kubeflow-user{i}-example-com") for i in range(n)]


# The in-cluster identity a pipeline pod's ServiceAccount token stands for.
SA_IDENTITY = "system:serviceaccount:kubeflow-user-example-com:default-editor"


# Called with a line for each process started; the pytest run prints them.
on_start: Callable[[str], None] | None = None
# Called before Dex and oauth2-proxy are built or started: the pytest run fails a
# test that starts them without the `stack` mark, so `-m "not stack"` never needs them.
before_stack: Callable[[], None] | None = None


class StackError(RuntimeError):
    """A component of the test stack failed to build or start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_binaries() -> dict[str, Path]:
    """Build Dex and oauth2-proxy if they are missing (the script is a no-op when built)."""
    if before_stack is not None:
        before_stack()
    script = ROOT / "scripts" / "build-stack.sh"
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if r.returncode != 0:
        raise StackError(f"building Dex/oauth2-proxy failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    bins = {name: BIN / name for name in ("dex", "oauth2-proxy", "dexapi")}
    for name, path in bins.items():
        if not os.access(path, os.X_OK):
            raise StackError(f"{name} is not at {path} after build-stack.sh")
    return bins


def versions() -> dict[str, str]:
    return {n: (BIN / f"{n}.version").read_text().strip() for n in ("dex", "oauth2-proxy")}


@dataclass
class Proc:
    name: str
    argv: list[str]
    health_url: str  # an http(s) URL that answers 200, or tcp://host:port that accepts
    log_path: Path
    popen: subprocess.Popen | None = None

    def _healthy(self) -> bool:
        if self.health_url.startswith("tcp://"):
            host, port = self.health_url[6:].rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=2):
                return True
        # Test certificates are self-signed: readiness does not verify them.
        with urllib.request.urlopen(self.health_url, timeout=2, context=ssl._create_unverified_context()) as r:
            return r.status == 200

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise StackError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if self._healthy():
                    if on_start:
                        on_start(f"started {self.name} (pid {self.popen.pid}), healthy at {self.health_url}")
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise StackError(f"{self.name} did not answer {self.health_url} within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class Stack:
    workdir: Path
    gateway_url: str  # oauth2-proxy, the single origin users talk to
    dex_url: str  # Dex directly, as oauth2-proxy's redeem and JWKS calls reach it
    kfp_url: str  # the KFP API test server directly (no auth in front)
    procs: dict[str, Proc] = field(default_factory=dict)
    ca: Path | None = None  # the CA that signed the gateway's certificate, when it serves HTTPS

    @property
    def api_url(self) -> str:
        return self.gateway_url + "/pipeline"

    def kfp_requests(self) -> list[dict]:
        path = self.workdir / "kfp-requests.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()

    def restart_gateway(self, *, new_cookie_secret: bool) -> None:
        """Restart oauth2-proxy on the same port; a new cookie secret voids every session."""
        proxy = self.procs["oauth2-proxy"]
        proxy.stop()
        if new_cookie_secret:
            proxy.argv = [
                f"--cookie-secret={new_secret()}" if a.startswith("--cookie-secret=") else a for a in proxy.argv
            ]
        proxy.start()

    def gateway_log(self) -> str:
        return (self.workdir / "oauth2-proxy.log").read_text(errors="replace")

    def gateway_requests(self) -> int:
        """Requests oauth2-proxy has answered so far (its request log), less its /ping health checks."""
        return sum(1 for line in self.gateway_log().splitlines() if '" HTTP/1.1 "' in line and "/ping" not in line)

    def logins_at_dex(self, user: str) -> int:
        """Password posts that Dex accepted for `user`, from Dex's own log."""
        log = (self.workdir / "dex.log").read_text(errors="replace")
        return sum(1 for line in log.splitlines() if "login successful" in line and f"email={user} " in line)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def new_secret() -> str:
    return secrets.token_urlsafe(24)[:32]


def dex_config(
    issuer: str,
    port: int,
    *,
    skip_approval: bool = True,
    connectors: list[dict] | None = None,
    password_grant: bool = False,
    id_token_expiry: str | None = None,
    extra_users: int = 0,
    client_secret: str = CLIENT_SECRET,
    static_users: dict[str, str] | None = None,
) -> dict:
    """Dex as Kubeflow configures it (common/dex/base/config-map.yaml), on loopback with memory storage.
    With `connectors`, Dex offers them beside `local` (the password DB) on its connector selection page.
    With `password_grant`, Dex also takes `grant_type=password` for `local` (Kubeflow does not set this).
    `extra_users` adds `many_users(n)`; `static_users` adds {email: bcrypt hash}."""
    oauth2: dict = {"skipApprovalScreen": skip_approval}
    if password_grant:
        oauth2["passwordConnector"] = "local"
    extra: dict = {"expiry": {"idTokens": id_token_expiry}} if id_token_expiry else {}
    return {
        **extra,
        **({"connectors": connectors} if connectors else {}),
        "issuer": issuer,
        "storage": {"type": "memory"},
        "web": {"http": f"127.0.0.1:{port}"},
        "logger": {"level": "debug", "format": "text"},
        "oauth2": oauth2,
        "enablePasswordDB": True,
        "staticPasswords": [
            {"email": USER, "hash": USER_HASH, "username": "user", "userID": "15841185641784"},
            {"email": FAST_USER, "hash": FAST_HASH, "username": "fast", "userID": "15841185641785"},
            *(
                {"email": email, "hash": FAST_HASH, "username": email.split("@")[0], "userID": f"2000{i}"}
                for i, (email, _) in enumerate(many_users(extra_users))
            ),
            *(
                {"email": email, "hash": h, "username": email.split("@")[0], "userID": f"3000{i}"}
                for i, (email, h) in enumerate((static_users or {}).items())
            ),
        ],
        "staticClients": [
            {"id": CLIENT_ID, "name": "Kubeflow", "secret": client_secret, "redirectURIs": ["/oauth2/callback"]},
        ],
    }


def oauth2_proxy_args(
    gw_port: int,
    dex_port: int,
    kfp_port: int,
    issuer: str,
    cookie_secret: str,
    *,
    skip_provider_button: bool = False,
    prompt: str | None = "none",
    cookie_expire: str = "24h",
    api_routes: bool = True,
    redis_port: int | None = None,
    tls: tuple[Path, Path] | None = None,
    cookie_csrf_expire: str | None = None,
    cookie_secure: bool = False,
    dex_upstream: str | None = None,
    client_secret: str = CLIENT_SECRET,
) -> list[str]:
    """oauth2-proxy as Kubeflow 1.10 configures it (common/oauth2-proxy/base/oauth2_proxy.cfg),
    as a reverse proxy standing in for Istio: /dex/ to Dex, everything else to the KFP API.
    `dex_upstream` sends the browser's /dex/ requests elsewhere (a fault injector in front
    of Dex); oauth2-proxy's own redeem and JWKS calls still go to Dex directly."""
    listen = [f"--http-address=127.0.0.1:{gw_port}"]
    if tls:
        # HTTPS on the gateway port; oauth2-proxy's plain listener goes to an unused port.
        listen = [
            f"--https-address=127.0.0.1:{gw_port}",
            f"--http-address=127.0.0.1:{free_port()}",
            f"--tls-cert-file={tls[0]}",
            f"--tls-key-file={tls[1]}",
        ]
    args = [
        *listen,
        "--provider=oidc",
        f"--oidc-issuer-url={issuer}",
        "--scope=profile email groups openid",
        "--email-domain=*",
        f"--upstream={dex_upstream or f'http://127.0.0.1:{dex_port}'}/dex/",
        f"--upstream=http://127.0.0.1:{kfp_port}/",
        "--skip-auth-route=^/dex/",
        "--skip-oidc-discovery=true",
        "--login-url=/dex/auth",
        f"--redeem-url=http://127.0.0.1:{dex_port}/dex/token",
        f"--oidc-jwks-url=http://127.0.0.1:{dex_port}/dex/keys",
        f"--skip-provider-button={'true' if skip_provider_button else 'false'}",
        "--provider-display-name=Dex",
        "--banner=-",
        "--footer=-",
        "--set-authorization-header=true",
        "--set-xauthrequest=true",
        "--cookie-name=oauth2_proxy_kubeflow",
        f"--cookie-expire={cookie_expire}",
        "--cookie-refresh=0",
        f"--cookie-secure={'true' if cookie_secure else 'false'}",
        f"--cookie-secret={cookie_secret}",
        "--code-challenge-method=S256",
        "--redirect-url=/oauth2/callback",
        "--relative-redirect-url=true",
        f"--client-id={CLIENT_ID}",
        f"--client-secret={client_secret}",
        # Machine-to-machine bearer tokens: a JWT from Dex (the provider's issuer and
        # client id as audience) is accepted in place of a session, as in Kubeflow.
        "--skip-jwt-bearer-tokens=true",
    ]
    if cookie_csrf_expire is not None:
        args.append(f"--cookie-csrf-expire={cookie_csrf_expire}")
    if prompt is not None:
        args.append(f"--prompt={prompt}")
    if api_routes:
        args += ["--api-route=/api/", "--api-route=/apis/", "--api-route=^/ml_metadata"]
    if redis_port is not None:
        # Sessions kept server-side: the cookie holds a ticket, and a session can be deleted.
        args += ["--session-store-type=redis", f"--redis-connection-url=redis://127.0.0.1:{redis_port}"]
    return args


def self_signed_cert(workdir: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A fresh self-signed certificate for `host`, made per test run with the openssl CLI."""
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    r = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=IP:{host}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise StackError(f"openssl could not make a test certificate: {r.stderr}")
    return cert, key


def ca_signed_cert(workdir: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A private CA and a server certificate it signed for `host`: (ca, cert, key)."""
    ca, ca_key = workdir / "ca.crt", workdir / "ca.key"
    csr, cert, key, ext = workdir / "srv.csr", workdir / "srv.crt", workdir / "srv.key", workdir / "srv.ext"
    ext.write_text(f"subjectAltName=IP:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    steps = [
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kfp-auth test CA",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={host}",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(ext),
            "-out",
            str(cert),
        ],
    ]
    for argv in steps:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise StackError(f"openssl could not make a test certificate: {r.stderr}")
    return ca, cert, key


def start_kfp_api(
    workdir: Path,
    *,
    require_auth: bool,
    name: str = "kfp-api",
    tls: tuple[Path, Path] | None = None,
    run_seconds: float = 5.0,
    refuse_all: bool = False,
    token_files: dict[Path, str] | None = None,
    extra_users: int = 0,
    grants: dict[str, str] | None = None,
) -> tuple[Proc, str]:
    port = free_port()
    argv = [
        sys.executable,
        str(KFP_SERVER),
        "--port",
        str(port),
        "--log",
        str(workdir / "kfp-requests.jsonl"),
        "--run-seconds",
        str(run_seconds),
        "--grant",
        f"{USER}={NAMESPACE}",
        "--grant",
        f"{FAST_USER}={FAST_NAMESPACE}",
    ]
    from .ldap import LDAP_EMAIL, LDAP_NAMESPACE, MANY_GROUPS_EMAIL  # here: ldap.py imports this module

    # The identity oauth2-proxy forwards is the mail.
    argv += ["--grant", f"{LDAP_EMAIL}={LDAP_NAMESPACE}", "--grant", f"{MANY_GROUPS_EMAIL}={LDAP_NAMESPACE}"]
    argv += ["--grant", f"{SA_IDENTITY}={NAMESPACE}"]
    for email, ns in [*many_users(extra_users), *(grants or {}).items()]:
        argv += ["--grant", f"{email}={ns}"]
    if require_auth:
        argv.append("--require-auth")
    if tls:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    if refuse_all:
        argv.append("--refuse-all")
    for path, identity in (token_files or {}).items():
        argv += ["--token-file", f"{path}={identity}"]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    proc = Proc(name, argv, url + "/_test/ready", workdir / f"{name}.log")
    proc.start()
    return proc, url


def start_kubeflow_stack(
    workdir: Path,
    *,
    skip_provider_button: bool = False,
    prompt: str | None = "none",
    skip_approval: bool = True,
    cookie_expire: str = "24h",
    api_routes: bool = True,
    run_seconds: float = 5.0,
    refuse_all: bool = False,
    redis: bool = False,
    ldap: bool = False,
    tls: bool = False,
    password_grant: bool = False,
    cookie_csrf_expire: str | None = None,
    id_token_expiry: str | None = None,
    extra_users: int = 0,
    cookie_secure: bool = False,
    dex_upstream: Callable[[str], str] | None = None,
    client_secret: str = CLIENT_SECRET,
    static_users: dict[str, tuple[str, str]] | None = None,
) -> Stack:
    """Kubeflow 1.10's layout by default; the keyword arguments give the 1.9 variants.
    `ldap=True` adds a real slapd and Dex's LDAP connector `ldap` beside `local`.
    `tls=True` serves the gateway over HTTPS with a certificate from a CA made for this run
    (`Stack.ca`). `password_grant=True` lets Dex take `grant_type=password`.
    `extra_users` seeds Dex (and the API's grants) with `many_users(n)`. `cookie_secure=True`
    marks oauth2-proxy's cookies `Secure` (a misconfiguration over plain http). `dex_upstream`,
    given Dex's own base URL, returns where the gateway should send /dex/ instead (a fault
    injector in front of Dex: tests/stack/hostile_server.py). `client_secret` replaces the
    Kubeflow client's secret (in Dex and oauth2-proxy), and `static_users` adds users as
    {email: (bcrypt hash, namespace they are granted)}."""
    bins = ensure_binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    gw_port, dex_port = free_port(), free_port()
    gateway = f"{'https' if tls else 'http'}://127.0.0.1:{gw_port}"
    ca, gw_tls = None, None
    if tls:
        ca, cert, key = ca_signed_cert(workdir)
        gw_tls = (cert, key)
    # Like Kubeflow, Dex's issuer is its own (in-cluster) address, while browsers
    # reach its pages through the gateway under /dex/.
    issuer = f"http://127.0.0.1:{dex_port}/dex"
    procs: dict[str, Proc] = {}
    stack = None
    try:
        connectors: list[dict] = []
        if ldap:
            from .ldap import dex_ldap_connector, start_slapd  # here: ldap.py imports this module

            procs["slapd"], ldap_port = start_slapd(workdir)
            connectors.append(dex_ldap_connector(ldap_port))
        users = static_users or {}
        kfp, kfp_url = start_kfp_api(
            workdir,
            require_auth=True,
            run_seconds=run_seconds,
            refuse_all=refuse_all,
            extra_users=extra_users,
            grants={e: ns for e, (_, ns) in users.items()},
        )
        procs["kfp-api"] = kfp

        cfg = workdir / "dex.yaml"
        cfg.write_text(
            json.dumps(
                dex_config(
                    issuer,
                    dex_port,
                    skip_approval=skip_approval,
                    connectors=connectors,
                    password_grant=password_grant,
                    id_token_expiry=id_token_expiry,
                    extra_users=extra_users,
                    client_secret=client_secret,
                    static_users={e: h for e, (h, _) in users.items()},
                ),
                indent=2,
            )
        )
        dex = Proc("dex", [str(bins["dex"]), "serve", str(cfg)], f"{issuer}/healthz", workdir / "dex.log")
        dex.start()
        procs["dex"] = dex

        redis_port = None
        if redis:
            redis_port = free_port()
            r = Proc(
                "redis",
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                f"tcp://127.0.0.1:{redis_port}",
                workdir / "redis.log",
            )
            r.start()
            procs["redis"] = r

        cookie_secret = new_secret()
        proxy = Proc(
            "oauth2-proxy",
            [
                str(bins["oauth2-proxy"]),
                *oauth2_proxy_args(
                    gw_port,
                    dex_port,
                    int(kfp_url.rsplit(":", 1)[1]),
                    issuer,
                    cookie_secret,
                    skip_provider_button=skip_provider_button,
                    prompt=prompt,
                    cookie_expire=cookie_expire,
                    api_routes=api_routes,
                    redis_port=redis_port,
                    tls=gw_tls,
                    cookie_csrf_expire=cookie_csrf_expire,
                    cookie_secure=cookie_secure,
                    dex_upstream=dex_upstream(f"http://127.0.0.1:{dex_port}") if dex_upstream else None,
                    client_secret=client_secret,
                ),
            ],
            f"{gateway}/ping",
            workdir / "oauth2-proxy.log",
        )
        proxy.start()
        procs["oauth2-proxy"] = proxy
        stack = Stack(workdir, gateway, f"http://127.0.0.1:{dex_port}/dex", kfp_url, procs, ca)
        return stack
    finally:
        if stack is None:
            for p in procs.values():
                p.stop()


def start_squid(workdir: Path, users: dict[str, str] | None = None) -> tuple[Proc, str, Path]:
    """A real forward proxy (Debian's squid, as corporate networks run) on loopback, caching
    nothing: (proc, its URL, its access log). The log has a line per request it carried
    (`CONNECT host:port` for HTTPS, the URL for HTTP). Its files live in a folder of their
    own that squid's unprivileged user can write. With `users`, it asks for basic auth
    (its own basic_ncsa_auth helper, with a password file made by openssl)."""
    exe = "/usr/sbin/squid"
    if not os.access(exe, os.X_OK):
        raise StackError("squid is not installed: run scripts/install-system-deps.sh")
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="kfp-auth-squid-"))
    d.chmod(0o777)
    conf = d / "squid.conf"
    log = d / "access.log"
    access = "acl local src 127.0.0.1/32\nhttp_access allow local\n"
    if users:
        passwd = d / "passwd"
        lines = []
        for user, password in users.items():
            r = subprocess.run(
                ["openssl", "passwd", "-apr1", "-stdin"], input=password, capture_output=True, text=True, check=True
            )
            lines.append(f"{user}:{r.stdout.strip()}")
        passwd.write_text("\n".join(lines) + "\n")
        access = (
            f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {passwd}\n"
            "acl known proxy_auth REQUIRED\nacl local src 127.0.0.1/32\n"
            "http_access allow local known\n"
        )
    conf.write_text(f"""\
http_port 127.0.0.1:{port}
{access}http_access deny all
cache deny all
access_log stdio:{log}
cache_log stdio:{d}/cache.log
pid_filename none
coredump_dir {d}
shutdown_lifetime 0 seconds
""")
    proc = Proc("squid", [exe, "-N", "-f", str(conf)], f"tcp://127.0.0.1:{port}", workdir / "squid.log")
    proc.start()
    return proc, f"http://127.0.0.1:{port}", log


def start_tinyproxy(workdir: Path) -> tuple[Proc, str, Path]:
    """A second real forward proxy (Debian's tinyproxy), whose log has a line per request
    as it arrives, `CONNECT host:port` included (squid logs a tunnel only when it closes).
    Used for HTTPS only: tinyproxy 1.11 passes on just one of several Set-Cookie headers
    in plain-HTTP answers, which loses oauth2-proxy's session cookie."""
    exe = "/usr/bin/tinyproxy"
    if not os.access(exe, os.X_OK):
        raise StackError("tinyproxy is not installed: run scripts/install-system-deps.sh")
    port = free_port()
    conf = workdir / "tinyproxy.conf"
    # No LogFile: in the foreground (-d) it logs to stdout, which Proc keeps in tinyproxy.log.
    # As root it drops to nobody, so it is given nothing to write.
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nLogLevel Connect\nMaxClients 50\n"
        "Timeout 30\n" + ("User nobody\nGroup nogroup\n" if os.geteuid() == 0 else "")
    )
    log = workdir / "tinyproxy.log"
    proc = Proc("tinyproxy", [exe, "-d", "-c", str(conf)], f"tcp://127.0.0.1:{port}", log)
    proc.start()
    return proc, f"http://127.0.0.1:{port}", log
