"""The drop-in ``KFPClientManager``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kfp_auth._client import build_client
from kfp_auth._native import DexSession, default_session_cache, redact_url

if TYPE_CHECKING:
    import kfp


class KFPClientManager:
    """Creates ``kfp.Client`` instances logged in through Dex.

    Same constructor, methods and results as the class in the Kubeflow docs
    ("Connect the SDK to the API"); the differences are listed in the README.
    The manager keeps its session and reuses it while it is valid, and the
    clients it makes log in again by themselves when the gateway asks. The
    password is handed to the Rust core at construction and is not kept on
    this object.
    """

    def __init__(
        self,
        api_url: str,
        dex_username: str,
        dex_password: str,
        dex_auth_type: str = "local",
        skip_tls_verify: bool = False,
        *,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        max_redirects: int = 10,
        session_cache: bool | str | os.PathLike[str] = False,
    ) -> None:
        """
        :param api_url: the Kubeflow Pipelines API URL, e.g. ``http://localhost:8080/pipeline``
        :param dex_username: the Dex username
        :param dex_password: the Dex password
        :param dex_auth_type: the Dex connector id to log in with, e.g. ``local`` or ``ldap``
        :param skip_tls_verify: if True, skip TLS verification for the login and the client
        :param ssl_ca_cert: a PEM file of CA certificates to verify the gateway with, for the
            login and the client (for gateways whose certificate a private CA signed)
        :param timeout: seconds each login request may take
        :param max_redirects: how many redirects in a row a login may follow
        :param session_cache: keep the session in a file so other processes reuse it: ``True``
            for ``~/.cache/kfp-auth/sessions.json`` (``$XDG_CACHE_HOME`` is honoured), or a path.
            The file holds session cookies, never the password, and must be private (mode 0600).
        :raises ValueError: when ``api_url`` or ``dex_auth_type`` is malformed
        """
        self._session = DexSession(
            api_url,
            dex_username,
            dex_password,
            dex_auth_type,
            skip_tls_verify=skip_tls_verify,
            ssl_ca_cert=ssl_ca_cert,
            timeout=timeout,
            max_redirects=max_redirects,
            session_cache=_cache_path(session_cache),
        )
        self._api_url = api_url
        self._skip_tls_verify = skip_tls_verify
        self._ssl_ca_cert = None if ssl_ca_cert is None else os.fspath(ssl_ca_cert)
        self._dex_username = dex_username
        self._dex_auth_type = dex_auth_type

    def get_session_cookies(self, *, force_login: bool = False) -> str:
        """The session cookies for the API, as ``"k1=v1; k2=v2"``.

        Logs in only when no valid session is held, or when ``force_login``.
        Returns ``""`` when the endpoint is unsecured (standalone or port-forwarded KFP).
        """
        return self._session.login() if force_login else self._session.cookies()

    # The name the documented class uses.
    _get_session_cookies = get_session_cookies

    async def get_session_cookies_async(self, *, force_login: bool = False) -> str:
        """``get_session_cookies`` for asyncio: the login never blocks the event loop."""
        if force_login:
            return await self._session.login_async()
        return await self._session.cookies_async()

    def create_kfp_client(self, *, force_login: bool = False) -> kfp.Client:
        """A Kubeflow Pipelines client on this manager's session.

        The client logs in again by itself, once per rejected request, when the
        gateway no longer accepts the session (expiry, gateway restart).
        """
        if force_login:
            self._session.login()
        return build_client(self._api_url, self._session, self._skip_tls_verify, self._ssl_ca_cert)

    # The name the documented class uses.
    _create_kfp_client = create_kfp_client

    @property
    def logins(self) -> int:
        """How many logins this manager has made."""
        return self._session.logins

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Pickles end up in files, caches and other processes: refusing keeps the password out of them.
        raise TypeError(
            "a KFPClientManager is not picklable: it holds a password, which kfp-auth never writes "
            "into a pickle. Build a new KFPClientManager in the other process (with "
            "session_cache=True it reuses the session instead of logging in again)"
        )

    def __repr__(self) -> str:
        return (
            f"KFPClientManager(api_url={redact_url(self._api_url)!r}, dex_username={self._dex_username!r}, "
            f"dex_password='********', dex_auth_type={self._dex_auth_type!r}, "
            f"skip_tls_verify={self._skip_tls_verify!r})"
        )


def _cache_path(session_cache: bool | str | os.PathLike[str]) -> str | None:
    if session_cache is False or session_cache is None:
        return None
    if session_cache is True:
        path = default_session_cache()
        if path is None:
            raise ValueError("session_cache=True needs $HOME or $XDG_CACHE_HOME; pass a path instead")
        return path
    return os.fspath(session_cache)
