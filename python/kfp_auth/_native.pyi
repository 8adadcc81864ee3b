"""The Rust core of kfp-auth."""

import os
from collections.abc import Awaitable, Callable
from typing import final

# The exception classes are defined in Python (kfp_auth/_errors.py); the module offers them too.
from kfp_auth._errors import BrowserLoginError as BrowserLoginError
from kfp_auth._errors import BrowserLoginRefusedError as BrowserLoginRefusedError
from kfp_auth._errors import BrowserStateMismatchError as BrowserStateMismatchError
from kfp_auth._errors import BrowserTimeoutError as BrowserTimeoutError
from kfp_auth._errors import ConnectError as ConnectError
from kfp_auth._errors import DeviceLoginError as DeviceLoginError
from kfp_auth._errors import IncompleteBodyError as IncompleteBodyError
from kfp_auth._errors import InvalidArgumentError as InvalidArgumentError
from kfp_auth._errors import InvalidCredentialsError as InvalidCredentialsError
from kfp_auth._errors import KeyringError as KeyringError
from kfp_auth._errors import KFPAuthError as KFPAuthError
from kfp_auth._errors import KFPAuthWarning as KFPAuthWarning
from kfp_auth._errors import KFPVersionError as KFPVersionError
from kfp_auth._errors import LoginRequiredError as LoginRequiredError
from kfp_auth._errors import LoginTimeoutError as LoginTimeoutError
from kfp_auth._errors import LoopbackPortInUseError as LoopbackPortInUseError
from kfp_auth._errors import PermissionDeniedError as PermissionDeniedError
from kfp_auth._errors import SessionCacheError as SessionCacheError
from kfp_auth._errors import TLSError as TLSError
from kfp_auth._errors import TokenError as TokenError
from kfp_auth._errors import UnexpectedResponseError as UnexpectedResponseError
from kfp_auth._errors import UnknownConnectorError as UnknownConnectorError
from kfp_auth._types import BearerKind, CachedLogin, DeviceEvent, Diagnosis, RBACDenial, SecretStore, TokenClaims

__all__ = [
    "__version__",
    "DexSession",
    "BearerSession",
    "rbac_denial",
    "check_settings",
    "proxy_for",
    "is_login_response",
    "redact_url",
    "read_private_file",
    "write_private_file",
    "default_session_cache",
    "default_token_cache",
    "token_cache_logins",
    "token_cache_remove",
    "KFPAuthError",
    "InvalidArgumentError",
    "InvalidCredentialsError",
    "UnknownConnectorError",
    "UnexpectedResponseError",
    "TLSError",
    "ConnectError",
    "IncompleteBodyError",
    "LoginTimeoutError",
    "TokenError",
    "LoginRequiredError",
    "DeviceLoginError",
    "BrowserLoginError",
    "BrowserStateMismatchError",
    "LoopbackPortInUseError",
    "BrowserTimeoutError",
    "BrowserLoginRefusedError",
    "KeyringError",
    "SessionCacheError",
    "PermissionDeniedError",
    "KFPVersionError",
    "KFPAuthWarning",
    "inspect_token",
    "inspect_token_file",
    "default_token_path",
    "TOKEN_PATH_ENV",
    "DEFAULT_TOKEN_PATH",
]

__version__: str
TOKEN_PATH_ENV: str
DEFAULT_TOKEN_PATH: str

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
        proxy: str | None = None,
        allow_insecure_redirect: bool = False,
        dex_url: str | None = None,
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
    def diagnose(self) -> Diagnosis:
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

@final
class BearerSession:
    """A bearer token that stays usable: fixed, from a rotated file, from Dex's password grant,
    or from a device login renewed by its refresh token."""

    @staticmethod
    def from_token(token: str) -> BearerSession:
        """A token given as a string (e.g. from `kubectl create token`)."""
    @staticmethod
    def from_file(path: str | os.PathLike[str] | None = None) -> BearerSession:
        """A token file, re-read when it changes; `None` reads `$KF_PIPELINES_SA_TOKEN_PATH` or the default."""
    @staticmethod
    def from_dex_password_grant(
        api_url: str,
        username: str,
        password: str,
        client_id: str,
        client_secret: str,
        *,
        dex_url: str | None = None,
        scopes: str = "openid email profile groups",
        skip_tls_verify: bool = False,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        proxy: str | None = None,
    ) -> BearerSession:
        """Dex's password grant at `dex_url` + `/token` (default: `/dex` on `api_url`'s origin)."""
    @staticmethod
    def from_dex_device(
        api_url: str,
        *,
        prompt: Callable[[DeviceEvent], object] | None = None,
        client_id: str = "kfp-auth",
        dex_url: str | None = None,
        scopes: str = "openid email profile groups offline_access",
        connector: str | None = None,
        poll_interval: float | None = None,
        skip_tls_verify: bool = False,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        proxy: str | None = None,
        token_cache: str | os.PathLike[str] | None = None,
        secret_store: SecretStore | None = None,
        relogin: bool = False,
    ) -> BearerSession:
        """A device login (RFC 8628) at Dex, renewed by its refresh token; `prompt` shows the code.
        With `token_cache`, the login is kept in that file and shared with other processes; with
        `secret_store` too, its tokens go to that store and the file keeps the rest. With
        `relogin`, a dead refresh token starts a new login instead of `LoginRequiredError`."""
    @staticmethod
    def from_dex_browser(
        api_url: str,
        *,
        prompt: Callable[[DeviceEvent], object] | None = None,
        open_browser: Callable[[str], object] | None = None,
        client_id: str = "kfp-auth",
        dex_url: str | None = None,
        scopes: str = "openid email profile groups offline_access",
        connector: str | None = None,
        port: int | None = None,
        browser_timeout: float = 300.0,
        skip_tls_verify: bool = False,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        proxy: str | None = None,
        token_cache: str | os.PathLike[str] | None = None,
        secret_store: SecretStore | None = None,
        relogin: bool = False,
    ) -> BearerSession:
        """A browser login at Dex (authorization code with PKCE on a loopback redirect), renewed
        by its refresh token; a device login where `open_browser` (default `webbrowser.open`)
        cannot open a browser. `token_cache` and `relogin` as for `from_dex_device`."""
    @staticmethod
    def from_dex_token_exchange(
        api_url: str,
        connector: str,
        *,
        subject_token: str | None = None,
        subject_token_file: str | os.PathLike[str] | None = None,
        github_actions: bool = False,
        audience: str | None = None,
        client_id: str = "kfp-auth",
        dex_url: str | None = None,
        scopes: str = "openid email profile groups",
        skip_tls_verify: bool = False,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        proxy: str | None = None,
    ) -> BearerSession:
        """Token exchange (RFC 8693) at Dex with the `oidc` connector `connector`, renewed by exchanging again."""
    @staticmethod
    def from_token_cache(
        api_url: str,
        *,
        token_cache: str | os.PathLike[str] | None = None,
        client_id: str = "kfp-auth",
        dex_url: str | None = None,
        connector: str | None = None,
        user: str | None = None,
        skip_tls_verify: bool = False,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        proxy: str | None = None,
        secret_store: SecretStore | None = None,
    ) -> BearerSession:
        """The SSO login saved in the token cache for `api_url`, refreshed when needed; never asks
        the user (`LoginRequiredError` without a usable saved login)."""
    def token(self) -> str:
        """The token to send now: re-read if the file changed, re-granted if about to expire."""
    def refresh(self, stale: str) -> str:
        """The server refused `stale`: a new token, or `TokenError` when none can be had."""
    def renew(self) -> str:
        """A new token now, whatever is held (a new grant, or a re-read of the file)."""
    def login(self) -> str:
        """A new login now: a new device login for a device source; as `renew()` for the others."""
    def token_async(self) -> Awaitable[str]: ...
    def refresh_async(self, stale: str) -> Awaitable[str]: ...
    def renew_async(self) -> Awaitable[str]: ...
    def login_async(self) -> Awaitable[str]: ...
    def claims(self) -> TokenClaims | None:
        """The current token's claims, decoded without verification."""
    @property
    def kind(self) -> BearerKind:
        """`"token"`, `"file"`, `"dex-password-grant"`, `"dex-device"`, `"dex-browser"` or `"dex-token-exchange"`."""
    @property
    def path(self) -> str | None:
        """The token file, for a file source."""
    @property
    def source(self) -> str:
        """Where the token comes from, in words."""
    @property
    def fetches(self) -> int:
        """Reads of the token file, grants made, or device logins and refreshes made."""
    @property
    def refreshes(self) -> int:
        """Tokens renewed by a refresh token (device logins); 0 for the other sources."""

def rbac_denial(status: int, body: bytes) -> RBACDenial | None:
    """What an RBAC denial from the KFP API says, or `None` when the answer is not one."""

def check_settings(
    api_url: str,
    *,
    skip_tls_verify: bool = False,
    ssl_ca_cert: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    proxy: str | None = None,
) -> None:
    """Raise `InvalidArgumentError` when `api_url` or a transport setting is unusable."""

def proxy_for(url: str, proxy: str | None = None) -> tuple[str, str | None] | None:
    """The proxy for `url` (URL without credentials, `Proxy-Authorization` value), or `None`."""

def is_login_response(status: int, content_type: str | None, location: str | None, body: bytes) -> bool:
    """Whether a KFP API response is the gateway asking for a login."""

def redact_url(url: str) -> str:
    """`url` as it may be shown: origin and path, query values hidden, user info dropped."""

def read_private_file(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of a file kept by the rules for credential files, or `None` when it does not exist."""

def write_private_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data`, mode 0600, in a private folder (the rules of `read_private_file`)."""

def default_session_cache() -> str | None:
    """The default session cache file: `$XDG_CACHE_HOME/kfp-auth/sessions.json` or `~/.cache/...`."""

def default_token_cache() -> str | None:
    """The default token cache file: `$XDG_CACHE_HOME/kfp-auth/tokens.json` or `~/.cache/...`."""

def token_cache_logins(
    path: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    client_id: str | None = None,
    connector: str | None = None,
    user: str | None = None,
) -> list[CachedLogin]:
    """The SSO logins saved in the token cache that fit, the most recent first (never a token)."""

def token_cache_remove(
    path: str | os.PathLike[str] | None = None,
    keys: list[str] = ...,
    *,
    all: bool = False,
    secret_store: SecretStore | None = None,
) -> int:
    """Remove these logins (or the whole file with `all`) from the token cache; how many went.
    The keyring items of logins kept in `secret_store` go with them; without it, such logins
    are refused (`SessionCacheError`)."""

def inspect_token(token: str) -> TokenClaims:
    """The claims of a JWT (subject, issuer, audience, expires, issued), decoded without verification."""

def default_token_path() -> str:
    """The token file kfp reads in a pod: `$KF_PIPELINES_SA_TOKEN_PATH`, or the default."""

def inspect_token_file(path: str | os.PathLike[str]) -> TokenClaims:
    """The claims of the JWT in a token file, which must exist, be readable, and hold a JWT."""
