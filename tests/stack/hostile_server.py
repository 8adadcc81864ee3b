"""A FAULT INJECTOR, not a test double: a loopback HTTP/1.1 server that misbehaves
on purpose, for tests/test_hostile.py.

It imitates neither Dex nor oauth2-proxy (the real ones run in tests/stack). It
answers each path with a scripted action, and the actions are the faults: redirect
loops, a broken or missing ``Location``, gigantic, truncated, compressed or
non-UTF-8 bodies, headers or bodies trickled a byte at a time, a connection that
is accepted and never answered. ``script_login`` lays down the few steps a login
goes through (in the shape the login flow expects, nothing more), so a test can
put its fault at any one step by replacing that step's action.

    with HostileServer() as srv:
        script_login(srv)
        srv.route("/dex/auth/local/login", trickle_body(b"x", every=0.5), method="GET")

Every request is recorded (``srv.requests``) so a test can check what reached it,
for example that a password never did. Each connection is answered once and closed
(``Connection: close``): the client cannot reuse it, so every step is a fresh one.

Also here: ``FaultProxy``, an HTTP relay to be put in front of a real component
(Dex, behind the real oauth2-proxy) that passes everything on except the requests
a test tells it to fail.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


#: An action writes an answer (or not) on the connection; the server closes it afterwards.
Action = Callable[[socket.socket, Request, "HostileServer"], None]


def _head(
    status: int,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    length: int | None = None,
    reason: str = "Fault",
) -> bytes:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in items]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(
    status: int = 200,
    body: bytes | str = b"",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    content_type: str = "text/html; charset=utf-8",
) -> Action:
    """A well-formed answer."""
    data = body.encode() if isinstance(body, str) else body
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if content_type and not any(k.lower() == "content-type" for k, _ in items):
        items.append(("Content-Type", content_type))

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        conn.sendall(_head(status, items, len(data)) + data)

    return act


def redirect(location: str | bytes | None, status: int = 302, headers: list[tuple[str, str]] | None = None) -> Action:
    """A redirect; ``None`` leaves the Location header out, bytes are written as they are."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        head = _head(status, headers, 0)
        if location is not None:
            loc = location if isinstance(location, bytes) else location.encode("latin-1")
            head = head[:-2] + b"Location: " + loc + b"\r\n\r\n"
        conn.sendall(head)

    return act


def raw(data: bytes) -> Action:
    """Bytes written as they are: for answers no well-behaved server sends."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        conn.sendall(data)

    return act


def endless_body(chunk: bytes = b"<p>" + b"A" * 65533, *, declare_length: int | None = None) -> Action:
    """A 200 HTML body that never ends (chunked), or that declares `declare_length` bytes;
    it is written until the client hangs up (or 1 GiB, whichever comes first)."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        if declare_length is None:
            conn.sendall(_head(200, {"Content-Type": "text/html", "Transfer-Encoding": "chunked"}))
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        else:
            conn.sendall(_head(200, {"Content-Type": "text/html"}, declare_length))
            frame = chunk
        sent = 0
        try:
            while sent < 1 << 30 and not srv.stopping.is_set():
                conn.sendall(frame)
                sent += len(chunk)
        except OSError:
            pass  # the client gave up reading: what it should do

    return act


def truncated(body: bytes, declared: int, content_type: str = "text/html") -> Action:
    """Declares `declared` bytes, sends `body` (fewer), then closes."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        conn.sendall(_head(200, {"Content-Type": content_type}, declared) + body)

    return act


def slow_headers(every: float = 0.5) -> Action:
    """The status line and headers a byte at a time, `every` seconds apart, forever."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        head = _head(200, {"Content-Type": "text/html", "X-Padding": "p" * 10_000}, 10)
        for b in head:
            if srv.stopping.wait(every):
                return
            try:
                conn.sendall(bytes([b]))
            except OSError:
                return

    return act


def trickle_body(byte: bytes = b"x", every: float = 0.5, declared: int = 1 << 20) -> Action:
    """Headers at once, then the body a byte at a time (slowloris in reverse)."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        conn.sendall(_head(200, {"Content-Type": "text/html"}, declared))
        while not srv.stopping.wait(every):
            try:
                conn.sendall(byte)
            except OSError:
                return

    return act


def slow(action: Action, delay: float) -> Action:
    """`action`, after `delay` seconds: each answer of a redirect loop made slow, say."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        if not srv.stopping.wait(delay):
            action(conn, req, srv)

    return act


def silent() -> Action:
    """Reads the request and never answers; the connection stays open until the server stops."""

    def act(conn: socket.socket, req: Request, srv: HostileServer) -> None:
        srv.stopping.wait()

    return act


class HostileServer:
    """The fault injector (see the module's docstring). `tls=(cert, key)` serves HTTPS;
    `host` is the address it listens on (loopback unless a test needs another)."""

    def __init__(self, tls: tuple[Path, Path] | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self._tls: ssl.SSLContext | None = None
        if tls:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(str(tls[0]), str(tls[1]))
        self.routes: dict[tuple[str | None, str], Action] = {}
        #: What answers a path no route names (a 404 unless set).
        self.fallback: Action = respond(404, "no such fault scripted", content_type="text/plain")
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    def route(self, path: str, action: Action, method: str | None = None) -> None:
        """Answer `path` (without the query) with `action`; `method=None` for any method."""
        self.routes[(method, path)] = action

    def start(self) -> HostileServer:
        t = threading.Thread(target=self._accept, daemon=True, name=f"hostile-{self.port}")
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self.stopping.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way; close() alone does not
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._conns.append(conn)
                self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._tls:
                conn.settimeout(10)
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused our certificate: what the TLS tests want
                with self._lock:
                    self._conns.append(conn)
            req = self._read_request(conn)
            if req is None:
                return
            self.requests.append(req)
            action = self.routes.get((req.method, req.path)) or self.routes.get((None, req.path)) or self.fallback
            action(conn, req, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _read_request(conn: socket.socket) -> Request | None:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = int(headers.get("content-length", "0") or 0)
        while len(rest) < want:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        conn.settimeout(None)
        return Request(method, target, headers, rest[:want])


# -- the steps of a login, in the shape the login flow expects, so a fault can go at any one --

AUTH_QUERY = "client_id=kf&response_type=code&redirect_uri=%2Foauth2%2Fcallback&state=st4te"
PASSWORD_FORM = """<html><body><form method="post" action="{action}">
<input name="login" type="text"/><input name="password" type="password"/>
<button type="submit">Login</button></form></body></html>"""
SESSION_COOKIE = "fault_session"


def script_login(srv: HostileServer, *, cookie_attrs: str = "Path=/") -> None:
    """`/pipeline` → `/dex/auth?…` → (the flow jumps to) `/dex/auth/local` → the password
    form → its post → `/oauth2/callback`, which sets `fault_session` with `cookie_attrs`."""
    srv.route("/pipeline", redirect(f"/dex/auth?{AUTH_QUERY}"))
    srv.route("/dex/auth", redirect("/dex/auth/local?" + AUTH_QUERY))
    srv.route("/dex/auth/local", redirect("/dex/auth/local/login?back=&state=st4te"))
    srv.route(
        "/dex/auth/local/login",
        respond(200, PASSWORD_FORM.format(action="/dex/auth/local/login?state=st4te")),
        method="GET",
    )
    srv.route("/dex/auth/local/login", redirect("/oauth2/callback?code=c0de&state=st4te", 303), method="POST")
    srv.route(
        "/oauth2/callback", redirect("/pipeline", 302, [("Set-Cookie", f"{SESSION_COOKIE}=s3ss10n; {cookie_attrs}")])
    )


# -- pages built to be expensive to read: each fills the body cap with one cheap pattern --


def deep_nesting(size: int) -> bytes:
    """`size` bytes of `<div>`s each opened inside the last: an HTML parser checks the
    elements open around each new one, so this costs it the square of the depth."""
    return b"<html><body>" + b"<div>" * ((size - 12) // 5)


def many_links(count: int) -> bytes:
    """`count` distinct Dex connector links (`/auth/<N>`), the shape Dex's selection page
    gives its connectors."""
    return b"<html><body>" + b"".join(b"<a href=/auth/%d>" % i for i in range(count))


def many_attributes(size: int) -> bytes:
    """One tag with as many distinct attributes as fit in `size` bytes, in reverse
    order: a tokenizer that checks each new attribute against the others pays n²."""
    n = (size - 8) // 8
    return b"<input" + b"".join(b" a%06d" % i for i in range(n, 0, -1)) + b">"


def posted_password(srv: HostileServer, password: str) -> bool:
    """Whether any request that reached `srv` carried `password` (in its body, target or headers)."""
    from urllib.parse import quote_plus

    needles = {password.encode(), quote_plus(password).encode()}
    for r in srv.requests:
        blob = r.body + r.target.encode() + repr(r.headers).encode()
        if any(n in blob for n in needles):
            return True
    return False


class FaultProxy:
    """An HTTP relay in front of a real component (`upstream`, e.g. Dex). It passes each
    request on unchanged, unless a rule added with `fail` matches it: then it answers
    with the rule's status and body itself, and the component never sees the request."""

    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self.upstream_host, self.upstream_port = u.hostname or "127.0.0.1", u.port or 80
        self.rules: list[tuple[str, str, int, bytes]] = []
        self.failed: list[str] = []
        self.srv = HostileServer()
        self.srv.fallback = lambda conn, req, srv: self.relay(conn, req)

    @property
    def url(self) -> str:
        return self.srv.url

    def fail(
        self,
        method: str,
        path_prefix: str,
        status: int = 500,
        body: bytes = b"Internal Server Error (injected by FaultProxy)",
    ) -> None:
        self.rules.append((method, path_prefix, status, body))

    def __enter__(self) -> FaultProxy:
        self.srv.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.srv.stop()

    def relay(self, conn: socket.socket, req: Request) -> None:
        for method, prefix, status, body in self.rules:
            if req.method == method and req.path.startswith(prefix):
                self.failed.append(f"{req.method} {req.path}")
                conn.sendall(_head(status, {"Content-Type": "text/plain"}, len(body)) + body)
                return
        up = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in req.headers.items() if k not in ("connection", "keep-alive")}
            up.request(req.method, req.target, body=req.body or None, headers=headers)
            resp = up.getresponse()
            body = resp.read()
            items = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive")
            ]
            conn.sendall(_head(resp.status, items, len(body), resp.reason) + body)
        finally:
            up.close()


def non_loopback_address() -> str:
    """This machine's address on its default route (no packet is sent): a host that is
    not loopback, where plain http is not a secure context."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        addr = s.getsockname()[0]
    if addr.startswith("127."):
        raise RuntimeError("this machine has no non-loopback IPv4 address for the Secure-cookie test")
    return addr


def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
