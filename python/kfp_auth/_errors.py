"""The exceptions and the warning category of kfp-auth.

Every error is a ``KFPAuthError``, which is a ``RuntimeError`` (what code written for
the class in the Kubeflow docs catches); some are also the built-in exception Python
code already catches for that failure, as in ``requests`` (``InvalidURL`` is also a
``ValueError``): a bad argument is a ``ValueError``, a timeout a ``TimeoutError``, a
connection that cannot be made a ``ConnectionError``.

The classes are defined here, in Python, and the Rust core raises them (it looks them
up once). A class made in Rust by PyO3 has an instance layout of its own, and Python
cannot give one class two such layouts: ``class X(KFPAuthError, TimeoutError)`` would
fail with "multiple bases have instance lay-out conflict" when ``KFPAuthError`` came
from PyO3 (``TimeoutError`` is an ``OSError``, with its own layout). Here, the
attributes are also declared and typed where mypy, the stubs and the docs see them.
"""

# No `from __future__ import annotations`, and Optional rather than `X | None`:
# the annotations are evaluated here, on Python 3.9 too, so typing.get_type_hints
# (and pydantic) read them although the classes' __module__ is "kfp_auth".
from collections.abc import Sequence
from typing import Optional, TypedDict

__all__ = [
    "BrowserLoginError",
    "BrowserLoginRefusedError",
    "BrowserStateMismatchError",
    "BrowserTimeoutError",
    "ConnectError",
    "IncompleteBodyError",
    "InvalidArgumentError",
    "InvalidCredentialsError",
    "KFPAuthError",
    "KeyringError",
    "KFPAuthWarning",
    "KFPVersionError",
    "LoginStep",
    "LoginTimeoutError",
    "LoopbackPortInUseError",
    "PermissionDeniedError",
    "SessionCacheError",
    "TLSError",
    "TokenError",
    "UnexpectedResponseError",
    "UnknownConnectorError",
]


class LoginStep(TypedDict):
    """One request of a login, as kept for debugging: nothing in it is secret."""

    method: str
    """The HTTP method, e.g. ``"GET"``."""
    url: str
    """The URL, with query values hidden and no user info."""
    status: Optional[int]
    """The answer's HTTP status, or ``None`` when no answer came (refused, timed out)."""
    elapsed_ms: int
    """How long the request took, in milliseconds."""


class KFPAuthError(RuntimeError):
    """Base class of every kfp-auth error: catch it to catch them all.

    A ``RuntimeError``, so code written for the class in the Kubeflow docs keeps catching it.
    The message says what happened and what to do; no message or attribute holds a password,
    a cookie value or a token.
    """

    status: Optional[int]
    """The HTTP status of the answer that failed the login, or ``None``."""
    url: Optional[str]
    """The URL that failed (query values hidden, no user info), or ``None``."""
    history: list[LoginStep]
    """The requests of the failed login, in order (empty when it made none)."""

    def __init__(
        self,
        *args: object,
        status: Optional[int] = None,
        url: Optional[str] = None,
        history: Sequence[LoginStep] = (),
    ) -> None:
        super().__init__(*args)
        self.status = status
        self.url = url
        self.history = list(history)


class InvalidArgumentError(KFPAuthError, ValueError):
    """An argument or setting cannot be used (a malformed ``api_url``, ``timeout``, ``proxy``...);
    raised at construction, before any request. Also a ``ValueError``."""

    argument: Optional[str]
    """The argument at fault, e.g. ``"api_url"``, or ``None`` when several are."""

    def __init__(
        self,
        *args: object,
        argument: Optional[str] = None,
        status: Optional[int] = None,
        url: Optional[str] = None,
        history: Sequence[LoginStep] = (),
    ) -> None:
        super().__init__(*args, status=status, url=url, history=history)
        self.argument = argument


class InvalidCredentialsError(KFPAuthError):
    """Dex rejected the username or password."""


class UnknownConnectorError(KFPAuthError):
    """Dex does not offer the requested connector (``dex_auth_type``)."""

    offered: list[str]
    """The connectors Dex does offer (empty when they could not be read)."""

    def __init__(
        self,
        *args: object,
        offered: Sequence[str] = (),
        status: Optional[int] = None,
        url: Optional[str] = None,
        history: Sequence[LoginStep] = (),
    ) -> None:
        super().__init__(*args, status=status, url=url, history=history)
        self.offered = list(offered)


class UnexpectedResponseError(KFPAuthError):
    """A status or page that no Kubeflow login path produces at that step."""


class TLSError(KFPAuthError):
    """The TLS handshake or certificate verification failed."""


class ConnectError(KFPAuthError, ConnectionError):
    """The server could not be reached, or the connection broke. Also a ``ConnectionError``."""


class IncompleteBodyError(KFPAuthError):
    """An answer ended before its whole body arrived (its ``Content-Length`` not reached,
    a chunk missing): the server or a proxy closed the connection early."""


class LoginTimeoutError(KFPAuthError, TimeoutError):
    """The login (all its requests) took longer than ``timeout``. Also a ``TimeoutError``."""


class TokenError(KFPAuthError):
    """A bearer token, or its file, cannot be used."""


class LoginRequiredError(TokenError):
    """The refresh token of an SSO login is no longer accepted (used elsewhere, revoked,
    expired, or Dex restarted): only a new login gives a token. Log in again, e.g. with
    ``create_kfp_client(force_login=True)`` on the ``KFPClientManager``."""


class DeviceLoginError(KFPAuthError):
    """A device login ended without a token: its code expired before the user finished
    in the browser, or the login was refused."""


class BrowserLoginError(KFPAuthError):
    """A browser login (``login="browser"``) ended without a token; the subclasses say how.
    Raised as itself when Dex refused the code it sent back, or the loopback port could not
    be opened."""


class BrowserStateMismatchError(BrowserLoginError):
    """A request reached the browser login's callback without the ``state`` of the login
    kfp-auth started (an old browser tab, or another program): the login ends. Log in again."""


class LoopbackPortInUseError(BrowserLoginError):
    """The fixed ``browser_port`` is in use by another program."""


class BrowserTimeoutError(BrowserLoginError, TimeoutError):
    """The browser never came back within ``browser_timeout``. Also a ``TimeoutError``."""


class BrowserLoginRefusedError(BrowserLoginError):
    """Dex sent the browser back with an OAuth error (``access_denied``, ``invalid_scope``...)."""


class PermissionDeniedError(KFPAuthError):
    """The KFP API denied this user the request (an RBAC denial): a login does not change it.

    Raised by a client, it is also kfp's ``kfp_server_api.ApiException`` (status 403).
    """

    user: Optional[str]
    """The user the API named."""
    namespace: Optional[str]
    """The namespace of the request."""
    verb: Optional[str]
    """The verb denied, e.g. ``"list"``."""
    resource: Optional[str]
    """The resource, e.g. ``"experiments"``."""

    def __init__(
        self,
        *args: object,
        user: Optional[str] = None,
        namespace: Optional[str] = None,
        verb: Optional[str] = None,
        resource: Optional[str] = None,
        status: Optional[int] = None,
        url: Optional[str] = None,
        history: Sequence[LoginStep] = (),
    ) -> None:
        super().__init__(*args, status=status, url=url, history=history)
        self.user = user
        self.namespace = namespace
        self.verb = verb
        self.resource = resource


class SessionCacheError(KFPAuthError):
    """The session cache file cannot be used safely."""


class KeyringError(SessionCacheError):
    """The OS keyring of ``token_cache="keyring"`` cannot be used: the ``keyring`` package
    is not installed (``pip install "kfp-auth[keyring]"``), it has no backend, or the
    backend failed. Use the file cache (the default) where there is no keyring."""


class KFPVersionError(KFPAuthError, ImportError):
    """The installed ``kfp`` is too old for what was asked (``create_pipelines_client()`` needs
    ``kfp>=2.17``, which added ``PipelinesClient``): upgrade it. Also an ``ImportError``, what code
    that tries an optional part of a package already catches."""

    installed: Optional[str]
    """The installed ``kfp`` version, e.g. ``"1.8.22"``."""
    required: Optional[str]
    """The versions needed, e.g. ``">=2.17"``."""

    def __init__(
        self,
        *args: object,
        installed: Optional[str] = None,
        required: Optional[str] = None,
        status: Optional[int] = None,
        url: Optional[str] = None,
        history: Sequence[LoginStep] = (),
    ) -> None:
        super().__init__(*args, status=status, url=url, history=history)
        self.installed = installed
        self.required = required


class KFPAuthWarning(RuntimeWarning):
    """The category of kfp-auth's warnings (e.g. a corrupt session cache replaced), so they
    can be filtered: ``warnings.filterwarnings("ignore", category=kfp_auth.KFPAuthWarning)``."""


# Named kfp_auth.X in tracebacks, reprs and pickles: where users import them from.
for _cls in (
    KFPAuthError,
    InvalidArgumentError,
    InvalidCredentialsError,
    UnknownConnectorError,
    UnexpectedResponseError,
    TLSError,
    ConnectError,
    IncompleteBodyError,
    LoginTimeoutError,
    TokenError,
    LoginRequiredError,
    DeviceLoginError,
    BrowserLoginError,
    BrowserStateMismatchError,
    LoopbackPortInUseError,
    BrowserTimeoutError,
    BrowserLoginRefusedError,
    PermissionDeniedError,
    SessionCacheError,
    KeyringError,
    KFPVersionError,
    KFPAuthWarning,
):
    _cls.__module__ = "kfp_auth"
del _cls
