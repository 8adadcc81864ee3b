"""Building a ``kfp.Client`` for kfp 1.8 and 2.x, without patching ``kfp`` itself.

The client's REST layer (``kfp_server_api.rest.RESTClientObject``) of each
client we build is given a subclass that takes the current credentials (the
session's cookies, or a bearer token) before every request and, when the
gateway answers with a login instead of the API, renews them once and retries.
An RBAC denial from the API becomes a PermissionDeniedError naming the
namespace and verb. kfp's own classes are never modified.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from kfp_auth._native import (
    BearerSession,
    DexSession,
    PermissionDeniedError,
    UnexpectedResponseError,
    is_login_response,
    rbac_denial,
    redact_url,
)


def import_kfp() -> Any:
    """Import ``kfp`` on first use, with an error that names the package when it is missing."""
    try:
        return importlib.import_module("kfp")
    except ModuleNotFoundError as e:
        if e.name != "kfp":
            raise
        raise ModuleNotFoundError(
            "kfp-auth needs the Kubeflow Pipelines SDK to build a client, and the `kfp` "
            "package is not installed: run `pip install kfp` (or `pip install kfp-auth[kfp]`)",
            name="kfp",
        ) from e


@functools.lru_cache(maxsize=None)
def _takes_verify_ssl(client_cls: type) -> bool:
    return "verify_ssl" in inspect.signature(client_cls).parameters


@functools.lru_cache(maxsize=None)
def _unverified_subclass(client_cls: type) -> type:
    """kfp 1.8 has no ``verify_ssl``: a subclass turns verification off for its own instances only."""

    class UnverifiedClient(client_cls):  # type: ignore[misc]
        def _load_config(self, *args: Any, **kwargs: Any) -> Any:
            config = super()._load_config(*args, **kwargs)
            config.verify_ssl = False
            return config

    UnverifiedClient.__name__ = UnverifiedClient.__qualname__ = "Client"
    UnverifiedClient.__module__ = __name__
    return UnverifiedClient


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    return None if value is None else str(value)


def _body(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "replace")
    return b""


def _set_header(headers: dict[str, Any], name: str, value: str | None) -> None:
    """Set (or with ``None`` drop) a header, whatever the case of the key kfp used."""
    for key in [k for k in headers if k.lower() == name.lower()]:
        del headers[key]
    if value:
        headers[name] = value


class CookieAuth:
    """A Dex login's session cookies."""

    what = "session"

    def __init__(self, session: DexSession) -> None:
        self.session = session

    def apply(self, headers: dict[str, Any], api_client: Any, credential: str | None = None) -> str:
        cookies = self.session.cookies() if credential is None else credential
        _set_header(headers, "Cookie", cookies)
        # Keep the ApiClient in step, for any code that reads its cookie.
        api_client.cookie = cookies or None
        return cookies

    def renew(self, stale: str) -> str:
        return self.session.refresh(stale)


class BearerAuth:
    """A bearer token: fixed, from a rotated file, or from Dex's password grant."""

    what = "bearer token"

    def __init__(self, session: BearerSession) -> None:
        self.session = session

    def apply(self, headers: dict[str, Any], api_client: Any, credential: str | None = None) -> str:
        token = self.session.token() if credential is None else credential
        _set_header(headers, "Authorization", f"Bearer {token}")
        return token

    def renew(self, stale: str) -> str:
        # Raises TokenError when no other token can be had (a fixed token, an unrotated file).
        return self.session.refresh(stale)


class NoAuth:
    """No credentials were given: nothing is added, and a login request is an error that says so."""

    what = "request"

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    def apply(self, headers: dict[str, Any], api_client: Any, credential: str | None = None) -> str:
        return ""

    def renew(self, stale: str) -> str:
        raise UnexpectedResponseError(
            f"the gateway at {redact_url(self.api_url)} asks for a login, and this KFPClientManager was "
            "given no credentials: pass dex_username and dex_password, existing_token, or token_path"
        )


Auth = CookieAuth | BearerAuth | NoAuth


@functools.lru_cache(maxsize=None)
def _denied_class(api_exception: type) -> type:
    """PermissionDeniedError that is also the kfp_server_api ApiException kfp users already catch."""

    class PermissionDenied(PermissionDeniedError, api_exception):  # type: ignore[misc]
        def __str__(self) -> str:
            return str(self.args[0]) if self.args else ""

    PermissionDenied.__name__ = PermissionDenied.__qualname__ = "PermissionDeniedError"
    PermissionDenied.__module__ = "kfp_auth"
    return PermissionDenied


def _raise_if_denied(e: Any, method: str, url: str) -> None:
    """Raise the RBAC denial in an ApiException as a PermissionDeniedError; return when it is not one."""
    denial = rbac_denial(e.status, _body(e.body))
    if denial is None:
        return
    who = f"user '{denial['user']}'" if denial["user"] else "this user"
    what = f"'{denial['verb']}'" if denial["verb"] else "this request"
    if denial["resource"]:
        what += f" on {denial['resource']}"
    where = f" in namespace '{denial['namespace']}'" if denial["namespace"] else ""
    msg = (
        f"the KFP API denied {who} {what}{where} (HTTP 403, {method} {urlsplit(url).path}). "
        "A login does not change this: ask the namespace's owner to add you as a contributor, "
        "or use a namespace you belong to"
    )
    api_exception: type = type(e)
    err = _denied_class(api_exception)(msg)
    for attr in ("status", "reason", "body", "headers"):
        setattr(err, attr, getattr(e, attr, None))
    err.url = redact_url(url)
    err.history = []
    err.user, err.namespace, err.verb, err.resource = (
        denial["user"], denial["namespace"], denial["verb"], denial["resource"]
    )
    raise err from None


@functools.lru_cache(maxsize=None)
def _relogin_subclass(rest_cls: type) -> type:
    """A subclass of kfp_server_api's REST client that keeps the credentials fresh."""

    api_exception = importlib.import_module(rest_cls.__module__).ApiException

    def login_asked(e: Any) -> bool:
        return e.status != 0 and is_login_response(
            e.status, _header(e.headers, "Content-Type"), _header(e.headers, "Location"), _body(e.body)
        )

    class ReloginREST(rest_cls):  # type: ignore[misc]
        _kfp_auth: Auth
        _kfp_auth_api_client: Any

        def request(self, method: str, url: str, *args: Any, headers: Any = None, **kwargs: Any) -> Any:
            auth = self._kfp_auth
            headers = dict(headers or {})
            used = auth.apply(headers, self._kfp_auth_api_client)
            try:
                resp = super().request(method, url, *args, headers=headers, **kwargs)
                if not self._kfp_auth_is_login(resp.status, resp, kwargs):
                    return resp
            except api_exception as e:
                if not login_asked(e):
                    _raise_if_denied(e, method, url)
                    raise
            # The gateway wants new credentials: one renewal (shared with any
            # other caller that saw the same stale ones), then one retry. The
            # gateway refused the first attempt, so the API never saw it: a
            # retry is safe for a POST too.
            auth.apply(headers, self._kfp_auth_api_client, auth.renew(used))
            still = (
                f"the gateway still answers {method} {urlsplit(url).path} with a login right after a "
                f"fresh {auth.what}: it does not accept it (check its settings, or run `kfp-auth diagnose`)"
            )
            try:
                resp = super().request(method, url, *args, headers=headers, **kwargs)
            except api_exception as e:
                # Not a bare 401: kfp's wait_for_run_completion would take it for an expired GCP token.
                if login_asked(e):
                    raise UnexpectedResponseError(still) from None
                _raise_if_denied(e, method, url)
                raise
            if self._kfp_auth_is_login(resp.status, resp, kwargs):
                raise UnexpectedResponseError(still)
            return resp

        @staticmethod
        def _kfp_auth_is_login(status: int, resp: Any, kwargs: dict[str, Any]) -> bool:
            if not kwargs.get("_preload_content", True):
                return False  # a streamed body is the caller's to read
            return is_login_response(
                status, resp.getheader("Content-Type"), resp.getheader("Location"), _body(resp.data)
            )

    ReloginREST.__name__ = ReloginREST.__qualname__ = rest_cls.__name__
    return ReloginREST


class _StopAtLogin:
    """Wraps the REST client's urllib3 pool manager so that a redirect to a login
    comes back to the hook instead of being followed: urllib3 would follow a
    gateway's 302 to Dex, and keep a POST's method and body on the way. Other
    redirects are followed as before."""

    def __init__(self, inner: Any) -> None:
        self._kfp_auth_inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kfp_auth_inner, name)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._kfp_auth_inner
        if "redirect" in kwargs:
            return inner.request(method, url, *args, **kwargs)
        resp = inner.request(method, url, *args, redirect=False, **kwargs)
        location = resp.headers.get("Location")
        if resp.status in (301, 302, 303, 307, 308) and not is_login_response(resp.status, None, location, b""):
            resp.drain_conn()
            return inner.request(method, url, *args, **kwargs)
        return resp


def _api_clients(client: Any) -> list[Any]:
    """The kfp_server_api ApiClient(s) behind a kfp.Client (one in kfp 1.8 and 2.x)."""
    found: dict[int, Any] = {}
    for value in vars(client).values():
        api_client = getattr(value, "api_client", None)
        if api_client is not None and hasattr(api_client, "rest_client"):
            found[id(api_client)] = api_client
    return list(found.values())


@functools.lru_cache(maxsize=None)
def _hooking_subclass(client_cls: type) -> type:
    """A stand-in class for construction only: kfp's constructor makes its first
    request (a healthz check) before returning, and with credentials the gateway
    no longer accepts, that request must already go through the re-login hook."""

    class Hooking(client_cls):  # type: ignore[misc]
        def __init__(self, *args: Any, kfp_auth: Auth, **kwargs: Any) -> None:
            self._kfp_auth = kfp_auth
            super().__init__(*args, **kwargs)

        def get_kfp_healthz(self, *args: Any, **kwargs: Any) -> Any:
            _install_relogin(self, self._kfp_auth)
            return super().get_kfp_healthz(*args, **kwargs)

    return Hooking


def _install_relogin(client: Any, auth: Auth) -> None:
    for api_client in _api_clients(client):
        rest = api_client.rest_client
        rest_cls: type = type(rest)
        if not hasattr(rest_cls, "_kfp_auth_is_login"):
            rest.__class__ = _relogin_subclass(rest_cls)
        rest._kfp_auth = auth
        rest._kfp_auth_api_client = api_client
        if not isinstance(rest.pool_manager, _StopAtLogin):
            rest.pool_manager = _StopAtLogin(rest.pool_manager)


@functools.lru_cache(maxsize=None)
def _credentials_class() -> type:
    """kfp's TokenCredentialsBase (kfp 2.x or 1.8), with the token from the Rust core."""
    try:
        base = importlib.import_module("kfp.client.token_credentials_base").TokenCredentialsBase
    except ModuleNotFoundError:
        base = importlib.import_module("kfp.auth").TokenCredentialsBase  # kfp 1.8

    class TokenCredentials(base):  # type: ignore[misc,valid-type]
        """Like kfp's ServiceAccountTokenVolumeCredentials, but the file is read
        again only when it changed (a stat per request, not a read)."""

        def __init__(self, session: BearerSession) -> None:
            self._session = session

        def refresh_api_key_hook(self, config: Any) -> None:
            config.api_key["authorization"] = self._session.token()

        def __repr__(self) -> str:
            return f"TokenCredentials({self._session!r})"

    return TokenCredentials


def proxy_for(url: str, proxy: str | None) -> str | None:
    """The proxy for ``url``: the one given, else the environment's (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), as ``requests`` picks it."""
    if proxy is not None:
        return proxy
    parts = urlsplit(url)
    found = urllib.request.getproxies()
    chosen = found.get(parts.scheme) or found.get("all")
    if not chosen or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return chosen


def build_client(
    host: str,
    auth: Auth,
    *,
    skip_tls_verify: bool,
    ssl_ca_cert: str | None,
    proxy: str | None,
) -> Any:
    kfp = import_kfp()
    client_cls = kfp.Client
    kwargs: dict[str, Any] = {"host": host}
    if isinstance(auth, CookieAuth):
        kwargs["cookies"] = auth.session.cookies()
    elif isinstance(auth, BearerAuth):
        if auth.session.kind == "token":
            kwargs["existing_token"] = auth.session.token()
        else:
            kwargs["credentials"] = _credentials_class()(auth.session)
    else:
        kwargs["cookies"] = ""  # no credentials; and not the kfp context file's cookie either
    if proxy:
        kwargs["proxy"] = proxy
    if ssl_ca_cert is not None:
        kwargs["ssl_ca_cert"] = ssl_ca_cert
    if skip_tls_verify:
        if _takes_verify_ssl(client_cls):
            kwargs["verify_ssl"] = False
        else:
            client_cls = _unverified_subclass(client_cls)
    # Construct through the stand-in, then hand back the plain class: the
    # object is a kfp.Client in every respect, with the hook in its REST layer.
    client = _hooking_subclass(client_cls)(kfp_auth=auth, **kwargs)
    client.__class__ = client_cls
    del client._kfp_auth
    _install_relogin(client, auth)  # when kfp made no healthz request
    return client
