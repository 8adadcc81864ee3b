"""The drop-in ``KFPClientManager``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from kfp_auth._client import (
    Auth,
    BearerAuth,
    CookieAuth,
    NoAuth,
    build_client,
    build_pipelines_client,
    kfp_credentials,
)
from kfp_auth._errors import InvalidArgumentError
from kfp_auth._keyring import KEYRING, KeyringStore, wanted_by_env
from kfp_auth._native import (
    BearerSession,
    DexSession,
    check_settings,
    default_session_cache,
    default_token_cache,
    default_token_path,
    proxy_for,
    redact_url,
)
from kfp_auth._types import AuthKind, DeviceEvent, TokenClaims

if TYPE_CHECKING:
    import kfp
    from kfp.client.token_credentials_base import TokenCredentialsBase
    from kfp.kubeflow_client import PipelinesClient

log = logging.getLogger("kfp_auth")

#: The KFP API inside the cluster: the UI service, which serves ``/apis/`` with the
#: same authorization checks as the API server (kfp's own default is ``ml-pipeline:8888``).
IN_CLUSTER_URL = "http://ml-pipeline-ui.kubeflow.svc.cluster.local"


class KFPClientManager:
    """Creates ``kfp.Client`` instances logged in to a Kubeflow Pipelines API.

    Same constructor, methods and results as the class in the Kubeflow docs
    ("Connect the SDK to the API"), plus keyword-only options; the differences
    are listed in docs/migrating.md. Credentials are used in this order: an explicit
    ``existing_token``, a ``token_path``, Dex credentials (a browser-style login,
    or Dex's password grant when ``dex_client_id`` is given), then none
    (standalone or port-forwarded KFP). With ``login="device"``, the user logs in
    through Dex in a browser anywhere (SSO included; see docs/sso.md) and no password
    is given; with ``login="browser"``, in this machine's browser, opened for them.
    The manager keeps its session or token and reuses it while it is valid, and the
    clients it makes renew it by themselves when the gateway asks. Secrets are handed
    to the Rust core at construction and are not kept on this object.
    """

    def __init__(
        self,
        api_url: str,
        dex_username: str | None = None,
        dex_password: str | None = None,
        dex_auth_type: str | None = None,
        skip_tls_verify: bool = False,
        *,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        max_redirects: int = 10,
        session_cache: bool | str | os.PathLike[str] = False,
        existing_token: str | None = None,
        token_path: str | os.PathLike[str] | None = None,
        dex_client_id: str | None = None,
        dex_client_secret: str | None = None,
        dex_url: str | None = None,
        proxy: str | None = None,
        allow_insecure_redirect: bool = False,
        login: Literal["device", "browser", "exchange"] | None = None,
        prompt: Callable[[DeviceEvent], object] | None = None,
        token_cache: bool | str | os.PathLike[str] | None = None,
        browser_port: int | None = None,
        browser_timeout: float = 300.0,
        subject_token: str | None = None,
        subject_token_file: str | os.PathLike[str] | None = None,
        subject_audience: str | None = None,
        relogin: bool = False,
        scopes: str | None = None,
    ) -> None:
        """
        :param api_url: the Kubeflow Pipelines API URL, e.g. ``http://localhost:8080/pipeline``
        :param dex_username: the Dex username
        :param dex_password: the Dex password
        :param dex_auth_type: the Dex connector id to log in with, e.g. ``local`` or ``ldap``
            (default ``local``). For a device login it is only shown to the user: Dex's device
            flow cannot choose the connector, and with none named Dex shows its choice page.
            For a browser login it is chosen for the user (Dex's ``connector_id``); with none
            named Dex shows its choice page
        :param skip_tls_verify: if True, skip TLS verification for the login and the client
        :param ssl_ca_cert: a PEM file of CA certificates to verify the gateway with, for the
            login and the client (for gateways whose certificate a private CA signed)
        :param timeout: seconds a login may take, all its requests together (a login that runs
            out of time raises ``LoginTimeoutError``, whatever the server does)
        :param max_redirects: how many redirects in a row a login may follow
        :param session_cache: keep the session in a file so other processes reuse it: ``True``
            for ``~/.cache/kfp-auth/sessions.json`` (``$XDG_CACHE_HOME`` is honoured), or a path.
            The file holds session cookies, never the password, and must be private (mode 0600).
            It applies to Dex logins only.
        :param existing_token: a bearer token to send (e.g. from ``kubectl create token``)
        :param token_path: a file holding a bearer token, read again when it is rotated
        :param dex_client_id: with ``dex_client_secret``, log in with Dex's password grant
            (Dex needs ``oauth2.passwordConnector``) and send its ID token as a bearer token.
            With ``login="device"``, the public client to log in as (default ``kfp-auth``)
        :param dex_client_secret: the secret of ``dex_client_id``
        :param dex_url: where Dex is. For the password grant, where to ask (default: ``/dex`` on
            ``api_url``'s host, where Kubeflow's gateway serves it). For a browser-style login,
            the only origin the password may go to: a login the gateway sends to a Dex elsewhere
            is refused before the password is sent (unset, a Dex on another origin than
            ``api_url``'s is logged as a warning)
        :param proxy: a proxy for the login and the client; by default ``HTTPS_PROXY``,
            ``HTTP_PROXY`` and ``NO_PROXY`` apply, as in ``requests``
        :param allow_insecure_redirect: let a Dex login go on when it is sent from https down to
            plain http (the password and cookies then travel unencrypted); off by default
        :param login: ``"device"`` for Dex's device login (RFC 8628): the user opens a page in
            any browser and enters a code; the ID token is the bearer token, renewed with its
            refresh token before it expires, and kept in the token cache (``token_cache``). The
            login happens on first use, unless the token cache holds one.
            ``"browser"`` for a login in this machine's browser (authorization code with PKCE,
            the browser coming back to ``http://127.0.0.1:<port>/callback``), opened with
            Python's ``webbrowser`` (``$BROWSER`` is honoured); where no browser can be opened,
            a device login runs instead. Tokens as for ``"device"``.
            ``"exchange"`` for token exchange (RFC 8693), for CI: the identity provider's ID token
            (``subject_token`` or ``subject_token_file``) is traded with Dex's ``oidc`` connector
            ``dex_auth_type`` for Dex's, and traded again to renew it; nobody is asked.
        :param prompt: how a device login shows its code, and a browser login the page to open
            by hand: a callable taking a ``DeviceEvent`` (default ``DevicePrompt()``: stderr, or
            a link in Jupyter)
        :param browser_port: for ``login="browser"``, the loopback port the admin registered in
            Dex (default: any free port, which Dex accepts for a public client without
            ``redirectURIs``)
        :param browser_timeout: for ``login="browser"``, seconds the browser has to come back
            (``BrowserTimeoutError`` after that)
        :param subject_token: for ``login="exchange"`` (token exchange, for CI; see docs/sso.md):
            the identity provider's ID token to trade with Dex's ``oidc`` connector
            ``dex_auth_type``, or ``"github-actions"`` to ask GitHub Actions for the job's OIDC
            token at each exchange
        :param subject_token_file: for ``login="exchange"``: a file holding that ID token (e.g. a
            projected ServiceAccount token), read again at each exchange
        :param subject_audience: with ``subject_token="github-actions"``: the audience asked of
            GitHub (default: the client id, ``kfp-auth``)
        :param token_cache: where a device or browser login is kept between processes, so a
            process started while the refresh token lives asks the user nothing: by default (and
            with ``True``) ``~/.cache/kfp-auth/tokens.json`` (``$XDG_CACHE_HOME`` is honoured), or
            a path; ``False`` keeps the login in memory only. The file holds ID and refresh tokens,
            never a password, and must be private (mode 0600). Renewals of processes sharing it
            are serialised (Dex rotates refresh tokens). ``"keyring"`` (or, for the default,
            ``$KFP_AUTH_TOKEN_CACHE=keyring``) puts the two tokens in the OS keyring instead, the
            default file keeping only the rest of the login; it needs ``pip install
            "kfp-auth[keyring]"`` and a keyring backend, else ``KeyringError``. For
            ``login="device"`` and ``"browser"`` only
        :param relogin: for ``login="device"`` and ``"browser"``, when the refresh token is dead
            (revoked, expired, Dex restarted), start a new login, showing the prompt again, instead
            of raising ``LoginRequiredError``. Off by default: a job in the middle of a run must not
            wait for a prompt nobody sees. For notebooks and interactive sessions
        :param scopes: the scopes a device, browser or exchange login asks for, space-separated
            (default ``"openid email profile groups offline_access"``; ``"openid email profile groups"``
            for ``login="exchange"``). ``openid`` is required and ``offline_access`` gives the refresh
            token; leave out ``groups`` for a provider other than Dex that refuses it (see docs/sso.md)
        :raises InvalidArgumentError: (a ``ValueError``) when an argument is malformed or
            credentials are incomplete
        """
        self._api_url = api_url
        self._skip_tls_verify = skip_tls_verify
        self._ssl_ca_cert = None if ssl_ca_cert is None else os.fspath(ssl_ca_cert)
        self._proxy = proxy
        self._dex_username = dex_username
        self._dex_auth_type = "local" if dex_auth_type is None else dex_auth_type
        self._session: DexSession | None = None
        self._bearer: BearerSession | None = None
        tls: dict[str, Any] = {
            "skip_tls_verify": skip_tls_verify,
            "ssl_ca_cert": ssl_ca_cert,
            "timeout": timeout,
            "proxy": proxy,
        }
        check_settings(api_url, **tls)  # every mode fails on bad settings at construction
        if login == "exchange" or subject_token is not None or subject_token_file is not None:
            self._bearer = _exchange_login(
                api_url,
                login,
                {
                    "dex_username": dex_username,
                    "dex_password": dex_password,
                    "existing_token": existing_token,
                    "token_path": token_path,
                    "dex_client_secret": dex_client_secret,
                    "prompt": prompt,
                    "token_cache": token_cache,
                },
                dex_auth_type,
                dex_client_id,
                dex_url,
                subject_token,
                subject_token_file,
                subject_audience,
                tls,
                relogin,
                scopes,
            )
            self._auth: Auth = BearerAuth(self._bearer)
            return
        if subject_audience is not None:
            raise InvalidArgumentError(
                'subject_audience is for login="exchange" with subject_token="github-actions"',
                argument="subject_audience",
            )
        if login is not None:
            self._bearer = _sso_login(
                api_url,
                login,
                dex_username,
                dex_password,
                existing_token,
                token_path,
                dex_auth_type,
                dex_client_id,
                dex_client_secret,
                dex_url,
                prompt,
                browser_port,
                browser_timeout,
                tls,
                token_cache,
                relogin,
                scopes,
            )
            self._auth = BearerAuth(self._bearer)
            return
        if prompt is not None:
            raise InvalidArgumentError('prompt is for login="device" or login="browser"', argument="prompt")
        if relogin:
            raise InvalidArgumentError('relogin is for login="device" or login="browser"', argument="relogin")
        if scopes is not None:
            raise InvalidArgumentError(
                'scopes is for login="device", "browser" or "exchange"; the password grant asks for '
                '"openid email profile groups"',
                argument="scopes",
            )
        if browser_port is not None:
            raise InvalidArgumentError('browser_port is for login="browser"', argument="browser_port")
        if token_cache is not None:
            raise InvalidArgumentError(
                'token_cache is for login="device" and login="browser"; a Dex password login keeps its '
                "session with session_cache",
                argument="token_cache",
            )
        if (dex_client_id is None) != (dex_client_secret is None):
            raise InvalidArgumentError(
                "the password grant needs both dex_client_id and dex_client_secret",
                argument="dex_client_secret" if dex_client_secret is None else "dex_client_id",
            )
        have_dex = dex_username is not None or dex_password is not None
        if existing_token is not None:
            self._bearer = BearerSession.from_token(existing_token)
        elif token_path is not None:
            self._bearer = BearerSession.from_file(token_path)
        elif have_dex:
            if dex_username is None or dex_password is None:
                missing = "dex_password" if dex_password is None else "dex_username"
                raise InvalidArgumentError(
                    f"{missing} is missing: a Dex login needs both dex_username and dex_password", argument=missing
                )
            if dex_client_id is not None and dex_client_secret is not None:
                self._bearer = BearerSession.from_dex_password_grant(
                    api_url, dex_username, dex_password, dex_client_id, dex_client_secret, dex_url=dex_url, **tls
                )
            else:
                self._session = DexSession(
                    api_url,
                    dex_username,
                    dex_password,
                    self._dex_auth_type,
                    max_redirects=max_redirects,
                    session_cache=_cache_path(session_cache),
                    allow_insecure_redirect=allow_insecure_redirect,
                    dex_url=dex_url,
                    **tls,
                )
        elif dex_client_id is not None:
            raise InvalidArgumentError(
                "the password grant needs dex_username and dex_password", argument="dex_username"
            )
        self._auth = (
            CookieAuth(self._session)
            if self._session is not None
            else BearerAuth(self._bearer)
            if self._bearer is not None
            else NoAuth(api_url)
        )
        if self._bearer is not None and have_dex and self._bearer.kind != "dex-password-grant":
            log.debug("kfp-auth: using %s; the Dex credentials given are not used", self._bearer.source)

    @classmethod
    def in_cluster(
        cls,
        api_url: str = IN_CLUSTER_URL,
        *,
        token_path: str | os.PathLike[str] | None = None,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        skip_tls_verify: bool = False,
        proxy: str | None = None,
    ) -> KFPClientManager:
        """A manager for code running in a pod, with no credentials of its own: it sends the
        projected ServiceAccount token at ``token_path`` (default ``$KF_PIPELINES_SA_TOKEN_PATH``,
        else ``/var/run/secrets/kubeflow/pipelines/token``), read again when the kubelet rotates it.

        :raises TokenError: when the token file is missing, empty, unreadable or not a JWT
        """
        if token_path is None:
            token_path = default_token_path()
        return cls(
            api_url,
            token_path=token_path,
            ssl_ca_cert=ssl_ca_cert,
            skip_tls_verify=skip_tls_verify,
            proxy=proxy,
        )

    @property
    def bearer(self) -> BearerSession | None:
        """The bearer token source (``None`` for Dex logins with cookies and for no credentials)."""
        return self._bearer

    @property
    def auth_kind(self) -> AuthKind:
        """How this manager authenticates: ``"dex-login"``, ``"token"``, ``"file"``,
        ``"dex-password-grant"``, ``"dex-device"``, ``"dex-browser"``, ``"dex-token-exchange"`` or
        ``"none"``."""
        if self._session is not None:
            return "dex-login"
        return "none" if self._bearer is None else self._bearer.kind

    def get_session_cookies(self, *, force_login: bool = False) -> str:
        """The session cookies for the API, as ``"k1=v1; k2=v2"``.

        Logs in only when no valid session is held, or when ``force_login``.
        Returns ``""`` when the endpoint is unsecured (standalone or port-forwarded KFP),
        and when the manager uses a bearer token or no credentials (no cookies then).
        """
        if self._session is None:
            return ""
        return self._session.login() if force_login else self._session.cookies()

    # The name the documented class uses.
    _get_session_cookies = get_session_cookies

    async def get_session_cookies_async(self, *, force_login: bool = False) -> str:
        """``get_session_cookies`` for asyncio: the login never blocks the event loop."""
        if self._session is None:
            return ""
        if force_login:
            return await self._session.login_async()
        return await self._session.cookies_async()

    def get_bearer_token(self, *, force_refresh: bool = False) -> str | None:
        """The bearer token the clients send (``None`` for cookie sessions and no credentials).

        A token file is read again when it changed; a password-grant token is renewed
        shortly before it expires, or now with ``force_refresh``. A device login's token is
        renewed by its refresh token (``force_refresh``: now); the first call logs in.

        :raises LoginRequiredError: when Dex no longer accepts the refresh token: log in
            again with ``create_kfp_client(force_login=True)``
        :raises DeviceLoginError: when the device login's code expired before the user finished
        """
        if self._bearer is None:
            return None
        return self._bearer.renew() if force_refresh else self._bearer.token()

    async def get_bearer_token_async(self, *, force_refresh: bool = False) -> str | None:
        """``get_bearer_token`` for asyncio: a renewal never blocks the event loop."""
        if self._bearer is None:
            return None
        if force_refresh:
            return await self._bearer.renew_async()
        return await self._bearer.token_async()

    def token_claims(self) -> TokenClaims | None:
        """The bearer token's claims (``subject``, ``issuer``, ``audience``, ``expires``,
        ``issued``; times in Unix seconds), decoded and never verified; ``None`` without a JWT."""
        return None if self._bearer is None else self._bearer.claims()

    def create_kfp_client(self, *, force_login: bool = False) -> kfp.Client:
        """A Kubeflow Pipelines client on this manager's credentials.

        The client renews them by itself, once per rejected request, when the
        gateway no longer accepts them (session expiry, gateway restart, token rotation).
        ``force_login`` logs in now: for ``login="device"`` or ``"browser"``, a new login.
        """
        self._login_now(force_login)
        return build_client(
            self._client_url(),
            self._auth,
            skip_tls_verify=self._skip_tls_verify,
            ssl_ca_cert=self._ssl_ca_cert,
            proxy=proxy_for(self._api_url, self._proxy),
        )

    # The name the documented class uses.
    _create_kfp_client = create_kfp_client

    def create_pipelines_client(self, namespace: str | None = None, *, force_login: bool = False) -> PipelinesClient:
        """A ``PipelinesClient`` (kfp 2.17's name-first client, also ``kubeflow.pipelines.PipelinesClient``)
        on this manager's credentials.

        Like ``create_kfp_client()``'s client, it renews them by itself, once per rejected request
        (a Dex session's cookies by a new login; a bearer token from its source, at each request
        while it is fresh), with this manager's TLS and proxy settings. Its ``kfp_client`` is a
        ``kfp.Client`` on the same credentials.

        :param namespace: the Kubernetes namespace to work in, e.g. the user's profile namespace
            (default: kfp's, i.e. the pod's namespace, the kubeconfig context's, else ``kubeflow``)
        :param force_login: log in now, as for ``create_kfp_client()``
        :raises KFPVersionError: (an ``ImportError``) when the installed kfp is older than 2.17
        """
        self._login_now(force_login)
        return build_pipelines_client(
            self._client_url(),
            self._auth,
            namespace=namespace,
            skip_tls_verify=self._skip_tls_verify,
            ssl_ca_cert=self._ssl_ca_cert,
            proxy=proxy_for(self._api_url, self._proxy),
        )

    def _login_now(self, force_login: bool) -> None:
        if force_login:
            if self._session is not None:
                self._session.login()
            elif self._bearer is not None:
                self._bearer.login()

    def _client_url(self) -> str:
        # kfp appends its paths to the host, so a query string in api_url (kept for
        # the login's redirect back) would break every URL: the clients get none.
        return urlsplit(self._api_url)._replace(query="", fragment="").geturl()

    def create_kfp_credentials(self) -> TokenCredentialsBase:
        """This manager's bearer token as kfp's own credentials object, for
        ``kfp.Client(host=..., credentials=..., cookies="")`` or anything else that takes
        kfp's ``TokenCredentialsBase``.

        kfp calls its ``refresh_api_key_hook`` before every request; the hook hands out the
        token held in memory (a token file is looked at with one ``stat``, and read again
        only when it changed), renewing it only when it is about to expire. Unlike
        ``create_kfp_client()``, a plain ``kfp.Client`` does not retry a refused request.

        :raises InvalidArgumentError: for Dex logins with session cookies and for a manager
            without credentials: kfp's hook can only send a bearer token
        """
        if not isinstance(self._auth, BearerAuth):
            what = "a Dex login with session cookies" if self._session is not None else "no credentials"
            raise InvalidArgumentError(
                f"kfp's credentials hook sends a bearer token, and this manager has {what}: "
                "use create_kfp_client(), or a bearer mode (existing_token, token_path, "
                "Dex's password grant (dex_client_id and dex_client_secret), or "
                'login="device", "browser" or "exchange")',
                argument="credentials",
            )
        return kfp_credentials(self._auth.session)

    @property
    def logins(self) -> int:
        """How many Dex logins (or password grants) this manager has made."""
        if self._session is not None:
            return self._session.logins
        if self._bearer is not None and self._bearer.kind == "dex-password-grant":
            return self._bearer.fetches
        if self._bearer is not None and self._bearer.kind in ("dex-device", "dex-browser", "dex-token-exchange"):
            return self._bearer.fetches - self._bearer.refreshes
        return 0

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Pickles end up in files, caches and other processes: refusing keeps secrets out of them.
        raise TypeError(
            "a KFPClientManager is not picklable: it holds credentials, which kfp-auth never writes "
            "into a pickle. Build a new KFPClientManager in the other process (with "
            "session_cache=True it reuses the session instead of logging in again; an SSO login "
            "is reused from the token cache)"
        )

    def __repr__(self) -> str:
        url = redact_url(self._api_url)
        if self._bearer is not None:
            return f"KFPClientManager(api_url={url!r}, auth={self._bearer.source!r})"
        if self._session is None:
            return f"KFPClientManager(api_url={url!r}, auth='none')"
        return (
            f"KFPClientManager(api_url={url!r}, dex_username={self._dex_username!r}, "
            f"dex_password='********', dex_auth_type={self._dex_auth_type!r}, "
            f"skip_tls_verify={self._skip_tls_verify!r})"
        )


def _sso_login(
    api_url: str,
    login: str,
    dex_username: str | None,
    dex_password: str | None,
    existing_token: str | None,
    token_path: str | os.PathLike[str] | None,
    dex_auth_type: str | None,
    dex_client_id: str | None,
    dex_client_secret: str | None,
    dex_url: str | None,
    prompt: Callable[[DeviceEvent], object] | None,
    browser_port: int | None,
    browser_timeout: float,
    tls: dict[str, Any],
    token_cache: bool | str | os.PathLike[str] | None,
    relogin: bool,
    scopes: str | None,
) -> BearerSession:
    """The bearer source of ``login="device"`` or ``"browser"``, after refusing what does not go with it."""
    if login not in ("device", "browser"):
        raise InvalidArgumentError(
            f'login={login!r} is not supported; use login="device" or login="browser"', argument="login"
        )
    given = [
        name
        for name, value in (
            ("dex_username", dex_username),
            ("dex_password", dex_password),
            ("existing_token", existing_token),
            ("token_path", token_path),
            ("dex_client_secret", dex_client_secret),
        )
        if value is not None
    ]
    if given:
        raise InvalidArgumentError(
            f"login={login!r} takes no {given[0]}: the user logs in through Dex in a browser, "
            "as the public client dex_client_id (default kfp-auth), which has no secret",
            argument=given[0],
        )
    client_id = "kfp-auth" if dex_client_id is None else dex_client_id
    path, store = _token_cache(token_cache)
    more: dict[str, Any] = {"relogin": relogin}
    if scopes is not None:
        more["scopes"] = scopes
    if login == "device":
        if browser_port is not None:
            raise InvalidArgumentError('browser_port is for login="browser"', argument="browser_port")
        return BearerSession.from_dex_device(
            api_url,
            prompt=prompt,
            client_id=client_id,
            dex_url=dex_url,
            connector=dex_auth_type,
            token_cache=path,
            secret_store=store,
            **more,
            **tls,
        )
    if browser_port is not None and not 0 < browser_port < 65536:
        raise InvalidArgumentError(
            f"browser_port {browser_port} is not a port number (1 to 65535)", argument="browser_port"
        )
    return BearerSession.from_dex_browser(
        api_url,
        prompt=prompt,
        client_id=client_id,
        dex_url=dex_url,
        connector=dex_auth_type,
        port=browser_port,
        browser_timeout=browser_timeout,
        token_cache=path,
        secret_store=store,
        **more,
        **tls,
    )


#: ``subject_token`` value that asks GitHub Actions for the job's OIDC token.
GITHUB_ACTIONS = "github-actions"


def _exchange_login(
    api_url: str,
    login: str | None,
    given: dict[str, Any],
    dex_auth_type: str | None,
    dex_client_id: str | None,
    dex_url: str | None,
    subject_token: str | None,
    subject_token_file: str | os.PathLike[str] | None,
    subject_audience: str | None,
    tls: dict[str, Any],
    relogin: bool,
    scopes: str | None,
) -> BearerSession:
    """The bearer source of ``login="exchange"``, after refusing what does not go with it."""
    if login != "exchange":
        name = "subject_token" if subject_token is not None else "subject_token_file"
        raise InvalidArgumentError(f'{name} is for login="exchange"', argument=name)
    for name in given:
        if given.get(name) is not None:
            raise InvalidArgumentError(
                f'login="exchange" takes no {name}: it trades the identity provider\'s ID token '
                "(subject_token or subject_token_file) for Dex's, as the public client dex_client_id "
                "(default kfp-auth), with nobody to ask",
                argument=name,
            )
    if dex_auth_type is None:
        raise InvalidArgumentError(
            'login="exchange" needs dex_auth_type: the id of Dex\'s `oidc` connector whose issuer '
            "signed the subject token",
            argument="dex_auth_type",
        )
    if (subject_token is None) == (subject_token_file is None):
        raise InvalidArgumentError(
            'login="exchange" takes exactly one of subject_token (an ID token, or "github-actions") '
            "and subject_token_file",
            argument="subject_token",
        )
    if relogin:
        raise InvalidArgumentError(
            'relogin is for login="device" or login="browser": token exchange asks nobody, and renews '
            "by exchanging again",
            argument="relogin",
        )
    github = subject_token == GITHUB_ACTIONS
    more: dict[str, Any] = {} if scopes is None else {"scopes": scopes}
    if subject_audience is not None and not github:
        raise InvalidArgumentError(
            f'subject_audience is for subject_token="{GITHUB_ACTIONS}"', argument="subject_audience"
        )
    return BearerSession.from_dex_token_exchange(
        api_url,
        dex_auth_type,
        subject_token=None if github else subject_token,
        subject_token_file=subject_token_file,
        github_actions=github,
        audience=subject_audience,
        client_id="kfp-auth" if dex_client_id is None else dex_client_id,
        dex_url=dex_url,
        **more,
        **tls,
    )


def _token_cache(token_cache: bool | str | os.PathLike[str] | None) -> tuple[str | None, KeyringStore | None]:
    """The token cache file of an SSO login (on by default; see docs/decisions.md), and the
    OS keyring store when the tokens go there (``"keyring"``, or ``$KFP_AUTH_TOKEN_CACHE``)."""
    if token_cache is False:
        return None, None
    keyring = token_cache == KEYRING or (token_cache is None and wanted_by_env())
    if keyring or token_cache is None or token_cache is True:
        path = default_token_cache()
        if path is None and (token_cache is not None or keyring):
            raise InvalidArgumentError(
                f"token_cache={token_cache!r} needs $HOME or $XDG_CACHE_HOME; pass a path instead",
                argument="token_cache",
            )
        if path is None:
            log.debug("kfp-auth: no $HOME nor $XDG_CACHE_HOME: the SSO login is kept in memory only")
        return path, KeyringStore() if keyring else None
    return os.fspath(token_cache), None


def _cache_path(session_cache: bool | str | os.PathLike[str]) -> str | None:
    if session_cache is False or session_cache is None:
        return None
    if session_cache is True:
        path = default_session_cache()
        if path is None:
            raise InvalidArgumentError(
                "session_cache=True needs $HOME or $XDG_CACHE_HOME; pass a path instead", argument="session_cache"
            )
        return path
    return os.fspath(session_cache)
