"""Building a ``kfp.Client`` for kfp 1.8 and 2.x, and kfp 2.17's ``PipelinesClient``,
without patching ``kfp`` itself.

The client's REST layer (``kfp_server_api.rest.RESTClientObject``) of each
client we build is given a subclass that takes the current credentials (the
session's cookies, or a bearer token) before every request and, when the
gateway answers with a login instead of the API, renews them once and retries.
An RBAC denial from the API becomes a PermissionDeniedError naming the
namespace and verb. kfp's own classes are never modified.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import types
from collections.abc import Callable
from typing import Any, Optional, Union
from urllib.parse import urlsplit

from kfp_auth._errors import KFPAuthError, KFPVersionError, PermissionDeniedError, UnexpectedResponseError
from kfp_auth._native import (
    BearerSession,
    DexSession,
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


@functools.cache
def _takes_verify_ssl(client_cls: type) -> bool:
    return "verify_ssl" in inspect.signature(client_cls).parameters


@functools.cache
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
    """A header's value from urllib3's case-insensitive headers, or a plain dict (scrubbed ones)."""
    if headers is None:
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
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
        if credential is None:
            # kfp's auth settings put the token there a moment ago (existing_token, or our
            # credentials hook): take it rather than ask the session a second time.
            given = next((str(v) for k, v in headers.items() if k.lower() == "authorization"), "")
            credential = given[len("Bearer ") :] if given.startswith("Bearer ") else self.session.token()
        token = credential
        _set_header(headers, "Authorization", f"Bearer {token}")
        _set_header(headers, "Cookie", None)  # the token is the credential; no stray session cookie
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


# Union[...] rather than `|`: these aliases are evaluated at import, and 3.9 has no `type | type`.
Auth = Union[CookieAuth, BearerAuth, NoAuth]
#: The proxy URL and its Proxy-Authorization value, from proxy_for().
Proxy = Optional[tuple[str, Optional[str]]]


@functools.cache
def _denied_class(api_exception: type) -> type:
    """PermissionDeniedError that is also the kfp_server_api ApiException kfp users already catch."""

    class PermissionDenied(PermissionDeniedError, api_exception):  # type: ignore[misc]
        def __str__(self) -> str:
            return str(self.args[0]) if self.args else ""

        def __reduce__(self) -> tuple[Any, ...]:
            # The class is made at run time: pickle (for process pools) rebuilds it by its ApiException.
            return _rebuild_denied, (api_exception.__module__, api_exception.__qualname__, self.args, dict(vars(self)))

    PermissionDenied.__name__ = PermissionDenied.__qualname__ = "PermissionDeniedError"
    PermissionDenied.__module__ = "kfp_auth"
    return PermissionDenied


def _rebuild_denied(module: str, qualname: str, args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    api_exception = importlib.import_module(module)
    for part in qualname.split("."):
        api_exception = getattr(api_exception, part)
    err: BaseException = _denied_class(api_exception)(*args)
    vars(err).update(state)
    return err


# Response headers that carry a credential. Kubeflow runs oauth2-proxy with
# --set-authorization-header, so the gateway answers every authenticated request with
# `Authorization: Bearer <the user's Dex ID token>` (a token the gateway itself accepts);
# --pass-access-token adds the access token; a gateway refreshing the session sends Set-Cookie.
_CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-auth-request-access-token",
        "x-forwarded-access-token",
    }
)


def _without_credentials(headers: Any) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in _CREDENTIAL_HEADERS}


def _scrub(e: Any) -> None:
    """Drop the credential headers from an ApiException before it reaches the caller: its
    str() prints the response headers, so every traceback and log of it would show the token."""
    if getattr(e, "headers", None):
        e.headers = _without_credentials(e.headers)


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
    err = _denied_class(api_exception)(
        msg,
        status=getattr(e, "status", None),
        url=redact_url(url),
        user=denial["user"],
        namespace=denial["namespace"],
        verb=denial["verb"],
        resource=denial["resource"],
    )
    # ApiException's own attributes; its headers without those that carry a credential.
    err.reason, err.body = getattr(e, "reason", None), getattr(e, "body", None)
    err.headers = _without_credentials(getattr(e, "headers", None))
    raise err from None


@functools.cache
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
                _scrub(e)
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
                _scrub(e)
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


@functools.cache
def _stop_at_login_retry(retry_cls: type) -> type:
    """urllib3's Retry, except that a redirect to a login is not followed: urllib3
    would follow a gateway's 302 to Dex, and keep a POST's method and body on the
    way. The redirect comes back to the hook instead. Other redirects are
    followed by urllib3 as before."""
    max_retry_error = importlib.import_module("urllib3.exceptions").MaxRetryError

    class StopAtLogin(retry_cls):  # type: ignore[misc]
        def increment(
            self, method: Any = None, url: Any = None, response: Any = None, *args: Any, **kwargs: Any
        ) -> Any:
            location = response.get_redirect_location() if response is not None else None
            if location and is_login_response(response.status, None, location, b""):
                # urllib3 hands the response back when a redirect is refused this way.
                self.raise_on_redirect = False
                raise max_retry_error(kwargs.get("_pool"), url, None)
            return super().increment(method, url, response, *args, **kwargs)

    return StopAtLogin


class _StopAtLogin:
    """Wraps the REST client's urllib3 pool manager to give each request the Retry above."""

    def __init__(self, inner: Any) -> None:
        self._kfp_auth_inner = inner
        self._kfp_auth_retry = importlib.import_module("urllib3.util.retry").Retry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kfp_auth_inner, name)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        retry_cls = self._kfp_auth_retry
        retries = retry_cls.from_int(
            kwargs.pop("retries", None) or self._kfp_auth_inner.connection_pool_kw.get("retries"),
        )
        # A copy of the request's own Retry, that stops at login redirects.
        stop = retries.new()
        stop.__class__ = _stop_at_login_retry(retry_cls)
        return self._kfp_auth_inner.request(method, url, *args, retries=stop, **kwargs)


def _api_clients(client: Any) -> list[Any]:
    """The kfp_server_api ApiClient(s) behind a kfp.Client (one in kfp 1.8 and 2.x)."""
    found: dict[int, Any] = {}
    for value in vars(client).values():
        api_client = getattr(value, "api_client", None)
        if api_client is not None and hasattr(api_client, "rest_client"):
            found[id(api_client)] = api_client
    return list(found.values())


class _Hooked:
    """What the construction stand-ins below share: kfp's constructors make their first
    request (a health check) before returning, and with credentials the gateway no longer
    accepts, that request must already go through the re-login hook. The manager's auth
    and the proxy's credentials are kept on the object only while kfp's constructor runs."""

    _kfp_auth: Auth
    _kfp_auth_proxy: Proxy

    def __init__(self, *args: Any, kfp_auth: Auth, kfp_auth_proxy: Proxy, **kwargs: Any) -> None:
        self._kfp_auth = kfp_auth
        self._kfp_auth_proxy = kfp_auth_proxy
        super().__init__(*args, **kwargs)

    def _kfp_auth_configure(self, config: Any) -> Any:
        """The proxy settings on kfp's Configuration, before its REST layer is made from it."""
        if self._kfp_auth_proxy is not None:
            config.proxy, proxy_auth = self._kfp_auth_proxy
            # kfp's REST layer sends proxy_headers: the proxy's credentials go there
            # (urllib3 ignores user:password in the URL).
            if proxy_auth is not None:
                config.proxy_headers = {"Proxy-Authorization": proxy_auth}
        return config


def _construct(cls: type, stand_in: type, auth: Auth, proxy: Proxy, /, *args: Any, **kwargs: Any) -> Any:
    """Construct through the stand-in, then hand back the plain class: the object is
    kfp's in every respect, with the hook in its REST layer."""
    obj = stand_in(*args, kfp_auth=auth, kfp_auth_proxy=proxy, **kwargs)
    obj.__class__ = cls
    del obj._kfp_auth, obj._kfp_auth_proxy
    _install_relogin(obj, auth)  # when kfp made no health check
    return obj


@functools.cache
def _hooking_subclass(client_cls: type) -> type:
    """The stand-in of a kfp.Client, whose constructor may call get_kfp_healthz."""

    class Hooking(_Hooked, client_cls):  # type: ignore[misc]
        def _load_config(self, *args: Any, **kwargs: Any) -> Any:
            return self._kfp_auth_configure(super()._load_config(*args, **kwargs))

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


@functools.cache
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


def kfp_credentials(session: BearerSession) -> Any:
    """kfp's credentials object serving ``session``'s token."""
    return _credentials_class()(session)


def build_client(
    host: str,
    auth: Auth,
    *,
    skip_tls_verify: bool,
    ssl_ca_cert: str | None,
    proxy: Proxy,
    namespace: str | None = None,
) -> Any:
    kfp = import_kfp()
    client_cls = kfp.Client
    kwargs: dict[str, Any] = {"host": host}
    # Never None: kfp would send the context file's cookie (maybe another deployment's).
    kwargs["cookies"] = auth.session.cookies() if isinstance(auth, CookieAuth) else ""
    if isinstance(auth, BearerAuth):
        if auth.session.kind == "token":
            kwargs["existing_token"] = auth.session.token()
        else:
            kwargs["credentials"] = kfp_credentials(auth.session)
    if proxy is not None:
        kwargs["proxy"] = proxy[0]
    if ssl_ca_cert is not None:
        kwargs["ssl_ca_cert"] = ssl_ca_cert
    if namespace is not None:
        kwargs["namespace"] = namespace
    if skip_tls_verify:
        if _takes_verify_ssl(client_cls):
            kwargs["verify_ssl"] = False
        else:
            client_cls = _unverified_subclass(client_cls)
    return _construct(client_cls, _hooking_subclass(client_cls), auth, proxy, **kwargs)


#: The kfp versions that have ``kfp.kubeflow_client.PipelinesClient``.
PIPELINES_CLIENT_KFP = ">=2.17"


def _kubeflow_client_module() -> Any:
    """``kfp.kubeflow_client``, or a KFPVersionError naming the installed kfp when it is too old."""
    kfp = import_kfp()
    try:
        return importlib.import_module("kfp.kubeflow_client")
    except ModuleNotFoundError as e:
        if e.name != "kfp.kubeflow_client":
            raise
        installed = _kfp_version(kfp)
        err = KFPVersionError(
            f"create_pipelines_client() needs kfp{PIPELINES_CLIENT_KFP}, the first with PipelinesClient, and "
            f'kfp {installed} is installed: run `pip install "kfp{PIPELINES_CLIENT_KFP}"` (or use '
            "create_kfp_client(), which works with this kfp)",
            installed=installed,
            required=PIPELINES_CLIENT_KFP,
        )
        err.name = "kfp"
        raise err from None


def _kfp_version(kfp: Any) -> str:
    return str(getattr(kfp, "__version__", "unknown"))


def _unknown_pipelines_client() -> KFPVersionError:
    installed = _kfp_version(import_kfp())
    return KFPVersionError(
        f"kfp {installed} builds its PipelinesClient in a way this kfp-auth does not know (it was made "
        "for kfp 2.17's): upgrade kfp-auth, or use create_kfp_client()",
        installed=installed,
        required=PIPELINES_CLIENT_KFP,
    )


@functools.cache
def _hooking_backend(backend_cls: type) -> type:
    """The stand-in of PipelinesClient's KubernetesBackend, whose constructor builds the
    Configuration and the ApiClient, then checks the API's health."""

    class HookingBackend(_Hooked, backend_cls):  # type: ignore[misc]
        def _build_api_configuration(self, config: Any) -> Any:
            # Given no token, kfp looks for in-cluster token files and sends what it finds: with a
            # stand-in token it does not, and the manager's credentials are the only ones sent.
            api_config = super()._build_api_configuration(dataclasses.replace(config, user_token="kfp-auth"))
            api_config.api_key.pop("authorization", None)
            api_config.api_key_prefix.pop("authorization", None)
            api_config.refresh_api_key_hook = None
            auth = self._kfp_auth
            if isinstance(auth, BearerAuth):
                # The token is asked for at each request (from memory while it is fresh), and by
                # kfp's own refresh_credentials(), as kfp.Client's credentials= hook is.
                api_config.api_key_prefix["authorization"] = "Bearer"
                api_config.refresh_api_key_hook = kfp_credentials(auth.session).refresh_api_key_hook
            return self._kfp_auth_configure(api_config)

        def verify_backend(self) -> None:
            _install_relogin(self, self._kfp_auth)
            # kfp logs any failure of this health check as "not reachable" and goes on; a login
            # that cannot be made (no credentials, a refused password) is raised, as kfp.Client's is.
            try:
                self._healthz_api.healthz_service_get_healthz()
            except KFPAuthError:
                raise
            except Exception:
                super().verify_backend()  # kfp's own check and warning

    return HookingBackend


@functools.cache
def _pipelines_subclass(client_cls: type) -> type:
    """PipelinesClient whose ``kfp_client`` (its kfp.Client, built on first use) is the
    manager's too: kfp's would be built with no credentials."""

    class PipelinesClient(client_cls):  # type: ignore[misc]
        _kfp_auth_kfp_client: Callable[[], Any]
        _kfp_client_instance: Any

        @property
        def kfp_client(self) -> Any:
            """The ``kfp.Client`` on the same credentials and settings, built on first access."""
            if self._kfp_client_instance is None:
                self._kfp_client_instance = self._kfp_auth_kfp_client()
            return self._kfp_client_instance

    PipelinesClient.__doc__ = client_cls.__doc__
    return PipelinesClient


def build_pipelines_client(
    host: str,
    auth: Auth,
    *,
    namespace: str | None,
    skip_tls_verify: bool,
    ssl_ca_cert: str | None,
    proxy: Proxy,
) -> Any:
    module = _kubeflow_client_module()
    client_cls = module.PipelinesClient
    init = client_cls.__init__
    backend_cls = init.__globals__.get("KubernetesBackend")
    if not isinstance(backend_cls, type):
        raise _unknown_pipelines_client()
    config = module.KubernetesBackendConfig(
        base_url=host, is_secure=not skip_tls_verify, custom_ca=ssl_ca_cert, namespace=namespace
    )
    built: list[Any] = []

    def backend(backend_config: Any) -> Any:
        built.append(_construct(backend_cls, _hooking_backend(backend_cls), auth, proxy, backend_config))
        return built[-1]

    # kfp's own constructor, run with the name `KubernetesBackend` bound to the factory
    # above: its backend is built through the stand-in, and kfp's modules are not touched.
    kfp_init = types.FunctionType(
        init.__code__,
        {**init.__globals__, "KubernetesBackend": backend},
        init.__name__,
        init.__defaults__,
        init.__closure__,
    )
    kfp_init.__kwdefaults__ = init.__kwdefaults__
    cls: Any = _pipelines_subclass(client_cls)
    client = cls.__new__(cls)
    kfp_init(client, config)
    if not built or client._backend is not built[0]:
        raise _unknown_pipelines_client()
    client._kfp_auth_kfp_client = functools.partial(
        build_client,
        host,
        auth,
        skip_tls_verify=skip_tls_verify,
        ssl_ca_cert=ssl_ca_cert,
        proxy=proxy,
        namespace=namespace,
    )
    return client
