"""A TEST DOUBLE of oidc-authservice: OUR OWN code, not github.com/arrikto/oidc-authservice.

Kubeflow <= 1.8 guards its gateway with arrikto/oidc-authservice (Kubeflow 1.8:
image gcr.io/arrikto/kubeflow/oidc-authservice:e236439, commit
e2364397aaf1a8119aa649989f0de87276f58cbc). The Go module proxy this project
builds its real components from does not serve that module, so the test stack
uses this stand-in, which copies the behaviour of that commit that a login
client meets (read from its server.go, state.go, session.go and settings.go,
and compared on the wire with a build of it):

- It is an Envoy ext_authz HTTP service (see ext_authz_gateway.py, which plays
  Envoy): it answers the check request, it does not proxy. 200 lets the request
  through, with the user in ``USERID_HEADER`` (prefixed with ``USERID_PREFIX``)
  and the groups in ``GROUPS_HEADER``; any other answer goes back to the client.
- Paths under ``SKIP_AUTH_URLS`` or ``AUTHSERVICE_URL_PREFIX`` (a plain prefix
  match) get 200 ``OK`` without a session.
- A request without a known session (cookie ``authservice_session``, or its
  value in the ``Authorization`` header, ``Bearer`` optional) gets a 302 to
  ``OIDC_AUTH_URL?client_id=…&redirect_uri=<REDIRECT_URL>&response_type=code&
  scope=<OIDC_SCOPES>&state=S`` and the cookie ``oidc_state_csrf=S`` (with the
  real service's ``Max-Age=1200000000000``: it passes 20 minutes in nanoseconds
  as seconds). S remembers the path and query first visited; the request's
  method does not matter (POSTs are redirected too, with no body).
- ``GET <AUTHSERVICE_URL_PREFIX>oidc/callback?code&state``: the state must
  equal the ``oidc_state_csrf`` cookie and be known (each state works once),
  else 400 "CSRF check failed…"; no code gives a 302 to the homepage. The code
  is redeemed at the provider's token endpoint (from its discovery document)
  with the client secret in HTTP Basic, the user's claims come from the
  userinfo endpoint, and the answer is a 302 to the first visited URL that
  clears ``oidc_state_csrf`` and sets ``authservice_session=<random>; Path=/;
  Expires=…; Max-Age=<SESSION_MAX_AGE>; SameSite=Lax`` (no HttpOnly, as the
  real one).
- ``POST <AUTHSERVICE_URL_PREFIX>logout`` with the session in the
  ``Authorization`` header deletes that session, clears its cookie and answers
  201 ``{"afterLogoutURL":…}``.
- A readiness probe on ``READINESS_PROBE_PORT`` answers 200 once OIDC discovery
  has succeeded (503 before); until then only the skipped paths get 200.

It reads the same environment variables as the real service. Sessions live in
memory: restarting the process drops them all, as wiping the real one's
BoltDB store does. What it leaves out: the id_token's signature is not checked
(its issuer, audience and expiry are; the access token proves itself at the
userinfo endpoint), and the real service's other authenticators (a Dex
id_token or a Kubernetes token in ``Authorization``), its web pages, its
groups allowlist and strict session validation are not copied.

Its log holds requests and decisions, never a cookie, state, code or token value.
"""

from __future__ import annotations

import base64
import html
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

SESSION_COOKIE = "authservice_session"
STATE_COOKIE = "oidc_state_csrf"
# The real service sets MaxAge = int(20 * time.Minute): 1.2e12 "seconds", and
# its Expires is now + that Duration overflowed in int64 nanoseconds (~30.5 years).
STATE_MAX_AGE = 20 * 60 * 10**9
STATE_EXPIRES_AFTER = ((STATE_MAX_AGE * 10**9) % 2**64) / 1e9


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def env_list(name: str, default: str = "") -> list[str]:
    """envconfig splits lists on commas only: "profile email groups" is one element."""
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


class Config:
    def __init__(self) -> None:
        e = os.environ
        self.provider = e["OIDC_PROVIDER"].rstrip("/")
        self.client_id = e["CLIENT_ID"]
        self.client_secret = e["CLIENT_SECRET"]
        self.prefix = e["AUTHSERVICE_URL_PREFIX"]
        prefix_path = urlsplit(self.prefix).path
        self.callback_path = prefix_path.rstrip("/") + "/oidc/callback"
        self.logout_path = prefix_path.rstrip("/") + "/logout"
        self.homepage = e.get("HOMEPAGE_URL") or self.prefix.rstrip("/") + "/site/homepage"
        self.after_logout = e.get("AFTER_LOGOUT_URL") or self.prefix.rstrip("/") + "/site/after_logout"
        self.auth_url = e.get("OIDC_AUTH_URL", "")
        self.redirect_url = e.get("REDIRECT_URL") or self.prefix.rstrip("/") + "/oidc/callback"
        scopes = env_list("OIDC_SCOPES", "openid,email")
        self.scopes = scopes if "openid" in scopes else ["openid", *scopes]
        skip = env_list("SKIP_AUTH_URLS")
        self.skip = skip if prefix_path in skip else [prefix_path, *skip]
        self.auth_header = e.get("AUTH_HEADER", "Authorization")
        self.userid_header = e.get("USERID_HEADER", "kubeflow-userid")
        self.userid_prefix = e.get("USERID_PREFIX", "")
        self.userid_claim = e.get("USERID_CLAIM", "email")
        self.groups_header = e.get("GROUPS_HEADER", "kubeflow-groups")
        self.groups_claim = e.get("GROUPS_CLAIM", "groups")
        self.host = e.get("SERVER_HOSTNAME", "")
        self.port = int(e.get("SERVER_PORT", "8080"))
        self.readiness_port = int(e.get("READINESS_PROBE_PORT", "8081"))
        self.session_max_age = int(e.get("SESSION_MAX_AGE", "86400"))
        self.same_site = e.get("SESSION_SAME_SITE", "Lax")
        if self.same_site not in ("None", "Strict"):
            self.same_site = "Lax"


class State:
    """Everything the service knows, in memory."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.sessions: dict[str, dict] = {}  # session id -> {"user", "groups"}
        self.states: dict[str, tuple[str, float]] = {}  # state -> (first visited URL, expiry)
        self.token_endpoint = ""
        self.userinfo_endpoint = ""

    def discover(self) -> None:
        url = self.cfg.provider + "/.well-known/openid-configuration"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    doc = json.load(r)
                if doc.get("issuer", "").rstrip("/") != self.cfg.provider:
                    raise ValueError(f"issuer {doc.get('issuer')!r} is not OIDC_PROVIDER")
                self.token_endpoint = doc["token_endpoint"]
                self.userinfo_endpoint = doc["userinfo_endpoint"]
                self.ready.set()
                log(f"OIDC discovery done: {self.cfg.provider}")
                return
            except (OSError, ValueError, KeyError) as e:
                log(f"OIDC provider setup failed, retrying: {e}")
                time.sleep(0.5)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "oidc-authservice-test-double/1"
    st: State

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    # -- replies -------------------------------------------------------------

    def _reply(
        self, status: int, body: bytes = b"", content_type: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _message(self, status: int, msg: str) -> None:
        self._reply(status, msg.encode(), "text/plain")

    def _redirect(self, location: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        # As Go's http.Redirect: a small HTML body for GET and HEAD only.
        if self.command in ("GET", "HEAD"):
            body = f'<a href="{html.escape(location)}">Found</a>.\n\n'.encode()
            self._reply(302, body, "text/html; charset=utf-8", [("Location", location), *headers])
        else:
            self._reply(302, b"", None, [("Location", location), *headers])

    # -- requests ------------------------------------------------------------

    def _cookie(self, name: str) -> str | None:
        for part in self.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
        return None

    def _session(self) -> dict | None:
        token = self.headers.get(self.st.cfg.auth_header, "").strip()
        if token.startswith("Bearer "):
            token = token[len("Bearer ") :]
        with self.st.lock:
            if token and token in self.st.sessions:
                return self.st.sessions[token]
            return self.st.sessions.get(self._cookie(SESSION_COOKIE) or "")

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # an ext_authz check has no body; read any anyway
        path = urlsplit(self.path).path
        cfg = self.st.cfg
        if path == cfg.callback_path and self.command == "GET":
            return self._callback()
        if path == cfg.logout_path and self.command == "POST":
            return self._logout()
        if any(path.startswith(p) for p in cfg.skip):
            return self._message(200, "OK")
        if not self.st.ready.is_set():
            return self._message(503, "OIDC Setup is not complete yet.")
        session = self._session()
        if session is None:
            return self._start_login()
        log(f"{self.command} {path}: session of {session['user']}, allowed")
        self._reply(
            200,
            headers=[
                (cfg.userid_header, cfg.userid_prefix + session["user"]),
                (cfg.groups_header, ",".join(session["groups"])),
            ],
        )

    def _start_login(self) -> None:
        cfg = self.st.cfg
        url = urlsplit(self.path)
        first_visited = url.path + (f"?{url.query}" if url.query else "")
        state = secrets.token_urlsafe(96)
        now = time.time()
        with self.st.lock:
            self.st.states = {k: v for k, v in self.st.states.items() if v[1] > now}
            self.st.states[state] = (first_visited, now + 20 * 60)
        # golang.org/x/oauth2's AuthCodeURL: url.Values.Encode(), keys sorted, spaces as "+".
        query = urlencode(
            sorted(
                {
                    "client_id": cfg.client_id,
                    "redirect_uri": cfg.redirect_url,
                    "response_type": "code",
                    "scope": " ".join(cfg.scopes),
                    "state": state,
                }.items()
            )
        )
        location = cfg.auth_url + ("&" if "?" in cfg.auth_url else "?") + query
        cookie = (
            f"{STATE_COOKIE}={state}; Path=/; Expires={http_date(now + STATE_EXPIRES_AFTER)}; Max-Age={STATE_MAX_AGE}"
        )
        log(f"{self.command} {url.path}: no session, redirecting to the OIDC provider")
        self._redirect(location, [("Set-Cookie", cookie)])

    def _callback(self) -> None:
        cfg = self.st.cfg
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        code, state = query.get("code", ""), query.get("state", "")
        if not code:
            log("callback without code: redirecting to the homepage")
            return self._redirect(cfg.homepage)
        if not state:
            return self._message(400, "Missing url parameter: state")
        cookie = self._cookie(STATE_COOKIE)
        with self.st.lock:
            known = self.st.states.pop(state, None) if cookie == state else None
        if known is None or known[1] < time.time():
            log("callback: state missing from the cookie, different, unknown or used (CSRF check failed)")
            return self._message(
                400,
                "CSRF check failed. This may happen if you opened the login form in more"
                " than 1 tabs. Please try to login again.",
            )
        clear_state = f"{STATE_COOKIE}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"
        try:
            tokens = self._post_form(
                self.st.token_endpoint,
                {"grant_type": "authorization_code", "code": code, "redirect_uri": cfg.redirect_url},
            )
        except (OSError, ValueError) as e:
            log(f"callback: failed to exchange the authorization code: {type(e).__name__}")
            return self._message(500, "Failed to exchange authorization code with token.")
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            return self._message(500, "No id_token field in OAuth 2.0 token.")
        problem = self._id_token_problem(id_token)
        if problem:
            log(f"callback: id_token refused: {problem}")
            return self._message(500, "Unable to verify ID token.")
        try:
            req = urllib.request.Request(
                self.st.userinfo_endpoint, headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                claims = json.load(r)
        except (OSError, ValueError, KeyError) as e:
            log(f"callback: userinfo failed: {type(e).__name__}")
            return self._message(500, "Not able to fetch userinfo.")
        user = claims.get(cfg.userid_claim)
        if not isinstance(user, str):
            return self._message(500, f"Couldn't find userID claim in `{cfg.userid_claim}' in userinfo.")
        groups = [g for g in claims.get(cfg.groups_claim) or [] if isinstance(g, str)]
        sid = secrets.token_urlsafe(120)
        with self.st.lock:
            self.st.sessions[sid] = {"user": user, "groups": groups}
        session_cookie = (
            f"{SESSION_COOKIE}={sid}; Path=/; Expires={http_date(time.time() + cfg.session_max_age)}; "
            f"Max-Age={cfg.session_max_age}; SameSite={cfg.same_site}"
        )
        log(f"callback: login of {user} validated, new session, redirecting to {urlsplit(known[0]).path}")
        self._redirect(known[0], [("Set-Cookie", clear_state), ("Set-Cookie", session_cookie)])

    def _logout(self) -> None:
        token = self.headers.get(self.st.cfg.auth_header, "").strip()
        if token.startswith("Bearer "):
            token = token[len("Bearer ") :]
        with self.st.lock:
            session = self.st.sessions.pop(token, None) if token else None
        if session is None:
            return self._reply(401)
        log(f"logout: session of {session['user']} deleted")
        body = json.dumps({"afterLogoutURL": self.st.cfg.after_logout}, separators=(",", ":")).encode()
        clear = f"{SESSION_COOKIE}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"
        self._reply(201, body, "application/json", [("Set-Cookie", clear)])

    def _post_form(self, url: str, form: dict[str, str]) -> dict:
        cfg = self.st.cfg
        # golang.org/x/oauth2 sends the client credentials in HTTP Basic, each URL-escaped.
        basic = base64.b64encode(f"{quote(cfg.client_id, safe='')}:{quote(cfg.client_secret, safe='')}".encode())
        req = urllib.request.Request(
            url,
            data=urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic.decode()}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raise ValueError(f"token endpoint answered {e.code}") from None

    def _id_token_problem(self, id_token: str) -> str | None:
        try:
            payload = id_token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return "not a JWT"
        aud = claims.get("aud")
        if claims.get("iss", "").rstrip("/") != self.st.cfg.provider:
            return "wrong issuer"
        if self.st.cfg.client_id not in (aud if isinstance(aud, list) else [aud]):
            return "wrong audience"
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < time.time():
            return "expired"
        return None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Readiness(BaseHTTPRequestHandler):
    st: State

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200 if self.st.ready.is_set() else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main() -> None:
    try:
        cfg = Config()
    except KeyError as e:
        sys.exit(f"Failed to parse configuration: {e.args[0]} is required")
    st = State(cfg)
    Handler.st = Readiness.st = st
    ThreadingHTTPServer.daemon_threads = True
    host = cfg.host or "127.0.0.1"
    probe = ThreadingHTTPServer((host, cfg.readiness_port), Readiness)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
    server = ThreadingHTTPServer((host, cfg.port), Handler)
    threading.Thread(target=st.discover, daemon=True).start()
    log(f"oidc-authservice test double on {host}:{cfg.port}, readiness on {cfg.readiness_port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
