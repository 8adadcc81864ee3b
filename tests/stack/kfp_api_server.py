"""A small KFP API test server: OUR OWN code, not the real ml-pipeline API server.

The real Kubeflow Pipelines API server needs a Kubernetes cluster, so the test
stack puts this in its place behind the real oauth2-proxy. It serves the few
REST paths the kfp SDK (1.8 and 2.x) uses in our tests, under any path prefix
(``/pipeline/apis/...`` as well as ``/apis/...``):

- ``GET  /apis/{v1beta1,v2beta1}/healthz``
- ``GET  /apis/{v1beta1,v2beta1}/experiments`` (namespace from ``namespace=`` or
  ``resource_reference_key.id=``)
- ``POST /apis/{v1beta1,v2beta1}/experiments``
- ``GET  /apis/v2beta1/experiments/{id}`` (kfp's PipelinesClient reads an experiment
  found by name this way)
- ``POST /apis/v2beta1/runs``, ``GET /apis/v2beta1/runs/{id}`` and ``GET /apis/v2beta1/runs``
  (``experiment_id=`` filters): a run is RUNNING for ``--run-seconds`` after it is created,
  then SUCCEEDED

With ``--require-auth`` it answers only requests the gateway authenticated
(oauth2-proxy's ``X-Forwarded-Email`` header); other requests get 401. A user
reaches only the namespaces granted with ``--grant EMAIL=NAMESPACE``; any other
namespace gets the 403 that KFP's RBAC check produces. Every request is
appended as a JSON line to ``--log`` so tests can count them (cookie names and
who the request was from; never a cookie or token value).

With ``--token-file PATH=IDENTITY`` it also plays the API server's own check of
in-cluster bearer tokens (a TokenReview in the real one): a request with
``Authorization: Bearer T`` is from IDENTITY when T is what PATH holds at that
moment, and gets KFP's 401 otherwise. So a client that keeps sending a token
after the file was rotated is refused, as an expired token would be.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API = re.compile(r"^(?P<prefix>.*?)/apis/(?P<version>v1beta1|v2beta1)/(?P<resource>[a-z_]+)(?:/(?P<id>[^/]+))?/?$")


class State:
    def __init__(
        self,
        require_auth: bool,
        grants: dict[str, set[str]],
        log_path: str | None,
        run_seconds: float = 5.0,
        token_files: dict[str, str] | None = None,
    ):
        self.require_auth = require_auth
        self.token_files = token_files or {}
        self.run_seconds = run_seconds
        self.refuse_all = False
        self.runs: dict[str, dict] = {}
        self.grants = grants
        self.log_path = log_path
        self.lock = threading.Lock()
        self.experiments: dict[str, list[dict]] = {}

    def log(self, entry: dict) -> None:
        if not self.log_path:
            return
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    server_version = "kfp-api-test-server/1"
    state: State

    def log_message(self, fmt: str, *args: object) -> None:  # quiet; requests go to --log
        pass

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _user(self) -> str | None:
        return self.headers.get("X-Forwarded-Email") or self.headers.get("X-Auth-Request-Email")

    def _bearer_user(self) -> tuple[bool, str | None]:
        """(a bearer token was checked, whose it is) against the --token-file files."""
        auth = self.headers.get("Authorization", "")
        if not self.state.token_files or not auth.startswith("Bearer "):
            return False, None
        token = auth[len("Bearer ") :]
        for path, identity in self.state.token_files.items():
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read().strip() == token:
                        return True, identity
            except OSError:
                pass
        return True, None

    def _denied(self, user: str, ns: str, verb: str) -> dict:
        msg = (
            f"Failed to authorize with API: User '{user}' is not authorized with reason: "
            f"(request: &ResourceAttributes{{Namespace:{ns},Verb:{verb},Group:pipelines.kubeflow.org,"
            f"Version:v1beta1,Resource:experiments,Subresource:,Name:,}})"
        )
        return {"error": msg, "code": 7, "message": msg, "details": []}

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        checked, bearer_user = self._bearer_user()
        user = bearer_user if checked else self._user()
        cookie_names = [c.split("=", 1)[0].strip() for c in self.headers.get("Cookie", "").split(";") if "=" in c]
        self.state.log(
            {
                "method": method,
                "path": url.path,
                "user": user,
                "cookie": bool(cookie_names),
                "cookie_names": cookie_names,
                "bearer": "accepted" if bearer_user else "refused" if checked else None,
            }
        )

        if url.path == "/_test/ready":
            return self._send(200, {"ready": True})
        if self.state.refuse_all:
            return self._send(
                401,
                {
                    "error": "Request header error: there is no user identity header.",
                    "code": 16,
                    "message": "there is no user identity header",
                    "details": [],
                },
            )
        if checked and not bearer_user:
            return self._send(
                401,
                {
                    "error": "Failed to authenticate token review. Review.Status: "
                    "{Authenticated:false User:{Username: UID: Groups:[] Extra:map[]}}",
                    "code": 16,
                    "message": "Unauthenticated",
                    "details": [],
                },
            )
        if self.state.require_auth and not user:
            return self._send(401, {"error": "request did not pass the gateway's authentication", "code": 16})

        m = API.match(url.path)
        if not m:
            if method == "GET":
                return self._send(200, b"<html><body>Kubeflow Pipelines (test UI)</body></html>", "text/html")
            return self._send(404, {"error": "Not Found", "code": 5})

        version, resource = m["version"], m["resource"]
        if resource == "healthz" and method == "GET":
            return self._send(200, {"commit_sha": "test", "tag_name": "test", "multi_user": self.state.require_auth})
        body: dict = {}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        if resource == "runs" and version == "v2beta1":
            return self._runs(method, m["id"], body, query)
        if resource != "experiments":
            return self._send(404, {"error": f"no {resource} in the test server", "code": 5})

        ns = self._namespace(version, query, body)
        if m["id"] and not ns:  # an experiment by id is in its own namespace
            with self.state.lock:
                ns = next((n for n, es in self.state.experiments.items() if any(e["id"] == m["id"] for e in es)), "")
        if self.state.require_auth:
            if not ns:
                return self._send(
                    400, {"error": "Invalid input error: In multi-user mode, a namespace is required", "code": 3}
                )
            if ns not in self.state.grants.get(user or "", set()):
                return self._send(403, self._denied(user or "", ns, "list" if method == "GET" else "create"))

        with self.state.lock:
            items = self.state.experiments.setdefault(ns, [])
            if method == "GET" and m["id"]:
                found = [e for e in items if e["id"] == m["id"]]
                if not found:
                    return self._send(404, {"error": "experiment not found", "code": 5})
                return self._send(200, self._render(version, found[0]))
            if method == "GET":
                return self._send(200, self._list(version, self._filtered(items, query.get("filter", ""))))
            exp = {
                "id": str(uuid.uuid4()),
                "name": body.get("display_name") or body.get("name", ""),
                "description": body.get("description", ""),
                "created_at": now(),
                "namespace": ns,
            }
            items.append(exp)
        return self._send(200, self._render(version, exp))

    def _runs(self, method: str, run_id: str | None, body: dict, query: dict) -> None:
        with self.state.lock:
            if method == "GET" and not run_id:
                want = query.get("experiment_id")
                runs = [self._shown_run(r) for r in self.state.runs.values() if not want or r["experiment_id"] == want]
                return self._send(200, {"runs": runs, "total_size": len(runs), "next_page_token": ""} if runs else {})
            if method == "POST" and not run_id:
                run = {
                    "run_id": str(uuid.uuid4()),
                    "display_name": body.get("display_name", ""),
                    "experiment_id": body.get("experiment_id", ""),
                    "created_at": now(),
                    "_started": time.monotonic(),
                }
                self.state.runs[run["run_id"]] = run
            elif method == "GET" and run_id in self.state.runs:
                run = self.state.runs[run_id]
            else:
                return self._send(404, {"error": "run not found", "code": 5})
            shown = self._shown_run(run)
        return self._send(200, shown)

    def _shown_run(self, run: dict) -> dict:
        done = time.monotonic() - run["_started"] >= self.state.run_seconds
        shown = {k: v for k, v in run.items() if not k.startswith("_")}
        shown["state"] = "SUCCEEDED" if done else "RUNNING"
        return shown

    @staticmethod
    def _namespace(version: str, query: dict, body: dict) -> str:
        if version == "v2beta1":
            return query.get("namespace") or body.get("namespace") or ""
        ns = query.get("resource_reference_key.id", "")
        for ref in body.get("resource_references") or []:
            if ref.get("key", {}).get("type") == "NAMESPACE":
                ns = ref["key"].get("id", ns)
        return ns

    @staticmethod
    def _filtered(items: list[dict], raw: str) -> list[dict]:
        """Honour the one filter kfp sends (name EQUALS, from get_experiment by name)."""
        if not raw:
            return items
        for p in json.loads(raw).get("predicates", []):
            if p.get("key") in ("name", "display_name"):
                want = p.get("string_value", p.get("stringValue"))
                items = [e for e in items if e["name"] == want]
        return items

    @classmethod
    def _list(cls, version: str, items: list[dict]) -> dict:
        if not items:
            return {}
        return {
            "experiments": [cls._render(version, e) for e in items],
            "total_size": len(items),
            "next_page_token": "",
        }

    @staticmethod
    def _render(version: str, e: dict) -> dict:
        """An experiment as each API version shows it (kfp 2.x reads v2beta1, kfp 1.8 v1beta1)."""
        if version == "v2beta1":
            return {
                "experiment_id": e["id"],
                "display_name": e["name"],
                "description": e["description"],
                "created_at": e["created_at"],
                "namespace": e["namespace"],
                "storage_state": "AVAILABLE",
            }
        return {
            "id": e["id"],
            "name": e["name"],
            "description": e["description"],
            "created_at": e["created_at"],
            "storage_state": "STORAGESTATE_AVAILABLE",
            "resource_references": [{"key": {"type": "NAMESPACE", "id": e["namespace"]}, "relationship": "OWNER"}],
        }

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--require-auth", action="store_true")
    p.add_argument("--grant", action="append", default=[], metavar="EMAIL=NAMESPACE")
    p.add_argument("--log")
    p.add_argument("--run-seconds", type=float, default=5.0)
    p.add_argument(
        "--refuse-all",
        action="store_true",
        help="answer every API request 401, as KFP does when no user identity reaches it",
    )
    p.add_argument(
        "--token-file",
        action="append",
        default=[],
        metavar="PATH=IDENTITY",
        help="accept `Authorization: Bearer <what PATH holds now>` as IDENTITY",
    )
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="and this key (PEM)")
    a = p.parse_args()
    grants: dict[str, set[str]] = {}
    for g in a.grant:
        email, _, ns = g.partition("=")
        grants.setdefault(email, set()).add(ns)
    token_files = dict(t.rsplit("=", 1) for t in a.token_file)
    Handler.state = State(a.require_auth, grants, a.log, a.run_seconds, token_files)
    Handler.state.refuse_all = a.refuse_all
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
