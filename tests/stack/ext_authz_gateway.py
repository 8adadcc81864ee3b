"""A TEST DOUBLE of Kubeflow's Istio ingress gateway: OUR OWN code, not Envoy.

Kubeflow <= 1.8 runs Envoy (the Istio ingress gateway) with the ext_authz HTTP
filter pointed at oidc-authservice. There is no Envoy on the test machines, so
this small reverse proxy plays its part on loopback, doing what that filter
does as Kubeflow 1.8 configures it (common/oidc-client/oidc-authservice,
EnvoyFilter ``authn-filter``) and nothing more:

1. For every request, send a check request to the authorization service with
   the same method and path (query included), an empty body, the ``Host``
   header, and only the request headers named by ``--auth-header`` (Kubeflow:
   ``authorization``, ``cookie``, ``x-auth-token``).
2. If it answers 200: forward the original request (method, headers, body) to
   the upstream of the longest matching ``--route`` prefix, with the headers of
   the check response named by ``--upstream-header`` added (Kubeflow:
   ``kubeflow-userid``), overwriting any the client sent, and return the
   upstream's response as it is.
3. Otherwise return the check response itself (status, headers such as
   ``Location`` and ``Set-Cookie``, body) to the client. Envoy does the same
   when ``allowed_client_headers`` is unset.
4. When the authorization service cannot be reached: 403, as Envoy's
   ``status_on_error`` default (``failure_mode_allow: false``).

Routes stand for Kubeflow's VirtualServices: ``/dex/`` to Dex, ``/`` to the
KFP API test server, without path rewrites. Each request is appended as one
JSON line to ``--log``: method, path, the query's keys (never its values),
user agent, the check status, the final status, where a redirect points (path
only) and the names of the cookies set (never their values).
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


class Config:
    authz: tuple[str, int]
    auth_headers: set[str]
    upstream_headers: set[str]
    routes: list[tuple[str, tuple[str, int]]]
    log_path: str | None
    timeout: float
    lock = threading.Lock()


def host_port(origin: str) -> tuple[str, int]:
    u = urlsplit(origin)
    if u.scheme != "http" or not u.hostname or not u.port:
        raise SystemExit(f"not an http://host:port origin: {origin}")
    return u.hostname, u.port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "envoy-ext-authz-test-double/1"
    cfg: Config

    def log_message(self, fmt: str, *args: object) -> None:  # requests go to --log
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _call(
        self, target: tuple[str, int], method: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*target, timeout=self.cfg.timeout)
        try:
            conn.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("server", "date"):
                self.send_header(k, v)
        self.send_header("Date", self.date_time_string())
        self.send_header("Server", self.server_version)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        host = self.headers.get("Host", "")
        check_headers = [("Host", host)] + [
            (k, v) for k, v in self.headers.items() if k.lower() in self.cfg.auth_headers
        ]
        try:
            check_status, check_resp_headers, check_body = self._call(self.cfg.authz, self.command, check_headers, b"")
        except OSError:
            check_status, check_resp_headers, check_body = 403, [], b""

        if check_status == 200:
            added = {k.lower(): (k, v) for k, v in check_resp_headers if k.lower() in self.cfg.upstream_headers}
            fwd = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in added]
            fwd += list(added.values())
            path = urlsplit(self.path).path
            target = max((r for r in self.cfg.routes if path.startswith(r[0])), key=lambda r: len(r[0]))[1]
            try:
                status, headers, resp_body = self._call(target, self.command, fwd, body)
            except OSError:
                status, headers, resp_body = 503, [("Content-Type", "text/plain")], b"no healthy upstream"
        else:
            status, headers, resp_body = check_status, check_resp_headers, check_body
        # Logged before the reply goes out: a test that reads the log right after its
        # request returns must find the entry.
        self._log(check_status, status, headers)
        self._reply(status, headers, resp_body)

    def _log(self, check_status: int, status: int, headers: list[tuple[str, str]]) -> None:
        if not self.cfg.log_path:
            return
        url = urlsplit(self.path)
        location = next((v for k, v in headers if k.lower() == "location"), None)
        entry = {
            "method": self.command,
            "path": url.path,
            "query_keys": sorted({k for k, _ in parse_qsl(url.query, keep_blank_values=True)}),
            "user_agent": self.headers.get("User-Agent", ""),
            "authz_status": check_status,
            "status": status,
            "location_path": urlsplit(location).path if location is not None else None,
            "set_cookie_names": [v.split("=", 1)[0].strip() for k, v in headers if k.lower() == "set-cookie"],
        }
        with self.cfg.lock, open(self.cfg.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--authz", required=True, help="the authorization service, http://host:port")
    p.add_argument("--auth-header", action="append", default=[], help="a request header sent to it (lowercase)")
    p.add_argument(
        "--upstream-header",
        action="append",
        default=[],
        help="a header of its 200 answer that is added to the upstream request",
    )
    p.add_argument("--route", action="append", required=True, metavar="PREFIX=http://host:port")
    p.add_argument("--timeout", type=float, default=10.0, help="Kubeflow's ext_authz timeout is 10s")
    p.add_argument("--log")
    a = p.parse_args()
    cfg = Config()
    cfg.authz = host_port(a.authz)
    # Envoy always sends these, allowed_headers or not.
    cfg.auth_headers = {h.lower() for h in a.auth_header} | {"authorization"}
    cfg.upstream_headers = {h.lower() for h in a.upstream_header}
    cfg.routes = [(prefix, host_port(origin)) for prefix, _, origin in (r.partition("=") for r in a.route)]
    cfg.log_path = a.log
    cfg.timeout = a.timeout
    Handler.cfg = cfg
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
