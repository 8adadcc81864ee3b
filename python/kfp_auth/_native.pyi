"""The Rust core of kfp-auth."""

import os
from collections.abc import Awaitable
from typing import TypedDict, final

__all__ = [
    "__version__",
    "DexSession",
    "is_login_response",
    "redact_url",
    "default_session_cache",
    "SessionCacheError",
    "KFPAuthError",
    "InvalidCredentialsError",
    "UnknownConnectorError",
    "UnexpectedResponseError",
    "TLSError",
    "ConnectError",
    "LoginTimeoutError",
    "TokenError",
    "inspect_token",
    "inspect_token_file",
    "TOKEN_PATH_ENV",
    "DEFAULT_TOKEN_PATH",
]

__version__: str
TOKEN_PATH_ENV: str
DEFAULT_TOKEN_PATH: str

class _LoginStep(TypedDict):
    method: str
    url: str
    status: int | None
    elapsed_ms: int

class _Claims(TypedDict):
    subject: str | None
    issuer: str | None
    audience: list[str]
    expires: float | None
    issued: float | None

class _Diagnosis(TypedDict):
    url: str
    tls: str
    gateway: str
    connectors: list[str]
    approval: str
    steps: list[_LoginStep]
    verdict: str
    error: KFPAuthError | None

class KFPAuthError(RuntimeError):
    """Base class of every kfp-auth error."""

    status: int | None
    url: str | None
    history: list[_LoginStep]

class InvalidCredentialsError(KFPAuthError):
    """Dex rejected the username or password."""

class UnknownConnectorError(KFPAuthError):
    """Dex does not offer the requested connector (dex_auth_type)."""

    offered: list[str]

class UnexpectedResponseError(KFPAuthError):
    """A status or page that no Kubeflow login path produces at that step."""

class TLSError(KFPAuthError):
    """The TLS handshake or certificate verification failed."""

class ConnectError(KFPAuthError):
    """The server could not be reached, or the connection broke."""

class LoginTimeoutError(KFPAuthError):
    """A login request took longer than `timeout`."""

class TokenError(KFPAuthError):
    """A bearer token, or its file, cannot be used."""

class SessionCacheError(KFPAuthError):
    """The session cache file cannot be used safely."""

@final
class DexSession:
    """A Dex login against one Kubeflow Pipelines endpoint."""

    def __new__(
        cls,
        api_url: str,
        username: str,
        password: str,
        connector: str = "local",
        *,
        skip_tls_verify: bool = False,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        max_redirects: int = 10,
        max_body_bytes: int = 1048576,
        session_cache: str | os.PathLike[str] | None = None,
    ) -> DexSession: ...
    def cookies(self) -> str:
        """The session's `Cookie` header value (`""` when unsecured), logging in only when needed."""
    def login(self) -> str:
        """Log in now, whatever session is held, and return the new cookies."""
    def refresh(self, stale: str) -> str:
        """The gateway rejected `stale`: log in again unless another caller already did."""
    def invalidate(self) -> None:
        """Forget the session, so the next use logs in."""
    def cookies_async(self) -> Awaitable[str]: ...
    def login_async(self) -> Awaitable[str]: ...
    def refresh_async(self, stale: str) -> Awaitable[str]: ...
    def diagnose(self) -> _Diagnosis:
        """Log in as a diagnosis: what guards the endpoint, each request (redacted), and the verdict."""
    @property
    def session_cache(self) -> str | None:
        """The session cache file, when one is used."""
    @property
    def logins(self) -> int:
        """How many logins this session has made."""
    @property
    def api_url(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def connector(self) -> str: ...
    @property
    def skip_tls_verify(self) -> bool: ...
    @property
    def ssl_ca_cert(self) -> str | None: ...
    @property
    def timeout(self) -> float: ...

def is_login_response(status: int, content_type: str | None, location: str | None, body: bytes) -> bool:
    """Whether a KFP API response is the gateway asking for a login."""

def redact_url(url: str) -> str:
    """`url` as it may be shown: origin and path, query values hidden, user info dropped."""

def default_session_cache() -> str | None:
    """The default session cache file: `$XDG_CACHE_HOME/kfp-auth/sessions.json` or `~/.cache/...`."""

def inspect_token(token: str) -> _Claims:
    """The claims of a JWT (subject, issuer, audience, expires, issued), decoded without verification."""

def inspect_token_file(path: str | os.PathLike[str]) -> _Claims:
    """The claims of the JWT in a token file, which must exist, be readable, and hold a JWT."""
