"""Building a ``kfp.Client`` for kfp 1.8 and 2.x, without patching ``kfp`` itself.

The client's REST layer (``kfp_server_api.rest.RESTClientObject``) of each
client we build is given a subclass that takes the session's cookies before
every request and, when the gateway answers with a login instead of the API,
logs in again once and retries. kfp's own classes are never modified.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any
from urllib.parse import urlsplit

from kfp_auth._native import DexSession, UnexpectedResponseError, is_login_response


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


@functools.lru_cache(maxsize=None)
def _relogin_subclass(rest_cls: type) -> type:
    """A subclass of kfp_server_api's REST client that keeps the session fresh."""

    api_exception = importlib.import_module(rest_cls.__module__).ApiException

    class ReloginREST(rest_cls):  # type: ignore[misc]
        _kfp_auth_session: DexSession
        _kfp_auth_api_client: Any

        def request(self, method: str, url: str, *args: Any, headers: Any = None, **kwargs: Any) -> Any:
            session = self._kfp_auth_session
            headers = dict(headers or {})
            cookies = self._kfp_auth_use(headers, session.cookies())
            try:
                resp = super().request(method, url, *args, headers=headers, **kwargs)
                if not self._kfp_auth_is_login(resp.status, resp, kwargs):
                    return resp
            except api_exception as e:
                if e.status == 0 or not is_login_response(
                    e.status, _header(e.headers, "Content-Type"), _header(e.headers, "Location"), _body(e.body)
                ):
                    raise
            # The gateway wants a login: one fresh login (shared with any other
            # caller that saw the same stale session), then one retry. The
            # gateway refused the first attempt, so the API never saw it: a
            # retry is safe for a POST too.
            self._kfp_auth_use(headers, session.refresh(cookies))
            still = (
                f"the gateway still answers {method} {urlsplit(url).path} with a login right after a "
                "fresh login: it does not accept the session (check its cookie settings, or run "
                "`kfp-auth diagnose`)"
            )
            try:
                resp = super().request(method, url, *args, headers=headers, **kwargs)
            except api_exception as e:
                # Not a bare 401: kfp's wait_for_run_completion would take it for an expired GCP token.
                if e.status != 0 and is_login_response(
                    e.status, _header(e.headers, "Content-Type"), _header(e.headers, "Location"), _body(e.body)
                ):
                    raise UnexpectedResponseError(still) from None
                raise
            if self._kfp_auth_is_login(resp.status, resp, kwargs):
                raise UnexpectedResponseError(still)
            return resp

        def _kfp_auth_use(self, headers: dict[str, Any], cookies: str) -> str:
            headers.pop("Cookie", None)
            if cookies:
                headers["Cookie"] = cookies
            # Keep the ApiClient in step, for any code that reads its cookie.
            self._kfp_auth_api_client.cookie = cookies or None
            return cookies

        @staticmethod
        def _kfp_auth_is_login(status: int, resp: Any, kwargs: dict[str, Any]) -> bool:
            if not kwargs.get("_preload_content", True):
                return False  # a streamed body is the caller's to read
            return is_login_response(
                status, resp.getheader("Content-Type"), resp.getheader("Location"), _body(resp.data)
            )

    ReloginREST.__name__ = ReloginREST.__qualname__ = rest_cls.__name__
    return ReloginREST


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
    request (a healthz check) before returning, and with a session the gateway
    no longer accepts, that request must already go through the re-login hook."""

    class Hooking(client_cls):  # type: ignore[misc]
        def __init__(self, *args: Any, kfp_auth_session: DexSession, **kwargs: Any) -> None:
            self._kfp_auth_session = kfp_auth_session
            super().__init__(*args, **kwargs)

        def get_kfp_healthz(self, *args: Any, **kwargs: Any) -> Any:
            _install_relogin(self, self._kfp_auth_session)
            return super().get_kfp_healthz(*args, **kwargs)

    return Hooking


def _install_relogin(client: Any, session: DexSession) -> None:
    for api_client in _api_clients(client):
        rest = api_client.rest_client
        rest_cls: type = type(rest)
        if not hasattr(rest_cls, "_kfp_auth_use"):
            rest.__class__ = _relogin_subclass(rest_cls)
        rest._kfp_auth_session = session
        rest._kfp_auth_api_client = api_client


def build_client(host: str, session: DexSession, skip_tls_verify: bool, ssl_ca_cert: str | None) -> Any:
    kfp = import_kfp()
    client_cls = kfp.Client
    kwargs: dict[str, Any] = {"host": host, "cookies": session.cookies()}
    if ssl_ca_cert is not None:
        kwargs["ssl_ca_cert"] = ssl_ca_cert
    if skip_tls_verify:
        if _takes_verify_ssl(client_cls):
            kwargs["verify_ssl"] = False
        else:
            client_cls = _unverified_subclass(client_cls)
    # Construct through the stand-in, then hand back the plain class: the
    # object is a kfp.Client in every respect, with the hook in its REST layer.
    client = _hooking_subclass(client_cls)(kfp_auth_session=session, **kwargs)
    client.__class__ = client_cls
    del client._kfp_auth_session
    _install_relogin(client, session)  # when kfp made no healthz request
    return client
