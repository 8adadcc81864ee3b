"""The SSO test stack: Kubeflow's real Dex with an `oidc` connector to a second real
Dex that plays the company IdP, behind the real oauth2-proxy, which takes Dex's ID
tokens as bearer tokens (Istio's `dex-jwt` RequestAuthentication does this in Kubeflow).

Layout A (default):

    user ──► oauth2-proxy :gw ──/dex/*──► Kubeflow's Dex :dex ──oidc connector──► IdP Dex :idp
                            └──/*─────► KFP API test server :kfp
    (the browser reaches the IdP directly, as it reaches GitHub or Entra)

Layout B (`direct=True`): no Kubeflow Dex; oauth2-proxy's provider is the IdP itself.

Kubeflow's Dex has the public client `kfp-auth` (device grant, loopback redirects,
token exchange) beside Kubeflow's confidential one, and keeps its `local` password
connector, so the connector choice page is shown. Its issuer is public
(`<gateway>/dex`): an upstream IdP sends the browser back to `<issuer>/callback`, and
Dex refuses a connector whose `redirectURI` differs. `issuer_unreachable=True` gives
it the in-cluster issuer instead, as password-only installations keep it; such a Dex
can have no SSO connector (the IdP would send the browser to a name it cannot
resolve), so that variant offers only `local`, and its user is FAST_USER.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import (
    FAST_NAMESPACE,
    FAST_PASSWORD,
    FAST_USER,
    Proc,
    Stack,
    StackError,
    dex_config,
    ensure_binaries,
    free_port,
    new_secret,
    oauth2_proxy_args,
    start_kfp_api,
)

# The person at the company IdP; cost-10 bcrypt of IDP_PASSWORD.
IDP_USER = "alice@corp.example"
IDP_PASSWORD = "wonderland"
IDP_HASH = "$2b$10$Qvm2eJ1qGkO/bOOsvnb3JOpfEpGSr9JRNtbYLHyOvk3V4D9adAxZC"
IDP_NAMESPACE = "kubeflow-alice-corp-example"

# The public client the SSO feature uses (its default id), at Kubeflow's Dex and at the IdP.
PUBLIC_CLIENT = "kfp-auth"
CONNECTOR_ID = "upstream"
CONNECTOR_NAME = "Corp SSO"
# Kubeflow's Dex as a client of the IdP (layout A), and oauth2-proxy's client there (layout B).
DEX_AT_IDP = "kubeflow-dex"
PROXY_AT_IDP = "oauth2-proxy"
# A confidential client at the IdP that takes the password grant: it mints the ID token a
# CI job or workload would already hold, the subject of a token exchange.
WORKLOAD_CLIENT = "ci-workload"

IN_CLUSTER_ISSUER = "http://dex.auth.svc.cluster.local:5556/dex"
SSO_SCOPES = "openid profile email groups offline_access"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass
class SsoStack(Stack):
    """`gateway_url`, `kfp_url`, `procs` as in Stack. `dex_url` is the provider that
    oauth2-proxy calls directly: Kubeflow's Dex, or the IdP in layout B."""

    issuer: str = ""  # the `iss` of the tokens the gateway accepts
    provider_url: str = ""  # where a user reaches that issuer: <gateway>/dex, or the IdP in layout B
    idp_url: str = ""  # the IdP's issuer, reachable
    client_id: str = PUBLIC_CLIENT
    connector_id: str | None = CONNECTOR_ID  # None where Kubeflow's Dex has no SSO connector
    user: str = IDP_USER
    password: str = IDP_PASSWORD
    namespace: str = IDP_NAMESPACE
    direct: bool = False
    secrets: dict[str, str] | None = None  # client secrets at the IdP, by client id
    admin_api: str | None = None  # Kubeflow's Dex gRPC admin API (host:port), with `admin_api=True`

    def restart(self, name: str) -> None:
        """Restart one process on its port with its config. Dex's storage is memory:
        a restarted Dex forgets its refresh tokens, and signs with new keys."""
        proc = self.procs[name]
        proc.stop()
        proc.start()

    def revoke_refresh(self, subject: str, client_id: str = PUBLIC_CLIENT) -> str:
        """Revoke the refresh token Kubeflow's Dex holds for the user `subject` (an ID token's
        `sub`) and `client_id`, through Dex's gRPC admin API, as an admin would:
        "revoked" or "not found"."""
        if self.admin_api is None:
            raise StackError("start the SSO stack with admin_api=True")
        r = subprocess.run(
            [str(ensure_binaries()["dexapi"]), "-addr", self.admin_api, "revoke-refresh", subject, client_id],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if r.returncode != 0:
            raise StackError(f"dexapi revoke-refresh: {r.stderr.strip()}")
        return r.stdout.strip()

    def log(self, name: str) -> str:
        return self.procs[name].log_path.read_text(errors="replace")

    @property
    def experiments_url(self) -> str:
        """The KFP API's experiment list for `namespace`, through the gateway."""
        return f"{self.api_url}/apis/v2beta1/experiments?namespace={self.namespace}"

    def reachable(self, url: str) -> str:
        """`url` with the in-cluster issuer mapped onto the gateway's /dex, as a client must."""
        return self.provider_url + url[len(IN_CLUSTER_ISSUER) :] if url.startswith(IN_CLUSTER_ISSUER) else url

    def device_login(self, *, scope: str = SSO_SCOPES) -> dict:
        """A whole device login by `user` through the real pages: the token response."""
        from .browser import Browser  # here: browser.py also runs alone, as $BROWSER

        client_id = self.client_id

        status, code = form_post(f"{self.provider_url}/device/code", {"client_id": client_id, "scope": scope})
        if status != 200:
            raise StackError(f"device code: {status} {code}")
        walk = Browser(self.user, self.password, connector=self.connector_id).walk(
            self.reachable(code["verification_uri_complete"])
        )
        if walk.page is None or walk.page.status != 200 or not walk.page.heading.startswith("Login Successful"):
            raise StackError(f"the device login did not end on Dex's success page: {walk.steps}")
        status, tokens = form_post(
            f"{self.provider_url}/token",
            {"grant_type": DEVICE_GRANT, "client_id": client_id, "device_code": code["device_code"]},
        )
        if status != 200:
            raise StackError(f"device token: {status} {tokens.get('error')}")
        return tokens


# Loopback only: never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def form_post(url: str, data: dict[str, str], timeout: float = 10) -> tuple[int, dict]:
    """POST a form; (status, the JSON answer). Dex answers token errors as JSON too."""
    req = urllib.request.Request(
        url, data=urllib.parse.urlencode(data).encode(), headers={"Accept": "application/json"}
    )
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, {"body": body.decode("utf-8", "replace")[:500]}


def api_get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    """GET with an optional `Authorization: Bearer`; (status, body)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def jwt_claims(token: str, part: int = 1) -> dict:
    """A JWT's claims (`part=0`: its header), unverified: the gateway and Dex verify."""
    b64 = token.split(".")[part]
    return json.loads(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))


def _idp_config(
    issuer: str,
    port: int,
    gateway: str,
    dex_issuer: str,
    secrets: dict[str, str],
    id_token_expiry: str | None,
) -> dict:
    clients = [
        {
            "id": DEX_AT_IDP,
            "name": "Kubeflow",
            "secret": secrets[DEX_AT_IDP],
            "redirectURIs": [f"{dex_issuer}/callback"],
        },
        {
            "id": PROXY_AT_IDP,
            "name": "Kubeflow gateway",
            "secret": secrets[PROXY_AT_IDP],
            "redirectURIs": [f"{gateway}/oauth2/callback"],
        },
        {"id": PUBLIC_CLIENT, "name": "kfp-auth", "public": True},
        {"id": WORKLOAD_CLIENT, "name": "CI", "secret": secrets[WORKLOAD_CLIENT]},
    ]
    return {
        **({"expiry": {"idTokens": id_token_expiry}} if id_token_expiry else {}),
        "issuer": issuer,
        "storage": {"type": "memory"},
        "web": {"http": f"127.0.0.1:{port}"},
        "logger": {"level": "debug", "format": "text"},
        # The IdP asks the user to grant access, as GitHub and Entra do on first use.
        "oauth2": {"skipApprovalScreen": False, "passwordConnector": "local"},
        "enablePasswordDB": True,
        "staticPasswords": [{"email": IDP_USER, "hash": IDP_HASH, "username": "alice", "userID": "alice-0001"}],
        "staticClients": clients,
    }


def _oidc_connector(idp_issuer: str, dex_issuer: str, secret: str, scopes: list[str]) -> dict:
    return {
        "type": "oidc",
        "id": CONNECTOR_ID,
        "name": CONNECTOR_NAME,
        "config": {
            "issuer": idp_issuer,
            "clientID": DEX_AT_IDP,
            "clientSecret": secret,
            "redirectURI": f"{dex_issuer}/callback",
            "scopes": scopes,
        },
    }


def _flags(args: list[str], *, drop: tuple[str, ...] = (), set_: dict[str, str] | None = None) -> list[str]:
    """oauth2-proxy's argv with the flags named in `drop` removed and those in `set_` replaced."""
    set_ = set_ or {}
    names = set(drop) | set(set_)
    kept = [a for a in args if a.split("=", 1)[0].lstrip("-") not in names]
    return kept + [f"--{k}={v}" for k, v in set_.items()]


def start_sso_stack(
    workdir: Path,
    *,
    id_token_expiry: str | None = None,
    direct: bool = False,
    issuer_unreachable: bool = False,
    connector_scopes: list[str] | None = None,
    public_redirect_uris: list[str] | None = None,
    device_requests_expiry: str | None = None,
    refresh_tokens_expiry: dict[str, str] | None = None,
    admin_api: bool = False,
) -> SsoStack:
    """Start the SSO stack (a context manager, as start_kubeflow_stack). `id_token_expiry`
    sets Kubeflow's Dex `expiry.idTokens` (the IdP's in layout B). `connector_scopes`
    replaces the connector's scopes (default with offline_access, without which refresh
    through the connector fails).
    `public_redirect_uris` registers redirect URIs for `kfp-auth`: Dex then accepts only those
    exactly, and no longer any loopback port or its own /device/callback.
    `device_requests_expiry` sets `expiry.deviceRequests` (default 5m).
    `refresh_tokens_expiry` sets Kubeflow's Dex `expiry.refreshTokens` (e.g.
    `{"absoluteLifetime": "6s"}`; Dex's default is no limit).
    `admin_api` opens Kubeflow's Dex gRPC admin API on a loopback port (`SsoStack.revoke_refresh`)."""
    if direct and (issuer_unreachable or refresh_tokens_expiry or admin_api):
        raise ValueError(
            "issuer_unreachable, refresh_tokens_expiry and admin_api are about Kubeflow's Dex; layout B has none"
        )
    bins = ensure_binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    gw_port, dex_port, idp_port = free_port(), free_port(), free_port()
    gateway = f"http://127.0.0.1:{gw_port}"
    idp = f"http://127.0.0.1:{idp_port}/idp"
    dex_issuer = IN_CLUSTER_ISSUER if issuer_unreachable else f"{gateway}/dex"
    secrets = {DEX_AT_IDP: new_secret(), PROXY_AT_IDP: new_secret(), WORKLOAD_CLIENT: new_secret()}
    procs: dict[str, Proc] = {}
    stack = None
    try:
        user, password, namespace = (
            (FAST_USER, FAST_PASSWORD, FAST_NAMESPACE)
            if issuer_unreachable
            else (IDP_USER, IDP_PASSWORD, IDP_NAMESPACE)
        )
        kfp, kfp_url = start_kfp_api(workdir, require_auth=True, grants={IDP_USER: IDP_NAMESPACE})
        procs["kfp-api"] = kfp
        kfp_port = int(kfp_url.rsplit(":", 1)[1])

        idp_cfg = workdir / "idp.yaml"
        idp_cfg.write_text(
            json.dumps(
                _idp_config(
                    idp,
                    idp_port,
                    gateway,
                    dex_issuer,
                    secrets,
                    id_token_expiry if direct else None,
                ),
                indent=2,
            )
        )
        procs["idp"] = Proc("idp", [str(bins["dex"]), "serve", str(idp_cfg)], f"{idp}/healthz", workdir / "idp.log")
        procs["idp"].start()

        cookie_secret = new_secret()
        if direct:
            args = _flags(
                oauth2_proxy_args(gw_port, idp_port, kfp_port, idp, cookie_secret),
                drop=("upstream", "skip-auth-route"),
                set_={
                    "upstream": f"http://127.0.0.1:{kfp_port}/",
                    "login-url": f"{idp}/auth",
                    "redeem-url": f"{idp}/token",
                    "oidc-jwks-url": f"{idp}/keys",
                    "client-id": PROXY_AT_IDP,
                    "client-secret": secrets[PROXY_AT_IDP],
                    "redirect-url": f"{gateway}/oauth2/callback",
                    "relative-redirect-url": "false",
                    "oidc-extra-audience": PUBLIC_CLIENT,
                },
            )
            issuer, provider, dex_url, connector = idp, idp, idp, None
            grpc = None
        else:
            scopes = (
                connector_scopes if connector_scopes is not None else ["openid", "profile", "email", "offline_access"]
            )
            cfg = dex_config(
                dex_issuer,
                dex_port,
                id_token_expiry=id_token_expiry,
                connectors=[]
                if issuer_unreachable
                else [_oidc_connector(idp, dex_issuer, secrets[DEX_AT_IDP], scopes)],
            )
            cfg["staticClients"].append(
                {
                    "id": PUBLIC_CLIENT,
                    "name": "kfp-auth",
                    "public": True,
                    **({"redirectURIs": public_redirect_uris} if public_redirect_uris else {}),
                }
            )
            if device_requests_expiry:
                cfg.setdefault("expiry", {})["deviceRequests"] = device_requests_expiry
            if refresh_tokens_expiry:
                cfg.setdefault("expiry", {})["refreshTokens"] = refresh_tokens_expiry
            grpc = f"127.0.0.1:{free_port()}" if admin_api else None
            if grpc:
                cfg["grpc"] = {"addr": grpc}  # plaintext: no TLS keys given
            (workdir / "dex.yaml").write_text(json.dumps(cfg, indent=2))
            dex_url = f"http://127.0.0.1:{dex_port}/dex"
            procs["dex"] = Proc(
                "dex", [str(bins["dex"]), "serve", str(workdir / "dex.yaml")], f"{dex_url}/healthz", workdir / "dex.log"
            )
            procs["dex"].start()
            # Kubeflow's oauth2-proxy; its bearer check also takes the public client's audience.
            args = oauth2_proxy_args(gw_port, dex_port, kfp_port, dex_issuer, cookie_secret) + [
                f"--oidc-extra-audience={PUBLIC_CLIENT}"
            ]
            issuer, provider = dex_issuer, f"{gateway}/dex"
            connector = None if issuer_unreachable else CONNECTOR_ID

        procs["oauth2-proxy"] = Proc(
            "oauth2-proxy", [str(bins["oauth2-proxy"]), *args], f"{gateway}/ping", workdir / "oauth2-proxy.log"
        )
        procs["oauth2-proxy"].start()
        stack = SsoStack(
            workdir,
            gateway,
            dex_url,
            kfp_url,
            procs,
            issuer=issuer,
            provider_url=provider,
            idp_url=idp,
            connector_id=connector,
            user=user,
            password=password,
            namespace=namespace,
            direct=direct,
            secrets=secrets,
            admin_api=grpc,
        )
        return stack
    except OSError as e:
        raise StackError(f"the SSO stack could not start: {e}") from e
    finally:
        if stack is None:
            for p in reversed(list(procs.values())):
                p.stop()
