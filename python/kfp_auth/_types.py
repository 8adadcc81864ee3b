"""The shapes of the dicts kfp-auth returns, and the names of its kinds of credentials."""

# Evaluated annotations in 3.9's syntax, as in _errors.py.
from typing import Literal, Optional, Protocol, TypedDict

from kfp_auth._errors import KFPAuthError, LoginStep

__all__ = [
    "AuthKind",
    "BearerKind",
    "CachedLogin",
    "DeviceEvent",
    "Diagnosis",
    "LoginStep",
    "RBACDenial",
    "TokenClaims",
]

#: How a ``KFPClientManager`` authenticates (its ``auth_kind``).
AuthKind = Literal[
    "dex-login", "token", "file", "dex-password-grant", "dex-device", "dex-browser", "dex-token-exchange", "none"
]

#: Where a ``BearerSession``'s token comes from (its ``kind``).
BearerKind = Literal["token", "file", "dex-password-grant", "dex-device", "dex-browser", "dex-token-exchange"]


class TokenClaims(TypedDict):
    """The claims of a JWT, decoded and never verified. Times are Unix seconds."""

    subject: Optional[str]
    """``sub``."""
    issuer: Optional[str]
    """``iss``."""
    audience: list[str]
    """``aud``, as a list (empty when absent)."""
    expires: Optional[float]
    """``exp``, or ``None`` when absent or absurd."""
    issued: Optional[float]
    """``iat``, or ``None`` when absent or absurd."""


class CachedLogin(TypedDict):
    """An SSO login saved in the token cache, as it may be shown: never a token."""

    key: str
    """What the cache keys it by: issuer, client, connector (``-`` when none was named), user."""
    issuer: str
    client_id: str
    connector: Optional[str]
    user: str
    """The ID token's ``email`` (else ``sub``)."""
    dex_url: str
    api_url: Optional[str]
    expires: Optional[int]
    """When the saved ID token expires (Unix seconds)."""
    saved: int
    """When the login was last saved (Unix seconds)."""
    refreshable: bool
    """Whether a refresh token is saved with it (always ``True`` for a login in the keyring)."""
    keyring: bool
    """Whether its tokens are in the OS keyring (``token_cache="keyring"``), the file holding none."""


class SecretStore(Protocol):
    """Where the token cache keeps a login's tokens instead of its file: one item per login,
    named by its key (``kfp_auth._keyring.KeyringStore``, the OS keyring)."""

    def get(self, key: str) -> Optional[str]: ...
    def set(self, key: str, secret: str) -> None: ...
    def delete(self, key: str) -> None:
        """No item under ``key`` is not an error."""


class DeviceEvent(TypedDict):
    """What an SSO login's prompt is called with: first the code to show (``"code"``), or for a
    browser login the page the browser was sent to (``"browser"``; a ``"code"`` follows when no
    browser could be opened), then how the login ended (``"done"``, ``"failed"`` or ``"cancelled"``)."""

    event: Literal["code", "browser", "done", "failed", "cancelled"]
    verification_uri: Optional[str]
    """The page to open (mapped onto the gateway when Dex's issuer is unreachable); for
    ``"browser"``, Dex's login page, to open by hand on this machine if no browser appeared;
    ``"code"`` and ``"browser"`` only."""
    verification_uri_complete: Optional[str]
    """The page with the user code filled in, when Dex gives one; ``"code"`` only."""
    user_code: Optional[str]
    """The code the user enters or checks; ``"code"`` only."""
    expires_in: Optional[float]
    """Seconds the code stays valid; ``"code"`` only."""
    connector: Optional[str]
    """The connector to choose on Dex's page, when one was named (``dex_auth_type``)."""
    message: Optional[str]
    """Why the login failed; ``"failed"`` only."""


class Diagnosis(TypedDict):
    """What ``DexSession.diagnose()`` found: what guards the endpoint, each request, the verdict."""

    url: str
    """The API URL (query values hidden)."""
    tls: str
    """The TLS connection and certificate, in words (or that it is plain http)."""
    gateway: str
    """What guards the endpoint (oauth2-proxy, oidc-authservice, nothing...)."""
    connectors: list[str]
    """The connectors Dex offered."""
    dex: str
    """Where Dex is, against the gateway's origin and ``dex_url``."""
    approval: str
    """Whether Dex asked to approve the client."""
    steps: list[LoginStep]
    """Every request of the login, redacted."""
    verdict: str
    """The outcome, in words."""
    error: Optional[KFPAuthError]
    """The error that failed the login, or ``None``."""


class RBACDenial(TypedDict):
    """What an RBAC denial from the KFP API says."""

    user: Optional[str]
    namespace: Optional[str]
    verb: Optional[str]
    resource: Optional[str]
    message: str
    """The API's own message."""
