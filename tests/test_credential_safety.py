"""Credentials never show: not in logs (Python's and the Rust core's), exception messages,
reprs, tracebacks, request histories or the CLI's output, whatever error the package raises;
the session cache holds no password and is private; and the password grant sends the client
secret to Dex's token endpoint only. Against the real Dex and oauth2-proxy, with secrets
made for this file so that a hit cannot be a coincidence.

The checker looks for each secret in every form it could take in text (as is, URL- or
form-encoded, JSON- or repr-escaped, base64, in a Basic header), and for anything shaped
like an oauth2-proxy session cookie or a JWT; the first test proves it finds planted ones.
Failure messages name the secret and where it was found, never its value.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import re
import stat
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import pytest

import kfp_auth
import stack
from kfp_auth import KFPClientManager
from stack import CLIENT_ID, NAMESPACE, Stack, free_port

# Made for this file: `+`, `/`, space, `!` and `#` change under URL and form encoding.
PASSWORD = "Pw+kfp/auth Z9q!7xLm#only-in-test"
PASSWORD_HASH = "$2a$10$NVEHGKSaCWXb7RufhiAt3e5qLODBCahHYLqPnRgSd3fXmxo4A25M6"  # bcrypt, cost 10
USER = "safety@example.com"
USER_NAMESPACE = "kubeflow-safety-example-com"
WRONG_PASSWORD = "wr0ng+Pw/4-safety-tests!"
CLIENT_SECRET = "cs-Q7vT+2kL/9xWm=only-in-test"
WRONG_CLIENT_SECRET = "cs-not-the-one-8fJ2+x/Y=="
QUERY_SECRET = "qv-7Hd93kLq-only-in-a-url"

# The shapes of credentials whose values a test cannot know in advance (a session the CLI
# got in its own process): oauth2-proxy's signed session cookie, and any JWT.
COOKIE_SHAPE = re.compile(r"[A-Za-z0-9_=-]{40,}\|\d{9,11}\|[A-Za-z0-9_=-]{20,}")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def forms(secret: str) -> set[str]:
    """Every way `secret` could appear in text."""
    out = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        b64(secret),
        b64(secret).rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
    }
    return {f for f in out if len(f) >= 8}


class Secrets:
    """The secrets a test knows, by name; `leaks` says which appear where."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        if len(value) < 8:
            raise AssertionError(f"{name} is too short to search for without false hits")
        self.known[name] = value

    def add_cookies(self, header: str) -> None:
        """The values of a `Cookie` header (`k1=v1; k2=v2`)."""
        for i, part in enumerate(p for p in header.split("; ") if p):
            self.add(f"cookie value {i} ({part.split('=', 1)[0]})", part.split("=", 1)[1])

    def leaks(self, texts: dict[str, str], *, shapes: bool = True) -> list[str]:
        found = []
        for where, text in texts.items():
            for name, value in self.known.items():
                if any(f in text for f in forms(value)):
                    found.append(f"{name} in {where}")
            if shapes and COOKIE_SHAPE.search(text):
                found.append(f"a session-cookie-shaped value in {where}")
            if shapes and JWT_SHAPE.search(text):
                found.append(f"a JWT-shaped value in {where}")
        return found


def exception_texts(label: str, e: BaseException) -> dict[str, str]:
    """Everything an exception shows: str, repr, args, the formatted traceback with its chained
    causes, and its attributes (`history`, `url`, `headers`, `body`, ...)."""
    texts = {
        f"{label}: str": str(e),
        f"{label}: repr": repr(e),
        f"{label}: args": repr(e.args),
        f"{label}: traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__)),
        f"{label}: attributes": repr(getattr(e, "__dict__", {})),
    }
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        texts[f"{label}: {type(cur).__name__} in the chain"] = f"{cur!s} {cur!r} {getattr(cur, '__dict__', {})!r}"
        cur = cur.__cause__ or cur.__context__
    return texts


class Capture(logging.Handler):
    """Keeps everything a log record holds: the formatted line, its raw args, any exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.format(record)} | args={record.args!r} | exc={record.exc_text!r}")


@contextlib.contextmanager
def every_log_handler() -> Iterator[tuple[Capture, Capture]]:
    """DEBUG everywhere: a handler on the root logger (every library, the Rust core's records
    through pyo3-log, warnings) and one on `kfp_auth` itself. Pytest's own capturing handlers
    are taken off meanwhile, so that a failing run cannot print a record holding a secret."""
    root, ours = Capture(), Capture()
    kfp_logger, root_logger = logging.getLogger("kfp_auth"), logging.getLogger()
    saved = (root_logger.level, kfp_logger.level)
    pytests = [h for h in root_logger.handlers if type(h).__module__.startswith("_pytest")]
    for h in pytests:
        root_logger.removeHandler(h)
    root_logger.addHandler(root)
    kfp_logger.addHandler(ours)
    root_logger.setLevel(logging.DEBUG)
    kfp_logger.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    try:
        yield root, ours
    finally:
        logging.captureWarnings(False)
        root_logger.removeHandler(root)
        kfp_logger.removeHandler(ours)
        root_logger.setLevel(saved[0])
        kfp_logger.setLevel(saved[1])
        for h in pytests:
            root_logger.addHandler(h)


@pytest.fixture(scope="module")
def safe_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Kubeflow 1.10's layout with this file's user and client secret, and Dex's password grant on."""
    with stack.start_kubeflow_stack(
        tmp_path_factory.mktemp("safety"),
        password_grant=True,
        client_secret=CLIENT_SECRET,
        static_users={USER: (PASSWORD_HASH, USER_NAMESPACE)},
    ) as s:
        yield s


def oauth_values(s: Stack) -> set[str]:
    """OAuth `state`, `code` and Dex's `req`/`hmac` values of every login so far (bearer-like)."""
    found = set(re.findall(r"(?:state|code|req|hmac)=([^&\s\"]+)", s.gateway_log()))
    return {v for v in found if len(v) >= 8}


def test_the_checker_finds_planted_secrets() -> None:
    secrets = Secrets()
    secrets.add("the password", PASSWORD)
    secrets.add("the client secret", CLIENT_SECRET)
    planted = {
        "as is": f"logging in with {PASSWORD} now",
        "form-encoded": f"password={quote_plus(PASSWORD)}&x=1",
        "percent-encoded": f"/login?p={quote(PASSWORD, safe='')}",
        "JSON": json.dumps({"secret": CLIENT_SECRET}),
        "repr": repr((PASSWORD,)),
        "base64": f"Authorization: Basic {b64(CLIENT_SECRET)}",
    }
    for where, text in planted.items():
        assert secrets.leaks({where: text}), where
    # Shapes: a cookie value and a JWT the test did not know.
    assert secrets.leaks({"cookie": "oauth2_proxy_kubeflow=" + "A" * 60 + "|1764316800|" + "b" * 43})
    assert secrets.leaks({"jwt": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"})
    # Through an exception, its traceback and a cause it was raised from.
    try:
        try:
            raise ValueError(f"inner {PASSWORD}")
        except ValueError as inner:
            raise RuntimeError("outer, clean") from inner
    except RuntimeError as e:
        assert any("traceback" in hit or "chain" in hit for hit in secrets.leaks(exception_texts("planted", e)))
    e2 = RuntimeError("clean")
    e2.history = [{"url": f"http://h/x?state={CLIENT_SECRET}"}]  # type: ignore[attr-defined]
    assert "the client secret in planted: attributes" in secrets.leaks(exception_texts("planted", e2))
    # And nothing in clean text.
    assert secrets.leaks({"clean": "GET http://127.0.0.1:1/pipeline?state=… -> 403 in 2 ms"}) == []


# -- Every error the package raises, at DEBUG with every handler attached --


def fake_jwt(subject: str) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'RS256', 'kid': 'nope'})}.{enc({'sub': subject, 'exp': 4102444800})}.c2lnbmF0dXJlLXNhZmV0eQ"


def provoke_every_error(
    s: Stack, tmp_path: Path, silent_server: str, slamming_server: str, secrets: Secrets, texts: dict[str, str]
) -> None:
    """Log in every way, raise every error type the package has, and put what each shows in `texts`
    and the credentials it met in `secrets`."""
    raised: dict[type, BaseException] = {}

    def expect(label: str, kind: type[BaseException], call: Any) -> BaseException:
        with pytest.raises(kind) as ei:
            call()
        raised.setdefault(kind, ei.value)
        texts.update(exception_texts(label, ei.value))
        return ei.value

    # Logins that work: a cookie session and its client, and a password-grant token and its client.
    m = KFPClientManager(s.api_url, USER, PASSWORD)
    cookies = m.get_session_cookies()
    client = m.create_kfp_client()
    client.list_experiments(namespace=USER_NAMESPACE)
    secrets.add_cookies(cookies)
    g = KFPClientManager(s.api_url, USER, PASSWORD, dex_client_id=CLIENT_ID, dex_client_secret=CLIENT_SECRET)
    token = g.get_bearer_token()
    assert token is not None
    g.create_kfp_client().list_experiments(namespace=USER_NAMESPACE)
    secrets.add("the password grant's ID token", token)
    vol = tmp_path / "token"
    file_token = fake_jwt("system:serviceaccount:safety:file")
    vol.write_text(file_token)
    f = KFPClientManager(s.api_url, token_path=vol)
    given_token = fake_jwt("system:serviceaccount:safety:given")
    t = KFPClientManager(s.api_url, existing_token=given_token)
    for name, value in (("a token file's token", file_token), ("a given token", given_token)):
        secrets.add(name, value)

    # Each error type.
    bad = expect(
        "InvalidCredentialsError",
        kfp_auth.InvalidCredentialsError,
        lambda: KFPClientManager(s.api_url, USER, WRONG_PASSWORD).get_session_cookies(),
    )
    assert bad.history, "a failed login carries its requests"  # type: ignore[attr-defined]
    expect(
        "InvalidCredentialsError (password grant)",
        kfp_auth.InvalidCredentialsError,
        lambda: KFPClientManager(
            s.api_url, USER, WRONG_PASSWORD, dex_client_id=CLIENT_ID, dex_client_secret=CLIENT_SECRET
        ).get_bearer_token(),
    )
    expect(
        "UnknownConnectorError",
        kfp_auth.UnknownConnectorError,
        lambda: KFPClientManager(s.api_url, USER, PASSWORD, "no-such-connector").get_session_cookies(),
    )
    expect(
        "UnexpectedResponseError (client secret)",
        kfp_auth.UnexpectedResponseError,
        lambda: KFPClientManager(
            s.api_url, USER, PASSWORD, dex_client_id=CLIENT_ID, dex_client_secret=WRONG_CLIENT_SECRET
        ).get_bearer_token(),
    )
    expect(
        "UnexpectedResponseError (no credentials)",
        kfp_auth.UnexpectedResponseError,
        lambda: KFPClientManager(s.api_url).create_kfp_client().list_experiments(namespace=USER_NAMESPACE),
    )
    expect(
        "LoginTimeoutError",
        kfp_auth.LoginTimeoutError,
        lambda: KFPClientManager(
            f"{silent_server}?state={QUERY_SECRET}", USER, PASSWORD, timeout=0.5
        ).get_session_cookies(),
    )
    expect(
        "ConnectError (refused)",
        kfp_auth.ConnectError,
        lambda: KFPClientManager(
            f"http://127.0.0.1:{free_port()}/pipeline?code={QUERY_SECRET}", USER, PASSWORD
        ).get_session_cookies(),
    )
    expect(
        "ConnectError (closed)",
        kfp_auth.ConnectError,
        lambda: KFPClientManager(slamming_server, USER, PASSWORD).get_session_cookies(),
    )
    tls_proc, tls_url = stack.start_kfp_api(
        tmp_path, require_auth=False, name="tls-api", tls=stack.self_signed_cert(tmp_path)
    )
    try:
        expect(
            "TLSError",
            kfp_auth.TLSError,
            lambda: KFPClientManager(f"{tls_url}/pipeline?state={QUERY_SECRET}", USER, PASSWORD).get_session_cookies(),
        )
    finally:
        tls_proc.stop()
    cache = tmp_path / "cache" / "sessions.json"
    KFPClientManager(s.api_url, USER, PASSWORD, session_cache=cache).get_session_cookies()
    secrets.add_cookies(json.loads(cache.read_text())["sessions"][f"local:{USER}@{s.api_url}"]["cookies"])
    cache.chmod(0o644)
    expect(
        "SessionCacheError",
        kfp_auth.SessionCacheError,
        lambda: KFPClientManager(s.api_url, USER, PASSWORD, session_cache=cache).get_session_cookies(),
    )
    expect("TokenError (refused)", kfp_auth.TokenError, lambda: t.create_kfp_client())
    expect("TokenError (refused file)", kfp_auth.TokenError, lambda: f.create_kfp_client())
    not_jwt = tmp_path / "not-a-jwt"
    not_jwt.write_text("opaque-token-Zk39fj2-only-in-test\n")
    secrets.add("a non-JWT file's content", "opaque-token-Zk39fj2-only-in-test")
    expect("TokenError (not a JWT)", kfp_auth.TokenError, lambda: KFPClientManager(s.api_url, token_path=not_jwt))
    denied = expect(
        "PermissionDeniedError", kfp_auth.PermissionDeniedError, lambda: client.list_experiments(namespace=NAMESPACE)
    )
    texts["PermissionDeniedError: headers and body"] = repr((denied.headers, denied.body))  # type: ignore[attr-defined]
    # kfp's own ApiException (the API refusing a request) passes through the client's hook too;
    # its str() prints the response headers, where Kubeflow's gateway puts the user's ID token.
    from kfp_server_api.exceptions import ApiException

    refused = expect(
        "ApiException (kfp's own)", ApiException, lambda: client.get_experiment(experiment_id="no-such-experiment")
    )
    assert refused.status in (400, 404)  # type: ignore[attr-defined]
    expect(
        "ValueError (credentials in api_url)",
        ValueError,
        lambda: KFPClientManager(
            f"http://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@127.0.0.1:1/pipeline", USER, PASSWORD
        ),
    )
    missing = {
        kfp_auth.InvalidCredentialsError,
        kfp_auth.UnknownConnectorError,
        kfp_auth.UnexpectedResponseError,
        kfp_auth.LoginTimeoutError,
        kfp_auth.ConnectError,
        kfp_auth.TLSError,
        kfp_auth.SessionCacheError,
        kfp_auth.TokenError,
        kfp_auth.PermissionDeniedError,
    } - set(raised)
    assert not missing, missing
    # The classes actually raised (`raised` is keyed by what was expected): each is a
    # KFPAuthError subclass, the bad argument too (expected above as a ValueError only),
    # and the base class itself is never raised bare.
    actual = {type(e) for kind, e in raised.items() if kind is not ApiException}
    assert kfp_auth.InvalidArgumentError in actual
    assert kfp_auth.KFPAuthError not in actual
    assert all(issubclass(k, kfp_auth.KFPAuthError) for k in actual), actual

    # The reprs of everything that holds a credential.
    for label, obj in (
        ("cookie manager", m),
        ("grant manager", g),
        ("file manager", f),
        ("token manager", t),
        ("native DexSession", m._session),
        ("native BearerSession (grant)", g.bearer),
        ("native BearerSession (file)", f.bearer),
        ("native BearerSession (token)", t.bearer),
    ):
        texts[f"repr({label})"] = repr(obj)
        if hasattr(obj, "__dict__"):
            texts[f"vars({label})"] = repr(vars(obj)) + repr(
                [vars(v) for v in vars(obj).values() if hasattr(v, "__dict__")]
            )


def test_no_error_log_repr_or_traceback_holds_a_credential(
    safe_stack: Stack,
    tmp_path: Path,
    silent_server: str,
    slamming_server: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    s = safe_stack
    secrets = Secrets()
    for name, value in (
        ("the password", PASSWORD),
        ("a wrong password", WRONG_PASSWORD),
        ("the client secret", CLIENT_SECRET),
        ("a wrong client secret", WRONG_CLIENT_SECRET),
        ("a query value", QUERY_SECRET),
    ):
        secrets.add(name, value)
    texts: dict[str, str] = {}
    with every_log_handler() as (root_log, own_log):
        provoke_every_error(s, tmp_path, silent_server, slamming_server, secrets, texts)

    # The logs: they did record the logins, in the Rust core and reaching the root logger,
    # so their silence on secrets means something. (Booleans: a failure must not print logs.)
    root_text, own_text = "\n".join(root_log.lines), "\n".join(own_log.lines)
    logged_steps = all(w in own_text for w in ("logged in to", "POST http", "password grant", "failed"))
    propagated = " kfp_auth DEBUG " in root_text
    assert logged_steps and propagated
    texts["root logger"], texts["kfp_auth logger"] = root_text, own_text
    out, err = capfd.readouterr()
    texts["stdout"], texts["stderr"] = out, err

    secrets.known.update({f"OAuth value {i}": v for i, v in enumerate(sorted(oauth_values(s)))})
    assert len(secrets.known) > 12
    leaks = secrets.leaks(texts)
    assert not leaks, "\n".join(leaks)


# -- The command line --


def run_cli(
    args: list[str],
    home: Path,
    *,
    password: str | None = PASSWORD,
    client_secret: str | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_"))}
    env["HOME"] = str(home)
    if password is not None:
        env["KFP_AUTH_PASSWORD"] = password
    if client_secret is not None:
        env["KFP_AUTH_CLIENT_SECRET"] = client_secret
    return subprocess.run(
        [str(Path(sys.executable).parent / "kfp-auth"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_cli_shows_no_credential_but_the_one_it_is_asked_to_print(safe_stack: Stack, tmp_path: Path) -> None:
    s = safe_stack
    login = ["--url", s.api_url, "-u", USER]
    grant = [*login, "--dex-client-id", CLIENT_ID]
    secrets = Secrets()
    for name, value in (
        ("the password", PASSWORD),
        ("a wrong password", WRONG_PASSWORD),
        ("the client secret", CLIENT_SECRET),
        ("a wrong client secret", WRONG_CLIENT_SECRET),
    ):
        secrets.add(name, value)
    texts: dict[str, str] = {}

    # `login` prints the session or token on stdout: its purpose. Nothing else anywhere.
    # (Outcomes are checked as booleans, so that a failure cannot print what was on stdout.)
    r = run_cli(["login", *login], tmp_path)
    printed_cookie = r.stdout.startswith("oauth2_proxy_kubeflow=")
    assert r.returncode == 0 and printed_cookie, r.returncode
    secrets.add_cookies(r.stdout.strip())
    texts["login: stderr"] = r.stderr
    r = run_cli(["login", *grant], tmp_path, client_secret=CLIENT_SECRET)
    printed_token = JWT_SHAPE.fullmatch(r.stdout.strip()) is not None
    assert r.returncode == 0 and printed_token, r.returncode
    secrets.add("the CLI's ID token", r.stdout.strip())
    texts["login (grant): stderr"] = r.stderr
    # The token on stdout holds neither the password nor the secret.
    assert secrets.leaks({"login (grant): stdout": r.stdout}, shapes=False) == [
        "the CLI's ID token in login (grant): stdout"
    ]
    token = r.stdout.strip()

    # label: (arguments, options, the exit code that shows the run did what its label says)
    runs = {
        "login, wrong password": (["login", *login], {"password": WRONG_PASSWORD}, 3),
        "login, wrong client secret": (["login", *grant], {"client_secret": WRONG_CLIENT_SECRET}, 1),
        "login, grant, wrong password": (
            ["login", *grant],
            {"password": WRONG_PASSWORD, "client_secret": CLIENT_SECRET},
            3,
        ),
        "login, unknown connector": (["login", *login, "-c", "no-such-connector"], {}, 3),
        "diagnose": (["diagnose", *login], {}, 0),
        "diagnose -o json": (["diagnose", *login, "-o", "json"], {}, 0),
        "diagnose, wrong password": (["diagnose", *login], {"password": WRONG_PASSWORD}, 3),
        "context": (["context", "--any-host", *login, "--context-file", str(tmp_path / "ctx.json")], {}, 0),
        "kfp": (["kfp", *login, "--", "-n", USER_NAMESPACE, "experiment", "list"], {}, 0),
        "kfp, a failed request": (
            ["kfp", *login, "--", "-n", USER_NAMESPACE, "experiment", "get", "no-such-id"],
            {},
            1,
        ),
        "kfp (grant)": (
            ["kfp", *grant, "--", "-n", USER_NAMESPACE, "experiment", "list"],
            {"client_secret": CLIENT_SECRET},
            0,
        ),
        "kfp, wrong password": (["kfp", *login, "--", "experiment", "list"], {"password": WRONG_PASSWORD}, 3),
        "inspect --stdin": (["inspect", "--stdin"], {"stdin": token + "\n"}, 0),
        "inspect --stdin -o json": (["inspect", "--stdin", "-o", "json"], {"stdin": token + "\n"}, 0),
    }
    codes = {}
    for label, (args, kw, _) in runs.items():
        r = run_cli(args, tmp_path, **kw)  # type: ignore[arg-type]
        texts[f"{label}: stdout"], texts[f"{label}: stderr"] = r.stdout, r.stderr
        codes[label] = r.returncode
    assert codes == {label: code for label, (_, _, code) in runs.items()}
    # `context` wrote the session where kfp reads it, privately.
    assert stat.S_IMODE((tmp_path / "ctx.json").stat().st_mode) == 0o600
    has_session = "oauth2_proxy_kubeflow=" in (tmp_path / "ctx.json").read_text()
    assert has_session
    diagnosed = "verdict" in texts["diagnose: stdout"] and "FAILED" in texts["diagnose, wrong password: stdout"]
    assert diagnosed

    secrets.known.update({f"OAuth value {i}": v for i, v in enumerate(sorted(oauth_values(s)))})
    leaks = secrets.leaks(texts)
    assert not leaks, "\n".join(leaks)


# -- The session cache --


def test_the_session_cache_holds_no_password_and_only_its_owner_may_read_it(safe_stack: Stack, tmp_path: Path) -> None:
    s = safe_stack
    folder = tmp_path / "kfp-auth"
    cache = folder / "sessions.json"
    m = KFPClientManager(s.api_url, USER, PASSWORD, session_cache=cache)
    cookies = m.get_session_cookies()
    secrets = Secrets()
    secrets.add("the password", PASSWORD)
    raw = cache.read_text()
    # It holds the session (which is why it must be private) and nothing of the password.
    holds_the_session = json.loads(raw)["sessions"][f"local:{USER}@{s.api_url}"]["cookies"] == cookies
    assert holds_the_session
    files = {p.name: p for p in folder.iterdir()}
    assert set(files) == {"sessions.json", "sessions.json.lock"}
    assert secrets.leaks({name: p.read_text() for name, p in files.items()}, shapes=False) == []
    assert "password" not in raw.lower()
    modes = {name: stat.S_IMODE(p.stat().st_mode) for name, p in files.items()}
    assert modes == {"sessions.json": 0o600, "sessions.json.lock": 0o600}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    # Any read or write bit for the group or others is refused, before any login and
    # without quoting the file; the owner's 0600 (or 0400) is used.
    secrets.add_cookies(cookies)
    for mode in (0o640, 0o604, 0o620, 0o602, 0o660, 0o666):
        cache.chmod(mode)
        other = KFPClientManager(s.api_url, USER, PASSWORD, session_cache=cache)
        with pytest.raises(kfp_auth.SessionCacheError, match=rf"readable by other users \(mode {mode:o}\)") as ei:
            other.get_session_cookies()
        assert other.logins == 0
        assert secrets.leaks(exception_texts(f"mode {mode:o}", ei.value)) == []
    for mode in (0o600, 0o400):
        cache.chmod(mode)
        reuse = KFPClientManager(s.api_url, USER, PASSWORD, session_cache=cache)
        same = reuse.get_session_cookies() == cookies
        assert same and reuse.logins == 0
    cache.chmod(0o600)
    # A folder others may write (and so swap the file in) is refused too.
    folder.chmod(0o770)
    with pytest.raises(kfp_auth.SessionCacheError, match="is not private"):
        KFPClientManager(s.api_url, USER, PASSWORD, session_cache=cache).get_session_cookies()
    folder.chmod(0o700)


# -- The password grant sends the client secret to Dex's token endpoint only --


class Recorder(ThreadingHTTPServer):
    """A plain-HTTP forward proxy that records each request in full (line, headers, body)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = urlsplit(self.path)
        with self.server.lock:
            self.server.records.append(
                {"method": self.command, "url": self.path, "headers": str(self.headers), "body": body.decode("latin-1")}
            )
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            conn.putrequest(
                self.command,
                target.path + (f"?{target.query}" if target.query else ""),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for k, v in self.headers.items():
                if k.lower() not in (
                    "proxy-connection",
                    "proxy-authorization",
                    "connection",
                    "keep-alive",
                    "content-length",
                ):
                    conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    t = threading.Thread(target=r.serve_forever, daemon=True)
    t.start()
    try:
        yield r
    finally:
        r.shutdown()
        r.server_close()
        t.join()


def where_found(records: list[dict[str, Any]], secret: str, extra: frozenset[str] = frozenset()) -> set[str]:
    """`METHOD URL` (without the query, which may hold a login's `state`) of each recorded
    request that holds `secret` in any form."""
    look = forms(secret) | extra
    return {
        f"{r['method']} {r['url'].split('?', 1)[0]}"
        for r in records
        if any(f in r["url"] or f in r["headers"] or f in r["body"] for f in look)
    }


def test_the_password_grant_sends_the_client_secret_only_to_dexs_token_endpoint(
    safe_stack: Stack, recorder: Recorder
) -> None:
    s = safe_stack
    g = KFPClientManager(
        s.api_url, USER, PASSWORD, dex_client_id=CLIENT_ID, dex_client_secret=CLIENT_SECRET, proxy=recorder.url
    )
    client = g.create_kfp_client()
    client.list_experiments(namespace=USER_NAMESPACE)
    g.get_bearer_token(force_refresh=True)  # a second grant, and requests on its token
    client.list_experiments(namespace=USER_NAMESPACE)
    client.create_experiment(name="grant-secret-check", namespace=USER_NAMESPACE)
    records = recorder.records
    token_endpoint = f"POST {s.gateway_url}/dex/token"  # dex_url's default: /dex on api_url's host
    api = [r for r in records if "/apis/" in r["url"]]
    # Every request went through the recorder: both grants, and the client's API calls.
    assert sum(1 for r in records if f"{r['method']} {r['url']}" == token_endpoint) == 2
    assert len(api) >= 4 and all("Authorization: Bearer eyJ" in r["headers"] for r in api)
    basic = frozenset(
        {b64(f"{CLIENT_ID}:{CLIENT_SECRET}"), b64(f"{quote_plus(CLIENT_ID)}:{quote_plus(CLIENT_SECRET)}")}
    )
    assert where_found(records, CLIENT_SECRET, basic) == {token_endpoint}
    assert where_found(records, PASSWORD) == {token_endpoint}
    # Nor did the API behind the gateway see it (its log keeps what each request carried).
    assert CLIENT_SECRET not in (s.workdir / "kfp-requests.jsonl").read_text()


def test_the_browser_login_sends_the_password_only_to_dexs_password_form(safe_stack: Stack, recorder: Recorder) -> None:
    s = safe_stack
    m = KFPClientManager(s.api_url, USER, PASSWORD, proxy=recorder.url)
    client = m.create_kfp_client()
    client.list_experiments(namespace=USER_NAMESPACE)
    # One request: the POST to Dex's password form (the form's `action`, behind the gateway).
    posts = [
        f"{r['method']} {r['url'].split('?', 1)[0]}"
        for r in recorder.records
        if any(f in r["url"] or f in r["headers"] or f in r["body"] for f in forms(PASSWORD))
    ]
    assert posts == [f"POST {s.gateway_url}/dex/auth/local/login"]
    assert where_found(recorder.records, CLIENT_SECRET) == set()
    assert any("/apis/" in r["url"] and "oauth2_proxy_kubeflow=" in r["headers"] for r in recorder.records)
