"""Kubeflow <= 1.8's gateway on loopback: oidc-authservice as Envoy's ext_authz service.

    client ──► gateway :gw ──check──► oidc-authservice :as   (ext_authz; skips ^/dex and /authservice/)
                 │  200 + user header: forward       otherwise: its answer (302 to Dex, callback, 400)
                 ├──/dex/*──► Dex :dex                (the REAL Dex, configured as Kubeflow 1.8 did)
                 └──/*──────► KFP API test server :kfp

Two of these are TEST DOUBLES of our own, not the real components:

- the gateway (ext_authz_gateway.py) stands in for Istio's ingress gateway
  (Envoy with the ext_authz HTTP filter), which cannot run here;
- oidc-authservice (authservice_double.py) stands in for
  github.com/arrikto/oidc-authservice, which the Go module proxy this project
  builds from does not serve. To run the same stack on a build of the real
  service instead, point ``KFP_AUTH_OIDC_AUTHSERVICE`` at its binary; it is run
  from the binary's folder, which must hold its ``web/templates`` (as in its
  source tree and image). Both read the same environment variables.

Dex is the real one, with Kubeflow 1.8's static client (redirect URI
``/authservice/oidc/callback``). The authservice settings are Kubeflow 1.8's
params.env, except the user header: the KFP API test server reads
``X-Forwarded-Email``, so ``USERID_HEADER`` names that header instead of
``kubeflow-userid`` (the gateway forwards whichever header it names).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import CLIENT_ID, CLIENT_SECRET, Proc, Stack, StackError, dex_config, ensure_binaries, free_port, start_kfp_api

HERE = Path(__file__).parent
DOUBLE = HERE / "authservice_double.py"
GATEWAY = HERE / "ext_authz_gateway.py"
REAL_ENV = "KFP_AUTH_OIDC_AUTHSERVICE"
CALLBACK = "/authservice/oidc/callback"
USERID_HEADER = "X-Forwarded-Email"  # the header the KFP API test server reads (Kubeflow: kubeflow-userid)


def authservice_env(issuer: str, port: int, readiness_port: int, store: Path) -> dict[str, str]:
    """Kubeflow 1.8's common/oidc-client/oidc-authservice/base/params.env, on loopback.

    (params.env's PORT and STORE_PATH are not read by commit e236439; its
    SERVER_PORT and *_STORE_PATH are.)"""
    return {
        "OIDC_PROVIDER": issuer,
        "OIDC_AUTH_URL": "/dex/auth",
        "OIDC_SCOPES": "profile email groups",
        "AUTHSERVICE_URL_PREFIX": "/authservice/",
        "SKIP_AUTH_URLS": "/dex",
        "AFTER_LOGOUT_URL": "/",
        "USERID_HEADER": USERID_HEADER,
        "USERID_PREFIX": "",
        "USERID_CLAIM": "email",
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "SERVER_HOSTNAME": "127.0.0.1",
        "SERVER_PORT": str(port),
        "READINESS_PROBE_PORT": str(readiness_port),
        "WEB_SERVER_PORT": str(free_port()),
        "SESSION_STORE_PATH": str(store),
        "OIDC_STATE_STORE_PATH": str(store),
    }


def start_authservice_stack(workdir: Path) -> Stack:
    """The real Dex and the KFP API test server behind oidc-authservice and an Envoy stand-in."""
    bins = ensure_binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    gw_port, dex_port, as_port, ready_port = free_port(), free_port(), free_port(), free_port()
    gateway = f"http://127.0.0.1:{gw_port}"
    issuer = f"http://127.0.0.1:{dex_port}/dex"  # Dex's own address; browsers reach it under the gateway's /dex/
    procs: dict[str, Proc] = {}
    stack = None
    try:
        kfp, kfp_url = start_kfp_api(workdir, require_auth=True)
        procs["kfp-api"] = kfp

        cfg = dex_config(issuer, dex_port)
        for client in cfg["staticClients"]:
            if client["id"] == CLIENT_ID:
                client["redirectURIs"] = [CALLBACK]
        (workdir / "dex.yaml").write_text(json.dumps(cfg, indent=2))
        dex = Proc(
            "dex", [str(bins["dex"]), "serve", str(workdir / "dex.yaml")], f"{issuer}/healthz", workdir / "dex.log"
        )
        dex.start()
        procs["dex"] = dex

        env = authservice_env(issuer, as_port, ready_port, workdir / "authservice.db")
        real = os.environ.get(REAL_ENV)
        if real:
            binary = Path(real).resolve()
            if not os.access(binary, os.X_OK):
                raise StackError(f"{REAL_ENV}={real} is not an executable")
            # The real service wants a kubeconfig (for its TokenReview authenticator): a dead one will do.
            kubeconfig = workdir / "kubeconfig"
            kubeconfig.write_text(
                "apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: "
                "'https://127.0.0.1:1'}}]\ncontexts: [{name: none, context: {cluster: none, "
                "user: none}}]\ncurrent-context: none\nusers: [{name: none, user: {}}]\n"
            )
            env["KUBECONFIG"] = str(kubeconfig)
            name, argv = "oidc-authservice", ["env", "-C", str(binary.parent), *_env_args(env), str(binary)]
        else:
            name, argv = "oidc-authservice-double", ["env", *_env_args(env), sys.executable, str(DOUBLE)]
        authservice = Proc(name, argv, f"http://127.0.0.1:{ready_port}/", workdir / "authservice.log")
        authservice.start()
        procs["authservice"] = authservice

        # Kubeflow 1.8's EnvoyFilter authn-filter: what the check request carries and what reaches upstream.
        gw = Proc(
            "envoy-ext-authz-double",
            [
                sys.executable,
                str(GATEWAY),
                "--port",
                str(gw_port),
                "--authz",
                f"http://127.0.0.1:{as_port}",
                "--auth-header",
                "authorization",
                "--auth-header",
                "cookie",
                "--auth-header",
                "x-auth-token",
                "--upstream-header",
                USERID_HEADER.lower(),
                "--route",
                f"/dex/=http://127.0.0.1:{dex_port}",
                "--route",
                f"/={kfp_url}",
                "--log",
                str(workdir / "gateway.jsonl"),
            ],
            f"tcp://127.0.0.1:{gw_port}",
            workdir / "gateway.log",
        )
        gw.start()
        procs["gateway"] = gw
        stack = Stack(workdir, gateway, issuer, kfp_url, procs)
        return stack
    finally:
        if stack is None:
            for p in reversed(list(procs.values())):
                p.stop()


def _env_args(env: dict[str, str]) -> list[str]:
    # The processes get their settings as the real service does, from its environment,
    # on top of ours (`env NAME=VALUE … program`; Proc has no env of its own).
    return [f"{k}={v}" for k, v in env.items()]


def drop_sessions(stack: Stack) -> None:
    """Every session is gone server-side: restart oidc-authservice with an empty session store
    (the double keeps its sessions in memory; the real one in a BoltDB file, deleted here)."""
    proc = stack.procs["authservice"]
    proc.stop()
    (stack.workdir / "authservice.db").unlink(missing_ok=True)
    proc.start()


def gateway_requests(stack: Stack) -> list[dict]:
    """The gateway's log: one dict per request (no query values, no cookie values)."""
    path = stack.workdir / "gateway.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
